"""Issue 17: feedback and the formgrader show maths offline; graders see mark schemes, students never.

One small assignment (maths, a code answer with a hidden test, a written answer with a model
answer and a mark scheme) goes through the real nbgrader commands with the course's own
nbgrader_config.py: generate_assignment, autograde, generate_feedback (about 30 s). The
feedback page must load MathJax from the copy beside it, never from a CDN; the autograded
notebook (what the formgrader shows) must carry the mark scheme under the written answer,
and the feedback must not. A Chromium check (marked ``browser``) opens the page as a file
with every network request refused and waits for MathJax to typeset it.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from conftest import REPO
from coursetools.grader import markscheme, mathjax
from coursetools.autograde.course import NO_SANDBOX

ASSIGNMENT = "ps1"
NOTEBOOK = "maths"
STUDENT = "alice"
MODEL_ANSWER = "MODEL-ANSWER-SENTINEL: the kernel flip is learned"
MARK_SCHEME = "MARK-SCHEME-SENTINEL one point for the flip"
STUDENT_ANSWER = "STUDENT-ANSWER-SENTINEL: training learns the flipped kernel."
CDN_MATHJAX = re.compile(r"""https?://[^"'\s]*mathjax""", re.I)
SCRIPT_SRC = re.compile(r"""<script[^>]*\ssrc="([^"]*MathJax\.js[^"]*)\"""")


def _cell(cell, **nbgrader):
    cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False, "locked": False,
                                 "task": False, **nbgrader}
    return cell


