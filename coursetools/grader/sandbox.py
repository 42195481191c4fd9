"""Each graded notebook's kernel in a bubblewrap sandbox of its own (docs/grading-guarantees.md).

``ResilientExecute`` starts every kernel through ``SandboxedKernelManager``. The kernel runs
under ``bwrap`` as an unprivileged user (uid 65534) with its own user, PID, IPC, UTS and
network namespaces, and ``--die-with-parent``. What it sees:

* ``/home/student/<assignment>`` (its working folder): a fresh copy of the student's
  *submitted* folder, made for this notebook alone and deleted afterwards, so one notebook
  cannot change what the next one sees. The assignment's shipped files (the checks module,
  the data loader, the plotting module, the digits) are bound over it read-only from the
  grader's own copy in ``source/``, never the student's.
* The system (``/usr``, ``/etc``), the Python environment and its interpreter: read-only.
* A throw-away ``HOME`` and ``/tmp`` (size-capped tmpfs).
* One folder of Unix sockets: the kernel and the grader talk over Jupyter's ``ipc``
  transport, so the kernel needs no network at all (only its own loopback exists).
* NVIDIA device files where they exist, so hidden tests still reach CUDA.

It does not see the course (``source/``, the gradebook, ``nbgrader_config.py``, the tools),
other students' folders, the autograded copy of its own notebook (which holds the hidden
tests), the exchange, or any other process. Limits set inside before the kernel starts
(``prlimit``): data segment (memory), number of processes and threads, size of one file.

When the kernel ends, the sandbox's PID 1 ends and the Linux kernel kills every process
left in its PID namespace; ``cleanup_resources`` then checks that none is left (and
kills and reports any that are).
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from jupyter_client.manager import AsyncKernelManager

SANDBOX_USER = 65534          # "nobody"
SANDBOX_HOME = "/home/student"
ENV_KEPT = ("PATH", "LANG", "LANGUAGE", "TZ", "NBGRADER_EXECUTION", "LD_LIBRARY_PATH", "PYTHONHASHSEED", "PYTHONPATH",
            "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "CUDA_")  # numeric libraries' settings only
FIX = ("Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and make sure unprivileged user "
       "namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also "
       "kernel.apparmor_restrict_unprivileged_userns=0). To grade without a sandbox anyway, pass "
       "--no-sandbox: the student's code then runs with your file access, and the report says so.")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start on this machine; the message says why and how to fix it."""


def system_binds():
    """bwrap arguments for the read-only system."""
    args = []
    for top in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args + ["--ro-bind-try", "/sys", "/sys"]


def _overlaps(path, other):
    path, other = pathlib.Path(path), pathlib.Path(other)
    return path == other or path.is_relative_to(other) or other.is_relative_to(path)


def python_binds(course_root=None):
    """bwrap arguments for the Python environment, read-only: the interpreter, the virtual environment,
    and the folders of PYTHONPATH and LD_LIBRARY_PATH, except any that holds (or is in) the course."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    searched = set()
    for variable in ("PYTHONPATH", "LD_LIBRARY_PATH"):
        searched.update(d for d in os.environ.get(variable, "").split(os.pathsep) if d)
    if course_root:
        searched = {d for d in searched if not _overlaps(os.path.realpath(d), os.path.realpath(course_root))}
    args = []
    for path in sorted(roots | searched):
        if os.path.isdir(path) and not os.path.realpath(path).startswith(("/usr/", "/etc/", "/opt/")):
            for name in dict.fromkeys((path, os.path.realpath(path))):  # the path and where a link leads
                args += ["--ro-bind", name, name]
    return args


def gpu_binds():
    """bwrap arguments binding NVIDIA's device files, where there are any."""
    args = []
    for name in sorted(os.listdir("/dev")) if os.path.isdir("/dev") else []:
        if name.startswith("nvidia") or name == "dri":
            args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    return args


def limits_command(memory_mb=0, processes=0, file_mb=0):
    """``prlimit`` arguments that set the kernel's limits before it starts (empty: none)."""
    limits = {"data": memory_mb * 1024 * 1024, "nproc": processes, "fsize": file_mb * 1024 * 1024}
    args = [f"--{name}={value}" for name, value in limits.items() if value]
    return ["prlimit", *args, "--"] if args else []


_PIDS_PARENT = []


