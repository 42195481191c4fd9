"""The students' validate command exits non-zero when a test fails (nbgrader validate does not)."""
import shutil
import subprocess
import sys

import nbformat

from coursetools.course import Course
from coursetools.submissions import build_notebooks
from conftest import REPO

NOTEBOOK = "01_recap_and_motivation"


def run_validate(folder, *args):
    return subprocess.run([sys.executable, "validate.py", *args], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def test_validate_fails_on_the_blank_release(tmp_path):
    folder = tmp_path / "session10"
    shutil.copytree(REPO / "release" / "session10", folder)
    result = run_validate(folder, f"{NOTEBOOK}.ipynb")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout


def test_validate_passes_on_the_reference(tmp_path):
    folder = tmp_path / "session10"
    shutil.copytree(REPO / "release" / "session10", folder)
    notebooks = build_notebooks(Course(REPO), {"base": "solution", "cell": [], "submit": [NOTEBOOK]})
    nbformat.write(notebooks[NOTEBOOK], folder / f"{NOTEBOOK}.ipynb")
    result = run_validate(folder, f"{NOTEBOOK}.ipynb")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"passed {NOTEBOOK}.ipynb" in result.stdout
