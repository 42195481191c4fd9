"""The students' validate command exits non-zero when a test fails (nbgrader validate does not), and names
a notebook whose answers were never written."""
import shutil
import subprocess
import sys

import nbformat

from coursetools.autograde.course import Course
from coursetools.autograde.submissions import build_notebooks
from conftest import REPO

NOTEBOOK = "01_recap_and_motivation"


def student_folder(tmp_path):
    """The release as a student has it, with validate.py as it is in source/ now (it ships unchanged)."""
    folder = tmp_path / "session10"
    shutil.copytree(REPO / "release" / "session10", folder)
    shutil.copy2(REPO / "source" / "session10" / "validate.py", folder / "validate.py")
    return folder


def run_validate(folder, *args):
    return subprocess.run([sys.executable, "validate.py", *args], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def answer_count(notebook):
    return sum(1 for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution"))


def test_validate_fails_on_the_blank_release(tmp_path):
    """A notebook handed out and never answered is named as such, without running it."""
    folder = student_folder(tmp_path)
    total = answer_count(nbformat.read(folder / f"{NOTEBOOK}.ipynb", as_version=4))
    result = run_validate(folder, f"{NOTEBOOK}.ipynb")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"FAILED {NOTEBOOK}.ipynb: no answer written yet ({total} of {total} answer cells untouched)"
            in result.stdout), result.stdout


def test_validate_passes_on_the_reference(tmp_path):
    folder = student_folder(tmp_path)
    notebooks = build_notebooks(Course(REPO), {"base": "solution", "cell": [], "submit": [NOTEBOOK]})
    nbformat.write(notebooks[NOTEBOOK], folder / f"{NOTEBOOK}.ipynb")
    result = run_validate(folder, f"{NOTEBOOK}.ipynb")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"passed {NOTEBOOK}.ipynb" in result.stdout
    assert "untouched" not in result.stdout


def test_validate_counts_answers_left_as_handed_out(tmp_path):
    """A started notebook is run; its answer cells still as released are counted (a blank written answer
    is also one of nbgrader's problems: "You did not provide a response")."""
    folder = student_folder(tmp_path)
    release = nbformat.read(folder / f"{NOTEBOOK}.ipynb", as_version=4)
    notebook = build_notebooks(Course(REPO), {"base": "solution", "cell": [], "submit": [NOTEBOOK]})[NOTEBOOK]
    released = {c.metadata.nbgrader.grade_id: c.source for c in release.cells
                if c.metadata.get("nbgrader", {}).get("solution")}
    written = [c for c in notebook.cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "markdown"]
    assert written, "the notebook has written answers"
    for cell in written:
        cell.source = released[cell.metadata.nbgrader.grade_id]
    nbformat.write(notebook, folder / f"{NOTEBOOK}.ipynb")
    result = run_validate(folder, f"{NOTEBOOK}.ipynb")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"FAILED {NOTEBOOK}.ipynb: {len(written)} problem(s); {len(written)} of {answer_count(notebook)} "
            "answer cells untouched" in result.stdout), result.stdout
    assert "no answer written yet" not in result.stdout


def test_an_answer_without_nbgrader_checksum_is_judged_by_its_text(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("validate", REPO / "source" / "session10" / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stub = nbformat.v4.new_code_cell('# YOUR CODE HERE\nraise NotImplementedError("not written yet")')
    stub.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "a"}
    answered = nbformat.v4.new_code_cell("x = 1")
    answered.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "b"}
    text = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE")
    text.metadata["nbgrader"] = {"solution": True, "grade": True, "locked": False, "grade_id": "c", "points": 1}
    assert [module._untouched(c) for c in (stub, answered, text)] == [True, False, True]