def pids_cgroup_parent():
    """A cgroup folder (pids controller) under which each sandbox gets a group of its own, or None.

    RLIMIT_NPROC does not bind a process whose user is root outside its user namespace, so a
    grader running as root caps the sandbox's processes and threads with a pids cgroup instead
    (cgroup v1's pids hierarchy, or cgroup v2 with the pids controller). A grader that is not
    root needs none: RLIMIT_NPROC then counts the processes of each sandbox's own namespace."""
    if _PIDS_PARENT:
        return _PIDS_PARENT[0]
    found = None
    if os.geteuid() == 0:
        v1, v2 = pathlib.Path("/sys/fs/cgroup/pids"), pathlib.Path("/sys/fs/cgroup")
        try:
            if v1.is_dir() and os.access(v1, os.W_OK):
                found = v1 / "coursetools-sandbox"
                found.mkdir(exist_ok=True)
            elif "pids" in (v2 / "cgroup.controllers").read_text().split() and os.access(v2, os.W_OK):
                found = v2 / "coursetools-sandbox"
                found.mkdir(exist_ok=True)
                if "pids" not in (found / "cgroup.subtree_control").read_text().split():
                    (found / "cgroup.subtree_control").write_text("+pids")
        except OSError:
            found = None
    _PIDS_PARENT.append(found)
    return found


def kernel_environment(environ=None, course_root=None):
    """The kernel's environment: HOME and /tmp of its own, and only the numeric libraries' settings."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k in ENV_KEPT or k.startswith(ENV_PREFIXES)}
    if env.get("PYTHONPATH") and course_root:  # the course itself stays out of sight
        env["PYTHONPATH"] = os.pathsep.join(d for d in env["PYTHONPATH"].split(os.pathsep)
                                            if d and not _overlaps(os.path.realpath(d), os.path.realpath(course_root)))
    env.update(HOME=SANDBOX_HOME, TMPDIR="/tmp", USER="student", LOGNAME="student",
               MPLCONFIGDIR="/tmp/matplotlib", PYTHONDONTWRITEBYTECODE="1",
               JPY_PARENT_PID="1")  # the sandbox's PID 1 is the kernel's parent, and lives exactly as long
    env.setdefault("PATH", "/usr/bin:/bin")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


def bwrap_command(command, workdir, shipped, sockets, tmp_mb=512, limits=(), extra=(), course_root=None):
    """The bwrap command line that runs ``command`` in the sandbox.

    ``workdir``: the host folder bound read-write as the kernel's working folder;
    ``shipped``: {relative path: trusted host path} bound read-only over it;
    ``sockets``: the host folder of the ipc sockets and the connection file, bound at the same path.
    """
    inside = f"{SANDBOX_HOME}/{pathlib.Path(workdir).name}"
    args = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--disable-userns",
            "--uid", str(SANDBOX_USER), "--gid", str(SANDBOX_USER), "--hostname", "sandbox",
            *system_binds(), "--proc", "/proc", "--dev", "/dev", *gpu_binds(),
            "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
            "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", SANDBOX_HOME,
            *python_binds(course_root), "--bind", str(workdir), inside]
    for relative, trusted in sorted(shipped.items()):
        args += ["--ro-bind", str(trusted), f"{inside}/{relative}"]
    args += ["--bind", str(sockets), str(sockets), "--chdir", inside, "--clearenv"]
    for key, value in sorted(kernel_environment(course_root=course_root).items()):
        args += ["--setenv", key, value]
    return [*args, *extra, *limits, *command]


def shipped_files(source_folder, ignore=("*.ipynb", "__pycache__", "*.pyc", ".ipynb_checkpoints")):
    """{relative path: path} of the assignment's files other than notebooks, from the grader's copy.

    Folders (the digits) are bound whole; the student's versions of these files are never used."""
    import fnmatch
    source_folder = pathlib.Path(source_folder)
    shipped = {}
    for path in sorted(source_folder.iterdir()) if source_folder.is_dir() else []:
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in ignore) or path.is_symlink():
            continue
        shipped[path.name] = path.resolve()
    return shipped


def copy_submission(submitted, target):
    """A fresh copy of the student's submitted folder (links kept as links, never followed)."""
    target = pathlib.Path(target)
    if pathlib.Path(submitted).is_dir():
        shutil.copytree(submitted, target, symlinks=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    else:
        target.mkdir(parents=True)
    target.chmod(0o777)  # the sandbox user writes here; the folder is private to this kernel anyway
    for path in target.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o777 if path.is_dir() else 0o666)
    return target


