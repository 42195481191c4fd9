"""Autograde a class in parallel: on every core of this machine, or on a Dask cluster.

    python -m coursetools grade-parallel                       # all submitted/, one worker per core
    python -m coursetools grade-parallel --workers 4 alice bob # some students, 4 worker processes
    python -m coursetools grade-parallel --scheduler tcp://10.0.0.5:8786 --db-url postgresql://...

nbgrader grades one submission after another. Here each submission is one job,
graded by the same per-student logic as ``python -m coursetools autograde``,
and the jobs run in a pool of long-lived worker processes:

* **The same per-student logic.** A job is ``coursetools.autograde.grade.grade_student``
  (preflight, nbgrader autograde, a per-notebook retry on failure, the outcome
  record in reports/outcomes/), handed a ``WorkerCourse``.
* **In-process nbgrader.** A ``WorkerCourse`` runs each ``nbgrader autograde
  --student S`` as a function call (``run_nbgrader``), not as a new Python process:
  nbgrader, nbconvert and jsonschema are imported once per worker instead of
  once per submission (about 4 s of CPU each time on the course machine; most
  of it is jsonschema building an RFC 3987 grammar at import).
* **One gradebook, many writers.** Every worker writes its grades straight
  into the course's gradebook. SQLite takes concurrent writers when each
  connection waits for the lock instead of failing: the gradebook URL gets a
  busy timeout (``sqlite:///gradebook.db?timeout=300``). nbgrader's writes are
  short transactions, so the waits are milliseconds; nothing is merged
  afterwards and nothing can be lost in a merge. For workers on other machines
  use a server database nbgrader supports (PostgreSQL: ``--db-url
  postgresql://user@host/gradebook``); see docs/scaling.md.
* **Kernel options.** Kernels are shut down at once after the last cell
  (``Execute.shutdown_kernel = "immediate"``) instead of the graceful
  shutdown request nbclient waits up to a few seconds for; every cell has
  finished by then, so the grades are the same.
* **Students are registered by one writer**, in one gradebook session, as the
  first job, before the grading jobs start. The calling process never imports
  nbgrader, so a run pays that import once (in the fork server), not twice.

Grades are exactly those of sequential ``nbgrader autograde``:
tests/test_parallel.py compares the exported CSVs.

Local workers are processes forked from a server that has imported nbgrader
(``ProcessPoolExecutor``, ``forkserver``). With
``--scheduler ADDRESS`` the same jobs go to a Dask distributed cluster through
its ``concurrent.futures`` executor; the workers must see the course directory
at the same path (a shared file system) and import ``coursetools`` (start them
in the course root, or with ``PYTHONPATH`` set to it), one thread each.
"""
import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import traceback

from coursetools import ASSIGNMENT
from coursetools.autograde import manifest
from coursetools.autograde.course import NO_SANDBOX, Course
from coursetools.core.limits import read_config

SQLITE_TIMEOUT = 300          # seconds a worker waits for the gradebook's write lock
LOCK_ERROR = "database is locked"
KERNEL_OPTIONS = ("--Execute.shutdown_kernel=immediate",)

_lock = threading.Lock()      # one in-process nbgrader run at a time per process (it changes the cwd)


# ----------------------------------------------------------------------------- the gradebook

def _course_config(root):
    """The literal ``CourseDirectory`` settings of the course's nbgrader_config.py ({} when there is none)."""
    return read_config(root).get("CourseDirectory", {})


def gradebook_url(root, db_url=None, timeout=SQLITE_TIMEOUT, configured=None):
    """The gradebook URL the workers use.

    ``db_url`` if given, else ``CourseDirectory.db_url`` from nbgrader_config.py (a literal string),
    else the course's gradebook.db. A SQLite URL without a ``timeout`` gets one:
    a writer then waits up to ``timeout`` seconds for the lock instead of failing
    with "database is locked".
    """
    if configured is None and not db_url:
        configured = _course_config(root).get("db_url")
    url = db_url or configured or f"sqlite:///{pathlib.Path(root).resolve() / 'gradebook.db'}"
    if url.startswith("sqlite") and "timeout=" not in url:
        url += ("&" if "?" in url else "?") + f"timeout={timeout}"
    return url


