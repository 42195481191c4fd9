"""The instructor pipeline end to end: release, autograde, feedback, export, report."""
import csv
import re

from coursetools import pipeline
from coursetools.autograde.scores import format_table
from conftest import REPO


def test_grades_exported_for_every_student(graded_course):
    rows = list(csv.DictReader(open(graded_course.course.root / "grades.csv")))
    assert {r["student_id"] for r in rows} == set(graded_course.specs)
    reference = next(r for r in rows if r["student_id"] == "reference")
    assert float(reference["score"]) > 0


def test_score_table_lists_students_and_notebooks(graded_course):
    table = format_table(graded_course.course, graded_course.scores)
    assert "reference" in table and "blank" in table
    for notebook in graded_course.course.notebooks():
        assert f" {notebook[:2]}" in table.splitlines()[0]


def test_feedback_shows_failures_without_hidden_source(graded_course):
    course = graded_course.course
    hidden = re.compile(r"BEGIN HIDDEN TESTS.*?END HIDDEN TESTS", re.S)
    for notebook in course.notebooks():
        source = (course.source / f"{notebook}.ipynb").read_text()
        secret_lines = {line.strip().strip('",').strip() for m in hidden.finditer(source)
                        for line in m.group(0).split("\\n")}
        secret_lines = {s for s in secret_lines if len(s) >= 25 and "HIDDEN TESTS" not in s}
        for student in ("reference", "blank"):
            html = (course.feedback / student / "session10" / f"{notebook}.html").read_text()
            assert "BEGIN HIDDEN TESTS" not in html
            leaked = [s for s in secret_lines if s in html]
            assert not leaked, f"feedback for {student}/{notebook} shows hidden test code: {leaked[:2]}"
    blank = (course.feedback / "blank" / "session10" / "01_recap_and_motivation.html").read_text()
    assert "hidden tests ran here" in blank and "NameError" in blank


def test_edited_checks_module_is_restored_at_autograde(tmp_path):
    """nbgrader copies the assignment's own files over a submission's, so editing the checks
    package to pass everything gains nothing; a forged convcheck.py beside it is never imported."""
    from coursetools.autograde.submissions import materialize
    from coursetools.tools.trial import copy_course
    course = copy_course(tmp_path)
    pipeline.release(course)
    student = materialize(course, REPO / "submissions" / "blank.toml", "cheater")
    forgery = "def __getattr__(name):\n    return lambda *a, **k: None\n"
    for forged in ("convcheck/__init__.py", "convcheck.py"):
        path = course.submitted / student / "session10" / forged
        path.parent.mkdir(exist_ok=True)
        path.write_text(forgery)
    course.nbgrader("autograde", "session10", "--notebook", "01_recap_and_motivation", quiet=True)
    restored = course.autograded / student / "session10" / "convcheck" / "__init__.py"
    assert restored.read_text() == (course.source / "convcheck" / "__init__.py").read_text()
    from coursetools.autograde.scores import notebook_scores
    assert notebook_scores(course)[student]["01_recap_and_motivation"]["code_score"] == 0


def test_the_sample_class_is_small_and_shows_every_kind_of_student():
    """`make grade` grades SAMPLE_CLASS: existing specs, about eight, the reference, a blank and a partial
    hand-in, typical mistakes and one hostile submission."""
    names = [path.stem for path in pipeline.sample_specs(REPO / "submissions")]
    assert len(names) == len(set(names)) and 6 <= len(names) <= 10
    assert {"reference", "blank", "partial"} <= set(names)
    assert any(n.startswith("hostile_") for n in names) and sum(n.startswith("nb") for n in names) >= 3
    assert len(pipeline.sample_specs(REPO / "submissions", everyone=True)) > len(names)