def source_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# Output size\n\nThe output size is $O = \\lfloor (n + 2p - k)/s \\rfloor + 1$, and\n\n"
                          "$$\\mathrm{out}[i, j] = \\sum_{m} \\sum_{n} I[i + m, j + n] \\, K[m, n].$$"),
        _cell(new_code_cell("### BEGIN SOLUTION\nanswer = 3\n### END SOLUTION"), grade_id="ps1_code", solution=True),
        _cell(new_code_cell("assert answer == 3, 'expected 3'\n### BEGIN HIDDEN TESTS\n"
                            "assert answer + 1 == 4, 'hidden check'\n### END HIDDEN TESTS"),
              grade_id="ps1_test", grade=True, locked=True, points=1),
        new_markdown_cell("Why may a CNN use cross-correlation instead of convolution?"),
        _cell(new_markdown_cell(f"=== BEGIN SOLUTION ===\n{MODEL_ANSWER}, so both represent the same maps.\n\n"
                                f"**Mark scheme (2 points).** {MARK_SCHEME}; one point for 'learned'.\n"
                                "=== END SOLUTION ==="),
              grade_id="ps1_why", grade=True, solution=True, points=2),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def nbgrader(root, *args):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A one-notebook course with this repository's nbgrader_config.py, autograded and with feedback."""
    root = tmp_path_factory.mktemp("offline")
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "coursetools", root / "coursetools", ignore=shutil.ignore_patterns("__pycache__"))
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(source_notebook(), source / f"{NOTEBOOK}.ipynb")
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    nbgrader(root, "db", "student", "add", STUDENT)
    submitted = root / "submitted" / STUDENT / ASSIGNMENT
    shutil.copytree(root / "release" / ASSIGNMENT, submitted)
    nb = nbformat.read(submitted / f"{NOTEBOOK}.ipynb", as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "ps1_code":
            cell.source = "answer = 3"
        elif grade_id == "ps1_why":
            cell.source = STUDENT_ANSWER
    nbformat.write(nb, submitted / f"{NOTEBOOK}.ipynb")
    nbgrader(root, "autograde", ASSIGNMENT, "--force", NO_SANDBOX)
    nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    return root


def feedback_page(root):
    return root / "feedback" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.html"


def test_course_config_wires_local_mathjax_and_mark_schemes():
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    autograde = [p.__name__ for p in config.Autograde.autograde_preprocessors]
    feedback = [p.__name__ for p in config.GenerateFeedback.preprocessors]
    assert "AddMarkSchemes" in autograde
    assert feedback.index("RemoveGraderNotes") < feedback.index("HideHiddenTests")
    assert feedback[-1] == "LocalMathJax"
    assert config.HTMLExporter.extra_template_basedirs[0] == str(mathjax.TEMPLATES)
    assert not CDN_MATHJAX.search(config.HTMLExporter.mathjax_url)


def test_every_written_answer_in_source_has_a_mark_scheme():
    answers = {}
    for path in sorted((REPO / "source" / "session10").glob("*.ipynb")):
        answers.update(markscheme.model_answers(path))
    assert answers
    missing = [grade_id for grade_id, (_, text) in answers.items() if "Mark scheme" not in text]
    assert not missing, f"written answers without a mark scheme: {missing}"


def test_feedback_loads_mathjax_from_beside_the_page(course):
    page = feedback_page(course)
    html = page.read_text()
    assert "$O = \\lfloor" in html or "\\lfloor" in html  # the maths is there for MathJax to typeset
    assert not CDN_MATHJAX.search(html), CDN_MATHJAX.search(html).group(0)
    sources = SCRIPT_SRC.findall(html)
    assert sources == [mathjax.FEEDBACK_URL]
    local = page.parent / sources[0].split("?")[0]
    assert local.is_file()
    config = sources[0].split("config=")[1].split(",")[0]
    assert (local.parent / "config" / f"{config}.js").is_file()
    assert list((local.parent / "fonts" / "HTML-CSS" / "STIX-Web" / "woff").glob("*.woff"))


def test_feedback_for_a_hub_also_loads_mathjax_from_the_students_server(course):
    """With LocalMathJax.server_url (deploy/nbgrader_config.py), a page served by Jupyter's sandboxed
    /files/ (no login cookie) loads the settings and MathJax from the server's static files; opened
    as a file, the copy beside it still loads first."""
    page = feedback_page(course)
    try:
        nbgrader(course, "generate_feedback", ASSIGNMENT, "--force", "--LocalMathJax.server_url=/user/{student}/")
        html = page.read_text()
        assert SCRIPT_SRC.findall(html) == [mathjax.FEEDBACK_URL,
                                            f"/user/{STUDENT}/{mathjax.SERVER_PATH}?config={mathjax.CONFIG}"]
        settings = re.findall(r"""<script src="([^"]*config[^"]*\.js)"></script>""", html)
        assert settings == [f"mathjax/{mathjax.SETTINGS_FILE}", f"/user/{STUDENT}/static/{mathjax.SETTINGS.name}"]
        assert not CDN_MATHJAX.search(html)
    finally:
        nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    assert SCRIPT_SRC.findall(page.read_text()) == [mathjax.FEEDBACK_URL]


def test_formgrader_sees_mark_scheme_under_the_answer(course):
    nb = nbformat.read(course / "autograded" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    answer = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "ps1_why")
    assert STUDENT_ANSWER in nb.cells[answer].source
    note = nb.cells[answer + 1]
    assert markscheme.is_grader_note(note) and "nbgrader" not in note.metadata
    assert MODEL_ANSWER in note.source and MARK_SCHEME in note.source and "(2 points)" in note.source
    assert sum(markscheme.is_grader_note(c) for c in nb.cells) == 1


def test_formgrader_page_loads_mathjax_from_the_server(course):
    """The formgrader's own template, rendered as its handler does, asks this Jupyter server for MathJax."""
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    extra = Config()
    extra.HTMLExporter.template_name = "formgrade"
    config.merge(extra)
    exporter = HTMLExporter(config=config)
    path = course / "autograded" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    html, _ = exporter.from_filename(str(path), resources={
        "base_url": "/user/x", "submission_id": "s1", "notebook_id": NOTEBOOK, "assignment_id": ASSIGNMENT,
        "index": 0, "total": 1, "mathjax_url": "", "text": "", "last_name": "", "first_name": ""})
    assert not CDN_MATHJAX.search(html)
    assert mathjax.SERVER_PATH in html
    assert MARK_SCHEME in html  # graders read it in the page


def test_feedback_never_shows_model_answer_or_mark_scheme(course):
    html = feedback_page(course).read_text()
    assert STUDENT_ANSWER in html
    for secret in (MODEL_ANSWER, MARK_SCHEME, markscheme.HEADING, "Mark scheme", "hidden check"):
        assert secret not in html, f"the feedback shows {secret!r}"



def test_feedback_says_a_written_answer_is_not_graded_yet_until_it_is(course, tmp_path):
    """Before hand grading, the written answer's 0 is called a placeholder; once it is marked, the note goes."""
    before = feedback_page(course).read_text()
    assert "Not graded yet: written answers are marked by hand" in before
    assert re.search(r"Written answers worth \d+ points? are not graded yet: the score\s+at the top counts", before)
    marked = tmp_path / "marked"
    shutil.copytree(course, marked)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{marked / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade("ps1_why", NOTEBOOK, ASSIGNMENT, STUDENT)
        grade.manual_score = 1.0
        gradebook.db.commit()
    nbgrader(marked, "generate_feedback", ASSIGNMENT, "--force")
    html = feedback_page(marked).read_text()
    assert STUDENT_ANSWER in html and "Not graded yet" not in html and "not graded yet" not in html


def test_jupyter_server_serves_mathjax():
    """The formgrader's MathJax comes from the jupyter-server-mathjax extension, enabled on install."""
    folder = mathjax.source_folder()
    assert (folder / "MathJax.js").is_file()
    enabled = pathlib.Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "jupyter_server_mathjax.json"
    assert enabled.is_file(), "jupyter-server-mathjax is installed but not enabled as a server extension"


@pytest.fixture(scope="module")
def chromium():
    from browser_helpers import find_chromium
    path = find_chromium()
    if path is None:
        pytest.skip("no system Chromium (apt-get install -y chromium)")
    return path


def test_feedback_page_typesets_maths_offline(course, chromium):
    playwright = pytest.importorskip("playwright.sync_api")
    from browser_helpers import CHROMIUM_ARGS
    refused = []

    def refuse(route):
        refused.append(route.request.url)
        route.abort()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("http*://**", refuse)  # offline: anything from a network fails
            page.goto(feedback_page(course).resolve().as_uri())
            # Polled from here: Playwright's wait_for_function evaluates a string, which the page's
            # Content-Security-Policy refuses (no 'unsafe-eval'), as it would a student's.
            typeset = ("() => !!(window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0"
                       " && document.querySelectorAll('.MathJax, .MathJax_Display').length >= 2)")
            deadline = time.monotonic() + 60
            while not page.evaluate(typeset):
                assert time.monotonic() < deadline, "MathJax did not typeset the page within 60 s"
                page.wait_for_timeout(250)
            assert page.evaluate("document.querySelectorAll('.MathJax_Error, merror').length") == 0
            text = page.inner_text("body")
        finally:
            browser.close()
    assert "\\lfloor" not in text and "$O" not in text, "raw TeX left on the page"
    assert not [url for url in refused if "mathjax" in url.lower()], refused
