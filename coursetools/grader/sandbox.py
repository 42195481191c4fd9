"""Each graded notebook's kernel in a bubblewrap sandbox of its own (docs/grading-guarantees.md).

``ResilientExecute`` starts every kernel through ``SandboxedKernelManager``. The kernel runs
under ``bwrap`` as an unprivileged user (uid 65534) with its own user, PID, IPC, UTS, cgroup and
network namespaces, and ``--die-with-parent``. What it sees, all at fixed neutral paths:

* ``/home/student/<assignment>`` (its working folder): a size-capped tmpfs holding a fresh copy of
  the student's *submitted* folder, made for this notebook alone, so one notebook cannot change
  what the next one sees. The assignment's shipped files (the checks module, the data loader, the
  plotting module, the digits) are copied over it read-only from the grader's own copy in
  ``source/``, never the student's.
* The system (``/usr``, ``/etc``) read-only; the Python environment at ``/env/venv`` and its
  interpreter at ``/env/python``, read-only.
* ``HOME``, ``/tmp``, ``/dev/shm`` and the socket folder ``/run/kernel``: size-capped tmpfs mounts.
  Everything else is read-only, so nothing the notebook writes lands on the grader's disk, and it
  all vanishes with the sandbox's mount namespace (no clean-up that a deep tree could break).
* The kernel and the grader talk over Jupyter's ``ipc`` transport: the sockets are in the
  sandbox's ``/run/kernel``, which the grader reaches as ``/proc/<sandbox pid>/root/run/kernel``;
  the kernel needs no network at all (only its own loopback exists).
* NVIDIA device files where they exist, so hidden tests still reach CUDA.

Every file the sandbox gets is handed to bwrap as an open file descriptor and copied in, and bwrap
reads its arguments from a descriptor, so no host path shows in ``/proc`` or ``mountinfo`` except
the sources of the environment's read-only binds. Limits: a cgroup of the sandbox's own where one
can be made (``coursetools.grader.cgroups``: memory of all its processes and tmpfs pages,
processes and threads, an equal CPU weight), and per process (``prlimit``): data segment, number
of processes where no cgroup counts them, size of one file.

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


from coursetools.grader import cgroups, record, recorder
from coursetools.grader.sandboxfs import (  # noqa: F401 - the names the grader and the tests use
    ENV_ROOT, MAX_COPIED, SANDBOX_HOME, SANDBOX_USER, SOCKETS, Mounts, PythonLayout, _more_descriptors, _overlaps,
    _walk, gpu_binds, kernel_environment, sandbox_mounts, system_binds)

FIX = ("Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and make sure unprivileged user "
       "namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also "
       "kernel.apparmor_restrict_unprivileged_userns=0). To grade without a sandbox anyway, pass "
       "--no-sandbox: the student's code then runs with your file access, and the report says so.")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start on this machine; the message says why and how to fix it."""


def limits_command(memory_mb=0, processes=0, file_mb=0):
    """``prlimit`` arguments that set the kernel's limits before it starts (empty: none)."""
    limits = {"data": memory_mb * 1024 * 1024, "nproc": processes, "fsize": file_mb * 1024 * 1024}
    args = [f"--{name}={value}" for name, value in limits.items() if value]
    return ["prlimit", *args, "--"] if args else []


def bwrap_command(m, command, workdir, submitted=None, shipped=None, tmp_mb=512, work_mb=512, limits=(),
                  extra=(), course_root=None, connection=None):
    """The bwrap command line that runs ``command`` in the sandbox: ``["bwrap", "--args", FD, *command]``,
    every option in the descriptor (``m`` holds it), so /proc shows no host path."""
    layout = PythonLayout(course_root)
    args = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--disable-userns",
            "--uid", str(SANDBOX_USER), "--gid", str(SANDBOX_USER), "--hostname", "sandbox"]
    m.args += args
    sandbox_mounts(m, workdir, submitted, shipped or {}, tmp_mb, work_mb, layout, connection)
    m.args += ["--chdir", workdir, "--clearenv"]
    for key, value in sorted(kernel_environment(layout=layout).items()):
        m.args += ["--setenv", key, value]
    command = list(command)
    if command and (command[0] == sys.executable or command[0] in ("python", "python3")):
        command[0] = layout.python()
    m.args += [*extra]
    # options come from the descriptor; the command (neutral paths only) must follow on the command line
    return ["bwrap", "--args", m.fd(data=b"\0".join(a.encode() for a in m.args) + b"\0"), *limits, *command]


