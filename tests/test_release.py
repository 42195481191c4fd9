"""The committed student release: in step with source/, and free of solutions and hidden tests."""
import filecmp
import json
import re

import pytest

from coursetools import pipeline
from coursetools.tools.trial import copy_course
from conftest import REPO

SOURCE_DIR = REPO / "source" / "session10"
RELEASE_DIR = REPO / "release" / "session10"
REGION = re.compile(r"(BEGIN (SOLUTION|HIDDEN TESTS)[^\n]*\n)(.*?)(\n[^\n]*END \2)", re.S)
STUDENT_FILES = sorted(p.name for p in SOURCE_DIR.glob("*.py"))  # the modules that ship with the notebooks


def regions(path):
    """Lines inside solution and hidden-test regions, and the source outside them."""
    secret, visible = [], []
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        for match in REGION.finditer(source):
            secret.extend(line.strip() for line in match.group(3).splitlines())
        visible.append(REGION.sub("", source))
    return secret, "\n".join(visible)


def test_release_is_in_step_with_source(tmp_path):
    course = copy_course(tmp_path)
    pipeline.release(course)
    fresh = sorted(p.relative_to(course.release) for p in course.release.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(RELEASE_DIR) for p in RELEASE_DIR.rglob("*") if p.is_file())
    assert fresh == committed, "release/ lists other files than a fresh release: run `python -m coursetools release`"
    stale = [str(p) for p in fresh if not filecmp.cmp(course.release / p, RELEASE_DIR / p, shallow=False)]
    assert not stale, f"release/ is stale in {stale}: run `python -m coursetools release` and commit"


@pytest.mark.parametrize("path", sorted(SOURCE_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_release_holds_no_solution_or_hidden_test(path):
    released = (RELEASE_DIR / path.name).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "Mark scheme"):
        assert marker not in released, f"release {path.name} contains {marker!r}"
    secret, visible = regions(path)
    leaked = [line for line in secret if len(line) >= 20 and line not in visible and line in released]
    assert not leaked, f"release {path.name} contains solution or hidden-test lines: {leaked[:3]}"


def test_student_modules_hold_no_hidden_values():
    """The checks module and its siblings ship to students: no hidden line or value may be in them."""
    shipped = "\n".join((SOURCE_DIR / name).read_text() for name in STUDENT_FILES)
    for path in sorted(SOURCE_DIR.glob("*.ipynb")):
        secret, visible = regions(path)
        lines = [line for line in secret if len(line) >= 20 and line not in visible and line in shipped]
        assert not lines, f"{path.name}'s hidden lines appear in a shipped module: {lines[:3]}"
        numbers = {n for line in secret for n in re.findall(r"(?<![\w.])\d[\d_]{4,}(?![\w.])", line)}
        found = [n for n in numbers if re.search(rf"(?<![\w.]){n}(?![\w.])", shipped)]
        assert not found, f"hidden values of {path.name} appear in a shipped module: {found}"


def test_release_carries_the_digits_and_modules():
    for name in STUDENT_FILES:
        assert (RELEASE_DIR / name).read_bytes() == (SOURCE_DIR / name).read_bytes()
    for path in (REPO / "data" / "MNIST" / "raw").glob("*-ubyte"):
        assert (RELEASE_DIR / "data" / "MNIST" / "raw" / path.name).read_bytes() == path.read_bytes()


def test_sample_written_answers_hand_in_the_model_answer_without_its_mark_scheme():
    """A spec on base "solution" hands in each written answer's model answer; the mark scheme stays the
    graders' (the formgrader shows it under the answer), and code answers are handed in whole."""
    import nbformat
    from coursetools.core.cells import grade_id, nbgrader_meta
    from coursetools.core.spec import submitted_notebook
    name = "08_feature_detection"
    source = nbformat.read(REPO / "source" / "session10" / f"{name}.ipynb", as_version=4)
    release = nbformat.read(REPO / "release" / "session10" / f"{name}.ipynb", as_version=4)
    handed = {grade_id(c): c.source for c in submitted_notebook({"base": "solution"}, name, release, source).cells
              if nbgrader_meta(c).get("solution")}
    assert handed["nb08_q_edges_enough"].startswith("Yes: every edge map is the outline of its digit")
    assert "Mark scheme" not in handed["nb08_q_edges_enough"] and "SOLUTION" not in handed["nb08_q_edges_enough"]
    assert "def sobel_gradients(image):" in handed["nb08_sobel"]
