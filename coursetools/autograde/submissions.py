"""Sample submissions turned into notebooks on demand: submitted/<student>/session10/ from a spec.

The spec format and its reader: ``coursetools.core.spec``. Answers come from source/, so specs
stay in step with the notebooks.
"""
import copy
import os
import pathlib
import shutil

import nbformat

from coursetools import ASSIGNMENT
from coursetools.core.cells import grade_id as _grade_id, solution_text
from coursetools.core.spec import load_spec


def _answers(source_notebook):
    return {cell.metadata.nbgrader.grade_id: solution_text(cell.source)
            for cell in source_notebook.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def _find(notebook, name, grade_id):
    cells = [c for c in notebook.cells if _grade_id(c) == grade_id]
    if not cells:
        raise ValueError(f"{name} has no cell {grade_id!r}")
    return cells[0]


def _output(spec):
    output = nbformat.from_dict(copy.deepcopy(spec))
    if output.get("output_type") in ("execute_result", "display_data"):
        output.setdefault("metadata", {})
    if output.get("output_type") == "execute_result":
        output.setdefault("execution_count", None)
    return output


def _change_cell(cell, change, release_cell):
    if change.get("release"):
        if release_cell is None:
            raise ValueError(f"no release version of cell {change['grade_id']!r}")
        cell.source = release_cell.source
    if "source" in change:
        cell.source = change["source"].strip("\n")
    if "cell_type" in change and change["cell_type"] != cell.cell_type:
        cell.cell_type = change["cell_type"]
        if cell.cell_type == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    if "nbgrader" in change:
        cell.metadata.setdefault("nbgrader", {}).update(change["nbgrader"])
    if change.get("strip_nbgrader"):
        cell.metadata.pop("nbgrader", None)
    if "outputs" in change:
        cell.outputs = [_output(o) for o in change["outputs"]]
        cell.execution_count = change.get("execution_count")


def build_notebooks(course, spec):
    """Return {notebook name: NotebookNode} for a spec (notebooks to write as JSON)."""
    notebooks, releases = {}, {}
    omitted = set(spec.get("omit", []))
    for name in spec.get("submit") or course.notebooks():
        notebook = nbformat.read(course.release / f"{name}.ipynb", as_version=4)
        releases[name] = copy.deepcopy({_grade_id(c): c for c in notebook.cells if _grade_id(c)})
        if spec["base"] == "solution" and name not in spec.get("blank", []):
            answers = _answers(nbformat.read(course.source / f"{name}.ipynb", as_version=4))
            for cell in notebook.cells:
                grade_id = _grade_id(cell)
                if grade_id in answers:
                    cell.source = answers[grade_id]
        elif spec["base"] != "release":
            raise ValueError(f"unknown base {spec['base']!r}: use 'solution' or 'release'")
        notebooks[name] = notebook
    for change in spec.get("cell", []):
        if change["notebook"] not in notebooks:
            raise ValueError(f"cell change for {change['notebook']!r}, which this spec does not submit")
        cell = _find(notebooks[change["notebook"]], change["notebook"], change["grade_id"])
        _change_cell(cell, change, releases[change["notebook"]].get(change["grade_id"]))
    for insert in spec.get("insert", []):
        notebook = notebooks[insert["notebook"]]
        kind = insert.get("cell_type", "code")
        new = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(
            insert["source"].strip("\n"))
        after = insert.get("after", "")
        position = 0 if not after else notebook.cells.index(_find(notebook, insert["notebook"], after)) + 1
        notebook.cells.insert(position, new)
    for delete in spec.get("delete", []):
        notebook = notebooks[delete["notebook"]]
        for grade_id in delete["grade_ids"]:
            notebook.cells.remove(_find(notebook, delete["notebook"], grade_id))
    for name, kernelspec in spec.get("kernelspec", {}).items():
        notebooks[name].metadata["kernelspec"] = dict(kernelspec)
    return {name: nb for name, nb in notebooks.items()
            if name not in omitted and name not in spec.get("raw_notebook", {})}


def _inside(root, path):
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def materialize(course, spec_path, student_id=None):
    """Write one spec's submission folder: submitted/<student>/session10/."""
    spec = load_spec(spec_path)
    student_id = student_id or pathlib.Path(spec_path).stem
    target = course.submitted / student_id / ASSIGNMENT
    if target.exists() or target.is_symlink():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, notebook in build_notebooks(course, spec).items():
        nbformat.write(notebook, target / f"{name}.ipynb")
    for name, text in spec["raw_notebook"].items():
        (target / f"{name}.ipynb").write_text(text)
    for extra in spec["file"]:
        path = target / extra["path"]
        if not _inside(target, path):
            raise ValueError(f"file {extra['path']!r} would be written outside the submission")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(extra.get("text", ""))
    for link in spec["symlink"]:
        path = target / link["path"]
        if not _inside(target, path.parent):
            raise ValueError(f"symlink {link['path']!r} would be made outside the submission")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link["target"], path)
    return student_id


def materialize_all(course, spec_dir):
    """Materialize every spec in ``spec_dir``; return {student_id: spec}."""
    specs = {}
    for path in sorted(pathlib.Path(spec_dir).glob("*.toml")):
        specs[materialize(course, path)] = load_spec(path)
    return specs
