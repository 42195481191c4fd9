"""JupyterLab in a real browser: the student's and the instructor's paths, end to end.

Each test starts JupyterLab from this environment on 127.0.0.1 (free port, random token,
throw-away Jupyter config) and drives headless Chromium -- the system one, Debian's
``chromium`` package -- with Playwright's sync API. Screenshots of every step go to
``artifacts/browser/`` (with the JupyterLab logs), kept by CI as test artifacts.

Student (a copy of ``release/session10/``, as handed out):
  notebook 07  Run All untouched: the first conv2d check shows only the one-line
               "`conv2d` is not written yet: ..." message, no NotImplementedError traceback;
               type the reference conv2d into the cell whose nbgrader grade id is
               nb07_conv2d; Run All; the saved notebook has no error output up to and
               including conv2d's visible tests, which pass quietly (no Out[...] result, one
               line at most); Validate no longer lists a conv2d test; fill every other answer
               too and Validate says "Success!"; then type a conv2d with a flipped kernel,
               Run All: the failed check's output starts with "CheckFailure: conv2d(...)",
               its "likely mistake: flipped kernel" line is on screen without scrolling, and
               no traceback or convcheck/ frame is shown; Validate's errors start the same.
  notebook 03  type the reference code answers (so that Run All is not stopped by an
               empty TODO above the explorer), Run All, drag the explorer's "row i" and
               "column j" sliders, and see the patch and the "sum = ..." text change.
Instructor (a copy of the course, released and autograded with coursetools):
  the formgrader, opened from JupyterLab's Nbgrader menu, lists session10 with its three
  sample submissions (reference, blank, hostile_active_content), and the submissions page lists them.
  hostile_active_content's notebook 01 is full of scripts (issue 24): opened in the formgrader, and
  its feedback opened as a file offline, none runs: no window flag, no title change, no dialog, no
  request to /api/contents or that writes, no file written, its written answers still ungraded;
  the notebook's own figure is still there, and the changed parts say so.

Chromium missing: the tests skip, except in CI (``CI=true``), where they fail.
``UPDATE_README_SCREENSHOT=1`` also rewrites docs/images/student-validate.png.
"""
import concurrent.futures
import html
import os
import pathlib
import re
import shutil
import urllib.request
import uuid

import pytest

from browser_helpers import (ARTIFACTS, CHROMIUM_ARGS, REPO, UI_TIMEOUT, JupyterLab, NotebookPage,
                             PageWatch, Screenshots, cell_index, find_chromium, find_notebook,
                             hide_left_sidebar, menu, read_notebook, save_readme_screenshot, text_on_screen)
from inprocess import convcheck

from coursetools.core.cells import grade_id
from coursetools.core.spec import load_spec

