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
    [expected]                   # autograded (code) points per notebook, asserted by the tests;
    "07_convolution_from_scratch" = 12        # a submitted notebook not listed here is expected
                                 # to score full marks on base "solution", zero on base "release"
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

``[expected]`` and ``[[message]]`` are asserted by tests/test_corpus.py; ``[[flag]]``
by tests/test_robustness.py.
"""
import pathlib
import tomllib

LIST_KEYS = ("cell", "message", "insert", "delete", "file", "symlink", "flag", "omit", "blank")
TABLE_KEYS = ("expected", "raw_notebook", "kernelspec")


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


def spec_name(path):
    """The student id a spec is graded as: its file name without .toml."""
    return pathlib.Path(path).stem
