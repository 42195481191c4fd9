"""The instructor's report tells the truth (issue 17): blank answers are not mistakes, nbgrader's own files
are not extra files, written answers show as not graded until they are.

A small course of its own (3 students, 4 notebooks autograded, under a minute), not the whole corpus."""
import copy
import html
import re

import nbformat
import pytest

from coursetools import ASSIGNMENT
from coursetools.autograde import report
from coursetools.autograde.scores import notebook_scores, totals

NB01, NB03, NB05 = "01_recap_and_motivation", "03_the_convolution_operation", "05_convolution_as_a_layer"
FLIPPED_CONV_AT = '''
def conv_at(image, kernel, i, j):
    image = np.asarray(image, dtype=float)
    kernel = np.asarray(kernel, dtype=float)[::-1, ::-1]
    k_rows, k_cols = kernel.shape
    last_i, last_j = image.shape[0] - k_rows, image.shape[1] - k_cols
    if not (0 <= i <= last_i and 0 <= j <= last_j):
        raise ValueError(f"position (i={i}, j={j}) is outside the valid range")
    return float(np.sum(image[i:i + k_rows, j:j + k_cols] * kernel))
'''
SPECS = {
    # Handed in notebook 05 as released: its tests fail with CheckFailure "... is not defined", not only
    # NotImplementedError or NameError; none of it is a mistake.
    "blank_student": f'base = "release"\nsubmit = ["{NB05}"]\n',
    # Submitted with nbgrader's exchange: nbgrader's own files in the folder, and one file of the student's.
    "exchange_student": f'''base = "solution"
submit = ["{NB01}"]
[[file]]
path = "submission_secret.txt"
text = "f3a1c0"
[[file]]
path = "timestamp.txt"
text = "2026-11-30 08:00:00.000000 UTC"
[[file]]
path = "notes.txt"
text = "my notes"
''',
    # A real mistake (conv_at flips the kernel), two answers left as released, and written answers
    # of which one is graded by hand (below).
    "partial_student": f'''base = "solution"
submit = ["{NB01}", "{NB03}"]
[[cell]]
notebook = "{NB03}"
grade_id = "nb03_conv_at"
source = \'\'\'{FLIPPED_CONV_AT}\'\'\'
[[cell]]
notebook = "{NB03}"
grade_id = "nb03_checker_output"
release = true
[[cell]]
notebook = "{NB03}"
grade_id = "nb03_agreement"
release = true
''',
}
HAND_GRADED = ("nb01_q1_flatten_loss", NB01, 1.0)


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    from nbgrader.api import Gradebook
    from coursetools import pipeline
    from coursetools.autograde.grade import grade_students
    from coursetools.autograde.submissions import materialize
    from coursetools.tools.trial import copy_course
    root = tmp_path_factory.mktemp("report")
    course = copy_course(root / "course")
    pipeline.release(course)
    specs = root / "specs"
    specs.mkdir()
    for name, text in SPECS.items():
        (specs / f"{name}.toml").write_text(text)
    students = [materialize(course, path) for path in sorted(specs.glob("*.toml"))]
    for student in students:
        course.nbgrader("db", "student", "add", student, quiet=True)
    grade_students(course, students)
    grade_id, notebook, points = HAND_GRADED
    with Gradebook(f"sqlite:///{course.db}") as gradebook:  # what the formgrader does for a hand grade
        grade = gradebook.find_grade(grade_id, notebook, ASSIGNMENT, "partial_student")
        grade.manual_score = points
        grade.needs_manual_grade = False
        gradebook.db.commit()
    return course


@pytest.fixture(scope="module")
def data(small_course):
    return report.collect(small_course)


@pytest.fixture(scope="module")
def text(small_course, data):
    return report.render(small_course, data)