ASSIGNMENT = "session10"
CONV2D_ID = "nb07_conv2d"
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
# The instructor path autogrades the sample submissions of these notebooks only: every
# notebook would take minutes (a kernel per notebook and student); the autograder itself
# is tested in full elsewhere. "all" autogrades everything.
AUTOGRADE_NOTEBOOKS = os.environ.get("BROWSER_AUTOGRADE_NOTEBOOKS", "01_recap_and_motivation")
# For development only: serve another release folder (e.g. a freshly generated one).
RELEASE_DIR = pathlib.Path(os.environ.get("BROWSER_RELEASE_DIR", REPO / "release" / ASSIGNMENT))
README_SCREENSHOT = REPO / "docs" / "images" / "student-validate.png"
# The instructor's class: the reference, the blank release, and a notebook 01 full of scripts
# (submissions/hostile_active_content.toml) whose every script would set window.pwned_<where>.
HOSTILE = "hostile_active_content"
INSTRUCTOR_CLASS = ("reference", "blank", HOSTILE)
WRITTEN_ANSWERS = ("nb01_q1_flatten_loss", "nb01_q3_local_patterns")


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        message = ("no system Chromium found (looked for chromium, chromium-browser, google-chrome; "
                   "set $CHROMIUM to its path); install it with `apt-get install -y chromium`")
        if IN_CI:
            pytest.fail(message + " -- CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS,
                                             timeout=UI_TIMEOUT * 1000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def shots(request, artifacts):
    folder = artifacts / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    return Screenshots(folder)


@pytest.fixture
def page(browser, shots, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(UI_TIMEOUT * 1000)
    page = context.new_page()
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(f"page error: {error}"))
    try:
        yield page
    finally:
        shots(page, "final")  # the state the test ended in, passed or failed
        (shots.folder / "browser-console-errors.txt").write_text("\n".join(console_errors))
        context.close()


def _start_lab(tmp_path_factory, artifacts, name, root, cwd=None):
    home = tmp_path_factory.mktemp(f"{name}-jupyter")
    lab = JupyterLab(root, home, cwd=cwd)
    try:
        lab.start()
    except Exception:
        lab.stop()
        shutil.copyfile(lab.log_path, artifacts / f"{name}-jupyterlab.log")
        raise
    return lab


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory, artifacts, chromium):
    """JupyterLab on a copy of the student release, as a student gets it."""
    if not RELEASE_DIR.is_dir():
        pytest.fail(f"no release at {RELEASE_DIR}: run `python -m coursetools release`")
    root = tmp_path_factory.mktemp("student") / ASSIGNMENT
    shutil.copytree(RELEASE_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    lab = _start_lab(tmp_path_factory, artifacts, "student", root)
    try:
        yield lab
    finally:
        lab.stop()
        shutil.copyfile(lab.log_path, artifacts / "student-jupyterlab.log")


def _prepare_course(target):
    """A course copy, released and autograded the way `coursetools trial` does it."""
    from coursetools.pipeline import release
    from coursetools.autograde.submissions import materialize
    from coursetools.tools.trial import copy_course

    course = copy_course(target)
    release(course)
    students = [materialize(course, REPO / "submissions" / f"{name}.toml") for name in INSTRUCTOR_CLASS]
    for student in students:
        course.nbgrader("db", "student", "add", student, quiet=True)
    args = ["autograde", ASSIGNMENT, "--force"]
    if AUTOGRADE_NOTEBOOKS != "all":
        for notebook in AUTOGRADE_NOTEBOOKS.split(","):
            args += ["--notebook", notebook.strip()]
    course.nbgrader(*args, quiet=True)
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force", "--student", HOSTILE, quiet=True)
    return course, students


@pytest.fixture(scope="module", autouse=True)
def instructor_course(request, tmp_path_factory, chromium):
    """Start preparing the instructor's course at once, in the background, while the student tests run.

    Releasing and autograding are mostly subprocesses, so this overlaps with the browser work.
    Yields a Future of (course, students), or None when no instructor test is selected.
    """
    selected = [item for item in request.session.items
                if item.module is request.module and "instructor_lab" in getattr(item, "fixturenames", ())]
    if not selected:
        yield None
        return
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="instructor-course")
    try:
        yield executor.submit(_prepare_course, tmp_path_factory.mktemp("instructor") / "course")
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def instructor_lab(tmp_path_factory, artifacts, instructor_course):
    """JupyterLab started in the root of the autograded course copy."""
    course, students = instructor_course.result(timeout=600)
    # The formgrader reads nbgrader_config.py from the directory JupyterLab starts in.
    lab = _start_lab(tmp_path_factory, artifacts, "instructor", course.root, cwd=course.root)
    lab.course = course
    lab.students = students
    try:
        yield lab
    finally:
        lab.stop()
        shutil.copyfile(lab.log_path, artifacts / "instructor-jupyterlab.log")


def _require_notebook(folder, prefix, what):
    path = find_notebook(folder, prefix)
    if path is None:
        pytest.fail(f"no notebook {prefix}* ({what}) in the release; run `python -m coursetools release`",
                    pytrace=False)
    return path


# --------------------------------------------------------------------------- what to type

