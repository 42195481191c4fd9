"""nbgrader preprocessors that make autograding and feedback safe for real submissions.

They are switched on in ``nbgrader_config.py`` (docs/grading-guarantees.md says
what each guarantees and which limits are configured):

* ``RepairMetadata`` (first when a submission is sanitized) drops nbgrader
  metadata a student broke or invented (unknown or missing ``grade_id``, wrong
  types) and rewrites the metadata of known cells from the gradebook, so
  nbgrader's own checks cannot fail on it.
* ``RestoreCells`` replaces nbgrader's ``OverwriteCells``: besides restoring the
  source of edited read-only and test cells, it puts back *every* deleted
  read-only or test cell (nbgrader only puts back graded cells, and fails
  when the cell before a deleted one was deleted too).
* ``ResilientExecute`` replaces nbgrader's ``Execute``. It caps the kernel's
  memory (RLIMIT_DATA, set from outside before any cell runs), gives the whole
  notebook a wall-clock limit as well as each cell, cuts runaway output while
  it arrives, and survives a dead or unresponsive kernel: the cells after it are
  marked as not run instead of failing the notebook (nbgrader would delete the
  student's whole autograded folder). It installs the runtime tamper guard
  (``coursetools.grader.tamper``) and asks it after every code cell. What happened
  is recorded in the notebook's metadata (``metadata.coursetools.events``).
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
"""
import ast
import glob
import json
import math
import os
import re
import secrets
import time
from queue import Empty

import nbformat
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Bool, Integer, Unicode

from coursetools.grader import judge, sandbox, tamper

