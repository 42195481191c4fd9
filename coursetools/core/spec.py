"""The submission spec format: sample submissions as small TOML specs (the one reader).

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
    [expected]                   # the core's autograded (code) points per notebook, asserted by the tests;
    "07_convolution_from_scratch" = 12        # a submitted notebook not listed here is expected
                                 # to score full marks on base "solution", zero on base "release"
    [expected_further]           # the same for the points of a notebook's optional going-further part
    "10_summary" = 2             # (grade ids with "_further_"), counted apart from the core
    [[message]]                  # optional: a failing test cell's message must contain a text
    notebook = "07_convolution_from_scratch"
    grade_id = "nb07_test_conv2d_hand_cases"
    contains = "flipped kernel"

Specs stay in step with the notebooks because the answers come from source/.

Misbehaving and hostile submissions (``submissions/hostile_*.toml``) need more than
answer cells. These keys change the notebooks or the submission folder; all are optional:

    [[cell]]                     # besides `source`, a cell change may say:
    notebook = "01_recap_and_motivation"
    grade_id = "nb01_test_q2_first_layer_params"   # any cell with a grade_id, tests included
    source = "pass"              # new source (optional)
    release = true               # or: reset the cell to its release (student) version
    cell_type = "markdown"       # change the cell's type
    nbgrader = {points = 100, locked = false}      # merged into the cell's nbgrader metadata
    strip_nbgrader = true        # drop the cell's nbgrader metadata (an "ordinary" cell now)
    outputs = [{output_type = "stream", name = "stdout", text = "ok"}]   # saved outputs
    execution_count = 3          # with outputs: a saved execution count

    [[insert]]                   # a new cell
    notebook = "01_recap_and_motivation"
    after = "nb01_setup"         # after the cell with this grade_id ("" = at the top)
    source = "import os; os._exit(1)"
    cell_type = "code"           # default

    [[delete]]                   # remove cells by grade_id
    notebook = "04_hand_calculations"
    grade_ids = ["nb04_test_ex41_00", "nb04_setup"]

    omit = ["04_hand_calculations"]   # notebooks in `submit` that are not handed in (missing)
    blank = ["03_the_convolution_operation"]  # notebooks handed in as released, on base "solution" too

    [raw_notebook]               # notebooks written as this exact text (e.g. not valid JSON)
    "01_recap_and_motivation" = '{"cells": [ '

    [kernelspec]                 # the saved kernelspec of a notebook
    "01_recap_and_motivation" = {name = "julia-1.9", display_name = "Julia 1.9", language = "julia"}

    [[file]]                     # an extra file in the submission folder
    path = "notes/todo.txt"      # relative to submitted/<student>/session10/
    text = "..."

    [[symlink]]                  # a symbolic link in the submission folder
    path = "answers.txt"
    target = "/etc/hostname"     # written as given (absolute or relative)

    [[flag]]                     # what the instructor's report must say about this student
    kind = "tampering"           # an event kind (see coursetools/autograde/grade.py: KINDS)
    notebook = "01_recap_and_motivation"   # optional
    contains = "math.isclose"    # optional: text of the event's detail

``[expected]``, ``[expected_further]`` and ``[[message]]`` are asserted by tests/test_corpus.py; ``[[flag]]``
by tests/test_robustness.py.
"""
import copy
import tomllib
import uuid

from coursetools.core.cells import cell_source, grade_id, handed_in_answer, nbgrader_meta

LIST_KEYS = ("cell", "message", "insert", "delete", "file", "symlink", "flag", "omit", "blank")
TABLE_KEYS = ("expected", "expected_further", "raw_notebook", "kernelspec")


def load_spec(path):
    """The spec at ``path`` with every optional key present (its default when the file leaves it out)."""
    with open(path, "rb") as handle:
        spec = tomllib.load(handle)
    spec.setdefault("base", "solution")
    for key in LIST_KEYS:
        spec.setdefault(key, [])
    for key in TABLE_KEYS:
        spec.setdefault(key, {})
    return spec


# ---------------------------------------------------------------- a spec applied to a notebook

