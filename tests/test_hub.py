"""A whole term through the course's JupyterHub (deploy/), in Chromium, on loopback (marker: hub).

As root, deploy/hub.py's ClassHub makes an instructor, a grader and two students as local Unix users, the
exchange and the system-wide configuration, with notebook 01 of the real assignment, and removes
them all at the end, also when the test fails. Then: the instructor releases; each student logs in,
fetches, answers, presses Validate and submits in JupyterLab; the instructor collects, grades with
grade-parallel (sandboxed); the instructor and the grader (an account of its own, sharing the course
folder) each grade one student's written answers by hand in the formgrader; the instructor releases
feedback; each student fetches feedback, reads own scores through the hub, and the fetched page,
opened as a file with the network blocked, typesets its maths (docs/hub.md, "Feedback").
Students cannot reach the formgrader, each other's work or the course's source/, and their
JupyterLab shows no instructor tools. Step timings are printed (pytest -s) and kept in artifacts/hub/.
"""
import contextlib
import json
import os
import pathlib
import re
import shlex
import shutil
import sys
import time
import urllib.parse

import pytest

from browser_helpers import CHROMIUM_ARGS, LAB_SETTINGS, NotebookPage, Screenshots, find_chromium

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy"))
import hub as deploy_hub  # noqa: E402 - deploy/ is not a package

NOTEBOOK = "01_recap_and_motivation"
INSTRUCTOR, GRADER, STUDENTS = "s10tinstructor", "s10tgrader", ["s10tstudent1", "s10tstudent2"]
ANSWERS = {   # the code answer (2 points, autograded); student 2's is wrong on purpose
    STUDENTS[0]: "n_inputs = 224 * 224 * 3\nn_neurons = 256\nfirst_layer_params = n_inputs * n_neurons + n_neurons\n",
    STUDENTS[1]: "first_layer_params = 1000\n",
}
WRITTEN = {STUDENTS[0]: 2, STUDENTS[1]: 1}   # hand-given points for the written answer q1 (of 2)
ART = REPO / "artifacts" / "hub"
TIMEOUT = 120_000
# Whether MathJax typeset the page, polled from here: a string evaluated by wait_for_function is refused
# by the page's CSP.
TYPESET = ("() => !!(window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0"
           " && document.querySelectorAll('.MathJax').length >= 3)")
TIMES = []


def step(name):
    class Step:
        def __enter__(self):
            self.t = time.monotonic()

        def __exit__(self, *exc):
            TIMES.append((name, time.monotonic() - self.t, exc[0] is None))
            print(f"{'ok  ' if exc[0] is None else 'FAIL'} {TIMES[-1][1]:6.1f}s  {name}", flush=True)
    return Step()


def _missing():
    if os.geteuid() != 0:
        return "needs root (makes Unix users)"
    if not find_chromium():
        return "no system Chromium"
    if not shutil.which("bwrap"):
        return "no bubblewrap"
    if not deploy_hub.PROXY.exists() or not (pathlib.Path(sys.prefix) / "bin" / "jupyterhub").exists():
        return "no JupyterHub or proxy: make hub-tools"
    return None


@pytest.fixture(scope="module")
def class_hub():
    if _missing():
        pytest.skip(_missing())
    ART.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with deploy_hub.ClassHub([INSTRUCTOR], [GRADER], STUDENTS, notebooks=[NOTEBOOK]) as hub:
        for user in STUDENTS:   # every cell in the DOM, in file order (browser_helpers.LAB_SETTINGS)
            for name, value in LAB_SETTINGS.items():
                hub.as_user(user, f"mkdir -p ~/.jupyter/lab/user-settings/{os.path.dirname(name)} && "
                                  f"echo '{json.dumps(value)}' > ~/.jupyter/lab/user-settings/{name}")
        TIMES.append(("hub up (users, exchange, course, hub)", time.monotonic() - t0, True))
        try:
            yield hub
        finally:
            (ART / "hub.log").write_text(hub.log_tail(400))
            total = sum(t for _, t, _ in TIMES)
            (ART / "timings.txt").write_text("".join(f"{t:7.1f}  {'' if ok else 'FAILED '}{n}\n"
                                                     for n, t, ok in TIMES) + f"{total:7.1f}  total\n")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        yield b
        b.close()


