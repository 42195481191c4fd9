"""A source notebook's code cells run in this process: the quick way to test its cells and the specs.

The real autograding of every spec in submissions/ is covered by the pipeline tests; here a
spec's answer cells replace the solution's and the cells run in one namespace (a few seconds),
so a broken hint or a wrong point count shows up quickly.
"""
import linecache
import os
import re
from dataclasses import dataclass

import pytest

from conftest import REPO
from coursetools.core import spec
from coursetools.core.cells import going_further
from coursetools.plain import runner as plainrun

import convcheck  # source/session10, on the path by pyproject.toml

SESSION = REPO / "source" / "session10"

MARKERS = re.compile(r"^\s*(###|===) ?(BEGIN|END) (SOLUTION|HIDDEN TESTS) ?(===)?\s*$")
REFERENCE = {"base": "solution", "cell": []}  # a spec that hands in the solution as it is


def failure(func, *args, **kwargs):
    """The message of the CheckFailure that ``func(*args, **kwargs)`` must raise."""
    with pytest.raises(convcheck.CheckFailure) as info:
        func(*args, **kwargs)
    return str(info.value)


def load_spec(name):
    return spec.load_spec(REPO / "submissions" / f"{name}.toml")


def spec_names(*prefixes):
    return sorted(p.stem for prefix in prefixes for p in (REPO / "submissions").glob(f"{prefix}_*.toml"))


@dataclass
class NotebookRun:
    namespace: dict
    errors: dict        # grade_id of each graded cell -> "Type: message", or None when it passed
    points: dict        # grade_id -> points
    other_errors: list  # errors of ungraded cells

    @property
    def score(self):
        """The core's points earned (a going-further part's are ``further_score``)."""
        return sum(p for grade_id, p in self.points.items() if self.errors[grade_id] is None
                   and not going_further(grade_id))

    @property
    def further_score(self):
        return sum(p for grade_id, p in self.points.items() if self.errors[grade_id] is None
                   and going_further(grade_id))

    def maximum(self, further=False):
        return sum(p for grade_id, p in self.points.items() if going_further(grade_id) == further)

    def failed(self):
        return {grade_id: error for grade_id, error in self.errors.items() if error}


def _run_source(source, filename, namespace):
    """Run one cell's source in ``namespace``; markers of solution and hidden-test regions are left out."""
    source = "\n".join(line for line in source.splitlines() if not MARKERS.match(line))
    # inspect.getsource (convcheck's library check) reads cells through linecache
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the course's own notebooks


def run_notebook(name, spec=None, graded_only=False):
    """Run ``name``'s code cells in order in one namespace, as autograde would for ``spec`` (default:
    the reference solution); the cells are the plain runner's (``coursetools.plain.runner.spec_cells``).

    ``graded_only`` skips the code cells without nbgrader metadata (plain lesson and figure cells).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = plainrun.spec_cells(spec or REFERENCE, name, SESSION)
    run = NotebookRun({"__name__": "__main__"}, {}, {}, [])
    cwd = os.getcwd()
    os.chdir(SESSION)
    try:
        for cell in cells:
            if graded_only and cell["grade_id"] is None:
                continue
            try:
                _run_source(cell["source"], f"<{name} cell {cell['index']}>", run.namespace)
                error = None
            except Exception as exc:  # noqa: BLE001 - recorded per cell, as the autograder does
                error = f"{type(exc).__name__}: {exc}"
            if cell["kind"] == "tests":
                run.errors[cell["grade_id"]] = error
                run.points[cell["grade_id"]] = cell["points"]
            elif error is not None:
                run.other_errors.append(error)
    finally:
        os.chdir(cwd)
        plt.close("all")
    for index, why in plainrun.refused_tests(cells).items():
        run.errors[next(c["grade_id"] for c in cells if c["index"] == index)] = f"CheckFailure: {why}"
    return run


def run_cell(notebook, grade_id, **names):
    """Run one code cell of a source notebook (hidden tests included) in a namespace of ``names``."""
    (cell,) = [c for c in plainrun.code_cells(plainrun.read_notebook(SESSION / f"{notebook}.ipynb"))
               if c["grade_id"] == grade_id]
    namespace = dict(names)
    _run_source(cell["source"], f"<{notebook} cell {cell['index']}>", namespace)
    return namespace


def check_spec(name, graded_only=False):
    """A spec's expected code points and its [[message]] diagnoses, in-process."""
    submission = load_spec(name)
    (notebook,) = submission["submit"]
    run = run_notebook(notebook, submission, graded_only)
    assert run.score == spec.expected_code_score(submission, notebook, run.maximum()), run.failed()
    assert run.further_score == spec.expected_code_score(submission, notebook, run.maximum(True), further=True), \
        run.failed()
    for message in submission["message"]:
        error = run.errors[message["grade_id"]]
        assert error is not None and message["contains"] in error, (message, error)
