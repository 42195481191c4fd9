"""Mark schemes for graders in the formgrader, and never in a student's feedback.

A written answer (a markdown ``solution`` cell with ``grade`` true) holds, in ``source/``, the
model answer and its ``**Mark scheme (N points).**`` between ``=== BEGIN SOLUTION ===`` and
``=== END SOLUTION ===``; the release shows ``YOUR ANSWER HERE``, and nbgrader keeps no copy
of the scheme that the formgrader could show (its gradebook stores solution cells as released).

* :class:`AddMarkSchemes` (the last of ``Autograde.autograde_preprocessors``) puts, after each
  written answer of the autograded notebook, a markdown cell for graders with that answer's
  model answer and mark scheme, read from the source notebook. The formgrader renders the
  autograded notebook, so the grader reads the scheme right under the student's answer.
  The cell is marked ``metadata.coursetools.grader_note`` (the answer's grade id); it has no
  nbgrader metadata, so it is neither graded nor checked.
* :class:`RemoveGraderNotes` (the first of ``GenerateFeedback.preprocessors``, before
  ``HideHiddenTests``, which counts markdown text as the student's own) removes those cells
  again, so the feedback HTML never shows a model answer or a mark scheme.

nbgrader's own mark schemes (``BEGIN MARK SCHEME`` in *task* cells) do not fit: they need a
task cell beside each answer, and nbgrader leaves them in the feedback too.
"""
import os
import re

import nbformat
from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor
from traitlets import Unicode

METADATA_KEY = "coursetools"
NOTE_KEY = "grader_note"
HEADING = "For graders only"  # the first words of every grader note; the feedback never has them
SOLUTION = re.compile(r"^[^\n]*BEGIN SOLUTION[^\n]*\n(.*?)\n[^\n]*END SOLUTION[^\n]*$", re.S | re.M)


def is_written_answer(cell):
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "markdown" and meta.get("solution") and meta.get("grade")


def is_grader_note(cell):
    meta = cell.get("metadata", {}).get(METADATA_KEY)
    if isinstance(meta, dict) and NOTE_KEY in meta:
        return True
    return (cell.get("cell_type") == "markdown" and not cell.get("metadata", {}).get("nbgrader")
            and cell.get("source", "").lstrip("> *").startswith(HEADING))


def model_answers(path):
    """{grade_id: (points, text between the solution delimiters)} of a source notebook's written answers."""
    nb = nbformat.read(path, as_version=4)
    answers = {}
    for cell in nb.cells:
        if is_written_answer(cell):
            meta = cell.metadata.nbgrader
            found = SOLUTION.search(cell.source)
            answers[meta["grade_id"]] = (meta.get("points"), (found.group(1) if found else cell.source).strip())
    return answers


def grader_note(grade_id, points, text):
    """The markdown cell a grader sees under the answer ``grade_id``."""
    points = f" ({points:g} points)" if isinstance(points, (int, float)) else ""
    quoted = "\n".join("> " + line if line.strip() else ">" for line in text.splitlines())
    cell = new_markdown_cell(
        f"**{HEADING}: model answer and mark scheme for `{grade_id}`{points}.** "
        f"Not part of the student's feedback.\n\n{quoted}")
    cell.metadata[METADATA_KEY] = {NOTE_KEY: grade_id}
    return cell


class AddMarkSchemes(NbGraderPreprocessor):
    """Autograde: put each written answer's model answer and mark scheme under it, for the formgrader."""

    source_directory = Unicode(
        "", help="Folder of the assignment's source notebooks (default: <course root>/source/<assignment>)."
    ).tag(config=True)

    def _source_notebook(self, resources):
        info = resources.get("nbgrader", {})
        folder = self.source_directory
        if not folder:
            root = self.config.get("CourseDirectory", {}).get("root") if hasattr(self.config, "get") else None
            if not isinstance(root, str) or not root:
                root = os.getcwd()
            folder = os.path.join(root, "source", info.get("assignment", ""))
        return os.path.join(folder, f"{info.get('notebook', '')}.ipynb")

    def preprocess(self, nb, resources):
        path = self._source_notebook(resources)
        try:
            answers = model_answers(path)
        except (OSError, ValueError) as error:
            self.log.warning("no mark schemes for the formgrader: cannot read %s (%s)", path, error)
            answers = {}
        cells = []
        for cell in nb.cells:
            if is_grader_note(cell):
                continue  # from an earlier run, or forged: made afresh below
            cells.append(cell)
            if is_written_answer(cell):
                grade_id = cell.metadata.nbgrader.get("grade_id")
                if grade_id in answers:
                    cells.append(grader_note(grade_id, *answers[grade_id]))
        nb.cells = cells
        return nb, resources


class RemoveGraderNotes(NbGraderPreprocessor):
    """Feedback: remove the graders' notes (model answers and mark schemes) from the notebook."""

    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if not is_grader_note(cell)]
        return nb, resources


NOT_GRADED_YET = ("*Not graded yet: written answers are marked by hand, and the 0 shown for this one "
                  "stands in until it is.*")


def not_graded_yet_total(points):
    return (f"*Written answers worth {points:g} point{'' if points == 1 else 's'} are not graded yet: the score "
            f"at the top counts them as 0 until they are marked by hand.*")


class GetGradesMarkingPending(GetGrades):
    """Feedback: the grades, and under each written answer that nobody has marked yet a line that says
    so (nbgrader's page would show only its score, 0, as if the answer had earned nothing); the first
    cell then says how many points the page's total leaves out."""

    def preprocess(self, nb, resources):
        self.pending_points = 0.0
        nb, resources = super().preprocess(nb, resources)
        if self.pending_points:
            nb.cells.insert(0, new_markdown_cell(not_graded_yet_total(self.pending_points)))
        return nb, resources

    def _get_score(self, cell, resources):
        super()._get_score(cell, resources)
        if cell.cell_type != "markdown":   # written answers only: no second lookup for code cells
            return
        grade = self.gradebook.find_grade(cell.metadata.nbgrader["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        if grade.manual_score is None and grade.auto_score is None:
            cell.source = cell.source.rstrip() + "\n\n" + NOT_GRADED_YET
            self.pending_points += grade.max_score or 0.0