def _source_answers(name):
    """{grade_id: answer text} for every answer cell of a source notebook (markers removed)."""
    from coursetools.core.cells import solution_text

    source = read_notebook(REPO / "source" / ASSIGNMENT / f"{name}.ipynb")
    return {grade_id(cell): (cell.cell_type, solution_text(cell.source))
            for cell in source.cells if cell.metadata.get("nbgrader", {}).get("solution")}


def _fill_answers(notebook, released, answers, skip=(), code_only=False):
    """Type the reference answer into every answer cell; a written answer gets a sentence."""
    for index, cell in enumerate(released.cells):
        gid = grade_id(cell)
        if gid not in answers or gid in skip:
            continue
        kind, text = answers[gid]
        if kind == "code":
            notebook.set_cell_source(index, text)
        elif not code_only:
            notebook.set_cell_source(index, "Answered in the browser test.", markdown=True)


def _flipped_conv2d(correct):
    """A conv2d that flips its kernel first (true convolution): the classic mistake.

    Taken from the course's own sample submission when there is one, so it stays in step
    with the notebook; otherwise made from the reference answer.
    """
    spec_path = REPO / "submissions" / "nb07_flipped_kernel.toml"
    if spec_path.exists():
        for change in load_spec(spec_path)["cell"]:
            if change.get("grade_id") == CONV2D_ID:
                return change["source"].strip("\n")
    return correct + (
        "\n\n\n_conv2d_without_flip = conv2d\n\n\n"
        "def conv2d(image, kernel):\n"
        "    try:\n"
        "        import torch\n"
        "        if isinstance(kernel, torch.Tensor):\n"
        "            return _conv2d_without_flip(image, torch.flip(kernel, dims=(0, 1)))\n"
        "    except ImportError:\n"
        "        pass\n"
        "    import numpy\n"
        "    return _conv2d_without_flip(image, numpy.ascontiguousarray(numpy.asarray(kernel)[::-1, ::-1]))\n")


def _conv2d_tests(notebook):
    """Indices of conv2d's visible test cells: the graded cells after nb07_conv2d, up to the next answer cell."""
    start = cell_index(notebook, grade_id_is=CONV2D_ID)
    assert start is not None, f"notebook 07 has no cell with grade id {CONV2D_ID}"
    tests = []
    for index in range(start + 1, len(notebook.cells)):
        meta = notebook.cells[index].metadata.get("nbgrader", {})
        if meta.get("solution"):
            break
        if meta.get("grade") and notebook.cells[index].cell_type == "code":
            tests.append(index)
    assert tests, f"no test cells follow {CONV2D_ID} in notebook 07"
    return start, tests


def _errors(cell):
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", []) if o.output_type == "error"]


def _normalize(source):
    return re.sub(r"\s+", " ", source).strip()


# What a failed check may never show the student: a Python traceback, or convcheck's own frames.
TRACEBACK_MARKS = ("Traceback", "File \"", "Cell In[", "convcheck/", "----------")
NOT_WRITTEN = "CheckFailure: " + convcheck.NOT_WRITTEN.format(name="conv2d")


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _assert_diagnosis_first(text, where, first_line_start, then=None):
    """``text`` (a failed check as shown) starts with the diagnosis and shows no traceback.

    Its first line starts with ``first_line_start``; ``then`` (e.g. "likely mistake") comes
    before anything traceback-like; no traceback marks at all, convcheck's frames included.
    """
    lines = _lines(text)
    assert lines and lines[0].strip().startswith(first_line_start), (
        f"{where}: the first line shown is not the diagnosis {first_line_start!r}...; the first lines are:\n"
        + "\n".join(lines[:8]))
    shown_marks = [mark for mark in TRACEBACK_MARKS if mark in text]
    if then is not None:
        assert then in text, f"{where}: no {then!r} line; shown:\n" + "\n".join(lines[:12])
        late = [mark for mark in shown_marks if text.index(mark) < text.index(then)]
        assert not late, f"{where}: {late} shown before {then!r}:\n" + "\n".join(lines[:12])
    assert not shown_marks, f"{where}: traceback text {shown_marks} shown:\n" + "\n".join(lines[:20])


