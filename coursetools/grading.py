"""nbgrader preprocessors that make autograding and feedback safe for real submissions.

They are switched on in ``nbgrader_config.py``:

* ``ResilientExecute`` replaces nbgrader's ``Execute``. It caps the kernel's
  memory, and when a kernel dies (``os._exit``, a crash) it records the death
  in the cell and marks the cells after it as not run, instead of raising.
  nbgrader would otherwise delete the student's whole autograded folder, losing
  the other notebooks' grades.
* ``HarmlessStderr`` stops stderr text (library warnings) from zeroing a test
  cell: nbgrader counts any stderr output as a failure. Only an error fails a test.
* ``HideHiddenTests`` runs before the feedback HTML is written. It removes the
  hidden-test code and the tracebacks that would quote it, and keeps each
  failure's message.
"""
import re

from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader import utils
from traitlets import Integer

HIDDEN_REGION = re.compile(r"[ \t]*#+ *BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S)
HIDDEN_NOTE = "# (hidden tests ran here; their code is not part of the feedback)\n"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ResilientExecute(Execute):
    """nbgrader's Execute with a memory cap and survival of a dead kernel."""

    memory_limit_mb = Integer(
        4096, help="Cap on the kernel's data segment (RLIMIT_DATA), in MiB; 0 for none."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._kernel_dead = None
        self._limit_applied = False
        return super().preprocess(nb, resources, km)

    def _apply_memory_limit(self, index):
        self._limit_applied = True
        if not self.memory_limit_mb:
            return
        limit = self.memory_limit_mb * 1024 * 1024
        code = ("import resource as _r\n"
                f"_r.setrlimit(_r.RLIMIT_DATA, ({limit}, {limit}))\n"
                "del _r\n")
        probe = NotebookNode(cell_type="code", source=code, metadata={}, outputs=[], execution_count=None)
        self.execute_cell(probe, index, store_history=False)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._kernel_dead:
            cell.outputs = [_error("KernelDied", f"not run: the kernel died in an earlier cell ({self._kernel_dead})")]
            return cell, resources
        if not self._limit_applied:
            self._apply_memory_limit(index)
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError as error:
            self._kernel_dead = str(error) or "DeadKernelError"
            self.log.warning("Kernel died while running cell %s: %s", index, error)
            cell.outputs.append(_error("KernelDied", f"the kernel died while running this cell ({error})"))
            return cell, resources


def _error(name, value):
    return NotebookNode(output_type="error", ename=name, evalue=value, traceback=[f"{name}: {value}"])


class HarmlessStderr(NbGraderPreprocessor):
    """In graded cells, show stderr text as ordinary output so only errors fail a test."""

    def preprocess_cell(self, cell, resources, index):
        if utils.is_grade(cell) and cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
                    output.text = "".join(f"[stderr] {line}\n" for line in output.text.splitlines())
        return cell, resources


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden-test code, and tracebacks that quote it, from the feedback."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            cell.source = HIDDEN_REGION.sub(HIDDEN_NOTE, cell.source)
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {ANSI.sub('', output.evalue)}"]
        return cell, resources
