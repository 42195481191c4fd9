"""The source notebooks: valid nbgrader metadata, clean JSON, no outputs."""
import json
import re

import pytest

from coursetools.tools.nbtext import dumps, notebook_to_text, text_to_notebook
from conftest import REPO

SOURCE = sorted((REPO / "source" / "session10").glob("*.ipynb"))
LECTURE_SECTIONS = 10


def test_ten_notebooks_numbered_after_the_lecture():
    numbers = [p.name[:2] for p in SOURCE]
    assert numbers == [f"{n:02d}" for n in range(1, LECTURE_SECTIONS + 1)]


def test_grade_ids_unique_across_the_assignment():
    seen = {}
    for path in SOURCE:
        for cell in json.loads(path.read_text())["cells"]:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id:
                assert grade_id not in seen, f"{grade_id} in {path.name} and {seen[grade_id]}"
                assert grade_id.startswith(f"nb{path.name[:2]}_"), f"{path.name}: {grade_id} lacks its nbNN_ prefix"
                seen[grade_id] = path.name


@pytest.mark.parametrize("path", SOURCE, ids=[p.stem for p in SOURCE])
def test_graded_cells_have_points_and_valid_flags(path):
    cells = json.loads(path.read_text())["cells"]
    graded = 0
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        assert meta["schema_version"] == 3
        if meta["grade"]:
            graded += 1
            assert isinstance(meta.get("points"), (int, float)) and meta["points"] > 0, meta
        if meta["grade"] and not meta["solution"]:
            assert meta["locked"], f"test cell {meta['grade_id']} must be locked"
            assert cell["cell_type"] == "code"
        if meta["solution"]:
            marker = "BEGIN SOLUTION"
            assert marker in "".join(cell["source"]), f"{meta['grade_id']} has no solution region"
    assert graded > 0, f"{path.name} has no graded cells"


@pytest.mark.parametrize("path", SOURCE, ids=[p.stem for p in SOURCE])
def test_no_outputs_and_canonical_json(path):
    """Committed without outputs, and exactly as the text builder writes it:
    no stray metadata, stable cell ids (rebuild with `coursetools nbtext`)."""
    text = path.read_text()
    notebook = json.loads(text)
    for cell in notebook["cells"]:
        assert not cell.get("outputs"), f"{path.name}: a cell has outputs"
        assert cell.get("execution_count") is None
    rebuilt = dumps(text_to_notebook(notebook_to_text(notebook)))
    assert rebuilt == text, f"{path.name} is not canonical: dump and rebuild it with coursetools nbtext"


# A code cell that draws: matplotlib's show, the course's plots module, a widget, or imshow.
DRAWS_A_FIGURE = re.compile(r"plt\.show\(\)|plots\.\w+\(|widgets\.\w+\(|\.imshow\(")


@pytest.mark.parametrize("path", SOURCE, ids=lambda p: p.name[:2])
def test_every_figure_has_a_caption(path):
    """The markdown cell right after a cell that draws starts with "*Figure", saying what it shows."""
    cells = json.loads(path.read_text())["cells"]
    drawing = [i for i, cell in enumerate(cells)
               if cell["cell_type"] == "code" and DRAWS_A_FIGURE.search("".join(cell["source"]))]
    assert drawing, f"{path.name} draws no figure: the pattern no longer finds them"
    uncaptioned = [i for i in drawing
                   if i + 1 >= len(cells) or cells[i + 1]["cell_type"] != "markdown"
                   or not "".join(cells[i + 1]["source"]).lstrip().startswith("*Figure")]
    assert not uncaptioned, f"{path.name}: cells {uncaptioned} draw a figure with no caption cell after them"


@pytest.mark.parametrize("path", SOURCE, ids=lambda p: p.name[:2])
def test_the_introduction_says_what_validate_does_not_check(path):
    """nbgrader's Validate says "Success!" when the visible checks pass; each notebook says what that leaves out."""
    introduction = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert "Validate runs only the checks you can see" in introduction
    assert "Hidden tests run when your work is graded" in introduction


def readme_plan():
    """{notebook number: (minutes, path)} from the README's "Planning the unit" table."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("### Planning the unit", 1)[1].split("\n\n")[2]
    rows = [line.split("|")[1:4] for line in table.splitlines()[2:]]
    return {number.strip(): (int(time.split()[0]), path.strip()) for number, time, path in rows}


def test_the_plan_adds_up():
    plan = readme_plan()
    assert sorted(plan) == [path.name[:2] for path in SOURCE]
    assert sum(minutes for minutes, _ in plan.values()) == 450   # "about 7½ hours"


@pytest.mark.parametrize("path", SOURCE, ids=lambda p: p.name[:2])
def test_the_introduction_states_the_time_and_the_2_hour_path(path):
    minutes, on_path = readme_plan()[path.name[:2]]
    introduction = "".join(json.loads(path.read_text())["cells"][0]["source"])
    stated = re.search(r"\*Time: about (\d+) minutes, of about 7½ hours for the whole unit\. On the 2-hour path, "
                       r"[^:]*: ([^*]+)\.\*", introduction)
    assert stated, f"{path.name}: its introduction does not state its time and its part of the 2-hour path"
    assert int(stated.group(1)) == minutes
    assert on_path.split(" (")[0] in stated.group(2)


# What a test cell enforces (found in its code, hidden part included) and how its exercise must
# state it (found in the markdown cells above it). Kept by hand: a new kind of check adds a row.
STATED_RULES = {
    "raises ValueError": (r"check_raises\([^#]*ValueError|check_value_error\(", r"ValueError"),
    "an int": (r"check_type\([^\n]*,\s*(int|\(int, np\.integer\))\s*,|check_int_sequence\(",
               r"`int`|\bints?\b|whole numbers?"),
    "a bool": (r"check_type\([^\n]*\(bool, np\.bool_\)", r"\bbools?\b|`True`|\bTrue\b"),
    "a dict": (r"check_type\([^\n]*,\s*dict\s*[,)]", r"\bdicts?\b"),
    "a tuple": (r"check_type\([^\n]*,\s*tuple\s*[,)]", r"\btuples?\b"),
    "a float array": (r"check_contract\(|check_conv2d(_batch)?\(", r"\bfloat\b"),
    "inputs left unchanged": (r"check_contract\(", r"unchanged"),
    "any memory layout": (r"check_contract\(", r"non-contiguous|memory layout"),
    "nothing cached": (r"check_contract\(", r"afresh|between calls"),
}


@pytest.mark.parametrize("path", SOURCE, ids=lambda p: p.name[:2])
def test_every_rule_a_test_enforces_is_stated_above_it(path):
    """A requirement that only the tests know costs points nobody was told about (STATED_RULES)."""
    above, unstated = "", []
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        nbgrader = cell["metadata"].get("nbgrader", {})
        if cell["cell_type"] == "markdown":
            above += source + "\n"
        elif nbgrader.get("grade") and not nbgrader.get("solution"):
            unstated += [f"{nbgrader['grade_id']}: {rule}" for rule, (enforced, stated) in STATED_RULES.items()
                         if re.search(enforced, source) and not re.search(stated, above)]
    assert not unstated, f"{path.name}: tests enforce rules that no text above them states: {unstated}"
