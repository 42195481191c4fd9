"""The sandbox bounded as a whole (issue 26): every writable place a size-capped tmpfs, nothing left on the
grader's disk whatever the notebook made, neutral paths, a cgroup per sandbox (or a said fallback), and a
resource record per notebook. Small kernels started directly; the class run is in tests/test_corpus.py."""
import os
import pathlib
import tempfile

import pytest

from coursetools.grader import cgroups, sandbox

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture()
def submitted(tmp_path):
    folder = tmp_path / "submitted" / "session10"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    return folder


@pytest.fixture()
def host_tmp(tmp_path, monkeypatch):
    """A private temporary folder for the grader (where the sandbox's scratch folder lives), so that other
    gradings on the machine do not count."""
    folder = tmp_path / "host-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def host_leftovers(folder):
    return sorted(os.listdir(folder))


FILL = """
import os
def fill(path, megabytes):
    written = 0
    try:
        with open(path, "wb") as handle:
            for _ in range(megabytes):
                handle.write(b"0" * 2**20)
                written += 1
            handle.flush()
    except OSError as error:
        return f"{written} {type(error).__name__} {error.errno}"
    return f"{written} ok"
for place in ["big.bin", "/tmp/big.bin", "/dev/shm/big.bin", os.path.expanduser("~/big.bin"), "/run/kernel/big.bin"]:
    print(place, fill(place, 24))
for place in ["/big.bin", "/env/venv/big.bin", "/dev/big.bin", "/run/big.bin"]:
    print(place, fill(place, 1))
"""


def test_every_writable_place_is_a_capped_tmpfs(submitted, host_tmp):
    result = sandbox.run_code(FILL, submitted=str(submitted), tmp_mb=8, work_mb=8, max_processes=64)
    out = result["output"]
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    for place in ("big.bin", "/tmp/big.bin", "/dev/shm/big.bin", "/home/student/big.bin"):
        written, *error = lines[place].split()
        assert int(written) <= 8 and error[-1] == "28", (place, out)  # ENOSPC: the tmpfs is full
    assert int(lines["/run/kernel/big.bin"].split()[0]) <= 1, out
    for place in ("/big.bin", "/env/venv/big.bin", "/dev/big.bin", "/run/big.bin"):
        assert lines[place].startswith("0 ") and " ok" not in lines[place], (place, out)
    used = result["resources"]
    assert used["disk_peak_mb"]["tmp"] >= 7 and "disk:/tmp" in used["limits_hit"], used
    assert not host_leftovers(host_tmp), "the sandbox left files on the grader's disk"


TREES = r"""
import os
base = os.getcwd()
os.mkdir("deep")
os.chdir("deep")
for _ in range(3000):
    os.mkdir("d")
    os.chdir("d")
os.chdir(base)
os.mkdir("/tmp/wide")
for i in range(20000):
    open(f"/tmp/wide/{i}", "w").close()
for name in ["new\nline", "back\\slash", " space ", "-dash", "..dots", "\u00e9t\u00e9", "tab\there"]:
    os.mkdir(name)
    open(os.path.join(name, name), "w").write(name)
os.mkdir(b"\xff\xfe".decode("utf-8", "surrogateescape"))
os.makedirs("locked/inner")
open("locked/inner/f", "w").write("x")
os.chmod("locked/inner", 0)
os.chmod("locked", 0)
os.makedirs(os.path.expanduser("~/locked/inner"))
os.chmod(os.path.expanduser("~/locked"), 0)
print("made")
"""


def test_deep_wide_odd_and_unreadable_trees_leave_nothing_behind(submitted, host_tmp):
    result = sandbox.run_code(TREES, submitted=str(submitted), max_processes=64, timeout=120)
    assert result["status"] == "ok" and "made" in result["output"], result
    assert not host_leftovers(host_tmp), "the sandbox left files on the grader's disk"
    assert (submitted / "notes.txt").read_text() == "mine" and sorted(os.listdir(submitted)) == ["notes.txt"]


PATHS = """
import os
print("MOUNTINFO", open("/proc/self/mountinfo").read().replace("\\n", " | "))
print("ENVIRON", dict(os.environ))
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    print("CMDLINE", open(f"/proc/{pid}/cmdline").read().replace("\\0", " "))
    print("CWD", os.readlink(f"/proc/{pid}/cwd"))
import sys
print("PYTHON", sys.executable, sys.prefix, sys.path)
"""