# --------------------------------------------------------------------------- the student

def test_student_conv2d_run_validate_and_diagnosis(student_lab, page, shots):
    path = _require_notebook(student_lab.root_dir, "07_", "convolution from scratch")
    name = path.stem
    released = read_notebook(path)
    conv2d_cell, test_cells = _conv2d_tests(released)
    last_test = test_cells[-1]
    answers = _source_answers(name)
    correct = answers[CONV2D_ID][1]

    notebook = NotebookPage(page, student_lab, path.name, f"student-{uuid.uuid4().hex[:8]}").open(len(released.cells))
    shots(page, "opened")
    assert "NotImplementedError" in released.cells[conv2d_cell].source, "the release should leave conv2d to do"

    # 0. Run All before writing anything: the untouched TODO cell runs quietly (it only defines
    # the stub), and the first check that calls conv2d says, in one short line, what to do --
    # not a NotImplementedError traceback.
    notebook.run_all()
    first_test = test_cells[0]
    notebook.cell(first_test).locator(".jp-OutputArea").scroll_into_view_if_needed()
    shots(page, "run_all_untouched_not_written")
    assert not notebook.output_lines(conv2d_cell), (
        f"running the untouched {CONV2D_ID} cell shows output:\n{notebook.output_text(conv2d_cell)}")
    shown = notebook.output_lines(first_test)
    assert shown == [NOT_WRITTEN], (
        f"{grade_id(released.cells[first_test])} with conv2d unwritten should show only\n{NOT_WRITTEN}\nbut shows:\n"
        + "\n".join(shown[:12]))

    # 1. The student types a correct conv2d into the TODO cell and runs the whole notebook.
    notebook.set_cell_source(conv2d_cell, correct)
    notebook.cell(conv2d_cell).scroll_into_view_if_needed()
    shots(page, "conv2d_typed")
    notebook.run_all()
    notebook.save()
    notebook.cell(last_test).scroll_into_view_if_needed()
    shots(page, "run_all_with_conv2d")

    # Judged on the saved file: it holds what the browser ran, cell by cell, with grade ids.
    # Only the cells up to conv2d's visible tests are checked: the later TODO cells are still
    # empty, so the first test after them raises NotImplementedError and Run All stops there.
    saved = read_notebook(path)
    assert _normalize(saved.cells[conv2d_cell].source) == _normalize(correct), "the typed conv2d was not saved as typed"
    for index, cell in enumerate(saved.cells[:last_test + 1]):
        if cell.cell_type != "code":
            continue
        label = grade_id(cell) or f"cell {index}"
        assert cell.execution_count is not None, f"{label} did not run (Run All stopped early?)"
        assert not _errors(cell), f"{label} failed after typing the reference conv2d: {_errors(cell)}"
    # A passing self-check is quiet: no Out[n] result, no error, one short line at most.
    for index in test_cells:
        label = grade_id(saved.cells[index])
        results = [o for o in saved.cells[index].outputs if o.output_type == "execute_result"]
        assert not results, f"passing {label} leaves an Out[...] result in the file: {results}"
        assert notebook.shown_results(index) == 0, f"passing {label} shows an Out[...] result on the page"
        quiet = notebook.output_lines(index)
        assert len(quiet) <= 1, f"passing {label} shows {len(quiet)} lines:\n" + "\n".join(quiet[:12])

    # 2. Validate: conv2d's tests are no longer among the failures (other TODOs may still be).
    dialog = notebook.validate()
    shots(page, "validate_conv2d_only")
    message = dialog.locator("#validation-message")
    classes = message.get_attribute("class") or ""
    assert "validation-failed" in classes or "validation-success" in classes, (
        f"Validate did not run the notebook:\n{message.inner_text()}")
    failed_sources = {_normalize(text) for text in message.locator(".jp-RenderedText pre").all_inner_texts()}
    for index in test_cells:
        assert _normalize(released.cells[index].source) not in failed_sources, (
            f"Validate still lists conv2d's test {grade_id(released.cells[index])}:\n{message.inner_text()[:2000]}")
    notebook.close_dialog()

    # 3. Every other answer filled in too: Validate says the notebook passes.
    _fill_answers(notebook, released, answers, skip=(CONV2D_ID,))
    notebook.cell(conv2d_cell).scroll_into_view_if_needed()  # the student's conv2d behind the dialog
    dialog = notebook.validate()
    message = dialog.locator("#validation-message")
    if os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        save_readme_screenshot(page, README_SCREENSHOT)
    shots(page, "validate_all_answers")
    assert "validation-success" in (message.get_attribute("class") or ""), message.inner_text()[:3000]
    assert "Success! Your notebook passes all the tests." in message.inner_text()
    notebook.close_dialog()

    # 4. A classic mistake: the kernel flipped (true convolution). The test output says so.
    notebook.set_cell_source(conv2d_cell, _flipped_conv2d(correct))
    notebook.run_all()
    outputs = {index: notebook.output_text(index) for index in test_cells}
    failing = [index for index, text in outputs.items() if "flipped kernel" in text]
    error = notebook.cell(failing[0] if failing else first_test).locator(".jp-OutputArea-output").first
    if failing:
        # The top of the failure at the top of the screen: the diagnosis must be readable from there.
        error.evaluate("el => el.scrollIntoView({block: 'start'})")
    shots(page, "flipped_kernel_diagnosis")
    assert failing, ("no visible conv2d test output mentions 'flipped kernel' after typing a flipped conv2d:\n"
                     + "\n---\n".join(f"[{grade_id(released.cells[i])}]\n{t[-800:]}" for i, t in outputs.items()))
    # The first failing check (Run All stops there): the diagnosis first, the call it made named
    # on its first line, the likely mistake readable without scrolling, and no traceback.
    label = grade_id(released.cells[failing[0]])
    shown = "\n".join(notebook.output_lines(failing[0]))
    _assert_diagnosis_first(shown, f"{label}'s output", "CheckFailure: conv2d(", then="likely mistake: flipped kernel")
    for needle in ("CheckFailure", "likely mistake"):
        hidden = text_on_screen(error, needle)
        assert not hidden, f"{label}'s output: {needle!r} cannot be read without scrolling: {hidden}"

    # 5. Validate says the same: each failed cell's error starts with the diagnosis, no traceback.
    dialog = notebook.validate()
    message = dialog.locator("#validation-message")
    shots(page, "validate_flipped_kernel")
    assert "validation-failed" in (message.get_attribute("class") or ""), message.inner_text()[:3000]
    blocks = message.locator(":scope > .jp-RenderedText pre")
    texts = blocks.all_inner_texts()
    failed = {_normalize(texts[i]): (i + 1, texts[i + 1]) for i in range(0, len(texts) - 1, 2)}
    entry = failed.get(_normalize(released.cells[failing[0]].source))
    assert entry, (f"Validate does not list {label} after typing a flipped conv2d:\n{message.inner_text()[:3000]}")
    position, reported = entry
    _assert_diagnosis_first(reported, f"Validate's error for {label}", "CheckFailure: conv2d(",
                            then="likely mistake: flipped kernel")
    first_error = blocks.nth(1)  # the error of the first failed cell listed: what the dialog shows first
    first_error_text = texts[1]
    assert _lines(first_error_text)[0].startswith("CheckFailure: "), (
        "Validate's first error does not start with the diagnosis:\n" + "\n".join(_lines(first_error_text)[:8]))
    # The dialog as it opens, unscrolled: the first diagnosis (and, when it is this one, its
    # likely mistake) can be read at once.
    for needle in ("CheckFailure",) + (("likely mistake",) if position == 1 else ()):
        hidden = text_on_screen(first_error, needle)
        assert not hidden, f"Validate's first error: {needle!r} cannot be read without scrolling the dialog: {hidden}"
    for source, (_, reported) in failed.items():
        marks = [mark for mark in TRACEBACK_MARKS if mark in reported and "CheckFailure" in reported]
        assert not marks, f"Validate shows traceback text {marks} for\n{source[:200]}\n" + reported[:2000]
    notebook.close_dialog()


