"""``ResilientExecute``: nbgrader's Execute made safe for real submissions.

It replaces nbgrader's ``Execute`` (switched on in ``nbgrader_config.py``;
docs/grading-guarantees.md says what it guarantees and which limits are
configured). It caps the kernel's memory (RLIMIT_DATA, set from outside before
any cell runs), gives the whole notebook a wall-clock limit as well as each
cell, cuts runaway output while it arrives, and survives a dead or
unresponsive kernel: the cells after it are marked as not run instead of
failing the notebook (nbgrader would delete the student's whole autograded
folder). Graded test cells are decided in the grader (``coursetools.grader.judge``).
It installs the runtime tamper guard (``coursetools.grader.guard``) and asks it
after every code cell. What happened is recorded in the notebook's metadata
(``metadata.coursetools.events``). The preprocessors that run before and after
it are in ``coursetools.grader.preprocessors``.
"""
import ast
import contextlib
import dataclasses
import json
import math
import pathlib
import secrets
import time
from queue import Empty

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from coursetools.core.cells import grade_id
from coursetools.core.events import event
from coursetools.core.limits import DEFAULT_LIMITS
from coursetools.grader import judge, record, sandbox, tamper
from coursetools.grader.preprocessors import METADATA_KEY, add_events, cell_label, failure_output

MEMORY_ERRORS = ("MemoryError", "OutOfMemoryError")
# Evaluated after each cell and each call of the student's code, in the same request: a timer the student's
# code set (signal.alarm, setitimer) stops there, and a signal it sent itself is delivered there, so neither
# lands later in whatever runs next, at a moment that depends on how busy the machine is.
DISARM_KEY = "_coursetools_disarm"
DISARM = "__import__('signal').setitimer(__import__('signal').ITIMER_REAL, 0)"
CELL_KEY = "_coursetools_cell"   # the agent's after-cell request: it pins what an answer cell bound
MEMORY_TEXT = ("can't allocate memory", "cannot allocate memory", "DefaultCPUAllocator")


def stdout_output(text):
    return NotebookNode(output_type="stream", name="stdout", text=text)


@dataclasses.dataclass
class NotebookGrading:
    """What ResilientExecute knows about the one notebook it is grading: made afresh for each notebook."""

    nb: object
    resources: dict
    cell_timeout: object                  # the configured per-cell limit (Execute.timeout)
    # the names of the agent's module and of the guard in the kernel: random, so the notebook cannot name them
    agent: str = dataclasses.field(default_factory=lambda: "_coursetools_agent_" + secrets.token_hex(6))
    guard_token: str = dataclasses.field(default_factory=lambda: "_coursetools_guard_" + secrets.token_hex(8))
    sandbox_km: object = None
    judge: object = None
    started: bool = False                 # the kernel is set up (limits, agent, guard) at the first code cell
    deadline: object = None               # the notebook's clock starts at its first cell, once the kernel is up
    kernel_dead: object = None            # why the remaining cells are not run
    events: list = dataclasses.field(default_factory=list)
    guard_ok: bool = False
    guard_findings: set = dataclasses.field(default_factory=set)
    bound: dict = dataclasses.field(default_factory=dict)   # names the read-only cells imported so far
    guard_question: object = None         # the guard call sent along with the running cell's request
    guard_answer: object = None           # ... and what the cell's reply said to it
    cell_question: object = None          # the agent's after-cell request (coursetools.grader.agent, pins) ...
    cell_answer: object = None            # ... and its answer
    graded_names: dict = dataclasses.field(default_factory=dict)  # answer cell's grade id -> names its source binds
    setup_names: list = dataclasses.field(default_factory=list)   # set-up names the tests read (the grader's own)
    instructor_cells: set = dataclasses.field(default_factory=set)  # sources of the editable cells as released
    output_used: object = None            # output kept so far of the running cell
    judge_deadline: float = 0.0
    judge_interrupted: bool = False