def submitted_names(spec, notebooks):
    """The notebooks a spec hands in: its ``submit`` list, else ``notebooks`` (every notebook)."""
    names = list(spec.get("submit") or notebooks)
    for key in ("cell", "insert", "delete"):
        for change in spec.get(key, []):
            if change["notebook"] not in names:
                what = "cell change" if key == "cell" else key
                raise ValueError(f"{what} for {change['notebook']!r}, which this spec does not submit")
    return names


def submitted_notebook(spec, name, notebook, source, restored=None):
    """Change ``notebook`` (the release of notebook ``name``, a JSON dict or NotebookNode) in place into
    what the spec hands in, and return it: on base "solution" (unless ``blank``) the answers of ``source``
    (the source notebook), then the spec's cell changes, inserts, deletes and kernelspec.

    ``restored(cell)``: true for the cells that grading puts back from source/ (nbgrader overwrites
    locked cells): the spec's changes and deletes of those are left out.
    """
    restored = restored or (lambda cell: False)
    cells = notebook["cells"]
    releases = {grade_id(c): cell_source(c) for c in cells if grade_id(c)}
    if spec["base"] == "solution" and name not in spec.get("blank", []):
        answers = {grade_id(c): handed_in_answer(c) for c in source["cells"] if nbgrader_meta(c).get("solution")}
        for cell in cells:
            if grade_id(cell) in answers:
                cell["source"] = answers[grade_id(cell)]
    elif spec["base"] != "release":
        raise ValueError(f"unknown base {spec['base']!r}: use 'solution' or 'release'")
    for change in spec.get("cell", []):
        if change["notebook"] == name:
            cell = _find(cells, name, change["grade_id"])
            if not restored(cell):
                _change_cell(cell, change, releases.get(change["grade_id"]))
    for insert in spec.get("insert", []):
        if insert["notebook"] == name:
            after = insert.get("after", "")
            position = cells.index(_find(cells, name, after)) + 1 if after else 0
            cells.insert(position, _new_cell(insert.get("cell_type", "code"), insert["source"].strip("\n")))
    for delete in spec.get("delete", []):
        if delete["notebook"] == name:
            for doomed in delete["grade_ids"]:
                cell = _find(cells, name, doomed)
                if not restored(cell):
                    cells.remove(cell)
    if name in spec.get("kernelspec", {}):
        notebook.setdefault("metadata", {})["kernelspec"] = dict(spec["kernelspec"][name])
    return notebook


def _find(cells, name, wanted):
    for cell in cells:
        if grade_id(cell) == wanted:
            return cell
    raise ValueError(f"{name} has no cell {wanted!r}")


def _new_cell(cell_type, source):
    """A cell as nbformat.v4.new_code_cell / new_markdown_cell make it."""
    cell = {"id": uuid.uuid4().hex[:8], "cell_type": cell_type, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _change_cell(cell, change, release_source):
    if change.get("release"):
        if release_source is None:
            raise ValueError(f"no release version of cell {change['grade_id']!r}")
        cell["source"] = release_source
    if "source" in change:
        cell["source"] = change["source"].strip("\n")
    if "cell_type" in change and change["cell_type"] != cell["cell_type"]:
        cell["cell_type"] = change["cell_type"]
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    if "nbgrader" in change:
        cell.setdefault("metadata", {}).setdefault("nbgrader", {}).update(change["nbgrader"])
    if change.get("strip_nbgrader"):
        cell.get("metadata", {}).pop("nbgrader", None)
    if "outputs" in change:
        cell["outputs"] = [_output(o) for o in change["outputs"]]
        cell["execution_count"] = change.get("execution_count")


def _output(spec_output):
    output = copy.deepcopy(spec_output)
    if output.get("output_type") in ("execute_result", "display_data"):
        output.setdefault("metadata", {})
    if output.get("output_type") == "execute_result":
        output.setdefault("execution_count", None)
    return output


def expected_code_score(spec, notebook, max_code, further=False):
    """The code points a spec expects for a notebook, of the core (or, ``further``, of its going-further
    part): its [expected] (or [expected_further]) entry, else full marks on base "solution" and 0 on base
    "release" or for a notebook handed in blank."""
    table = spec["expected_further" if further else "expected"]
    if notebook in table:
        return table[notebook]
    return max_code if spec["base"] == "solution" and notebook not in spec["blank"] else 0
