"""A source notebook's code cells run in this process: the quick way to test its cells and the specs.

The real autograding of every spec in submissions/ is covered by the pipeline tests; here a
spec's answer cells replace the solution's and the cells run in one namespace (a few seconds),
so a broken hint or a wrong point count shows up quickly.
"""
import json
import linecache
import os
import re
import sys
import tomllib
from dataclasses import dataclass

import pytest

from conftest import REPO

import convcheck  # source/session10, on the path by pyproject.toml

SESSION = REPO / "source" / "session10"

MARKERS = re.compile(r"^\s*(###|===) ?(BEGIN|END) (SOLUTION|HIDDEN TESTS) ?(===)?\s*$")


def failure(func, *args, **kwargs):
    """The message of the CheckFailure that ``func(*args, **kwargs)`` must raise."""
    with pytest.raises(convcheck.CheckFailure) as info:
        func(*args, **kwargs)
    return str(info.value)


def load_spec(name):
    return tomllib.loads((REPO / "submissions" / f"{name}.toml").read_text())


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
        return sum(p for grade_id, p in self.points.items() if self.errors[grade_id] is None)

    def failed(self):
        return {grade_id: error for grade_id, error in self.errors.items() if error}


def run_notebook(name, spec=None, graded_only=False):
    """Run ``name``'s code cells in order in one namespace, answer cells replaced as ``spec`` says.

    ``graded_only`` skips the code cells without nbgrader metadata (plain lesson and figure cells).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    changes = {c["grade_id"]: c["source"].strip("\n") for c in (spec or {}).get("cell", [])
               if c.get("notebook", name) == name}
    cells = json.loads((SESSION / f"{name}.ipynb").read_text())["cells"]
    run = NotebookRun({"__name__": "__main__"}, {}, {}, [])
    cwd = os.getcwd()
    os.chdir(SESSION)
    try:
        for index, cell in enumerate(cells):
            meta = cell["metadata"].get("nbgrader", {})
            if cell["cell_type"] != "code" or (graded_only and not meta):
                continue
            grade_id = meta.get("grade_id")
            source = changes.get(grade_id, "".join(cell["source"]))
            source = "\n".join(line for line in source.splitlines() if not MARKERS.match(line))
            filename = f"<{name} cell {index}>"
            # inspect.getsource (convcheck's library check) reads cells through linecache
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            try:
                exec(compile(source, filename, "exec"), run.namespace)  # noqa: S102 - the course's own notebooks
                error = None
            except Exception as exc:  # noqa: BLE001 - recorded per cell, as the autograder does
                error = f"{type(exc).__name__}: {exc}"
            if meta.get("grade"):
                run.errors[grade_id] = error
                run.points[grade_id] = meta["points"]
            elif error is not None:
                run.other_errors.append(error)
    finally:
        os.chdir(cwd)
        plt.close("all")
    refuse_library_functions(run, cells, changes)
    return run


def refuse_library_functions(run, cells, changes):
    """As the grader decides (coursetools.grader.judge): every test of a from-scratch function that uses a library
    convolution fails."""
    from coursetools.grader import libraryscan

    def source(cell):
        return changes.get(cell["metadata"].get("nbgrader", {}).get("grade_id"), "".join(cell["source"]))

    code = [c for c in cells if c["cell_type"] == "code"]
    student = [source(c) for c in code if not c["metadata"].get("nbgrader", {}).get("locked")]
    from_scratch = libraryscan.tested_from_scratch([source(c) for c in code
                                                    if c["metadata"].get("nbgrader", {}).get("locked")])
    for cell in code:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            refused = libraryscan.refusal(source(cell), from_scratch, student)
            if refused:
                run.errors[meta["grade_id"]] = f"CheckFailure: {refused}"


def check_spec(name, graded_only=False):
    """A spec's expected code points and its [[message]] diagnoses, in-process."""
    spec = load_spec(name)
    (notebook,) = spec["submit"]
    run = run_notebook(notebook, spec, graded_only)
    assert run.score == spec.get("expected", {}).get(notebook, sum(run.points.values())), run.failed()
    for message in spec.get("message", []):
        error = run.errors[message["grade_id"]]
        assert error is not None and message["contains"] in error, (message, error)