def shipped_files(source_folder, ignore=("*.ipynb", "__pycache__", "*.pyc", ".ipynb_checkpoints")):
    """{relative path: path} of the assignment's files other than notebooks, from the grader's copy.

    Folders (the digits) are copied whole; the student's versions of these files are never used."""
    import fnmatch
    source_folder = pathlib.Path(source_folder)
    shipped = {}
    for path in sorted(source_folder.iterdir()) if source_folder.is_dir() else []:
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in ignore) or path.is_symlink():
            continue
        shipped[path.name] = path.resolve()
    return shipped


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
        m = Mounts()
        try:
            probe = bwrap_command(m, [sys.executable, "-c", "pass"], f"{SANDBOX_HOME}/probe", tmp_mb=8)
            result = subprocess.run(probe, capture_output=True, text=True, timeout=60, pass_fds=m.fds)
        except (OSError, subprocess.TimeoutExpired) as error:
            problem = f"bwrap could not run: {error}"
        else:
            if result.returncode:
                problem = f"bwrap could not start a sandbox: {result.stderr.strip()[-500:]}"
        finally:
            m.close()
    _CHECKED[key] = f"The grading sandbox cannot start: {problem} {FIX}" if problem else ""
    if problem:
        raise SandboxUnavailable(_CHECKED[key])


