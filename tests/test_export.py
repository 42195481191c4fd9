"""`coursetools export --format canvas|moodle`: the CSV each gradebook import documents (fast).

The expected files below are written by hand from the systems' documentation, not from our code:
Canvas, "How do I import grades in the Gradebook?" (columns Student, ID, SIS User ID, SIS Login ID,
Section, then `<assignment> (<id>)` or a bare name for a new assignment, and a `Points Possible`
second row); Moodle, "Grade import" (a user-identifying column mapped at import, e.g. Email address,
and one numeric column per grade item; names as in Moodle's own CSV export).
"""
import csv
import os
import sys

import pytest

from coursetools.autograde import lms
from coursetools.cli import main

# Both import a column they do not know as a new assignment (grade item): the going-further points
# arrive in one of their own, beside the core's.
CANVAS_SAMPLE = """\
Student,ID,SIS User ID,SIS Login ID,Section,session10,session10 going further
Points Possible,,,,,5,1
"Lovelace, Ada",1001,,ada,,4,1
"Noether, Emmy",1002,,emmy,,,0
"Turing, Alan",,,alan,,0,0
"""

MOODLE_SAMPLE = """\
First name,Last name,Username,Email address,Assignment: session10 (Real),Assignment: session10 going further (Real)
Ada,Lovelace,ada,ada@example.edu,4,1
Emmy,Noether,emmy,emmy@example.edu,,0
Alan,Turing,alan,alan@example.edu,0,0
"""


@pytest.fixture(scope="module", autouse=True)
def alembic_on_path():
    """A new gradebook runs the environment's `alembic` command."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        yield


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A gradebook with one assignment of 5 core points, a 2-point test and a 3-point written answer, and a
    1-point going-further test. Ada is fully graded (2 + 2, and 1 going further), Emmy's written answer
    waits for a grader (0 going further), Alan handed nothing in."""
    from nbgrader.api import Gradebook
    tmp_path = tmp_path_factory.mktemp("lms")
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("session10")
        gb.add_notebook("01_recap", "session10")
        gb.add_grade_cell("test_count", "01_recap", "session10", max_score=2, cell_type="code")
        gb.add_grade_cell("written", "01_recap", "session10", max_score=3, cell_type="markdown")
        gb.add_solution_cell("written", "01_recap", "session10")
        gb.add_grade_cell("nb01_further_test", "01_recap", "session10", max_score=1, cell_type="code")
        for sid, first, last, lms_id in [("ada", "Ada", "Lovelace", "1001"), ("emmy", "Emmy", "Noether", "1002"),
                                         ("alan", "Alan", "Turing", None)]:
            gb.add_student(sid, first_name=first, last_name=last, email=f"{sid}@example.edu", lms_user_id=lms_id)
        for sid, manual in [("ada", 2), ("emmy", None)]:
            gb.add_submission("session10", sid)
            auto = gb.find_grade("test_count", "01_recap", "session10", sid)
            auto.auto_score, auto.needs_manual_grade = 2, False
            written = gb.find_grade("written", "01_recap", "session10", sid)
            written.manual_score = manual
            written.needs_manual_grade = manual is None
            further = gb.find_grade("nb01_further_test", "01_recap", "session10", sid)
            further.auto_score, further.needs_manual_grade = (1 if sid == "ada" else 0), False
        gb.db.commit()
    return tmp_path, url


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_matches_the_documented_import(course):
    root, url = course
    pending = lms.export(url, root / "canvas.csv", "canvas")
    assert read(root / "canvas.csv") == list(csv.reader(CANVAS_SAMPLE.splitlines()))
    assert pending == [("emmy", "session10")]


def test_moodle_matches_the_documented_import(course):
    root, url = course
    lms.export(url, root / "moodle.csv", "moodle")
    assert read(root / "moodle.csv") == list(csv.reader(MOODLE_SAMPLE.splitlines()))


def test_canvas_header_carries_the_canvas_assignment_id():
    rows = [lms.Row("ada", "Ada", "Lovelace", "a@x", "7", {"session10": 4.5})]
    table = lms.canvas_table(rows, {"session10": 5.0}, ids={"session10": "123"})
    assert table[0][5] == "session10 (123)" and table[1][5] == "5" and table[2][5] == "4.5"


def test_moodle_refuses_a_student_without_email(tmp_path):
    from nbgrader.api import Gradebook
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("session10")
        gb.add_student("nomail")
    with pytest.raises(ValueError, match="nomail"):
        lms.export(url, tmp_path / "m.csv", "moodle")


def test_cli_writes_the_format_and_keeps_the_default(course, capsys):
    root, _ = course
    main(["--root", str(root), "export", "--format", "canvas", "--to", str(root / "out.csv")])
    assert read(root / "out.csv")[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert "emmy/session10: written answers not graded yet" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["export", "--format", "blackboard"])