def prepare_gradebook(root, db_url, students):
    """Resolve the gradebook URL and add the students to it in one session (the single writer).

    Runs as the first job, on a worker, so the caller never imports nbgrader
    (its import is the costliest part of a worker's start). Returns the URL.
    """
    from nbgrader.api import Gradebook
    settings = _course_config(root)
    url = gradebook_url(root, db_url, configured=settings.get("db_url"))
    if url.startswith("sqlite:///"):
        path = pathlib.Path(url[len("sqlite:///"):].split("?")[0])
        if not path.is_absolute():
            path = pathlib.Path(root) / path
        if not path.exists():
            raise FileNotFoundError(f"no gradebook at {path}: release the assignment first "
                                    "(python -m coursetools release)")
    kwargs = {"course_id": settings["course_id"]} if settings.get("course_id") else {}
    with Gradebook(url, **kwargs) as gradebook:
        known = {student.id for student in gradebook.students}
        for student in students:
            if student not in known:
                gradebook.add_student(student)
    return url


# ----------------------------------------------------------------------------- nbgrader in this process

def _clear_app_singletons():
    """Forget traitlets application singletons so the next in-process run starts clean."""
    from traitlets.config.application import Application
    pending = [Application]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if getattr(cls, "_instance", None) is not None:
            cls.clear_instance()


def run_nbgrader(root, *args):
    """``nbgrader ARGS`` run in this process with ``root`` as working directory.

    Returns a ``subprocess.CompletedProcess`` whose ``stdout`` is nbgrader's log
    (stdout and stderr together), as ``Course.nbgrader(..., quiet=True)`` does.
    """
    from jupyter_core.application import NoStart
    from nbgrader.apps.nbgraderapp import NbGraderApp
    args = [str(a) for a in args]
    buffer = io.StringIO()
    returncode = 0
    with _lock:
        cwd, path = os.getcwd(), list(sys.path)
        try:
            os.chdir(root)
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                _clear_app_singletons()
                try:
                    app = NbGraderApp.instance()
                    app.initialize(args)
                    app.start()
                except NoStart:  # jupyter_core's signal that the subcommand ran: the CLI exits 0 here
                    pass
                except SystemExit as stop:
                    code = stop.code
                    returncode = code if isinstance(code, int) else (0 if code is None else 1)
                except BaseException:  # noqa: BLE001 - reported like an nbgrader crash, the worker carries on
                    traceback.print_exc()
                    returncode = 1
                finally:
                    _clear_app_singletons()
        finally:
            os.chdir(cwd)
            sys.path[:] = path  # nbgrader and nbgrader_config.py prepend the course root on every run
    return subprocess.CompletedProcess(["nbgrader", *args], returncode, buffer.getvalue(), None)


class WorkerCourse(Course):
    """A course whose ``nbgrader`` runs in this process, against a given gradebook URL.

    The per-student grading logic is written against ``Course``; handing it
    this object makes it run in the worker without a new process per call.
    """

    def __init__(self, root, db_url, options=KERNEL_OPTIONS):
        super().__init__(root, sandbox=NO_SANDBOX not in options)
        self.db_url = db_url
        self.options = tuple(options)
        self.calls = []
        self.lock_errors = 0

    def nbgrader(self, *args, check=True, quiet=False):
        args = [*map(str, args), f"--CourseDirectory.db_url={self.db_url}"]
        if args and args[0] == "autograde":
            args += [option for option in self.options if option not in args]
        started = time.perf_counter()
        result = run_nbgrader(self.root, *args)
        self.calls.append((args[:3], round(time.perf_counter() - started, 3), result.returncode))
        self.lock_errors += result.stdout.count(LOCK_ERROR)
        if not quiet and result.stdout:
            sys.stdout.write(result.stdout)
        if check and result.returncode != 0:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed ({result.returncode})\n{result.stdout[-4000:]}")
        return result


