"""Scores read back from the gradebook, per student and per notebook."""
from nbgrader.api import Gradebook, MissingEntry

from coursetools import ASSIGNMENT


def gradebook_students(course):
    """Ids of the students in the gradebook (none if there is no gradebook yet)."""
    if not course.db.exists():
        return []
    with Gradebook(f"sqlite:///{course.db}") as gradebook:
        return [student.id for student in gradebook.students]


def notebook_scores(course):
    """{student: {notebook: dict(score, max_score, code_score, max_code_score, needs_manual)}}"""
    table = {}
    with Gradebook(f"sqlite:///{course.db}") as gradebook:
        for student in course.students():
            row = table[student] = {}
            for name in course.notebooks():
                try:
                    nb = gradebook.find_submission_notebook(name, ASSIGNMENT, student)
                except MissingEntry:
                    row[name] = None
                    continue
                row[name] = dict(score=nb.score, max_score=nb.max_score, code_score=nb.code_score,
                                 max_code_score=nb.max_code_score, needs_manual=bool(nb.needs_manual_grade))
    return table


def format_table(course, table):
    """A plain-text table: one row per student, one column per notebook, code points."""
    notebooks = course.notebooks()
    width = max([len(s) for s in table] + [7])
    header = f"{'student':<{width}} " + " ".join(f"{n[:2]:>7}" for n in notebooks) + "    total"
    lines = [header, "-" * len(header)]
    for student, row in table.items():
        cells, total, total_max = [], 0.0, 0.0
        for name in notebooks:
            entry = row.get(name)
            if entry is None:
                cells.append(f"{'-':>7}")
                continue
            cells.append(f"{entry['code_score']:>3g}/{entry['max_code_score']:<3g}")
            total += entry["code_score"]
            total_max += entry["max_code_score"]
        lines.append(f"{student:<{width}} " + " ".join(cells) + f"  {total:g}/{total_max:g}")
    lines.append("Columns: autograded (code) points per notebook. Written answers are graded by hand in the formgrader.")
    return "\n".join(lines)