class ResilientExecute(Execute):
    """nbgrader's Execute with limits on memory, time and output, survival of a dead kernel, and a tamper guard."""

    memory_limit_mb = Integer(
        DEFAULT_LIMITS["memory_limit_mb"], help="Cap on the kernel's data segment (RLIMIT_DATA), in MiB; 0 for none."
    ).tag(config=True)
    notebook_timeout = Integer(
        DEFAULT_LIMITS["notebook_timeout"],
        help="Wall-clock limit for all the cells of one notebook, in seconds; 0 for none. "
             "Cells after the limit are not run and score 0."
    ).tag(config=True)
    max_text_chars = Integer(
        DEFAULT_LIMITS["max_text_chars"],
        help="Text output kept per cell while it runs (stream and text/* outputs); 0 for no limit."
    ).tag(config=True)
    max_output_bytes = Integer(
        DEFAULT_LIMITS["max_output_bytes"],
        help="All output data kept per cell while it runs (images included); 0 for no limit."
    ).tag(config=True)
    tamper_guard = Bool(
        True, help="Install the runtime tamper guard (coursetools.grader.guard) and ask it after every code cell."
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
    scratch_mb = Integer(512, help="Size of the sandbox's own /tmp, /dev/shm and HOME, in MiB each.").tag(config=True)
    work_mb = Integer(DEFAULT_LIMITS["work_mb"],
                      help="Room in the sandbox's work copy beyond the submitted files, in MiB.").tag(config=True)
    sandbox_memory_mb = Integer(
        DEFAULT_LIMITS["sandbox_memory_mb"],
        help="Memory of the whole sandbox (all its processes and its tmpfs files), in MiB, where a cgroup can be "
             "made; 0 for none."
    ).tag(config=True)
    judge_tests = Bool(
        True, help="Run graded test cells in the grader (coursetools.grader.judge), calling the student's code in the "
                   "kernel only to observe it; False runs them in the kernel as plain nbgrader does."
    ).tag(config=True)
    interrupt_grace = Integer(10, help="Seconds a student's call may take to stop once interrupted.").tag(config=True)

    def create_kernel_manager(self):
        """A sandboxed kernel manager that sees a fresh copy of this student's submitted folder."""
        if not self.sandbox:
            self.kernel_manager_class = record.RecordingKernelManager
            return super().create_kernel_manager()
        self.kernel_manager_class = sandbox.SandboxedKernelManager
        km = super().create_kernel_manager()
        info = self._grading.resources.get("nbgrader", {})
        from nbgrader.coursedir import CourseDirectory
        coursedir = CourseDirectory(config=self.config)
        if info.get("student") and info.get("assignment"):
            km.submitted = coursedir.format_path(coursedir.submitted_directory, info["student"], info["assignment"])
            km.source = coursedir.format_path(coursedir.source_directory, ".", info["assignment"])
        km.course_root = coursedir.root
        km.memory_mb, km.max_processes = self.memory_limit_mb, self.max_processes
        km.max_file_mb, km.tmp_mb = self.max_file_mb, self.scratch_mb
        km.work_mb, km.sandbox_memory_mb = self.work_mb, self.sandbox_memory_mb
        self._grading.sandbox_km = km
        return km

    def preprocess(self, nb, resources=None, km=None):
        self._grading = grading = NotebookGrading(nb, resources or {}, cell_timeout=self.timeout)
        nb, resources = super().preprocess(nb, resources, km)
        left = getattr(grading.sandbox_km, "leftover", ())
        if left:
            self._event("processes_left", f"{len(left)} processes of the sandbox outlived the kernel; the grader "
                                          "killed them")
        if grading.sandbox_km is not None:
            nb.metadata.setdefault(METADATA_KEY, {})["resources"] = self._resource_events(grading.sandbox_km)
        add_events(nb, grading.events)
        nb.metadata.setdefault(METADATA_KEY, {})["sandbox"] = "bubblewrap" if self.sandbox else "off"
        return nb, resources

    def _resource_events(self, km):
        """The sandbox's resource record, with events for each limit reached and each attempt made harmless."""
        used = km.resources()
        if not used.get("cgroup"):
            self._event("no_cgroup", "no cgroup could be made for the sandbox: its memory and processes were limited "
                                     "per process only")
        for limit in used.get("limits_hit", []):
            self._event("resource_limit", f"the notebook reached its sandbox's {limit} limit", limit=limit)
        if used.get("detached"):
            self._event("contained", "started processes that detached from the kernel ("
                        + "; ".join(used["detached"][:3]) + "); the sandbox ended them with the kernel")
        if used.get("written_outside"):
            self._event("contained", "wrote outside its work copy (" + ", ".join(used["written_outside"][:5])
                        + " in HOME); thrown away with the sandbox")
        return used

    @contextlib.contextmanager
    def _cell_time_limit(self, seconds):
        """nbclient reads ``self.timeout`` for the cell it runs: this cell's limit, then the configured one again."""
        self.timeout = seconds
        try:
            yield
        finally:
            self.timeout = self._grading.cell_timeout

    def _time_limit(self):
        """(seconds this cell may run or None, whether the notebook's limit is the tighter one)."""
        configured = self._grading.cell_timeout
        timeout = configured if configured and configured > 0 else None
        if self._grading.deadline is not None:
            remaining = max(1, math.ceil(self._grading.deadline - time.monotonic()))
            if timeout is None or remaining < timeout:
                return remaining, True
        return timeout, False

    # --- kernel set-up: limits and guard, before the first cell

    def _kernel_pid(self):
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    def _start(self):
        grading = self._grading
        grading.started = True
        grading.deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
        if self.memory_limit_mb and not self.sandbox:  # the sandbox sets the cap inside, before the kernel starts
            self._cap_memory_from_outside()
        if grading.sandbox_km is not None:
            grading.sandbox_km.sample()  # what HOME holds before the student's first cell
        if self.judge_tests:
            grading.judge = self._make_judge()
        if self.tamper_guard:
            reply = self._silent(tamper.guard_install_code(grading.guard_token))
            grading.guard_ok = bool(reply) and reply["content"].get("status") == "ok"
            if not grading.guard_ok:
                self.log.warning("The tamper guard could not be installed: %s", reply and reply["content"])
        if grading.judge is not None:  # the record's audit hook starts after the grader's own set-up code
            with contextlib.suppress(judge.TestDidNotRun, judge.KernelLost):
                grading.judge.remote.request(op="arm")
        self._wrap_every_cell()

    def _cap_memory_from_outside(self):
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

    def _wrap_every_cell(self):
        """Send the guard's question, and the disarming of the student's timer, in each cell's own execute
        request: no extra round trip to the kernel."""
        original = self.kc.execute
        grading = self._grading

        def execute(code, *args, **kwargs):
            if not kwargs.get("silent"):
                expressions = dict(kwargs.get("user_expressions") or {})
                if grading.guard_question:
                    expressions[grading.guard_token] = grading.guard_question
                if grading.cell_question:
                    expressions[CELL_KEY] = grading.cell_question
                expressions[DISARM_KEY] = DISARM
                kwargs["user_expressions"] = expressions
            return original(code, *args, **kwargs)

        self.kc.execute = execute

    def _make_judge(self):
        """The judge of this notebook's test cells, with the agent installed in the kernel."""
        grading = self._grading
        reply = self._silent(judge.install_code(grading.agent))
        if not reply or reply["content"].get("status") != "ok":
            self.log.warning("The grader's agent could not be installed: %s", reply and reply["content"])
        info = grading.resources.get("nbgrader", {})
        from nbgrader.coursedir import CourseDirectory
        coursedir = CourseDirectory(config=self.config)
        source = coursedir.format_path(coursedir.source_directory, ".", info.get("assignment", ""))
        student = [c.source for c in grading.nb.cells if c.cell_type == "code" and tamper.is_student_cell(c)]
        instructor = [c.source for c in grading.nb.cells if c.cell_type == "code" and not tamper.is_student_cell(c)]
        seed = judge.grading_seed(judge.course_secret(coursedir.root), info.get("student", ""),
                                  info.get("notebook", ""))
        code_cells = tamper.instructor_code_cells(pathlib.Path(source) / f"{info.get('notebook', '')}.ipynb")
        grading.graded_names = tamper.graded_names(code_cells)
        graded = judge.Judge(self._rpc, source, instructor, student, seed_material=seed, on_event=self._event,
                             code_cells=code_cells, read_record=self._read_record)
        grading.setup_names = sorted(graded.setup.served)
        grading.instructor_cells = {source for kind, _, source in code_cells if kind == "code"}
        return graded

    def _read_record(self):
        """The notes the kernel wrote into its record pipe since the last read (None: it has no pipe)."""
        pipe = getattr(self.km, "record", None)
        return pipe.lines() if pipe is not None and pipe.read_fd is not None else None

    def _rpc(self, request):
        """One request to the kernel's agent, within the judged cell's time; its answer as a dict."""
        grading = self._grading
        if grading.judge_interrupted:
            raise judge.TestDidNotRun("the test ran out of time")
        msg_id = self.kc.execute("", silent=True, store_history=False, allow_stdin=False,
                                 user_expressions={"r": judge.request_expression(grading.agent, request),
                                                   DISARM_KEY: DISARM})
        try:
            reply = run_sync(self._async_reply)(msg_id, max(0.1, grading.judge_deadline - time.monotonic()))
            if reply is None:  # past the time limit: interrupt the student's code and take its answer
                grading.judge_interrupted = True
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
            cell.outputs.append(failure_output("KernelDied", f"the kernel died {when} ({error})"))
            self._event("kernel_died", "the kernel died (os._exit, a crash, or killed for memory)", cell, index)
            return
        self._kill()
        why = "the kernel did not stop when interrupted after the time limit, and was shut down"
        self._stop(why + " in an earlier cell")
        cell.outputs.append(failure_output("CellTimeoutError", f"{why} ({error})"))
        self._event("timeout", why, cell, index, seconds=timeout)

    def _judge_cell(self, cell, index, timeout):
        """Decide a graded test cell in the grader (coursetools.grader.judge); the kernel only answers requests."""
        grading = self._grading
        grading.judge_deadline = time.monotonic() + (timeout or 24 * 3600)
        grading.judge_interrupted = False
        cell.outputs = []
        try:
            try:
                printed, error = grading.judge.run(cell.source, cell_label(cell, index))
            except judge.KernelLost as lost:
                raise lost.cause from None
        except (DeadKernelError, CellTimeoutError) as error:
            self._kernel_lost(error, cell, index, timeout, "while this test called the student's code")
            return cell
        if printed:
            cell.outputs.append(stdout_output(printed))
        if error is not None and grading.judge_interrupted:  # the grader stopped the student's code at the limit
            cell.outputs.append(failure_output("CellTimeoutError", f"the student's code ran over the {timeout} s "
                                                                   "limit and was interrupted"))
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
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False,
                                 user_expressions={**(user_expressions or {}), DISARM_KEY: DISARM})
        return run_sync(self._async_reply)(msg_id, timeout or self.guard_timeout)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        reply = kwargs.get("execute_reply") or {}
        expressions = reply.get("content", {}).get("user_expressions", {})
        self._grading.guard_answer = expressions.get(self._grading.guard_token)
        self._grading.cell_answer = expressions.get(CELL_KEY)

    def _after_cell(self, cell, index, question):
        """The agent's account of the cell just run: it pins an answer cell's names (coursetools.grader.agent)
        and names the graded names another cell rebound, which the report then lists."""
        grading = self._grading
        result = grading.cell_answer
        if not result or result.get("status") != "ok":  # a failed cell's request evaluated no user expression
            with contextlib.suppress(DeadKernelError):
                reply = self._silent("", {CELL_KEY: question})
                result = reply and reply["content"].get("user_expressions", {}).get(CELL_KEY)
        try:
            answer = json.loads(ast.literal_eval(result["data"]["text/plain"]))
            told = answer["value"] or {}
            grading.judge.take_notes(answer.get("notes"))
        except Exception:  # noqa: BLE001 - no answer, or a forged one
            self._event("suspicious", "the grader could not learn what this cell bound (its agent gave no answer)",
                        cell, index)
            return
        if not tamper.is_student_cell(cell) or cell.source in grading.instructor_cells or not isinstance(told, dict):
            return   # the instructor's cells (an editable one left as released too) rebind as the course means them
        for name in told.get("rebound", []):
            self._event("graded_name_rebound", f"rebinds `{name}`; the tests graded what its answer cell defined",
                        cell, index, name=str(name))
        for name in told.get("watched", []):
            self._event("setup_name_rebound", f"rebinds `{name}`, which a read-only set-up cell sets; the tests used "
                                              "the grader's own run of that cell", cell, index, name=str(name))
        for name in told.get("altered", []):
            self._event("graded_name_rebound", f"changes the code of `{name}`; the tests graded the code its answer "
                                               "cell defined", cell, index, name=str(name))

    def _ask_guard(self, cell, index, result=None):
        """Record the guard's findings: from the cell's own reply, or from a separate silent request."""
        grading = self._grading
        if not result or result.get("status") != "ok":
            try:  # the cell failed (no user expressions then), or its reply was made up after a timeout
                question = tamper.guard_call(grading.guard_token, tamper.alias_triples(grading.bound))
                reply = self._silent("", {"r": question})
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
            if finding not in grading.guard_findings:
                grading.guard_findings.add(finding)
                self._event("tampering", str(finding), cell, index, source="runtime guard")

    # --- events

    def _event(self, kind, detail, cell=None, index=None, **extra):
        where = {} if cell is None else {"cell": cell_label(cell, index)}
        self._grading.events.append(event(kind, detail, **where, **extra))

    def _stop(self, why):
        self._grading.kernel_dead = why

    def _kill(self):
        try:
            run_sync(self.km._async_kill_kernel)()
        except Exception as error:  # noqa: BLE001 - best effort; the kernel is abandoned either way
            self.log.warning("Could not kill the kernel: %s", error)

    # --- output limits, applied as outputs arrive

    def output(self, outs, msg, display_id, cell_index):
        used = self._grading.output_used
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
                    outs.append(stdout_output(f"\n... output cut by the grader: this cell printed more than "
                                              f"{limit} ...\n"))
                return None
            used["text"] += text
            used["bytes"] += total
        return super().output(outs, msg, display_id, cell_index)

    # --- cells

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        grading = self._grading
        if grading.kernel_dead:
            cell.outputs = [failure_output("NotRun", f"not run: {grading.kernel_dead}")]
            return cell, resources
        if grading.deadline is not None and grading.deadline - time.monotonic() <= 0:
            self._stop(f"the notebook reached its time limit of {self.notebook_timeout} s")
            self._event("notebook_timeout", f"the notebook reached its time limit of {self.notebook_timeout} s; "
                                            "this cell and the ones after it were not run", cell, index)
            cell.outputs = [failure_output("NotRun", f"not run: {grading.kernel_dead}")]
            return cell, resources
        if not grading.started:
            try:
                self._start()
            except DeadKernelError as error:
                self._stop(f"the kernel died before the first cell ({error})")
                self._event("kernel_died", grading.kernel_dead, cell, index)
                cell.outputs = [failure_output("KernelDied", grading.kernel_dead)]
                return cell, resources
        timeout, by_notebook = self._time_limit()
        if grading.judge is not None and utils.is_grade(cell) and not utils.is_solution(cell):
            return self._judge_cell(cell, index, timeout), resources
        grading.output_used = {"text": 0, "bytes": 0, "cut": False}
        if grading.guard_ok:
            bound = dict(grading.bound)
            if not tamper.is_student_cell(cell):
                bound.update(tamper.locked_imports([cell]))
            grading.guard_question = tamper.guard_call(grading.guard_token, tamper.alias_triples(bound))
        grading.guard_answer = grading.cell_answer = None
        if grading.judge is not None:
            answer = utils.is_solution(cell)
            names = set(tamper.bound_names(cell.source)) | set(grading.graded_names.get(grade_id(cell), ())) \
                if answer else set()
            grading.cell_question = judge.request_expression(grading.agent, {
                "op": "cell", "answer": answer, "locked": not tamper.is_student_cell(cell),
                "names": sorted(names), "watched": [] if answer else grading.setup_names})
        try:
            with self._cell_time_limit(timeout):
                cell, resources = super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError) as error:
            self._kernel_lost(error, cell, index, timeout, "while running this cell")
            return cell, resources
        finally:
            used, grading.output_used = grading.output_used, None
            grading.guard_question, question, grading.cell_question = None, grading.cell_question, None
        if used and used["cut"]:
            self._event("output_truncated", "the cell printed more output than the grader keeps", cell, index)
        self._record_failures(cell, index, timeout, by_notebook)
        if not tamper.is_student_cell(cell):
            grading.bound.update(tamper.locked_imports([cell]))
        if question is not None and not grading.kernel_dead:
            self._after_cell(cell, index, question)
        if grading.guard_ok and not grading.kernel_dead:
            self._ask_guard(cell, index, grading.guard_answer)  # for a failed cell, a request that also disarms
        elif not grading.kernel_dead and any(o.output_type == "error" for o in cell.outputs):
            with contextlib.suppress(DeadKernelError):
                self._silent("")  # a failed cell's request evaluated no user expression: disarm now
        if grading.sandbox_km is not None:
            grading.sandbox_km.sample()
        return cell, resources

    def _record_failures(self, cell, index, timeout, by_notebook):
        """Events for a cell that ran out of time or memory."""
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