# --------------------------------------------------------------------------- the widgets

def test_convolution_explorer_sliders_change_patch_and_sum(student_lab, page, shots):
    path = _require_notebook(student_lab.root_dir, "03_", "the convolution explorer")
    released = read_notebook(path)
    explorer = next((i for i, cell in enumerate(released.cells) if cell.cell_type == "code"
                     and "row i" in cell.source), None)
    assert explorer is not None, "notebook 03 has no code cell with a 'row i' slider"

    notebook = NotebookPage(page, student_lab, path.name, f"widgets-{uuid.uuid4().hex[:8]}").open(len(released.cells))
    # The answers first (the reference ones), so that Run All is not stopped by the test of
    # an empty TODO above the explorer; then the whole notebook runs, explorer included.
    _fill_answers(notebook, released, _source_answers(path.stem), code_only=True)
    notebook.run_all()
    cell = notebook.cell(explorer)
    output = cell.locator(".jp-OutputArea")
    row = notebook.slider(explorer, "row i")
    column = notebook.slider(explorer, "column j")
    output.scroll_into_view_if_needed()
    shots(page, "explorer_ran")

    def shown():
        text = output.inner_text()
        return text, re.findall(r"sum\s*=\s*(-?[0-9][0-9.eE+-]*)", text)

    def nudge(slider):
        """One step to the right; wait for the readout, then for the display to follow."""
        old_text = shown()[0]
        values = notebook.move_slider(slider, +1)
        page.wait_for_function("([el, old]) => el.innerText !== old", arg=[output.element_handle(), old_text])
        return values

    first_text, first_sum = shown()
    assert first_sum, f"the explorer shows no 'sum = ...' text:\n{first_text[:1500]}"
    moves = []
    for _ in range(6):  # a patch of flat background can give the same sum: step on, bounded
        moves.append(("row i",) + nudge(row))
        if shown()[1] != first_sum:
            break
    text, sums = shown()
    output.scroll_into_view_if_needed()
    shots(page, "explorer_row_moved")
    assert sums and sums != first_sum, f"moved {moves}, but the sum stayed {first_sum}"
    assert re.sub(r"sum\s*=.*", "", text) != re.sub(r"sum\s*=.*", "", first_text), (
        f"moved {moves}, but the patch shown did not change")

    moves.append(("column j",) + nudge(column))
    shots(page, "explorer_column_moved")
    assert shown()[0] != text, f"moved {moves[-1]}, but the display did not change"


