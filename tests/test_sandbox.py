"""The grading sandbox (coursetools.grader.sandbox, issue 14): what a graded notebook sees, changes and leaves behind.

The unit tests start sandboxed kernels directly. The class tests read the course that conftest grades
once, where ``hostile_sandbox_escape`` tries every way out while ``hostile_sandbox_victim`` is graded
in the same run (their scores are asserted by tests/test_corpus.py)."""
import json
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

from coursetools import ASSIGNMENT
from coursetools.autograde import manifest
from coursetools.autograde.outcomes import OUTCOMES
from coursetools.grader import sandbox
from coursetools.autograde.course import Course

REPO = pathlib.Path(__file__).resolve().parent.parent
MARKER = "session10-sandbox-escape"


def alive_with(marker):
    """Pids of processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in pathlib.Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture()
def little_course(tmp_path):
    """A course-like tree: a secret gradebook, a source folder with a trusted checks module, and a
    student's submitted folder with a forged checks module of its own."""
    root = tmp_path / "course"
    source = root / "source" / ASSIGNMENT
    submitted = root / "submitted" / "ada" / ASSIGNMENT
    (source / "data").mkdir(parents=True)
    submitted.mkdir(parents=True)
    (root / "gradebook.db").write_text("grades")
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    (source / "convcheck.py").write_text("TRUSTED = True\n")
    (source / "data" / "digits.txt").write_text("0123456789")
    (source / "01_x.ipynb").write_text("{}")  # the source notebook: never shipped into the sandbox
    (submitted / "convcheck.py").write_text("TRUSTED = False\n")
    (submitted / "notes.txt").write_text("mine")
    return root, source, submitted


def run(code, root, source, submitted, **settings):
    return sandbox.run_code(code, submitted=str(submitted), source=str(source), course_root=str(root), **settings)


def test_the_kernel_sees_its_own_copy_and_the_trusted_files_only(little_course):
    root, source, submitted = little_course
    code = f"""
import os, sys, convcheck
print("uid", os.getuid())
print("files", sorted(os.listdir(".")))
print("trusted", convcheck.TRUSTED, open("data/digits.txt").read())
for path in {[str(root / "gradebook.db"), str(root / "nbgrader_config.py"), str(source), str(submitted)]!r}:
    print("exists" if os.path.exists(path) else "absent", path)
for path in ["convcheck.py", "data/digits.txt", os.path.join(sys.prefix, "x.pth"), "notes.txt", "new.txt"]:
    try:
        open(path, "a").write("changed")
        print("wrote", path)
    except OSError as error:
        print("refused", path, type(error).__name__)
print("processes", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
"""
    result = run(code, root, source, submitted)
    out = result["output"]
    assert result["status"] == "ok", out
    assert "uid 65534" in out
    assert "files ['convcheck.py', 'data', 'notes.txt']" in out, "the source notebook must not be shipped"
    assert "trusted True 0123456789" in out, "the grader's checks module, not the student's"
    assert "exists" not in out.replace("exists\" if", ""), out
    for path in ("convcheck.py", "data/digits.txt", "x.pth"):
        assert f"refused {path}" in out or f"refused {sandbox.ENV_ROOT}/venv/{path}" in out, out
    assert "wrote notes.txt" in out and "wrote new.txt" in out
    assert "processes [1, 2]" in out, "only the sandbox's init and the kernel are visible"
    # what the notebook wrote is thrown away: the submission and the course are as they were
    assert (submitted / "notes.txt").read_text() == "mine" and not (submitted / "new.txt").exists()
    assert (source / "convcheck.py").read_text() == "TRUSTED = True\n"


def test_one_notebook_cannot_change_what_the_next_one_sees(little_course):
    root, source, submitted = little_course
    first = run("open('left_for_later.py', 'w').write('x = 1')\nprint('written')", root, source, submitted)
    assert "written" in first["output"]
    second = run("import os\nprint(os.path.exists('left_for_later.py'))", root, source, submitted)
    assert second["output"].strip() == "False"


def test_no_network_and_a_read_only_environment():
    seen = sandbox.probe()
    assert seen["uid"] == sandbox.SANDBOX_USER
    assert seen["network"] != "reachable", "a port listening on the grader's loopback must be out of reach"
    assert seen["environment"] == "read-only"
    assert seen["home"] == sandbox.SANDBOX_HOME


def test_no_process_outlives_the_kernel(little_course):
    """A detached child in a new session that ignores SIGTERM dies with the kernel, and the manager checks it."""
    root, source, submitted = little_course
    marker = f"{MARKER}-unit-{os.getpid()}"
    code = f"""
import subprocess, sys, time, os
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)  # {marker}"],
    start_new_session=True)
time.sleep(0.5)
os.kill(child.pid, 0)
print("child alive", child.poll() is None)
"""
    result = run(code, root, source, submitted)
    assert "child alive True" in result["output"], result
    assert result["leftover"] == []
    assert alive_with(marker) == []