_CHECKED = {}


def check_available():
    """Raise SandboxUnavailable (with the fix) unless bwrap can start a sandbox here."""
    key = (shutil.which("bwrap"), shutil.which("prlimit"))
    if key in _CHECKED:
        if _CHECKED[key]:
            raise SandboxUnavailable(_CHECKED[key])
        return
    problem = ""
    if not key[0]:
        problem = "bubblewrap (bwrap) is not installed."
    elif not key[1]:
        problem = "prlimit (util-linux) is not installed."
    else:
        with tempfile.TemporaryDirectory() as folder:
            probe = bwrap_command([sys.executable, "-c", "pass"], folder, {}, folder, tmp_mb=8)
            try:
                result = subprocess.run(probe, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as error:
                problem = f"bwrap could not run: {error}"
            else:
                if result.returncode:
                    problem = f"bwrap could not start a sandbox: {result.stderr.strip()[-500:]}"
    _CHECKED[key] = f"The grading sandbox cannot start: {problem} {FIX}" if problem else ""
    if problem:
        raise SandboxUnavailable(_CHECKED[key])


def pid_namespace(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _alive(pid):
    """Whether a process exists and is not a zombie (a zombie runs nothing; its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def processes_in(namespace):
    """Pids of the live processes (seen from here) in the PID namespace ``namespace``."""
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and pid_namespace(entry) == namespace and _alive(entry)]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside bubblewrap, reached over ipc sockets.

    Set ``submitted`` (the student's submitted folder), ``source`` (the assignment's trusted
    source folder) and the limits before the kernel starts."""

    submitted = None
    source = None
    course_root = None
    memory_mb = 0
    max_processes = 0
    max_file_mb = 0
    tmp_mb = 512
    _scratch = None
    _namespace = None
    _cgroup = None
    leftover = ()

    async def _async_pre_start_kernel(self, **kw):
        check_available()
        self._scratch = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-"))
        self._scratch.chmod(0o711)
        sockets = self._scratch / "ipc"
        sockets.mkdir(mode=0o777)
        sockets.chmod(0o777)
        self.transport = "ipc"
        self.connection_file = str(sockets / "kernel.json")
        self.ip = str(sockets / "k")
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        os.chmod(self.connection_file, 0o644)
        # interrupt through a message: a signal from here would not cross into the new session
        self.kernel_spec.interrupt_mode = "message"
        return kernel_cmd, kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        assignment = pathlib.Path(kw.pop("cwd", None) or self.submitted or "work").name
        workdir = copy_submission(self.submitted, self._scratch / assignment) if self.submitted \
            else self._scratch / assignment
        workdir.mkdir(exist_ok=True)
        info_read, info_write = os.pipe()
        join, nproc = self._process_cap()
        limits = limits_command(self.memory_mb, nproc, self.max_file_mb)
        command = join + bwrap_command(kernel_cmd, workdir, shipped_files(self.source) if self.source else {},
                                       self._scratch / "ipc", self.tmp_mb, limits,
                                       ["--info-fd", str(info_write)], course_root=self.course_root)
        kw["cwd"] = str(self._scratch)
        kw["pass_fds"] = (info_write,)
        kw["close_fds"] = True
        try:
            connection_info = await super()._async_launch_kernel(command, **kw)
        finally:
            os.close(info_write)
        self._namespace = self._read_namespace(info_read)
        return connection_info

    def _process_cap(self):
        """(a command prefix that joins a pids cgroup of this sandbox's own, the RLIMIT_NPROC to set)."""
        if not self.max_processes:
            return [], 0
        parent = pids_cgroup_parent()
        if parent is None:
            return [], self.max_processes
        group = parent / self._scratch.name
        group.mkdir()
        (group / "pids.max").write_text(str(self.max_processes))
        self._cgroup = group
        # the shell joins the group and becomes bwrap: every process of the sandbox is born inside it
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs")], 0

    def _read_namespace(self, info_read):
        """The sandbox's PID namespace, from bwrap's --info-fd (its PID 1 as seen from here)."""
        data = b""
        try:
            os.set_blocking(info_read, False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    chunk = os.read(info_read, 4096)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                if not chunk:
                    break
                data += chunk
                if b"}" in data:
                    break
        finally:
            os.close(info_read)
        try:
            return pid_namespace(json.loads(data.decode())["child-pid"])
        except (ValueError, KeyError, UnicodeDecodeError):
            return None

    async def _async_cleanup_resources(self, restart=False):
        self._reap()
        await super()._async_cleanup_resources(restart=restart)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    cleanup_resources = _async_cleanup_resources

    def _reap(self):
        """Make sure no process of the sandbox is left; remember (and kill) any that is."""
        deadline = time.monotonic() + 5
        left = processes_in(self._namespace) if self._namespace else []
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = processes_in(self._namespace)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.leftover = tuple(left)
        self._namespace = None
        if self._cgroup is not None:
            for _ in range(100):  # the group can go once its last (killed) task is gone
                try:
                    self._cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
            self._cgroup = None


PROBE = r"""
import json, os, socket, sys
seen = {"uid": os.getuid(), "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "cwd": os.getcwd(), "home": os.environ.get("HOME")}
seen["hidden"] = {path: os.path.exists(path) for path in json.loads(os.environ.get("_PROBE_PATHS", "[]"))}
try:
    socket.create_connection(("127.0.0.1", int(os.environ.get("_PROBE_PORT", "9"))), timeout=2)
    seen["network"] = "reachable"
except OSError as error:
    seen["network"] = type(error).__name__
try:
    open(os.path.join(sys.prefix, "sandbox-probe.pth"), "w")
    seen["environment"] = "writable"
except OSError:
    seen["environment"] = "read-only"
try:
    import torch
    seen["cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
except Exception as error:
    seen["cuda"] = f"{type(error).__name__}: {error}"
print(json.dumps(seen))
"""


async def _run_async(code, settings, timeout):
    km = SandboxedKernelManager(kernel_name="python3")
    for key, value in settings.items():
        setattr(km, key, value)
    text = []

    def collect(message):
        if message["msg_type"] == "stream":
            text.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            text.append(f"{message['content']['ename']}: {message['content']['evalue']}\n")

    await km.start_kernel(cwd=settings.get("submitted") or None)
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        reply = await client.execute_interactive(code, timeout=timeout, output_hook=collect)
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)
        await km.cleanup_resources()
    return {"output": "".join(text), "status": reply["content"]["status"], "leftover": list(km.leftover)}


def run_code(code, timeout=300, **settings):
    """Run ``code`` in one sandboxed kernel and return {output, status, leftover}.

    ``settings`` are SandboxedKernelManager attributes (submitted, source, course_root, memory_mb,
    max_processes, max_file_mb). For tests and for the probe below."""
    import asyncio
    return asyncio.run(_run_async(code, settings, timeout))


def probe(paths=()):
    """What one sandboxed kernel sees (a dict): its uid and processes, whether ``paths`` exist, whether
    a port listening here can be reached, whether the environment is writable, CUDA."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as folder:
            setup = f"import os; os.environ.update(_PROBE_PATHS={json.dumps(json.dumps([str(p) for p in paths]))}, " \
                    f"_PROBE_PORT='{listener.getsockname()[1]}')\n"
            result = run_code(setup + PROBE, submitted=folder, max_processes=256)
    finally:
        listener.close()
    lines = result["output"].strip().splitlines()
    seen = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"output": result["output"]}
    seen.update(status=result["status"], left_after_shutdown=result["leftover"])
    return seen


if __name__ == "__main__":  # python -m coursetools.grader.sandbox: can this machine sandbox the grading?
    check_available()
    course = [os.path.join(os.getcwd(), name) for name in ("nbgrader_config.py", "source", "gradebook.db", "submitted",
                                                          "coursetools")]
    found = probe([path for path in course if os.path.exists(path)])  # run it in the course root
    print(json.dumps(found, indent=1))
    isolated = (found.get("uid") == SANDBOX_USER and found.get("network") != "reachable"
                and found.get("environment") == "read-only" and not any(found.get("hidden", {}).values())
                and not found.get("left_after_shutdown"))
    print("sandbox: isolated" if isolated else "sandbox: NOT isolated")
    gpu = bool(gpu_binds())
    if gpu:  # NVIDIA devices here: the hidden tests must reach them from inside
        print(f"sandbox: CUDA {'reachable: ' + str(found.get('cuda')) if found.get('cuda') else 'NOT reachable'}")
    sys.exit(0 if isolated and (found.get("cuda") or not gpu) else 1)
