"""nbgrader's cells as plain JSON dicts or NotebookNodes: kinds, grade ids, solution regions."""
import copy
import re

SOLUTION_MARKERS = re.compile(r"^\s*(###|===) ?(BEGIN|END) SOLUTION ?(===)?\s*$")
# What the release puts in place of a solution (nbgrader_config.py gives it to ClearSolutions):
# running an untouched answer says what to do instead of a bare NotImplementedError.
CODE_STUB = '# YOUR CODE HERE\nraise NotImplementedError("not written yet: replace this line with your code")'


def nbgrader_meta(cell):
    """The cell's ``nbgrader`` metadata ({} when it has none, or when a student broke it)."""
    meta = (cell.get("metadata") or {}).get("nbgrader") or {}
    return meta if isinstance(meta, dict) else {}


def grade_id(cell):
    return nbgrader_meta(cell).get("grade_id")


GOING_FURTHER = "_further_"   # in a grade id: a cell of an optional "going further" part


def going_further(name):
    """Whether the graded cell ``name`` (a grade id) belongs to a going-further part: its points are
    reported apart from the core's, so the core alone can earn full marks (docs/authoring.md)."""
    return GOING_FURTHER in str(name or "")


def cell_source(cell):
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def cell_kind(cell):
    """'tests', 'solution', 'readonly', 'manual' (graded code answer) or 'code'."""
    meta = nbgrader_meta(cell)
    if meta.get("grade") and meta.get("solution"):
        return "manual"
    if meta.get("grade"):
        return "tests"
    if meta.get("solution"):
        return "solution"
    if meta.get("locked"):
        return "readonly"
    return "code"


def solution_text(source):
    """The answer inside a source cell: its solution region, markers removed."""
    return "\n".join(line for line in source.splitlines() if not SOLUTION_MARKERS.match(line))


MARK_SCHEME = re.compile(r"^\*\*Mark scheme\b", re.M)   # where a written answer's scheme for graders starts


def handed_in_answer(cell):
    """What a sample student hands in for the answer cell ``cell`` of a source notebook: its solution,
    and for a written answer the model answer alone (the formgrader shows the mark scheme under it)."""
    text = solution_text(cell_source(cell))
    if cell.get("cell_type") == "markdown":
        text = MARK_SCHEME.split(text, 1)[0].rstrip()
    return text


def clear_solution(source):
    """The release's version of an answer cell: nbgrader ClearSolutions' algorithm."""
    new_lines, in_solution, replaced = [], False, False
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line:
            in_solution = replaced = True
            indent = re.match(r"\s*", line).group(0)
            new_lines.extend(indent + stub for stub in CODE_STUB.split("\n"))
        elif "END SOLUTION" in line:
            in_solution = False
        elif not in_solution:
            new_lines.append(line)
    return "\n".join(new_lines) if replaced else CODE_STUB


def released_code(notebook):
    """A copy of a source notebook (JSON dict) with every code answer cleared as in the release
    (``clear_solution``); the test cells keep their hidden tests."""
    released = copy.deepcopy(notebook)
    for cell in released["cells"]:
        if cell.get("cell_type") == "code" and cell_kind(cell) == "solution":
            cell["source"] = clear_solution(cell_source(cell))
    return released