def test_limits_apply_inside(little_course):
    root, source, submitted = little_course
    code = """
import resource, threading, time
print("data", resource.getrlimit(resource.RLIMIT_DATA)[0] // 2**20)
try:
    open("big.bin", "wb").write(b"0" * (3 * 2**20))
except OSError as error:
    print("file refused:", type(error).__name__)
threading.stack_size(256 * 1024)  # small stacks: the process limit, not memory, must be what stops them
started = 0
try:
    for _ in range(200):
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        started += 1
except RuntimeError as error:
    print("refused after", started, "threads:", error)
import subprocess
children = []
try:
    for _ in range(100):
        children.append(subprocess.Popen(["sleep", "5"]))
except OSError as error:
    print("processes refused after", len(children), type(error).__name__)
"""
    result = run(code, root, source, submitted, memory_mb=1024, max_processes=64, max_file_mb=2)
    out = result["output"]
    assert "data 1024" in out, out
    assert "file refused: OSError" in out, out
    assert "refused after" in out and int(out.split("refused after ")[1].split()[0]) < 64, \
        "the process limit counts threads too"
    assert "processes refused after" in out and int(out.split("processes refused after ")[1].split()[0]) < 64


def test_without_bubblewrap_grading_refuses_and_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    sandbox._CHECKED.clear()
    try:
        with pytest.raises(sandbox.SandboxUnavailable) as raised:
            Course(tmp_path).require_sandbox()
        assert "apt-get install bubblewrap" in str(raised.value) and "--no-sandbox" in str(raised.value)
        Course(tmp_path, sandbox=False).require_sandbox()  # the explicit way out
    finally:
        sandbox._CHECKED.clear()


def test_the_cli_refuses_without_bubblewrap(tmp_path):
    result = subprocess.run([sys.executable, "-m", "coursetools", "--root", str(tmp_path), "autograde"],
                            cwd=REPO, env={"PATH": str(tmp_path), "HOME": str(tmp_path)}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "autograde: The grading sandbox cannot start: bubblewrap (bwrap) is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_manifest_sees_content_changes_that_keep_size_and_mtime(tmp_path):
    from coursetools.tools.trial import copy_course
    course = copy_course(tmp_path / "course")
    before = manifest.take(course)
    path = course.source / "convcheck" / "__init__.py"
    stat = path.stat()
    text = path.read_text()
    path.write_text(text.replace("import ", "import_", 1)[:len(text)])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(manifest.CourseFilesChanged, match="source/session10/convcheck/__init__.py"):
        manifest.check(course, before)


# ----------------------------------------------------------------------------- the class run

def test_the_attacker_reached_nothing(graded_course):
    nb = graded_course.autograded_notebook("hostile_sandbox_escape", "01_recap_and_motivation")
    cell = next(c for c in nb["cells"] if "escape.attack()" in "".join(c["source"]))
    out = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    assert "DENIED no course folder, gradebook or classmate is reachable" in out, out
    assert "READ" not in out and "WROTE" not in out, out
    planted = [line for line in out.splitlines() if line.startswith("PLANTED")]
    assert all(line.split()[1].startswith(sandbox.SANDBOX_HOME) for line in planted), planted
    assert "ALIVE detached process" in out, "the attack's lingering process did start inside the sandbox"
    assert all(nb["metadata"]["coursetools"]["sandbox"] == "bubblewrap"
               for nb in (graded_course.autograded_notebook(s, "01_recap_and_motivation")
                          for s in ("hostile_sandbox_escape", "hostile_sandbox_victim", "reference")))


def test_nothing_of_the_attacker_is_left(graded_course):
    assert alive_with(MARKER) == []
    planted = [pathlib.Path(p) / "zz_session10_escape.pth" for p in site.getsitepackages()]
    planted += list(pathlib.Path.home().glob(".ipython/*/startup/00-session10-escape.py"))
    assert not [p for p in planted if p.exists()]
    course = graded_course.course
    for folder in (course.autograded, course.feedback, course.root / "quarantine"):
        assert not list(folder.rglob("stolen.txt")), f"a file the kernel wrote reached {folder}"


def test_the_course_files_are_unchanged(graded_course):
    """The graded copy's tests, tools and configuration hash exactly as the repository's."""
    course = graded_course.course
    repo = Course(REPO)
    for relative in ["nbgrader_config.py"] + [str(p.relative_to(REPO)) for folder in (repo.source, REPO / "coursetools")
                                              for p in folder.rglob("*.py") if "__pycache__" not in p.parts] \
            + [str(p.relative_to(REPO)) for p in repo.source.glob("*.ipynb")]:
        assert (course.root / relative).read_bytes() == (REPO / relative).read_bytes(), relative
    report = json.loads((course.root / OUTCOMES / "hostile_sandbox_escape.json").read_text())
    assert not [e for e in report["events"] if e["kind"] in ("course_files_changed", "processes_left")]
