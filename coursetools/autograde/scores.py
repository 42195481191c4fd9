"""Scores read back from the gradebook, per student and per notebook."""
from nbgrader.api import Gradebook, MissingEntry

from coursetools import ASSIGNMENT
from coursetools.core.cells import going_further


def gradebook_students(course):
    """Ids of the students in the gradebook (none if there is no gradebook yet)."""
    if not course.db.exists():
        return []
    with Gradebook(f"sqlite:///{course.db}") as gradebook:
        return [student.id for student in gradebook.students]


def notebook_scores(course):
    """{student: {notebook: dict(...)}}, None for a notebook with no gradebook entry.

    Each dict: ``score``/``max_score`` (all points so far), ``code_score``/``max_code_score`` (the
    core's autograded tests), ``further_score``/``max_further_score`` (the tests of the optional
    going-further parts, reported apart, never in the core's code points), ``written_score``/
    ``max_written_score`` (the written answers, graded by hand; a blank one scores 0 when autograded),
    ``written_pending`` (points of written answers not graded yet: no hand-given score and nbgrader
    still wants one; they count 0 in the scores) and
    ``needs_manual`` (nbgrader's flag: something in the notebook waits for the formgrader)."""
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
                pending = sum(grade.max_score for grade in nb.grades if grade.cell_type == "markdown"
                              and grade.needs_manual_grade and grade.manual_score is None)
                further = [grade for grade in nb.grades if going_further(grade.name)]
                further_score = sum(grade.score for grade in further)
                max_further = sum(grade.max_score for grade in further)
                row[name] = dict(score=nb.score, max_score=nb.max_score, code_score=nb.code_score - further_score,
                                 max_code_score=nb.max_code_score - max_further, further_score=further_score,
                                 max_further_score=max_further, written_score=nb.written_score,
                                 max_written_score=nb.max_written_score, written_pending=pending,
                                 needs_manual=bool(nb.needs_manual_grade))
    return table


def totals(row, notebooks):
    """Sums over a student's notebooks: dict(code, max_code, written, max_written, pending, total, max_total,
    further, max_further). The total is the core's: code and written points, without going further."""
    sums = dict(code=0.0, max_code=0.0, written=0.0, max_written=0.0, pending=0.0, further=0.0, max_further=0.0)
    for name in notebooks:
        entry = row.get(name)
        if not entry:
            continue
        sums["code"] += entry["code_score"]
        sums["max_code"] += entry["max_code_score"]
        sums["written"] += entry.get("written_score") or 0.0
        sums["max_written"] += entry.get("max_written_score") or 0.0
        sums["pending"] += entry.get("written_pending") or 0.0
        sums["further"] += entry.get("further_score") or 0.0
        sums["max_further"] += entry.get("max_further_score") or 0.0
    sums["total"] = sums["code"] + sums["written"]
    sums["max_total"] = sums["max_code"] + sums["max_written"]
    return sums


def written_text(sums):
    """The written points as the report shows them: 'not graded yet' until the formgrader has them."""
    if sums["max_written"] and sums["pending"] >= sums["max_written"]:
        return f"not graded yet (of {sums['max_written']:g})"
    text = f"{sums['written']:g}/{sums['max_written']:g}"
    return f"{text} ({sums['pending']:g} not graded yet)" if sums["pending"] else text


def further_text(sums):
    """The going-further points, or '-' where the notebooks handed in have no going-further part."""
    return f"{sums['further']:g}/{sums['max_further']:g}" if sums["max_further"] else "-"


def total_text(sums):
    text = f"{sums['total']:g}/{sums['max_total']:g}"
    return f"{text} so far" if sums["pending"] else text


def format_table(course, table):
    """A plain-text table: one row per student, core code points per notebook, then code, written, total
    and going further."""
    notebooks = course.notebooks()
    width = max([len(s) for s in table] + [7])
    header = f"{'student':<{width}} " + " ".join(f"{n[:2]:>7}" for n in notebooks) + \
        f"  {'code':>9}  {'written':<26} {'total':<14} further"
    lines = [header, "-" * len(header)]
    for student, row in table.items():
        cells = [f"{'-':>7}" if row.get(name) is None else
                 f"{row[name]['code_score']:>3g}/{row[name]['max_code_score']:<3g}" for name in notebooks]
        sums = totals(row, notebooks)
        lines.append(f"{student:<{width}} " + " ".join(cells) + f"  {sums['code']:>4g}/{sums['max_code']:<4g}"
                     f"  {written_text(sums):<26} {total_text(sums):<14} {further_text(sums)}")
    lines.append("Columns: the core's autograded (code) points per notebook; then code, written and total points "
                 "of the core; then the optional going-further parts, apart. Written answers are graded by hand in "
                 "the formgrader; until then they are 'not graded yet' and count 0.")
    return "\n".join(lines)