# --------------------------------------------------------------------------- the instructor

def test_instructor_formgrader_lists_autograded_submissions(instructor_lab, page, shots):
    lab = instructor_lab
    page.goto(f"{lab.url}/lab/workspaces/instructor-{uuid.uuid4().hex[:8]}?token={lab.token}")
    page.locator("#jp-MainMenu").wait_for(state="visible")
    hide_left_sidebar(page)  # room for the formgrader's wide layout
    menu(page, "Nbgrader", "Formgrader")
    frame_element = page.locator("iframe[src*='formgrader']").first
    frame_element.wait_for(state="visible")
    frame = frame_element.content_frame
    row = frame.locator("tr", has=frame.locator("a", has_text=re.compile(rf"^\s*{ASSIGNMENT}\s*$")))
    row.first.wait_for(state="visible")
    row.first.scroll_into_view_if_needed()
    shots(page, "formgrader_assignments")
    assert "/formgrader" in (frame_element.get_attribute("src") or "")
    count = row.first.locator("td").filter(has_text=re.compile(r"^\s*\d+\s*$")).last.inner_text().strip()
    assert count == str(len(lab.students)), (f"formgrader shows {count} submissions for {ASSIGNMENT}, "
                                             f"expected {len(lab.students)}")

    row.first.locator("td a", has_text=re.compile(r"^\s*\d+\s*$")).last.click()
    ids = frame.locator("td.student-id")
    ids.first.wait_for(state="visible")
    for student in lab.students:
        frame.locator("td.student-id", has_text=re.compile(rf"^\s*{student}\s*$")).wait_for(state="visible")
    frame.locator("table").last.scroll_into_view_if_needed()
    shots(page, "formgrader_submissions")
    listed = {text.strip() for text in ids.all_inner_texts()}
    assert set(lab.students) <= listed, f"submissions page lists {sorted(listed)}, expected {lab.students}"
    table = frame.locator("tbody").inner_text()
    assert "needs autograding" not in table.lower(), table
    scores = {}
    for student in lab.students:
        cells = frame.locator("tr", has=frame.locator("td.student-id", has_text=re.compile(rf"^\s*{student}\s*$")))
        found = re.search(r"([\d.]+)\s*/\s*([\d.]+)", cells.first.inner_text())
        assert found, f"no score shown for {student}: {cells.first.inner_text()}"
        scores[student] = float(found.group(1))
    assert scores["reference"] > 0 and scores["blank"] == 0, f"autograded scores shown: {scores}"


