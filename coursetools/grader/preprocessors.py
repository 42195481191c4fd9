"""nbgrader preprocessors around the execution: sanitizing a submission, scoring after it ran, feedback.

They are switched on in ``nbgrader_config.py`` (docs/grading-guarantees.md says
what each guarantees); ``coursetools.grader.execution.ResilientExecute`` runs the cells:

* ``RepairMetadata`` (first when a submission is sanitized) drops nbgrader
  metadata a student broke or invented (unknown or missing ``grade_id``, wrong
  types) and rewrites the metadata of known cells from the gradebook, so
  nbgrader's own checks cannot fail on it.
* ``RestoreCells`` replaces nbgrader's ``OverwriteCells``: besides restoring the
  source of edited read-only and test cells, it puts back *every* deleted
  read-only or test cell (nbgrader only puts back graded cells, and fails
  when the cell before a deleted one was deleted too).
* ``TamperCheck`` scans the student's code (``coursetools.grader.tamper``) and, on
  tampering found by the scan or the guard, voids the notebook's autograded
  tests: each gets an error output, so it scores 0, and the feedback says why.
* ``HarmlessStderr`` stops stderr text (library warnings) from zeroing a test
  cell: nbgrader counts any stderr output as a failure. Only an error fails a test.
* ``HideHiddenTests`` runs before the feedback HTML is written. It removes the
  hidden-test code and the tracebacks that would quote it, keeps each
  failure's message, and removes from every output any line that quotes a
  hidden test or a solution (a warning printed with the caller's line, a
  stack printed by student code, a file read at grading time).

What happened is recorded in the notebook's metadata (``metadata.coursetools.events``).
"""
import glob
import json
import os
import re

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells
from traitlets import Bool, Integer, Unicode

from coursetools.core.events import event
from coursetools.grader import tamper

METADATA_KEY = "coursetools"   # the notebook metadata where grading records what happened
VOIDED = "GradingVoided"


def failure_output(name, value):
    """An error output: it fails the cell's test, and says why in one line."""
    return NotebookNode(output_type="error", ename=name, evalue=value, traceback=[f"{name}: {value}"])


def add_events(nb, events):
    """Append events (dicts with kind, detail, ...) to the notebook's record."""
    record = nb.metadata.setdefault(METADATA_KEY, {})
    record.setdefault("events", []).extend(events)


def notebook_events(nb):
    return list(nb.get("metadata", {}).get(METADATA_KEY, {}).get("events", []))


