"""Sample submissions, kept as small TOML specs and turned into notebooks on demand.

A spec in ``submissions/<student_id>.toml`` starts from a base and changes it:

    description = "what this submission is"
    base = "solution"            # the release with every answer cell filled from source/
                                 # or "release": the untouched student version
    [[cell]]                     # replace one answer cell's source
    notebook = "07_convolution_from_scratch"
    grade_id = "conv2d"
    source = '''
    def conv2d(image, kernel): ...
    '''
    submit = ["07_convolution_from_scratch"]   # optional: hand in only these notebooks
    [expected]                   # autograded (code) points per notebook, asserted by the tests;
    "07_convolution_from_scratch" = 12        # a submitted notebook not listed here is expected
                                 # to score full marks on base "solution", zero on base "release"
    [[message]]                  # optional: a failing test cell's message must contain a text
    notebook = "07_convolution_from_scratch"
    grade_id = "nb07_test_conv2d_hand_cases"
    contains = "flipped kernel"

Specs stay in step with the notebooks because the answers come from source/.
"""
import pathlib
import re
import shutil
import tomllib

import nbformat

from coursetools import ASSIGNMENT

SOLUTION_MARKERS = re.compile(r"^\s*(###|===) ?(BEGIN|END) SOLUTION ?(===)?\s*$")


def solution_text(source):
    """The answer inside a source cell: its solution region, markers removed."""
    return "\n".join(line for line in source.splitlines() if not SOLUTION_MARKERS.match(line))


def load_spec(path):
    with open(path, "rb") as handle:
        spec = tomllib.load(handle)
    spec.setdefault("base", "solution")
    spec.setdefault("cell", [])
    spec.setdefault("expected", {})
    spec.setdefault("message", [])
    return spec


def _answers(source_notebook):
    return {cell.metadata.nbgrader.grade_id: solution_text(cell.source)
            for cell in source_notebook.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def build_notebooks(course, spec):
    """Return {notebook name: NotebookNode} for a spec."""
    notebooks = {}
    for name in spec.get("submit") or course.notebooks():
        notebook = nbformat.read(course.release / f"{name}.ipynb", as_version=4)
        if spec["base"] == "solution":
            answers = _answers(nbformat.read(course.source / f"{name}.ipynb", as_version=4))
            for cell in notebook.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in answers:
                    cell.source = answers[grade_id]
        elif spec["base"] != "release":
            raise ValueError(f"unknown base {spec['base']!r}: use 'solution' or 'release'")
        notebooks[name] = notebook
    for change in spec["cell"]:
        if change["notebook"] not in notebooks:
            raise ValueError(f"cell change for {change['notebook']!r}, which this spec does not submit")
        notebook = notebooks[change["notebook"]]
        cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == change["grade_id"]]
        if not cells:
            raise ValueError(f"{change['notebook']} has no cell {change['grade_id']!r}")
        cells[0].source = change["source"].strip("\n")
    return notebooks


def materialize(course, spec_path, student_id=None):
    """Write one spec's notebooks to submitted/<student>/session10/."""
    spec = load_spec(spec_path)
    student_id = student_id or pathlib.Path(spec_path).stem
    target = course.submitted / student_id / ASSIGNMENT
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, notebook in build_notebooks(course, spec).items():
        nbformat.write(notebook, target / f"{name}.ipynb")
    return student_id


def materialize_all(course, spec_dir):
    """Materialize every spec in ``spec_dir``; return {student_id: spec}."""
    specs = {}
    for path in sorted(pathlib.Path(spec_dir).glob("*.toml")):
        specs[materialize(course, path)] = load_spec(path)
    return specs