def test_no_host_path_is_visible_inside(submitted):
    result = sandbox.run_code(PATHS, submitted=str(submitted), course_root=str(REPO), max_processes=64)
    out = result["output"]
    assert result["status"] == "ok", out
    hosts = {str(REPO), str(submitted), tempfile.gettempdir() + "/sandbox-", os.path.realpath(os.sys.prefix),
             os.path.realpath(os.sys.base_prefix)}
    mounts = [line for line in out.split("MOUNTINFO ", 1)[1].split("\n", 1)[0].split(" | ") if line.strip()]
    for line in mounts:
        fields = line.split()
        assert not any(host in fields[4] for host in hosts), line  # every mount point is neutral
        if any(host in fields[3] for host in hosts):  # a bind's source shows only for the environment's binds
            assert fields[4] in (f"{sandbox.ENV_ROOT}/venv", f"{sandbox.ENV_ROOT}/python"), line
    rest = "\n".join(line for line in out.splitlines() if not line.startswith("MOUNTINFO"))
    assert not [host for host in hosts if host in rest], rest


def test_the_resource_record_names_what_the_sandbox_made_harmless(submitted):
    code = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
startup = os.path.expanduser("~/.ipython/profile_default/startup")
os.makedirs(startup, exist_ok=True)
open(os.path.join(startup, "00-evil.py"), "w").write("print('evil')")
time.sleep(0.5)
print("done")
"""
    result = sandbox.run_code(code, submitted=str(submitted), max_processes=64)
    used = result["resources"]
    assert used["detached"] and "sleep(60)" in used["detached"][0], used
    assert ".ipython/profile_default/startup/00-evil.py" in used["written_outside"], used
    assert used["cpu_seconds"] > 0 and used["memory_peak_mb"] > 10 and used["processes_peak"] >= 1, used


cgroup_needed = pytest.mark.skipif(cgroups.parent() is None, reason="no cgroup can be made on this machine")

CHILDREN = """
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(150 * 2**20)  # each child under the per-process cap, together over the sandbox's
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(2)
        finally:
            os._exit(0)
    pids.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in pids]
print("killed", sum(1 for code in codes if os.WIFSIGNALED(code)))
"""


@cgroup_needed
def test_the_cgroup_bounds_the_memory_of_all_processes(submitted):
    result = sandbox.run_code(CHILDREN, submitted=str(submitted), memory_mb=1024, sandbox_memory_mb=400,
                              max_processes=64, timeout=120)
    used = result["resources"]
    assert used["cgroup"] in ("v1", "v2") and "memory" in used["limits_hit"], (result["output"], used)
    assert used["memory_peak_mb"] <= 400, used


FORK_BOMB = """
import os, time
made = 0
try:
    while made < 500:
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        made += 1
except OSError as error:
    print("refused after", made, type(error).__name__)
"""


@cgroup_needed
def test_the_cgroup_bounds_processes(submitted):
    result = sandbox.run_code(FORK_BOMB, submitted=str(submitted), max_processes=50, timeout=120)
    assert "refused after" in result["output"] and int(result["output"].split()[2]) < 50, result
    assert "processes" in result["resources"]["limits_hit"] and result["leftover"] == []


def test_without_a_cgroup_the_per_process_limits_apply_and_say_so(submitted, monkeypatch):
    monkeypatch.setenv("COURSETOOLS_NO_CGROUP", "1")
    monkeypatch.setattr(cgroups, "_FOUND", [])
    result = sandbox.run_code("import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC)[0])",
                              submitted=str(submitted), max_processes=64)
    assert result["resources"]["cgroup"] is None
    assert result["output"].strip() == "64", result


# ----------------------------------------------------------------------------- the class run

RESOURCE_SPECS = sorted(REPO.glob("submissions/hostile_resource_*.toml"))


def test_nothing_of_the_resource_attackers_is_left_and_each_limit_is_named(graded_course):
    """Graded in one run with hostile_sandbox_victim (whose exact scores tests/test_corpus.py asserts): each attacker
    has a resource record naming the limit it reached, and nothing it wrote is on the grader's disk."""
    from coursetools.autograde.outcomes import load_outcomes, resource_records
    from coursetools.core.spec import load_spec
    outcomes = load_outcomes(graded_course.course)
    for path in RESOURCE_SPECS:
        record = resource_records(outcomes[path.stem])["01_recap_and_motivation"]
        assert {"memory_peak_mb", "cpu_seconds", "processes_peak", "disk_peak_mb", "limits_hit"} <= set(record)
        if any(flag["kind"] == "resource_limit" for flag in load_spec(path)["flag"]):
            assert record["limits_hit"], f"{path.stem}: no limit named in {record}"
    written = ("fill0.bin", "hoard", "deep", "wide", "00-tree.py", "bottom.txt")
    for folder in (graded_course.course.root, pathlib.Path(tempfile.gettempdir())):
        for name in written:
            found = [p for p in folder.glob(f"**/{name}") if "submissions" not in p.parts][:3] \
                if folder == graded_course.course.root else list(folder.glob(f"sandbox-*/**/{name}"))[:3]
            assert not found, f"the attackers left {found} on the grader's disk"