# ----------------------------------------------------------------------------- one job: one student

def _grade_student_function():
    """The per-student grading of ``python -m coursetools autograde`` (coursetools.autograde.grade.grade_student:
    preflight, nbgrader, per-notebook retry, outcome record)."""
    try:
        from coursetools.autograde.grade import grade_student
    except ImportError:  # a course copy made before coursetools.autograde.grade existed
        return None
    return grade_student


def _default_grade_student(course, student):
    """Fallback per-student grading: nbgrader autograde for this student."""
    result = course.nbgrader("autograde", ASSIGNMENT, "--student", student, "--force", check=False, quiet=True)
    return {"ok": result.returncode == 0, "log": result.stdout}


def grade_job(root, student, db_url, options=KERNEL_OPTIONS):
    """Grade one student in this (worker) process; returns a picklable outcome dict."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    course = WorkerCourse(root, db_url, options)
    grade_student = _grade_student_function() or _default_grade_student
    started = time.perf_counter()
    try:
        course.require_sandbox()  # a Dask worker on another machine may lack bubblewrap
        record = grade_student(course, student)
        error = None
    except Exception:  # noqa: BLE001 - one bad submission must not stop the class
        record, error = None, traceback.format_exc()
    seconds = time.perf_counter() - started
    log = _record_log(record)
    ok = error is None and _record_ok(record, course)
    return {
        "student": student,
        "ok": ok,
        "seconds": seconds,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "nbgrader_calls": course.calls,
        "lock_errors": course.lock_errors + (error or "").count(LOCK_ERROR),
        "record": _plain(record),
        "error": error,
        "log_tail": log[-3000:] if not ok else "",
    }


def _record_ok(record, course):
    if isinstance(record, dict) and "ok" in record:
        return bool(record["ok"])
    for key in ("ok", "success", "graded"):
        if hasattr(record, key):
            return bool(getattr(record, key))
    return all(code == 0 for _, _, code in course.calls)


def _record_log(record):
    if isinstance(record, dict):
        return str(record.get("log", ""))
    return str(getattr(record, "log", "") or "")


def _plain(record):
    """The outcome record as plain data (it crosses process and machine boundaries)."""
    if record is None or isinstance(record, (dict, list, str, int, float, bool)):
        if isinstance(record, dict):
            return {k: v for k, v in record.items() if k != "log"}
        return record
    if hasattr(record, "_asdict"):
        return {k: v for k, v in record._asdict().items() if k != "log"}
    if hasattr(record, "__dataclass_fields__"):
        import dataclasses
        return {k: v for k, v in dataclasses.asdict(record).items() if k != "log"}
    return repr(record)


# ----------------------------------------------------------------------------- executors

def _quiet_worker(log_path):
    """Pool initializer: the worker's file descriptors 1 and 2 (kernels inherit them) go to a log file."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def local_executor(workers, log_path=os.devnull):
    """A pool of ``workers`` processes forked from a server that has imported nbgrader once.

    nbgrader's import costs about 4 s of CPU (nbconvert, and jsonschema building
    an RFC 3987 grammar); the fork server pays it once and every worker inherits
    it. Forking the caller itself would be as fast but unsafe when it runs threads
    (a Dask client, a test runner); the fork server is a fresh single-threaded process.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        context.set_forkserver_preload(["coursetools.autograde.parallel", "coursetools.autograde.grade",
                                        "nbgrader.apps.nbgraderapp"])
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_quiet_worker, initargs=(str(log_path),))


@contextlib.contextmanager
def dask_executor(scheduler):
    """A ``concurrent.futures`` executor on a Dask distributed cluster (``scheduler``: address or Client)."""
    from distributed import Client
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        yield client.get_executor(pure=False, retries=1)
    finally:
        if client is not scheduler:
            client.close()


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- the class

def grade_parallel(course, students=None, workers=None, scheduler=None, db_url=None, progress=True,
                   options=KERNEL_OPTIONS, log_path=None):
    """Autograde ``students`` (default: everyone in submitted/); return one outcome dict per student.

    ``workers``: local worker processes (default: one per core). ``scheduler``: a
    Dask scheduler address (or ``distributed.Client``) to run the jobs on instead.
    ``db_url``: the gradebook (default: nbgrader_config.py's ``CourseDirectory.db_url``, else
    gradebook.db; a SQLite URL gets a busy timeout).
    """
    course = course if isinstance(course, Course) else Course(course)
    students = list(students or course.students())
    if not students:
        return []
    workers = workers or default_workers()
    course.require_sandbox()
    options = (*options, *course.grading_options(["autograde"]))
    watched = manifest.take(course)

    if scheduler is not None:
        executor_context = dask_executor(scheduler)
        address = scheduler if isinstance(scheduler, str) else getattr(scheduler, "scheduler", None)
        where = f"the Dask cluster at {getattr(address, 'address', address)}"
    else:
        log_path = log_path or (course.root / ".grade-parallel.log")
        executor_context = local_executor(min(workers, len(students)), log_path)
        where = f"{min(workers, len(students))} local worker processes"

    from tqdm import tqdm
    outcomes = []
    started = time.perf_counter()
    with executor_context as executor:
        url = executor.submit(prepare_gradebook, str(course.root), db_url, students).result()
        futures = {executor.submit(grade_job, str(course.root), student, url, tuple(options)): student
                   for student in students}
        bar = tqdm(total=len(futures), unit="submission", desc="autograde", disable=not progress,
                   dynamic_ncols=True, file=sys.stderr)
        with bar:
            for future in concurrent.futures.as_completed(futures):
                student = futures[future]
                try:
                    outcome = future.result()
                except Exception:  # noqa: BLE001 - a lost worker: reported, the rest go on
                    outcome = {"student": student, "ok": False, "seconds": None, "worker": None,
                               "lock_errors": 0, "record": None, "error": traceback.format_exc(), "log_tail": ""}
                outcomes.append(outcome)
                failed = sum(not o["ok"] for o in outcomes)
                bar.set_postfix(failed=failed, refresh=False)
                bar.update(1)
                if manifest.changes(watched, manifest.take(course)):
                    for pending in futures:  # stop: grades given from here on could not be trusted
                        pending.cancel()
                    break
    manifest.check(course, watched)
    elapsed = time.perf_counter() - started
    outcomes.sort(key=lambda o: students.index(o["student"]))
    summary = dict(students=len(students), seconds=elapsed, where=where,
                   failed=[o["student"] for o in outcomes if not o["ok"]])
    grade_parallel.last_summary = summary
    return outcomes


def main(course, students=None, workers=None, scheduler=None, db_url=None, progress=True):
    """The ``grade-parallel`` command: grade, print a summary and the failures; exit 1 on any failure."""
    from coursetools.grader.sandbox import SandboxUnavailable
    try:
        outcomes = grade_parallel(course, students, workers, scheduler, db_url, progress)
    except (FileNotFoundError, SandboxUnavailable, manifest.CourseFilesChanged) as error:
        print(f"grade-parallel: {error}", file=sys.stderr)
        return 2
    if not outcomes:
        print("no submissions to grade")
        return 0
    summary = grade_parallel.last_summary
    n = summary["students"]
    print(f"autograded {n} submissions in {summary['seconds']:.1f} s on {summary['where']} "
          f"({summary['seconds'] / n:.2f} s per submission)")
    for outcome in outcomes:
        if not outcome["ok"]:
            print(f"\n[{outcome['student']}] grading failed", file=sys.stderr)
            print((outcome["error"] or outcome["log_tail"] or "")[-3000:], file=sys.stderr)
    if any(isinstance(o.get("record"), dict) and "events" in o["record"] for o in outcomes):
        print("outcome records: reports/outcomes/ (python -m coursetools report lists flagged submissions)")
    if summary["failed"]:
        print(f"{len(summary['failed'])} submissions failed: {', '.join(summary['failed'])}", file=sys.stderr)
        return 1
    return 0
