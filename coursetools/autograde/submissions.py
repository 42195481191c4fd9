"""Sample submissions turned into notebooks on demand: submitted/<student>/session10/ from a spec.

The spec format and its reader: ``coursetools.core.spec``. Answers come from source/, so specs
stay in step with the notebooks.
"""
import os
import pathlib
import shutil

import nbformat

from coursetools import ASSIGNMENT
from coursetools.core.spec import load_spec, submitted_names, submitted_notebook


def build_notebooks(course, spec):
    """Return {notebook name: NotebookNode} for a spec (notebooks to write as JSON)."""
    notebooks = {}
    for name in submitted_names(spec, course.notebooks()):
        notebook = nbformat.read(course.release / f"{name}.ipynb", as_version=4)
        source = nbformat.read(course.source / f"{name}.ipynb", as_version=4)
        notebooks[name] = nbformat.from_dict(submitted_notebook(spec, name, notebook, source))
    return {name: nb for name, nb in notebooks.items()
            if name not in spec.get("omit", []) and name not in spec.get("raw_notebook", {})}


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