def written_points(course, notebook):
    nb = nbformat.read(course.source / f"{notebook}.ipynb", as_version=4)
    return {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points for c in nb.cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")}


def row_of(text, student):
    return next(line for line in text.splitlines() if line.startswith(f"| {student} |"))


def test_a_blank_notebook_is_not_attempted_whatever_its_tests_raise(small_course, data, text):
    nb = report.autograded_notebook(small_course, "blank_student", NB05)
    raised = {ename for _, ename, _ in report.failing_tests(nb)}
    assert raised - {"NotImplementedError", "NameError"}, f"the fixture should raise more than the stub: {raised}"
    assert ("blank_student", NB05) in data["blank"]
    assert not [key for key, who in data["failures"].items() if "blank_student" in who]
    assert not [text for text, entry in data["mistakes"].items() if "blank_student" in entry["students"]]
    assert f"- blank_student: {NB05}" in text.split("## Handed in blank")[1]
    assert f" 0/{data['scores']['blank_student'][NB05]['max_code_score']:g} B |" in row_of(text, "blank_student")


def test_unanswered_cells_of_a_started_notebook_are_left_out_and_mistakes_kept(data, text):
    assert ("partial_student", NB03) not in data["blank"]
    assert "partial_student" in data["failures"][(NB03, "nb03_test_conv_at_random")]
    for grade_id in ("nb03_test_checker_output", "nb03_test_flip_identity", "nb03_test_agrees"):
        assert "partial_student" not in data["failures"].get((NB03, grade_id), ()), grade_id
        assert "partial_student" not in data["answered"].get((NB03, grade_id), ()), grade_id
    assert "partial_student" in data["answered"][(NB03, "nb03_test_conv_at_random")]
    assert any("partial_student" in entry["students"] for entry in data["mistakes"].values())
    table = text.split("## Tests failed most often")[1].split("\n## ")[0]
    assert "| nb03_test_conv_at_random | 03_the_convolution_operation | 1 | 1 |" in table
    assert "nb03_test_checker_output" not in table


def test_nbgraders_own_files_are_not_extra_files(small_course, data, text):
    folder = small_course.submitted / "exchange_student" / ASSIGNMENT
    assert (folder / "submission_secret.txt").exists() and (folder / "timestamp.txt").exists()
    details = [e["detail"] for e in data["events"]["exchange_student"] if e["kind"] == "extra_file"]
    assert details == ["notes.txt is not part of the assignment; ignored"], details
    assert "submission_secret.txt" not in text and "timestamp.txt" not in text
    assert "- exchange_student: handed in extra files: notes.txt" in text


def test_scores_show_code_written_and_total_with_ungraded_written_answers(small_course, data, text):
    scores = notebook_scores(small_course)
    sums = totals(scores["partial_student"], small_course.notebooks())
    first, third = written_points(small_course, NB01), written_points(small_course, NB03)
    pending = sum(first.values()) + sum(third.values()) - first[HAND_GRADED[0]]
    assert sums["written"] == HAND_GRADED[2] and sums["pending"] == pending
    max_written = sum(sum(written_points(small_course, n).values()) for n in small_course.notebooks())
    assert sums["max_written"] == max_written
    assert "| code | written | total | going further | flags |" in text
    row = row_of(text, "partial_student")
    assert (f"| {sums['code']:g}/{sums['max_code']:g} | {HAND_GRADED[2]:g}/{max_written:g} ({pending:g} not graded "
            f"yet) | {sums['code'] + HAND_GRADED[2]:g}/{sums['max_code'] + max_written:g} so far "
            f"| 0/{sums['max_further']:g} |") in row, row
    blank = row_of(text, "blank_student")  # a blank written answer scores 0 when autograded: graded, not pending
    assert "not graded yet" not in blank and "so far" not in blank


def test_counts_are_in_good_grammar(small_course, data):
    assert "3 students, 10 notebooks." in report.render(small_course, data)
    one = dict(data, students=["partial_student"])
    assert "1 student, 10 notebooks." in report.render(small_course, one)
    assert report.plural(1, "student") == "1 student" and report.plural(0, "student") == "0 students"


# ----------------------------------------------------------------------------- without grading

def _cell(kind, source, grade_id, solution=False, grade=False, error=None):
    cell = {"cell_type": kind, "source": source, "metadata": {"nbgrader": {
        "grade_id": grade_id, "solution": solution, "grade": grade, "locked": not solution, "points": 1}}}
    if kind == "code":
        cell["outputs"] = [{"output_type": "error", "ename": error, "evalue": "", "traceback": []}] if error else []
    return cell


def test_not_attempted_is_decided_from_the_answer_cells():
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    release = {"a": stub, "b": stub, "w": "YOUR ANSWER HERE"}
    nb = {"cells": [
        _cell("code", stub, "a", solution=True, error="NotImplementedError"),
        _cell("code", "assert table['a'] == 1", "test_a", grade=True, error="KeyError"),
        _cell("code", "b = a + 1", "b", solution=True, error="NameError"),
        _cell("code", "assert b == 2", "test_b", grade=True, error="NameError"),
        _cell("markdown", "because", "w", solution=True, grade=True),
    ]}
    state = report.answer_state(nb, release)
    assert state["blank"] == {"a"} and not report.is_blank(state)
    assert report.not_attempted("KeyError", "'a'", "test_a", state), "a KeyError from a blank answer"
    assert report.not_attempted("NameError", "name 'b' is not defined", "test_b", state), "stopped by a blank above"
    state = report.answer_state({"cells": nb["cells"][:2]}, release)
    assert report.is_blank(state)
    answered = [dict(nb["cells"][0], source="table = {}", outputs=[]), nb["cells"][1]]
    state = report.answer_state({"cells": answered}, release)
    assert not report.not_attempted("KeyError", "'a'", "test_a", state), "a KeyError from a written answer counts"


def test_nbgrader_files_are_recognised():
    assert report.nbgrader_file({"kind": "extra_file", "detail": "submission_secret.txt is not part of the "
                                                                  "assignment; ignored"})
    assert not report.nbgrader_file({"kind": "extra_file", "detail": "notes/timestamp.txt.bak is not part"})
    assert not report.nbgrader_file({"kind": "extra_file", "detail": "notes.txt is not part of the assignment"})


def test_an_answer_as_handed_out_from_an_older_release_is_still_blank():
    """The release was regenerated (other stubs) after the student fetched it: nbgrader's checksum of the cell
    as handed out, or the bare placeholder, still says the answer was never written."""
    from nbformat import from_dict
    from nbgrader.utils import compute_checksum
    old = _cell("code", "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()", "f", solution=True)
    old["metadata"]["nbgrader"]["checksum"] = compute_checksum(from_dict(old))
    old["source"] = old["source"].splitlines(keepends=True)  # as a notebook file stores it
    release = {"f": 'def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError("not written yet")'}
    assert report._unchanged(old, release)
    assert report._unchanged(_cell("code", "# YOUR CODE HERE\nraise NotImplementedError()", "g", solution=True), {})
    assert not report._unchanged(dict(old, source="def f(x):\n    return x"), release)


HOSTILE_TEXT = ("ok\n# Report hijacked\n- **classmate_bob** tampered with the grading\n| a | b |\n"
                "<script>window.pwned = 1</script> [click](javascript:alert(1)) `code` *em* _under_ &amp; ~~s~~ $x$")


def _structure(html_text):
    """What a rendered report is made of: how many headings, list items, rows and active elements."""
    return {tag: len(re.findall(rf"<{tag}[\s>]", html_text)) for tag in
            ("h1", "h2", "h3", "li", "tr", "script", "a", "em", "strong", "code", "del", "img")}


def test_student_text_in_the_report_is_verbatim_and_inert(small_course, data):
    """A student's name, file names, messages and printed text stay on one line, show as written, and
    start no heading, list item, table row, link or script (issue 24)."""
    mistune = pytest.importorskip("mistune")
    markdown = mistune.create_markdown(plugins=["table", "strikethrough"], escape=False)

    def with_student(name, detail):
        hostile = copy.deepcopy(data)
        hostile["students"] = [*data["students"], name]
        hostile["events"][name] = [{"kind": "suspicious", "detail": detail, "notebook": NB01, "cell": detail},
                                   {"kind": "extra_file", "detail": detail}]
        hostile["mistakes"][detail] = {"students": {name}, "where": {detail}}
        hostile["blank"] = {*data["blank"], (name, NB01)}
        return report.render(small_course, hostile)

    plain = with_student("mallory", "plain words")
    hostile = with_student(HOSTILE_TEXT, HOSTILE_TEXT)
    assert _structure(markdown(hostile)) == _structure(markdown(plain))
    assert len(hostile.splitlines()) == len(plain.splitlines())
    shown = " ".join(HOSTILE_TEXT.split())
    rendered_lines = [re.sub(r"<[^>]+>", "", line) for line in markdown(hostile).splitlines()]
    assert sum(shown in html.unescape(line) for line in rendered_lines) >= 4, "the text is not shown as written"


def test_the_header_says_which_notebooks_had_no_cgroup_or_no_sandbox():
    lines = report._sandbox_lines({"no_cgroup": {("ada", "01"), ("ada", "02"), ("bo*b", "01")},
                                   "unsandboxed": set()})
    assert len(lines) == 2 and lines[0].startswith("**Graded without a cgroup**: 3 notebooks of 2 students (ada, ")
    assert "bo\\*b" in lines[0] and "per process" in lines[0]
    assert report._sandbox_lines({"no_cgroup": set(), "unsandboxed": set()}) == []
