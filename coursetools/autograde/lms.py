"""Grades in the CSV that an LMS gradebook imports: Canvas and Moodle.

What a grade means: the points a submission earned for the core of the assignment (every notebook,
autograded tests and hand-graded written answers), out of the core's total. The optional going-further
parts (grade ids with ``_further_``) are a column of their own, ``<assignment> going further``, so that
the core alone earns full marks and an instructor decides what the extra column counts for (it is
never in the core's column; no parentheses in its name, which Canvas would read as an id). A
submission whose written answers are not all graded yet gets an empty cell in its core column (both
systems then leave that grade alone), so a provisional total never reaches the LMS; ``pending``
lists them. A student on the roster who handed nothing in gets 0.

Canvas ("Import scores in the Gradebook", Canvas Instructor Guide): the columns ``Student``,
``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per assignment named
``<name>`` (a new assignment) or ``<name> (<canvas id>)``; the second row, ``Points Possible``,
gives each assignment's maximum. ``ID`` is the Canvas user id (the roster's ``lms_user_id``),
``SIS Login ID`` the login (the roster's ``id``).

Moodle ("Grade import", CSV file): one column that identifies the user, mapped at import
("Map from" ``Email address``, "Map to" ``Email address``; ``Username`` and ``ID number`` also
work), and one column per grade item, mapped to an existing item or a new one. Moodle's own
export names the columns ``First name``, ``Last name``, ``ID number``, ``Email address`` and
``Assignment: <name> (Real)``; the same names are used here.
"""
import csv
import dataclasses

from coursetools.core.cells import going_further

FORMATS = ("nbgrader", "canvas", "moodle")


@dataclasses.dataclass
class Row:
    """One student's grades: {assignment: points, or None while written answers wait}."""
    id: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str
    points: dict


def gradebook_rows(db_url):
    """(rows, {column: max points}, pending [(student, assignment)]) from the gradebook: one column per
    assignment (its core), and one per assignment with going-further parts."""
    from nbgrader.api import Gradebook, MissingEntry
    rows, maxima, pending = [], {}, []
    with Gradebook(db_url) as gradebook:
        assignments = sorted(gradebook.assignments, key=lambda a: (a.duedate is None, a.duedate, a.name))
        further_columns = {}
        for assignment in assignments:
            further = sum(cell.max_score for notebook in assignment.notebooks for cell in notebook.grade_cells
                          if going_further(cell.name))
            maxima[assignment.name] = assignment.max_score - further
            if further:
                further_columns[assignment.name] = further_column(assignment.name)
                maxima[further_columns[assignment.name]] = further
        for student in sorted(gradebook.students, key=lambda s: (s.last_name or "", s.first_name or "", s.id)):
            points = {}
            for assignment in assignments:
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    points[assignment.name] = 0.0
                    if assignment.name in further_columns:
                        points[further_columns[assignment.name]] = 0.0
                    continue
                further = sum(grade.score for notebook in submission.notebooks for grade in notebook.grades
                              if going_further(grade.name))
                if submission.needs_manual_grade:
                    points[assignment.name] = None
                    pending.append((student.id, assignment.name))
                else:
                    points[assignment.name] = submission.score - further
                if assignment.name in further_columns:
                    points[further_columns[assignment.name]] = further
            rows.append(Row(student.id, student.first_name or "", student.last_name or "", student.email or "",
                            student.lms_user_id or "", points))
    return rows, maxima, pending


def further_column(assignment):
    """The name of an assignment's going-further column."""
    return f"{assignment} going further"


def _number(value):
    """Points as the LMS reads them: up to two decimals, no trailing zeros; None is empty."""
    if value is None:
        return ""
    return f"{round(value, 2):.2f}".rstrip("0").rstrip(".")


def canvas_table(rows, maxima, ids=None):
    """Header, Points Possible row and one row per student; ``ids`` maps an assignment to its Canvas id."""
    ids = ids or {}
    titles = [f"{name} ({ids[name]})" if name in ids else name for name in maxima]
    table = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *titles],
             ["Points Possible", "", "", "", "", *(_number(m) for m in maxima.values())]]
    for row in rows:
        name = f"{row.last_name}, {row.first_name}" if row.last_name else row.first_name or row.id
        table.append([name, row.lms_user_id, "", row.id, "", *(_number(row.points[a]) for a in maxima)])
    return table


def moodle_table(rows, maxima):
    """Header and one row per student, identified by email address (and username)."""
    table = [["First name", "Last name", "Username", "Email address",
              *(f"Assignment: {name} (Real)" for name in maxima)]]
    for row in rows:
        table.append([row.first_name, row.last_name, row.id, row.email, *(_number(row.points[a]) for a in maxima)])
    return table


def write(path, table):
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\n").writerows(table)


def export(db_url, path, fmt):
    """Write the ``fmt`` CSV to ``path``; returns the pending (student, assignment) pairs."""
    rows, maxima, pending = gradebook_rows(db_url)
    missing = [row.id for row in rows if fmt == "moodle" and not row.email]
    if missing:
        raise ValueError(f"Moodle identifies students by email address; the roster has none for {', '.join(missing)}")
    write(path, canvas_table(rows, maxima) if fmt == "canvas" else moodle_table(rows, maxima))
    return pending