def cell_label(cell, index):
    """How events name a cell: its grade id, else its position."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


# ----------------------------------------------------------------------------- sanitizing

def _differs(meta, fresh):
    """Whether submitted nbgrader metadata says something other than the gradebook."""
    if not isinstance(meta, dict):
        return True
    for key in ("grade", "locked", "solution", "schema_version"):
        if meta.get(key, None if key == "schema_version" else False) != fresh[key]:
            return True
    if "points" in fresh:
        try:
            return float(meta.get("points")) != float(fresh["points"])
        except (TypeError, ValueError):
            return True
    return False


class RepairMetadata(NbGraderPreprocessor):
    """Make the nbgrader metadata of a submitted notebook what the gradebook says it is."""

    def preprocess(self, nb, resources):
        notebook_id = resources["nbgrader"]["notebook"]
        assignment_id = resources["nbgrader"]["assignment"]
        with Gradebook(resources["nbgrader"]["db_url"]) as gradebook:
            try:
                source_nb = gradebook.find_notebook(notebook_id, assignment_id)
            except MissingEntry:
                return nb, resources
            source = {c.name: c for c in source_nb.source_cells}
            graded = {c.name: c.max_score for c in source_nb.grade_cells}
            tasks = {c.name: c.max_score for c in source_nb.task_cells}
            solutions = {c.name for c in source_nb.solution_cells}
        repaired = []
        # The grader's own records (events, verdicts, grader notes) are written by grading alone: a handed-in
        # copy of them would reach the report and the formgrader as if the grader had written them.
        forged = [label for label, meta in [("notebook", nb.metadata)] + [
            (cell_label(cell, index), cell.get("metadata", {})) for index, cell in enumerate(nb.cells)]
            if meta.pop(METADATA_KEY, None) is not None]
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta is None:
                continue
            grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
            if not isinstance(grade_id, str) or grade_id not in source:
                if isinstance(meta, dict) and not (meta.get("grade") or meta.get("solution") or meta.get("locked")
                                                   or meta.get("task")) and grade_id is None:
                    continue  # an empty or inert nbgrader entry
                del cell.metadata["nbgrader"]
                repaired.append(f"{cell_label(cell, index)}: unknown nbgrader cell {grade_id!r}, treated as ordinary")
                continue
            fresh = {"grade": grade_id in graded, "grade_id": grade_id, "locked": bool(source[grade_id].locked),
                     "solution": grade_id in solutions, "task": grade_id in tasks, "schema_version": 3,
                     "checksum": source[grade_id].checksum, "cell_type": source[grade_id].cell_type}
            if grade_id in graded or grade_id in tasks:
                fresh["points"] = graded.get(grade_id, tasks.get(grade_id))
            if _differs(meta, fresh):
                repaired.append(f"{grade_id}: nbgrader metadata rewritten from the gradebook")
            cell.metadata["nbgrader"] = fresh
        if repaired:
            self.log.warning("Repaired nbgrader metadata: %s", "; ".join(repaired))
            add_events(nb, [event("cells_restored", "; ".join(repaired))])
        if forged:
            add_events(nb, [event("tampering", "handed in the grader's own records (metadata.coursetools) in "
                                               + ", ".join(forged[:5]) + "; removed before grading")])
        return nb, resources


class RestoreCells(OverwriteCells):
    """nbgrader's OverwriteCells, putting back every deleted read-only or test cell, wherever it was."""

    def add_missing_grade_cells(self, nb, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        source_cells = list(source_nb.source_cells)
        graded = {cell.name: cell for cell in source_nb.grade_cells}
        solutions = {cell.name for cell in source_nb.solution_cells}
        tasks = {cell.name for cell in source_nb.task_cells}
        order = [cell.name for cell in source_cells]

        def present():
            return {cell.metadata.get("nbgrader", {}).get("grade_id"): i for i, cell in enumerate(nb.cells)
                    if cell.metadata.get("nbgrader", {}).get("grade_id")}

        restored = []
        for position, source_cell in enumerate(source_cells):
            name = source_cell.name
            if name in present() or name in tasks or not (name in graded or source_cell.locked):
                continue
            if name in graded:
                cell = self.missing_cell_transform(source_cell, graded[name].max_score, is_solution=name in solutions)
            else:
                cell = self.missing_cell_transform(source_cell, 0)
                meta = cell["metadata"]["nbgrader"]
                meta.update(grade=False, solution=False, task=False, locked=True)
                meta.pop("points", None)
            where = present()
            before = [where[n] for n in order[:position] if n in where]
            index = max(before) + 1 if before else 0
            nb.cells.insert(index, cell)
            restored.append(name)
        if restored:
            self.log.warning("Put back deleted cells: %s", ", ".join(restored))
            add_events(nb, [event("cells_restored", "put back deleted cells " + ", ".join(restored))])
        return nb, resources


# ----------------------------------------------------------------------------- after execution

class TamperCheck(NbGraderPreprocessor):
    """Scan the student's code; on tampering, void the notebook's autograded tests."""

    void_on_tampering = Bool(
        True, help="Give every autograded test of a notebook 0 points when tampering is found in it "
                   "(otherwise tampering is only reported)."
    ).tag(config=True)

    def preprocess(self, nb, resources):
        found = tamper.scan_notebook(nb)
        add_events(nb, [event(f["kind"], f["detail"], cell=f["cell"], line=f["line"], source="source scan")
                        for f in found])
        tampering = [e for e in notebook_events(nb) if e["kind"] == "tampering"]
        if tampering and self.void_on_tampering:
            what = "; ".join(sorted({e["detail"] for e in tampering}))[:500]
            message = (f"this notebook changes the grading itself ({what}). Its autograded tests earn no points; "
                       "your instructor has been told and will look at it.")
            for cell in nb.cells:
                if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
                    cell.outputs.append(failure_output(VOIDED, message))
            nb.metadata[METADATA_KEY]["voided"] = True
        return nb, resources


class HarmlessStderr(NbGraderPreprocessor):
    """In graded cells, show stderr text as ordinary output so only errors fail a test."""

    def preprocess_cell(self, cell, resources, index):
        if utils.is_grade(cell) and cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
                    output.text = "".join(f"[stderr] {line}\n" for line in output.text.splitlines())
        return cell, resources


# ----------------------------------------------------------------------------- feedback

HIDDEN_REGION = re.compile(r"[ \t]*#+ *BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S)
HIDDEN_NOTE = "# (hidden tests ran here; their code is not part of the feedback)\n"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SOLUTION_REGION = re.compile(r"^[ \t]*(?:###|===) ?BEGIN SOLUTION.*?^[ \t]*(?:###|===) ?END SOLUTION[^\n]*$",
                             re.S | re.M)
HIDDEN_TEXT = re.compile(r"BEGIN HIDDEN TESTS[^\n]*\n(.*?)\n[^\n]*END HIDDEN TESTS", re.S)
REDACTED = "[a line of hidden test or solution code was removed here by the grader]"
_SECRETS_CACHE = {}


def _lines(text):
    return {line.strip() for line in text.splitlines() if line.strip()}


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden-test code, tracebacks that quote it, and any output line quoting a hidden test or solution."""

    min_secret_length = Integer(
        12, help="Shortest stripped line of a hidden test or solution that is removed from outputs."
    ).tag(config=True)
    source_directory = Unicode(
        "", help="Folder of the assignment's source notebooks (default: <course root>/source/<assignment>)."
    ).tag(config=True)

    def _secrets(self, nb, resources):
        """Lines of hidden tests and solutions that the student has not got: the text to keep out of outputs."""
        info = resources.get("nbgrader", {})
        secret, public = self._assignment_secrets(info.get("db_url", ""), info.get("assignment", ""))
        secret, visible = set(secret), set(public)
        for cell in nb.cells:
            for match in HIDDEN_TEXT.finditer(cell.source):
                secret |= _lines(match.group(1))
            if tamper.is_student_cell(cell) or cell.cell_type == "markdown":
                visible |= _lines(cell.source)  # the student's own text is theirs to see
            else:
                visible |= _lines(HIDDEN_REGION.sub("", cell.source))
        return {s for s in secret - visible if len(s) >= self.min_secret_length
                and not re.fullmatch(r"[#=]+ ?(BEGIN|END) (SOLUTION|HIDDEN TESTS) ?[#=]*", s)}

    def _assignment_secrets(self, db_url, assignment):
        """(hidden-test and solution lines of the whole assignment, lines of its shipped modules); cached."""
        folder = self.source_directory
        root = self.config.get("CourseDirectory", {}).get("root") if hasattr(self.config, "get") else None
        if not folder and isinstance(root, str) and root:
            folder = os.path.join(root, "source", assignment)
        if not folder and db_url.startswith("sqlite:///"):
            folder = os.path.join(os.path.dirname(db_url[len("sqlite:///"):].split("?")[0]), "source", assignment)
        paths = sorted(glob.glob(os.path.join(folder, "*.ipynb")) + glob.glob(os.path.join(folder, "*.py"))) \
            if folder else []
        key = (db_url, assignment, tuple((p, os.path.getmtime(p)) for p in paths))
        if key in _SECRETS_CACHE:
            return _SECRETS_CACHE[key]
        secret, public = set(), set()
        try:
            with Gradebook(db_url) as gradebook:
                for notebook in gradebook.find_assignment(assignment).notebooks:
                    for source_cell in notebook.source_cells:
                        for match in HIDDEN_TEXT.finditer(source_cell.source or ""):
                            secret |= _lines(match.group(1))
        except Exception as error:  # noqa: BLE001 - the notebook's own hidden tests are still covered
            self.log.warning("Could not read hidden tests from the gradebook: %s", error)
        for path in paths:
            if path.endswith(".py"):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    public |= _lines(handle.read())  # the shipped helper modules are public
                continue
            try:
                source = nbformat.read(path, as_version=4)
            except Exception:  # noqa: BLE001
                continue
            for cell in source.cells:
                for match in SOLUTION_REGION.finditer(cell.source):
                    secret |= _lines(match.group(0))
                for match in HIDDEN_TEXT.finditer(cell.source):
                    secret |= _lines(match.group(1))
        _SECRETS_CACHE[key] = (frozenset(secret), frozenset(public))
        return _SECRETS_CACHE[key]

    def _redact(self, text):
        if not self._pattern or not isinstance(text, str):
            return text, False
        lines, changed = [], False
        for line in text.split("\n"):
            if self._pattern.search(ANSI.sub("", line)):
                lines.append(REDACTED)
                changed = True
            else:
                lines.append(line)
        return "\n".join(lines), changed

    def preprocess(self, nb, resources):
        secret = self._secrets(nb, resources)
        self._pattern = re.compile("|".join(re.escape(s) for s in sorted(secret, key=len, reverse=True))) \
            if secret else None
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        hidden = "BEGIN HIDDEN TESTS" in cell.source
        if hidden:
            cell.source = HIDDEN_REGION.sub(HIDDEN_NOTE, cell.source)
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                evalue, _ = self._redact(ANSI.sub("", str(output.evalue)))
                output.evalue = evalue
                if hidden:
                    output.traceback = [f"{output.ename}: {evalue}"]
                else:
                    output.traceback = [self._redact(line)[0] for line in output.get("traceback", [])]
            elif output.output_type == "stream":
                output.text = self._redact(output.text)[0]
            elif output.output_type in ("display_data", "execute_result"):
                for mime, value in list(output.get("data", {}).items()):
                    if mime.startswith("text/") or mime in ("application/json", "application/javascript"):
                        text = value if isinstance(value, str) else json.dumps(value)
                        redacted, changed = self._redact(text)
                        if changed:
                            output.data[mime] = redacted if isinstance(value, str) else REDACTED
        return cell, resources