HIDDEN_REGION = re.compile(r"[ \t]*#+ *BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S)
HIDDEN_NOTE = "# (hidden tests ran here; their code is not part of the feedback)\n"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
METADATA_KEY = "coursetools"
VOIDED = "GradingVoided"
MEMORY_ERRORS = ("MemoryError", "OutOfMemoryError")
MEMORY_TEXT = ("can't allocate memory", "cannot allocate memory", "DefaultCPUAllocator")


def _error(name, value):
    return NotebookNode(output_type="error", ename=name, evalue=value, traceback=[f"{name}: {value}"])


def _stream(text):
    return NotebookNode(output_type="stream", name="stdout", text=text)


def add_events(nb, events):
    """Append events (dicts with kind, detail, ...) to the notebook's record."""
    record = nb.metadata.setdefault(METADATA_KEY, {})
    record.setdefault("events", []).extend(events)


def notebook_events(nb):
    return list(nb.get("metadata", {}).get(METADATA_KEY, {}).get("events", []))


def _where(cell, index):
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
                repaired.append(f"{_where(cell, index)}: unknown nbgrader cell {grade_id!r}, treated as ordinary")
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
            add_events(nb, [{"kind": "cells_restored", "detail": "; ".join(repaired)}])
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
            add_events(nb, [{"kind": "cells_restored", "detail": "put back deleted cells " + ", ".join(restored)}])
        return nb, resources


# ----------------------------------------------------------------------------- execution

class ResilientExecute(Execute):
    """nbgrader's Execute with limits on memory, time and output, survival of a dead kernel, and a tamper guard."""

    memory_limit_mb = Integer(
        4096, help="Cap on the kernel's data segment (RLIMIT_DATA), in MiB; 0 for none."
    ).tag(config=True)
    notebook_timeout = Integer(
        600, help="Wall-clock limit for all the cells of one notebook, in seconds; 0 for none. "
                  "Cells after the limit are not run and score 0."
    ).tag(config=True)
    max_text_chars = Integer(
        100_000, help="Text output kept per cell while it runs (stream and text/* outputs); 0 for no limit."
    ).tag(config=True)
    max_output_bytes = Integer(
        5_000_000, help="All output data kept per cell while it runs (images included); 0 for no limit."
    ).tag(config=True)
    tamper_guard = Bool(
        True, help="Install the runtime tamper guard (coursetools.grader.tamper) and ask it after every code cell."
    ).tag(config=True)
    guard_timeout = Integer(30, help="Seconds to wait for the tamper guard's answer.").tag(config=True)
    sandbox = Bool(
        True, help="Run each notebook's kernel in its own bubblewrap sandbox (coursetools.grader.sandbox). "
                   "False only with --no-sandbox: the student's code then runs with the grader's file access."
    ).tag(config=True)
    max_processes = Integer(
        256, help="Processes and threads the sandboxed kernel may have at once (RLIMIT_NPROC); 0 for no limit."
    ).tag(config=True)
    max_file_mb = Integer(512, help="Largest file the sandboxed kernel may write, in MiB; 0 for no limit.").tag(
        config=True)
    scratch_mb = Integer(512, help="Size of the sandbox's own /tmp and of its HOME, in MiB each.").tag(config=True)
    judge_tests = Bool(
        True, help="Run graded test cells in the grader (coursetools.grader.judge), calling the student's code in the "
                   "kernel only to observe it; False runs them in the kernel as plain nbgrader does."
    ).tag(config=True)
    interrupt_grace = Integer(10, help="Seconds a student's call may take to stop once interrupted.").tag(config=True)

    def create_kernel_manager(self):
        """A sandboxed kernel manager that sees a fresh copy of this student's submitted folder."""
        if not self.sandbox:
            return super().create_kernel_manager()
        self.kernel_manager_class = sandbox.SandboxedKernelManager
        km = super().create_kernel_manager()
        info = self._resources.get("nbgrader", {})
        from nbgrader.coursedir import CourseDirectory
        coursedir = CourseDirectory(config=self.config)
        if info.get("student") and info.get("assignment"):
            km.submitted = coursedir.format_path(coursedir.submitted_directory, info["student"], info["assignment"])
            km.source = coursedir.format_path(coursedir.source_directory, ".", info["assignment"])
        km.course_root = coursedir.root
        km.memory_mb, km.max_processes = self.memory_limit_mb, self.max_processes
        km.max_file_mb, km.tmp_mb = self.max_file_mb, self.scratch_mb
        self._sandbox_km = km
        return km

    def preprocess(self, nb, resources=None, km=None):
        self._resources = resources or {}
        self._sandbox_km = None
        self._nb = nb
        self._judge = None
        self._agent = "_coursetools_agent_" + secrets.token_hex(6)
        self._kernel_dead = None
        self._started = False
        self._events = []
        self._guard_findings = set()
        self._bound = {}
        self._cell_timeout = self.timeout
        self._deadline = None  # the notebook's clock starts at its first cell, once the kernel is up
        self._token = "_coursetools_guard_" + secrets.token_hex(8)
        self._guard_ok = False
        self._piggyback = None
        self._piggy_result = None
        self._output_used = None
        try:
            nb, resources = super().preprocess(nb, resources, km)
        finally:
            self.timeout = self._cell_timeout
        left = getattr(self._sandbox_km, "leftover", ())
        if left:
            self._event("processes_left", f"{len(left)} processes of the sandbox outlived the kernel; the grader "
                                          "killed them")
        add_events(nb, self._events)
        nb.metadata.setdefault(METADATA_KEY, {})["sandbox"] = "bubblewrap" if self.sandbox else "off"
        return nb, resources

    # --- kernel set-up: limits and guard, before the first cell

    def _kernel_pid(self):
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    def _start(self, index):
        self._started = True
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
        if self.memory_limit_mb and not self.sandbox:  # the sandbox sets the cap inside, before the kernel starts
            limit = self.memory_limit_mb * 1024 * 1024
            pid = self._kernel_pid()
            try:
                import resource
                _, hard = resource.prlimit(pid, resource.RLIMIT_DATA)
                if hard != resource.RLIM_INFINITY:
                    limit = min(limit, hard)  # a process may lower its hard limit, not raise it
                resource.prlimit(pid, resource.RLIMIT_DATA, (limit, limit))
            except (ImportError, AttributeError, OSError, TypeError, ValueError) as error:
                self.log.warning("Could not cap the kernel's memory from outside (%s); capping it from inside", error)
                self._silent("import resource as _r\n"
                             f"_r.setrlimit(_r.RLIMIT_DATA, ({limit}, {limit}))\ndel _r\n")
        if self.judge_tests:
            self._judge = self._make_judge()
        if self.tamper_guard:
            reply = self._silent(tamper.guard_install_code(self._token))
            self._guard_ok = bool(reply) and reply["content"].get("status") == "ok"
            if not self._guard_ok:
                self.log.warning("The tamper guard could not be installed: %s", reply and reply["content"])
            else:  # ask the guard in each cell's own execute request: no extra round trip to the kernel
                original = self.kc.execute

                def execute(code, *args, **kwargs):
                    if self._piggyback and not kwargs.get("silent"):
                        expressions = dict(kwargs.get("user_expressions") or {})
                        expressions[self._token] = self._piggyback
                        kwargs["user_expressions"] = expressions
                    return original(code, *args, **kwargs)

                self.kc.execute = execute

    def _make_judge(self):
        """The judge of this notebook's test cells, with the agent installed in the kernel."""
        reply = self._silent(judge.install_code(self._agent))
        if not reply or reply["content"].get("status") != "ok":
            self.log.warning("The grader's agent could not be installed: %s", reply and reply["content"])
        info = self._resources.get("nbgrader", {})
        from nbgrader.coursedir import CourseDirectory
        coursedir = CourseDirectory(config=self.config)
        source = coursedir.format_path(coursedir.source_directory, ".", info.get("assignment", ""))
        student = [c.source for c in self._nb.cells if c.cell_type == "code" and tamper.is_student_cell(c)]
        instructor = [c.source for c in self._nb.cells if c.cell_type == "code" and not tamper.is_student_cell(c)]
        seed = judge.grading_seed(judge.course_secret(coursedir.root), info.get("student", ""),
                                  info.get("notebook", ""))
        return judge.Judge(self._rpc, source, instructor, student, seed_material=seed)

    def _rpc(self, request):
        """One request to the kernel's agent, within the judged cell's time; its answer as a dict."""
        if self._judge_interrupted:
            raise judge.TestDidNotRun("the test ran out of time")
        msg_id = self.kc.execute("", silent=True, store_history=False, allow_stdin=False,
                                 user_expressions={"r": judge.request_expression(self._agent, request)})
        try:
            reply = run_sync(self._async_reply)(msg_id, max(0.1, self._judge_deadline - time.monotonic()))
            if reply is None:  # past the time limit: interrupt the student's code and take its answer
                self._judge_interrupted = True
                run_sync(self.km.interrupt_kernel)()
                reply = run_sync(self._async_reply)(msg_id, self.interrupt_grace)
                if reply is None:
                    raise judge.KernelLost(CellTimeoutError("the student's code did not stop when interrupted"))
        except DeadKernelError as error:
            raise judge.KernelLost(error) from None
        result = reply["content"].get("user_expressions", {}).get("r", {})
        if result.get("status") != "ok":
            raise judge.TestDidNotRun(f"the grader's agent in the kernel failed ({result.get('ename')}: "
                                      f"{str(result.get('evalue'))[:200]})")
        try:
            return json.loads(ast.literal_eval(result["data"]["text/plain"]))
        except (KeyError, TypeError, ValueError, SyntaxError) as error:
            raise judge.TestDidNotRun(f"the kernel's answer was not understood ({type(error).__name__})") from None

    def _kernel_lost(self, error, cell, index, timeout, when):
        """The kernel died, or was interrupted but did not stop (it catches KeyboardInterrupt, or hangs in
        C code) and is shut down: this cell fails, the cells after it are not run."""
        if isinstance(error, DeadKernelError):
            self._stop(f"the kernel died in an earlier cell ({error or 'DeadKernelError'})")
            self.log.warning("Kernel died in cell %s: %s", index, error)
            cell.outputs.append(_error("KernelDied", f"the kernel died {when} ({error})"))
            self._event("kernel_died", "the kernel died (os._exit, a crash, or killed for memory)", cell, index)
            return
        self._kill()
        why = "the kernel did not stop when interrupted after the time limit, and was shut down"
        self._stop(why + " in an earlier cell")
        cell.outputs.append(_error("CellTimeoutError", f"{why} ({error})"))
        self._event("timeout", why, cell, index, seconds=timeout)

    def _judge_cell(self, cell, index, timeout):
        """Decide a graded test cell in the grader (coursetools.grader.judge); the kernel only answers requests."""
        self._judge_deadline = time.monotonic() + (timeout or 24 * 3600)
        self._judge_interrupted = False
        cell.outputs = []
        try:
            try:
                printed, error = self._judge.run(cell.source, _where(cell, index))
            except judge.KernelLost as lost:
                raise lost.cause from None
        except (DeadKernelError, CellTimeoutError) as error:
            self._kernel_lost(error, cell, index, timeout, "while this test called the student's code")
            return cell
        if printed:
            cell.outputs.append(_stream(printed))
        if error is not None and self._judge_interrupted:  # the grader stopped the student's code at the limit
            cell.outputs.append(_error("CellTimeoutError", f"the student's code ran over the {timeout} s limit "
                                                           "and was interrupted"))
            self._event("timeout", f"the cell ran over the {timeout} s limit and was interrupted", cell, index,
                        seconds=timeout)
        elif error is not None:
            cell.outputs.append(judge.error_output(error))
        return cell

    async def _async_reply(self, msg_id, timeout):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(remaining, 1.0)))
            except Empty:
                if not await ensure_async(self.kc.is_alive()):
                    raise DeadKernelError("Kernel died") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def _silent(self, code, user_expressions=None, timeout=None):
        """Run grader code in the kernel without touching the notebook; return the execute reply or None."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=user_expressions or {},
                                 allow_stdin=False)
        return run_sync(self._async_reply)(msg_id, timeout or self.guard_timeout)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        reply = kwargs.get("execute_reply") or {}
        self._piggy_result = reply.get("content", {}).get("user_expressions", {}).get(self._token)

    def _ask_guard(self, cell, index, result=None):
        """Record the guard's findings: from the cell's own reply, or from a separate silent request."""
        if not result or result.get("status") != "ok":
            try:  # the cell failed (no user expressions then), or its reply was made up after a timeout
                reply = self._silent("", {"r": tamper.guard_call(self._token, tamper.alias_triples(self._bound))})
            except DeadKernelError:
                return
            if reply is None:
                self._event("suspicious", "the tamper check got no answer from the kernel (busy in the background?)",
                            cell, index)
                return
            result = reply["content"].get("user_expressions", {}).get("r", {})
        if result.get("status") != "ok":
            found = [f"the grader's integrity check was removed or broken ({result.get('ename')})"]
        else:
            try:
                found = ast.literal_eval(result["data"]["text/plain"])
            except Exception:  # noqa: BLE001 - a forged answer is itself a finding
                found = [f"the integrity check's answer was forged: {str(result.get('data'))[:100]}"]
            if not isinstance(found, list):
                found = [f"the integrity check's answer was forged: {found!r:.100}"]
        for finding in found:
            if finding not in self._guard_findings:
                self._guard_findings.add(finding)
                self._event("tampering", str(finding), cell, index, source="runtime guard")

    # --- events

    def _event(self, kind, detail, cell=None, index=None, **extra):
        record = {"kind": kind, "detail": detail}
        if cell is not None:
            record["cell"] = _where(cell, index)
        record.update(extra)
        self._events.append(record)

    def _stop(self, why):
        self._kernel_dead = why

    def _kill(self):
        try:
            run_sync(self.km._async_kill_kernel)()
        except Exception as error:  # noqa: BLE001 - best effort; the kernel is abandoned either way
            self.log.warning("Could not kill the kernel: %s", error)

    # --- output limits, applied as outputs arrive

    def output(self, outs, msg, display_id, cell_index):
        used = self._output_used
        msg_type = msg["msg_type"]
        if used is not None and msg_type in ("stream", "display_data", "execute_result", "update_display_data"):
            content = msg.get("content", {})
            if msg_type == "stream":
                text, total = len(content.get("text", "")), len(content.get("text", ""))
            else:
                data = content.get("data", {})
                text = sum(len(v) for k, v in data.items() if k.startswith("text/") and isinstance(v, str))
                total = sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values())
            over_text = self.max_text_chars and used["text"] + text > self.max_text_chars
            over_bytes = self.max_output_bytes and used["bytes"] + total > self.max_output_bytes
            if over_text or over_bytes:
                if not used["cut"]:
                    used["cut"] = True
                    limit = (f"{self.max_text_chars} characters of text" if over_text
                             else f"{self.max_output_bytes} bytes")
                    outs.append(_stream(f"\n... output cut by the grader: this cell printed more than {limit} ...\n"))
                return None
            used["text"] += text
            used["bytes"] += total
        return super().output(outs, msg, display_id, cell_index)

    # --- cells

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._kernel_dead:
            cell.outputs = [_error("NotRun", f"not run: {self._kernel_dead}")]
            return cell, resources
        if self._deadline is not None and self._deadline - time.monotonic() <= 0:
            self._stop(f"the notebook reached its time limit of {self.notebook_timeout} s")
            self._event("notebook_timeout", f"the notebook reached its time limit of {self.notebook_timeout} s; "
                                            "this cell and the ones after it were not run", cell, index)
            cell.outputs = [_error("NotRun", f"not run: {self._kernel_dead}")]
            return cell, resources
        if not self._started:
            try:
                self._start(index)
            except DeadKernelError as error:
                self._stop(f"the kernel died before the first cell ({error})")
                self._event("kernel_died", self._kernel_dead, cell, index)
                cell.outputs = [_error("KernelDied", self._kernel_dead)]
                return cell, resources
        timeout = self._cell_timeout if self._cell_timeout and self._cell_timeout > 0 else None
        by_notebook = False
        if self._deadline is not None:
            remaining = max(1, math.ceil(self._deadline - time.monotonic()))
            if timeout is None or remaining < timeout:
                timeout, by_notebook = remaining, True
        if self._judge is not None and utils.is_grade(cell) and not utils.is_solution(cell):
            return self._judge_cell(cell, index, timeout), resources
        self.timeout = timeout
        self._output_used = {"text": 0, "bytes": 0, "cut": False}
        if self._guard_ok:
            bound = dict(self._bound)
            if not tamper.is_student_cell(cell):
                bound.update(tamper.locked_imports([cell]))
            self._piggyback = tamper.guard_call(self._token, tamper.alias_triples(bound))
        self._piggy_result = None
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError) as error:
            self._kernel_lost(error, cell, index, timeout, "while running this cell")
            return cell, resources
        finally:
            self.timeout = self._cell_timeout
            used, self._output_used = self._output_used, None
            self._piggyback = None
        if used and used["cut"]:
            self._event("output_truncated", "the cell printed more output than the grader keeps", cell, index)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if any(o.ename == "CellTimeoutError" for o in errors):
            if by_notebook:
                self._stop(f"the notebook reached its time limit of {self.notebook_timeout} s")
                self._event("notebook_timeout", f"the notebook reached its time limit of {self.notebook_timeout} s "
                                                "in this cell; the cells after it were not run", cell, index)
            else:
                self._event("timeout", f"the cell ran over the {timeout} s limit and was interrupted", cell, index,
                            seconds=timeout)
        if any(o.ename in MEMORY_ERRORS or any(t in str(o.evalue) for t in MEMORY_TEXT) for o in errors):
            self._event("memory", f"the cell ran out of memory (limit {self.memory_limit_mb} MiB)", cell, index)
        if not tamper.is_student_cell(cell):
            self._bound.update(tamper.locked_imports([cell]))
        if self._guard_ok and not self._kernel_dead:
            self._ask_guard(cell, index, self._piggy_result)
        return cell, resources


# ----------------------------------------------------------------------------- after execution

class TamperCheck(NbGraderPreprocessor):
    """Scan the student's code; on tampering, void the notebook's autograded tests."""

    void_on_tampering = Bool(
        True, help="Give every autograded test of a notebook 0 points when tampering is found in it "
                   "(otherwise tampering is only reported)."
    ).tag(config=True)

    def preprocess(self, nb, resources):
        found = tamper.scan_notebook(nb)
        add_events(nb, [{"kind": f["kind"], "detail": f["detail"], "cell": f["cell"], "line": f["line"],
                         "source": "source scan"} for f in found])
        tampering = [e for e in notebook_events(nb) if e["kind"] == "tampering"]
        if tampering and self.void_on_tampering:
            what = "; ".join(sorted({e["detail"] for e in tampering}))[:500]
            message = (f"this notebook changes the grading itself ({what}). Its autograded tests earn no points; "
                       "your instructor has been told and will look at it.")
            for cell in nb.cells:
                if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
                    cell.outputs.append(_error(VOIDED, message))
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