def login(browser, hub, user):
    """A fresh browser context logged in through the hub's form; returns its page, on the user's Lab."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(f"/user/{user}/lab"), timeout=TIMEOUT)
    page.wait_for_selector("#jp-main-dock-panel")
    return page


def nbgrader_menu(page):
    page.click("#jp-menu-panel .lm-MenuBar-itemLabel:text-is('Nbgrader')")
    page.wait_for_selector("#jp-mainmenu-nbgrader .lm-Menu-itemLabel")
    items = [i for i in page.locator("#jp-mainmenu-nbgrader .lm-Menu-itemLabel").all_inner_texts() if i]
    page.keyboard.press("Escape")
    return items


def assignment_list(page):
    # A click on the menu bar can land while the menu closed by nbgrader_menu is still active, and
    # close it again: open it until its item shows.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    item = page.locator("#jp-mainmenu-nbgrader .lm-Menu-itemLabel:text-is('Assignment List')")
    for _ in range(10):
        page.click("#jp-menu-panel .lm-MenuBar-itemLabel:text-is('Nbgrader')")
        with contextlib.suppress(PlaywrightTimeout):
            item.wait_for(state="visible", timeout=5_000)
            break
    item.click()
    page.wait_for_selector("#released_assignments_list")


def test_a_term_through_the_hub(class_hub, browser):
    hub = class_hub
    shots = Screenshots(ART)
    course = "cd ~/course &&"

    with step("instructor: coursetools release + nbgrader release_assignment"):
        hub.as_user(INSTRUCTOR, f"{course} umask 007 && python -m coursetools release && "
                                "nbgrader release_assignment session10")

    pages = {}
    for user in STUDENTS:
        with step(f"{user}: log in, fetch, answer, Validate, submit (Chromium)"):
            page = pages[user] = login(browser, hub, user)
            items = nbgrader_menu(page)
            assert "Assignment List" in items and "Formgrader" not in items, items
            assert not any("Create" in i or "Course" in i for i in items), items
            assignment_list(page)
            row = page.locator("#released_assignments_list .list_item").filter(has_text="session10")
            row.get_by_role("button", name="Fetch").click()
            page.locator("#fetched_assignments_list .list_item").filter(has_text="session10").wait_for()
            nb = NotebookPage(page, type("Lab", (), {"url": f"{hub.url}/user/{user}", "token": ""}),
                              f"session10/{NOTEBOOK}.ipynb", f"ws-{user}").open(expected_cells=12)
            nb.set_cell_source(5, ANSWERS[user])
            # notebook 01 has no TeX of its own: the answer brings the maths the feedback must typeset
            nb.set_cell_source(3, f"Flattening loses which pixels are neighbours: $x_{{i,j}}$ and $x_{{i,j+1}}$ "
                                  f"end up far apart in $\\mathbb{{R}}^{{784}}$ ({user}).", markdown=True)
            if user == STUDENTS[0]:   # student 2 leaves the second written answer blank
                nb.set_cell_source(11, "Weights shared across positions find a pattern anywhere.", markdown=True)
            nb.save()
            dialog = nb.validate()
            text = dialog.inner_text()
            assert ("Success" in text) == (user == STUDENTS[0]), text[:800]   # student 2: a wrong and a missing answer
            shots(page, f"{user}_validate")
            nb.close_dialog()
            assignment_list(page)
            fetched = page.locator("#fetched_assignments_list .list_item").filter(has_text="session10")
            fetched.get_by_role("button", name="Submit").first.click()
            page.locator("#submitted_assignments_list .list_item").filter(has_text="session10").first.wait_for()

    with step("student: no formgrader, no other student's server, files, inbound or source/"):
        s1, s2 = STUDENTS
        r = pages[s1].request.get(f"{hub.url}/user/{s1}/formgrader")
        assert r.status == 404, r.status
        r = pages[s1].request.get(f"{hub.url}/user/{s2}/api/contents/session10", max_redirects=0)
        assert r.status in (302, 403, 404), r.status
        config = pages[s1].evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent)")
        disabled = set(config.get("disabledExtensions", []))
        assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment"} <= disabled, disabled
        for path in (f"/home/{s2}", f"/home/{INSTRUCTOR}/course/source", str(deploy_hub.COURSE_DIR / "source"),
                     f"{deploy_hub.EXCHANGE}/{deploy_hub.COURSE_ID}/inbound"):
            assert hub.as_user(s1, f"ls {path}", check=False).returncode != 0, f"{s1} can list {path}"

    with step("instructor: nbgrader collect"):
        hub.as_user(INSTRUCTOR, f"{course} umask 007 && nbgrader collect session10")
    with step("instructor: coursetools grade-parallel (sandboxed, 2 submissions)"):
        hub.as_user(INSTRUCTOR, f"{course} umask 007 && python -m coursetools grade-parallel --no-progress")

    # Each written answer is graded by a different member of staff: the grader has an account of their
    # own and shares the instructor's course folder (deploy/hub.py, make_course).
    markers = {STUDENTS[0]: INSTRUCTOR, STUDENTS[1]: GRADER}
    expected = {STUDENTS[0]: 2 + WRITTEN[STUDENTS[0]], STUDENTS[1]: WRITTEN[STUDENTS[1]]}
    for student, marker in markers.items():
        with step(f"{marker}: grade {student}'s written answers in the formgrader (Chromium)"):
            page = login(browser, hub, marker)
            assert "Formgrader" in nbgrader_menu(page)
            api = f"{hub.url}/user/{marker}/formgrader/api"
            sub = [s for s in page.request.get(f"{api}/submitted_notebooks/session10/{NOTEBOOK}").json()
                   if s["student"] == student][0]
            page.goto(f"{hub.url}/user/{marker}/formgrader/submissions/{sub['id']}/")
            page.wait_for_load_state("networkidle")   # the page's scripts bound to the score boxes
            for grade_id, points in (("nb01_q1_flatten_loss", WRITTEN[student]), ("nb01_q3_local_patterns", 0)):
                box = page.locator(f"input.score#{grade_id}")
                box.fill(str(points))
                box.press("Tab")
            shots(page, f"formgrader_{marker}_{student}")
            for _ in range(30):   # each box saves on its own request
                scores = {s["student"]: s["score"] for s in
                          page.request.get(f"{api}/submitted_notebooks/session10/{NOTEBOOK}").json()}
                if scores[student] == expected[student]:
                    break
                page.wait_for_timeout(500)
            assert scores[student] == expected[student], scores
            page.context.close()
    assert scores == expected, scores   # the grader's marks and the instructor's in one gradebook

    with step("instructor: coursetools feedback + nbgrader release_feedback"):
        hub.as_user(INSTRUCTOR, f"{course} umask 007 && python -m coursetools feedback && "
                                "nbgrader release_feedback session10")

    for user in STUDENTS:
        with step(f"{user}: fetch feedback; own scores; maths typeset offline (Chromium)"):
            page = pages[user]
            assignment_list(page)
            page.locator("#submitted_assignments_list .list_item").filter(
                has_text="session10").get_by_role("button", name="Fetch Feedback").first.click()
            found = ""
            for _ in range(60):
                found = hub.as_user(user, f"ls session10/feedback/*/{NOTEBOOK}.html", check=False).stdout.strip()
                if found:
                    break
                time.sleep(1)
            assert found, f"{user}: no feedback fetched"
            relative = found.splitlines()[0]
            # Through the hub, as the student opens it from their server: own scores, no one else's work.
            heard = []   # what the page's loads said, for the message when MathJax does not typeset
            page.on("console", lambda message, heard=heard: heard.append(f"console: {message.text}"))
            page.on("response", lambda response, heard=heard: heard.append(f"{response.status} {response.url}"))
            page.goto(f"{hub.url}/user/{user}/files/{urllib.parse.quote(relative)}")
            text = page.inner_text("body")
            shots(page, f"{user}_feedback")
            own = 2 + WRITTEN[STUDENTS[0]] if user == STUDENTS[0] else WRITTEN[STUDENTS[1]]
            assert re.search(rf"Score:\s*{own}(\.0+)?\s*/\s*6", text), text[:1500]
            other = [s for s in STUDENTS if s != user][0]
            assert other not in text, f"{user}'s feedback mentions {other}"
            assert f"({user})" in text
            # Served by /files/ (sandboxed: its requests carry no hub cookie), the page typesets with the
            # settings and MathJax from the student's server's static files (LocalMathJax.server_url).
            deadline = time.monotonic() + 60
            while not page.evaluate(TYPESET):
                assert time.monotonic() < deadline, ("MathJax did not typeset the feedback served by /files/:\n"
                                                     + "\n".join(heard))
                page.wait_for_timeout(250)
            assert "\\mathbb" not in page.inner_text("body"), "raw TeX left on the page served by /files/"
            shots(page, f"{user}_feedback_files_maths")
            # The maths: MathJax came through the exchange beside the page, which typesets with every
            # network request refused. Opened as a file: jupyter_server serves /files/ sandboxed (an
            # opaque origin), whose script requests carry no hub cookie (docs/hub.md, "Feedback").
            assert hub.as_user(user, "test -f " + shlex.quote(f"{os.path.dirname(relative)}/mathjax/MathJax.js"),
                               check=False).returncode == 0, "MathJax did not come with the feedback"
            offline = page.context.new_page()
            refused = []
            offline.route("http*://**", lambda route: (refused.append(route.request.url), route.abort()))
            offline.goto(pathlib.Path(f"/home/{user}/{relative}").as_uri())
            deadline = time.monotonic() + 60
            while not offline.evaluate(TYPESET):
                assert time.monotonic() < deadline, f"MathJax did not typeset the fetched feedback (refused {refused})"
                offline.wait_for_timeout(250)
            maths = offline.inner_text("body")
            assert "x_{i,j}" not in maths and "\\mathbb" not in maths, "raw TeX left on the page"
            assert not [url for url in refused if "mathjax" in url.lower()], refused
            shots(offline, f"{user}_feedback_maths")
            offline.close()