# --------------------------------------------------------------------------- pages stay inert (issue 24)

def _written_scores(course, student):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course.db}") as gradebook:
        return {name: gradebook.find_grade(name, "01_recap_and_motivation", ASSIGNMENT, student).manual_score
                for name in WRITTEN_ANSWERS}


def test_hostile_scripts_run_nowhere_in_the_formgrader(instructor_lab, page, shots):
    """The instructor opens the hostile notebook in the formgrader: nothing of the student's runs, so it
    lists and writes nothing through the API and presses no "Full credit" button."""
    lab = instructor_lab
    before = _written_scores(lab.course, HOSTILE)
    listed = lab.api(f"/formgrader/api/submitted_notebooks/{ASSIGNMENT}/01_recap_and_motivation")
    submission = next(entry["id"] for entry in listed if entry["student"] == HOSTILE)
    url = f"{lab.url}/formgrader/submissions/{submission}/?token={lab.token}"
    served = urllib.request.urlopen(url, timeout=30).read().decode()   # the title before any script runs
    watch = PageWatch(page)
    page.goto(url)
    watch.settle()
    shots(page, "hostile_formgrader")
    watch.assert_inert(title=html.unescape(re.search(r"<title>(.*?)</title>", served, re.S).group(1).strip()))
    page.locator("input.score").first.wait_for(state="visible")   # the formgrader itself still works
    assert page.get_by_text("The grader removed active content").count() >= 2, "the changed parts are not marked"
    assert page.locator("img[src^='data:image/png']").count() >= 1, "the notebook's own figure is gone"
    assert not list(lab.course.root.rglob("pwned_*")), "a file was written through the API"
    assert _written_scores(lab.course, HOSTILE) == before == {name: None for name in WRITTEN_ANSWERS}


def test_hostile_scripts_run_nowhere_in_the_feedback(instructor_lab, page, shots):
    """The student (or anyone) opens the hostile notebook's feedback page as a file, offline."""
    lab = instructor_lab
    path = lab.course.feedback / HOSTILE / ASSIGNMENT / "01_recap_and_motivation.html"
    assert path.is_file(), f"no feedback written for {HOSTILE}"
    page.route("http*://**", lambda route: route.abort())   # offline, as a student's laptop may be
    watch = PageWatch(page)
    page.goto(path.resolve().as_uri())
    watch.settle()
    shots(page, "hostile_feedback")
    watch.assert_inert(title="01_recap_and_motivation")
    outside = [url for _, url in watch.requests
               if not url.startswith((path.parent.resolve().as_uri() + "/", "data:", "about:blank"))]
    assert outside == [], f"the feedback page loaded something from outside its folder: {outside}"
    assert page.locator("img[src^='data:image/png']").count() >= 1, "the notebook's own figure is gone"
    assert page.evaluate("window.MathJax && MathJax.isReady === true"), "the local MathJax did not start"
