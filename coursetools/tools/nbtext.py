"""Notebooks as plain text, and back, with clean nbgrader metadata.

A text notebook is a sequence of cells, each opened by a header line:

    # %% [markdown]                          lesson text
    # %% [code]                              ordinary code
    # %% [solution] id=conv2d                autograded answer (student code)
    # %% [tests] id=test_conv2d points=3     autograder tests, locked
    # %% [answer] id=q1 points=2             written answer, graded by hand (markdown)
    # %% [readonly] id=setup                 code the student may not edit

Everything up to the next header is the cell's source, markdown included
(no comment prefixes). Cell ids are the grade id where there is one and a
hash of the content otherwise, so rebuilding gives the same JSON.
"""
import argparse
import hashlib
import json
import pathlib
import re
import sys

HEADER = re.compile(r"^# %% \[(?P<kind>\w+)\](?P<attrs>.*)$")
KINDS = {
    # kind: (cell_type, nbgrader flags)
    "markdown": ("markdown", None),
    "code": ("code", None),
    "solution": ("code", dict(grade=False, solution=True, locked=False)),
    "tests": ("code", dict(grade=True, solution=False, locked=True)),
    "answer": ("markdown", dict(grade=True, solution=True, locked=False)),
    "readonly": ("code", dict(grade=False, solution=False, locked=True)),
}
NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def _attrs(text):
    attrs = dict(pair.split("=", 1) for pair in text.split())
    if "points" in attrs:
        points = float(attrs["points"])
        attrs["points"] = int(points) if points.is_integer() else points
    return attrs


def _cell_id(cell, used):
    grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
    base = grade_id or "c" + hashlib.sha1((cell["cell_type"] + cell["source"]).encode()).hexdigest()[:10]
    cell_id, n = base, 1
    while cell_id in used:
        n += 1
        cell_id = f"{base}-{n}"
    used.add(cell_id)
    return cell_id


def text_to_notebook(text):
    """Parse the text form into an nbformat 4.5 notebook (a dict)."""
    cells, current = [], None
    for line_no, line in enumerate(text.splitlines(), 1):
        match = HEADER.match(line)
        if match:
            kind = match["kind"]
            if kind not in KINDS:
                raise ValueError(f"line {line_no}: unknown cell kind [{kind}]; use one of {sorted(KINDS)}")
            current = {"kind": kind, "attrs": _attrs(match["attrs"]), "lines": [], "line": line_no}
            cells.append(current)
        elif current is None:
            if line.strip():
                raise ValueError(f"line {line_no}: text before the first '# %% [kind]' header")
        else:
            current["lines"].append(line)
    notebook_cells, used = [], set()
    for raw in cells:
        cell_type, flags = KINDS[raw["kind"]]
        source = "\n".join(raw["lines"]).strip("\n")
        cell = {"cell_type": cell_type, "id": None, "metadata": {}, "source": source}
        if flags is not None:
            if "id" not in raw["attrs"]:
                raise ValueError(f"line {raw['line']}: [{raw['kind']}] cells need id=...")
            meta = dict(flags, grade_id=raw["attrs"]["id"], schema_version=3, task=False)
            if flags["grade"]:
                if "points" not in raw["attrs"]:
                    raise ValueError(f"line {raw['line']}: graded cell {raw['attrs']['id']} needs points=...")
                meta["points"] = raw["attrs"]["points"]
            cell["metadata"]["nbgrader"] = dict(sorted(meta.items()))
        if cell_type == "code":
            cell.update(execution_count=None, outputs=[])
        cell["id"] = _cell_id(cell, used)
        notebook_cells.append(cell)
    return {"cells": notebook_cells, "metadata": NOTEBOOK_METADATA, "nbformat": 4, "nbformat_minor": 5}


def notebook_to_text(notebook):
    """The inverse of ``text_to_notebook`` for notebooks it can describe."""
    chunks = []
    for cell in notebook["cells"]:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            kind, attrs = cell["cell_type"], ""
        else:
            kind = next(k for k, (ctype, flags) in KINDS.items() if flags and ctype == cell["cell_type"]
                        and all(meta.get(f) == v for f, v in flags.items()))
            attrs = f" id={meta['grade_id']}" + (f" points={meta['points']}" if meta.get("grade") else "")
        chunks.append(f"# %% [{kind}]{attrs}\n{source}\n")
    return "\n".join(chunks)


def dumps(notebook):
    """Validated JSON exactly as Jupyter writes it, so saving in JupyterLab changes nothing."""
    import nbformat
    node = nbformat.from_dict(notebook)
    nbformat.validate(node)
    return nbformat.writes(node) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="coursetools nbtext", description="Convert notebooks to and from text.")
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="text file -> .ipynb")
    build.add_argument("text", type=pathlib.Path)
    build.add_argument("notebook", type=pathlib.Path)
    dump = sub.add_parser("dump", help=".ipynb -> text (stdout, or a file)")
    dump.add_argument("notebook", type=pathlib.Path)
    dump.add_argument("text", type=pathlib.Path, nargs="?")
    args = parser.parse_args(argv)
    if args.action == "build":
        try:
            notebook = text_to_notebook(args.text.read_text())
        except ValueError as error:
            sys.exit(f"{args.text}: {error}")
        args.notebook.write_text(dumps(notebook))
    else:
        text = notebook_to_text(json.loads(args.notebook.read_text()))
        if args.text:
            args.text.write_text(text)
        else:
            sys.stdout.write(text)


if __name__ == "__main__":
    main()