def pid_namespace(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _stat(pid):
    """(state, ppid, session) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid):
    """Whether a process exists and is not a zombie (a zombie runs nothing; its parent reaps it)."""
    stat = _stat(pid)
    return bool(stat) and stat[0] != "Z"


def processes_in(namespace):
    """Pids of the live processes (seen from here) in the PID namespace ``namespace``."""
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and pid_namespace(entry) == namespace and _alive(entry)]


# HOME files IPython itself keeps; anything else new in HOME was written outside the work copy
IPYTHON_OWN = (".ipython/profile_default/history.sqlite", ".ipython/profile_default/db",
               ".ipython/profile_default/log", ".ipython/profile_default/pid", ".ipython/profile_default/security",
               ".cache/")  # libraries' caches (fontconfig)


class SandboxedKernelManager(record.RecordingKernelManager):
    """A kernel manager that starts the kernel inside bubblewrap, reached over ipc sockets.

    Set ``submitted`` (the student's submitted folder), ``source`` (the assignment's trusted
    source folder) and the limits before the kernel starts. ``resources()`` says what the sandbox
    used and which limit it reached."""

    submitted = None
    source = None
    course_root = None
    memory_mb = 0
    max_processes = 0
    max_file_mb = 0
    tmp_mb = 512
    work_mb = 512
    sandbox_memory_mb = 0
    _scratch = None
    _namespace = None
    _sandbox_init = None
    _final = None
    _group = None
    _workdir = None
    leftover = ()

    async def _async_pre_start_kernel(self, **kw):
        check_available()
        self._scratch = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-"))  # only the connection file
        self._usage = {"disk_peak_mb": {}, "processes_peak": 0, "limits_hit": [], "detached": [],
                       "written_outside": []}
        self._home_before = None
        self.transport = "ipc"
        self.connection_file = str(self._scratch / "kernel.json")
        self.ip = f"{SOCKETS}/k"  # the kernel's view; the grader's is set once the sandbox runs
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        # interrupt through a message: a signal from here would not cross into the new session
        self.kernel_spec.interrupt_mode = "message"
        return kernel_cmd, kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        assignment = pathlib.Path(kw.pop("cwd", None) or self.submitted or "work").name
        self._workdir = f"{SANDBOX_HOME}/{assignment}"
        kernel_cmd = [f"{SOCKETS}/kernel.json" if part == self.connection_file else part for part in kernel_cmd]
        info_read, info_write = os.pipe()
        nproc = self._make_group()
        limits = limits_command(self.memory_mb, nproc, self.max_file_mb)
        m = Mounts()
        pipe = self.open_record()   # handed over below, by RecordingKernelManager
        try:
            submitted = self.submitted if self.submitted and os.path.isdir(self.submitted) else None
            _more_descriptors(MAX_COPIED + 256)
            command = bwrap_command(m, kernel_cmd, self._workdir, submitted,
                                    shipped_files(self.source) if self.source else {}, self.tmp_mb, self.work_mb,
                                    limits, ["--info-fd", str(info_write), "--setenv", recorder.RECORD_FD,
                                             str(pipe.write_fd)], course_root=self.course_root,
                                    connection=self.connection_file)
            if self._group is not None:  # the shell joins the group and becomes bwrap: all the sandbox is inside
                files = self._group.procs_files()
                command = ["/bin/sh", "-c", 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; '
                           'shift; n=$((n-1)); done; exec "$@"', "sh", str(len(files)), *files, *command]
            kw["cwd"] = str(self._scratch)
            kw["pass_fds"] = (info_write, *m.fds)
            kw["close_fds"] = True
            connection_info = await super()._async_launch_kernel(command, **kw)
        finally:
            os.close(info_write)
            m.close()
        self._sandbox_init = self._read_init(info_read)
        self._namespace = pid_namespace(self._sandbox_init) if self._sandbox_init else None
        if self._sandbox_init:  # the grader reaches the sockets through the sandbox's root
            self.ip = f"{self._root_link()}{SOCKETS}/k"
        return connection_info

    def _root_link(self):
        """/proc/<pid>/root of the sandbox: its init's, or (where a setuid bwrap's init cannot be looked
        into) the kernel's, once it has started."""
        init = self._sandbox_init
        deadline = time.monotonic() + 10
        while not os.access(f"/proc/{init}/root/", os.X_OK) and time.monotonic() < deadline:
            kernel = next((p for p in processes_in(pid_namespace(init)) if (_stat(p) or (0, 0))[1] == init), None)
            if kernel and os.access(f"/proc/{kernel}/root/", os.X_OK):
                return f"/proc/{kernel}/root"
            time.sleep(0.02)
        return f"/proc/{init}/root"

    def _make_group(self):
        """Make this sandbox's cgroup where one can be made; return the RLIMIT_NPROC still to set."""
        self._group = cgroups.Group.make(self._scratch.name, self.sandbox_memory_mb, self.max_processes)
        return 0 if self._group is not None else self.max_processes

    @property
    def cgroup(self):
        """"v1", "v2", or None when the sandbox has only per-process limits."""
        return f"v{self._group.version}" if self._group is not None else None

    def _read_init(self, info_read):
        """The sandbox's PID 1 as seen from here, from bwrap's --info-fd."""
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
            return int(json.loads(data.decode())["child-pid"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    # --- what the sandbox used

    def _inside(self, path):
        return f"/proc/{self._sandbox_init}/root{path}"

    def _writable(self):
        return {"work": self._workdir, "home": SANDBOX_HOME, "tmp": "/tmp", "shm": "/dev/shm", "sockets": SOCKETS}

    def sample(self):
        """Note the sandbox's disk and processes now (the grader calls this after every cell)."""
        if not self._sandbox_init or not _alive(self._sandbox_init) or not hasattr(self, "_usage"):
            return
        usage = self._usage
        for name, path in self._writable().items():
            try:
                stat = os.statvfs(self._inside(path))
            except OSError:
                continue
            used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize / 2**20
            usage["disk_peak_mb"][name] = round(max(used, usage["disk_peak_mb"].get(name, 0)), 1)
            if stat.f_bavail == 0 or stat.f_favail == 0:
                self._hit(f"disk:{path}")
        pids = processes_in(self._namespace) if self._namespace else []
        usage["processes_peak"] = max(usage["processes_peak"], len(pids) - 1)  # the sandbox's init left out
        kernel = self._kernel_pid()
        session = (_stat(kernel) or (0, 0, None))[2] if kernel else None
        for pid in pids:
            stat = _stat(pid)
            if pid in (self._sandbox_init, kernel) or stat is None:
                continue
            if stat[1] == self._sandbox_init or stat[2] != session:  # orphaned, or in a session of its own
                name = _comm(pid)
                if name not in usage["detached"]:
                    usage["detached"].append(name)
        work = os.path.relpath(self._workdir, SANDBOX_HOME)
        home = [p for p in _walk(self._inside(SANDBOX_HOME), skip=(work,))
                if not p.endswith("/") and not p.startswith(IPYTHON_OWN)]
        if self._home_before is None:
            self._home_before = set(home)
        for path in home:
            if path not in self._home_before and path not in usage["written_outside"] and \
                    len(usage["written_outside"]) < 20:
                usage["written_outside"].append(path)
        self._cpu_fallback(kernel)

    def _hit(self, limit):
        if limit not in self._usage["limits_hit"]:
            self._usage["limits_hit"].append(limit)

    def _kernel_pid(self):
        process = getattr(getattr(self, "provisioner", None), "process", None)
        pid = getattr(process, "pid", None)
        # the launched process is the shell or bwrap; the kernel is the sandbox's PID 2 (the init's child)
        for candidate in processes_in(self._namespace) if self._namespace else []:
            stat = _stat(candidate)
            if stat and stat[1] == self._sandbox_init:
                return candidate
        return pid

    def _cpu_fallback(self, kernel):
        """Without a cgroup: the kernel's CPU (its reaped children included) and its peak memory, per process."""
        if self._group is not None or not kernel:
            return
        try:
            fields = pathlib.Path(f"/proc/{kernel}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            status = pathlib.Path(f"/proc/{kernel}/status").read_text()
            peak = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        except (OSError, ValueError, IndexError):
            return
        self._usage["cpu_seconds"] = round(ticks, 2)
        self._usage["memory_peak_mb"] = round(max(peak / 1024, self._usage.get("memory_peak_mb", 0)), 1)

    def resources(self):
        """{cgroup, memory_peak_mb, cpu_seconds, processes_peak, disk_peak_mb, limits_hit, detached,
        written_outside}: what this sandbox used, as far as it could be measured."""
        if self._group is None and self._final is not None:
            return dict(self._final)
        usage = dict(getattr(self, "_usage", {}) or {})
        usage["cgroup"] = self.cgroup
        if self._group is not None:
            measured = self._group.usage()
            usage["limits_hit"] = list(dict.fromkeys(measured.pop("limits_hit") + usage.get("limits_hit", [])))
            usage["processes_peak"] = max(measured.pop("processes_peak"), usage.get("processes_peak", 0))
            usage.update(measured)
        return usage

    async def _async_shutdown_kernel(self, now=False, restart=False):
        self.sample()  # the last look at the tmpfs mounts: they go with the kernel
        await super()._async_shutdown_kernel(now=now, restart=restart)

    shutdown_kernel = _async_shutdown_kernel

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
        if self._group is not None:
            self._final = self.resources()
            self._group.remove()
            self._group = None


def _comm(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
    except OSError:
        return "?"


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
        km.sample()  # what HOME holds before the code runs
        reply = await client.execute_interactive(code, timeout=timeout, output_hook=collect)
        km.sample()
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)
        await km.cleanup_resources()
    return {"output": "".join(text), "status": reply["content"]["status"], "leftover": list(km.leftover),
            "resources": km.resources()}


def run_code(code, timeout=300, **settings):
    """Run ``code`` in one sandboxed kernel and return {output, status, leftover, resources}.

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
