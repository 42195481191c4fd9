"""The sandbox's file system at neutral paths (``coursetools.grader.sandbox`` starts the sandbox).

Every file the sandbox gets is handed to bwrap as an open descriptor and copied into a tmpfs, so the
work copy, HOME, /tmp, /dev/shm and the socket folder are size-capped tmpfs mounts that vanish with
the sandbox, and no host path is a mount's source except the environment's read-only binds.
"""
import os
import pathlib
import resource
import sys

SANDBOX_USER = 65534          # "nobody"
SANDBOX_HOME = "/home/student"
ENV_ROOT = "/env"             # the Python environment inside
SOCKETS = "/run/kernel"       # the ipc sockets and the connection file inside
SOCKETS_MB = 1                # the socket folder's spare room
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
ENV_KEPT = ("LANG", "LANGUAGE", "TZ", "NBGRADER_EXECUTION", "PYTHONHASHSEED",
            "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "CUDA_")  # numeric libraries' settings only
SKIPPED = (".ipynb_checkpoints", "__pycache__")
MAX_COPIED = 5000             # files and folders of a submission copied into the sandbox


class Mounts:
    """bwrap arguments, and the descriptors they read (files copied in; closed once bwrap has started)."""

    def __init__(self):
        self.args, self.fds = [], []

    def fd(self, path=None, data=None):
        """A descriptor reading ``path`` (never following a link) or the bytes ``data``."""
        if data is not None:
            fd = os.memfd_create("sandbox-data")
            os.write(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.fds.append(fd)
        return str(fd)

    def tmpfs(self, dest, megabytes, perms=None):
        self.args += [*(["--perms", perms] if perms else []), "--size", str(int(megabytes * 2**20)), "--tmpfs", dest]

    def copy_tree(self, folder, dest, skip=(), limit=MAX_COPIED):
        """Copy ``folder``'s files into ``dest`` (links kept as links); return the bytes copied."""
        total, stack, count = 0, [(pathlib.Path(folder), dest)], 0
        while stack:  # no recursion: a deep tree cannot break it
            source, target = stack.pop()
            try:
                entries = sorted(os.scandir(source), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name in SKIPPED or (source == pathlib.Path(folder) and entry.name in skip):
                    continue
                count += 1
                if count > limit or len(target) + len(entry.name) > 1000:
                    continue
                inside = f"{target}/{entry.name}"
                if entry.is_symlink():
                    self.args += ["--symlink", os.readlink(entry.path), inside]
                elif entry.is_dir():
                    self.args += ["--perms", "0755", "--dir", inside]
                    stack.append((pathlib.Path(entry.path), inside))
                elif entry.is_file():
                    try:
                        self.args += ["--perms", "0644", "--file", self.fd(entry.path), inside]
                        total += entry.stat().st_size
                    except OSError:
                        continue
        return total

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def system_binds():
    """bwrap arguments for the read-only system."""
    args = []
    for top in SYSTEM:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args + ["--ro-bind-try", "/sys", "/sys"]


def _overlaps(path, other):
    path, other = pathlib.Path(path), pathlib.Path(other)
    return path == other or path.is_relative_to(other) or other.is_relative_to(path)


def _system(path):
    return any(path == top or path.startswith(top + "/") for top in SYSTEM)


class PythonLayout:
    """The Python environment at neutral paths: the virtual environment at /env/venv, the interpreter's
    installation at /env/python (unless it is the system's), and each other folder of PYTHONPATH and
    LD_LIBRARY_PATH at /env/pathN. ``inside(path)`` says where a host path is seen from inside."""

    def __init__(self, course_root=None):
        self.course_root = course_root
        real = os.path.realpath(sys.executable)
        self.base = os.path.dirname(os.path.dirname(real))
        self.maps = {}  # host folder -> inside
        if not _system(self.base):
            self.maps[self.base] = f"{ENV_ROOT}/python"
        self.interpreter = self.inside(real)
        self.venv = os.path.realpath(sys.prefix) if sys.prefix != sys.base_prefix else None
        if self.venv:
            self.maps[self.venv] = f"{ENV_ROOT}/venv"
        self.extra = []
        for variable in ("PYTHONPATH", "LD_LIBRARY_PATH"):
            for folder in os.environ.get(variable, "").split(os.pathsep):
                real_folder = os.path.realpath(folder) if folder else ""
                if not real_folder or not os.path.isdir(real_folder) or self._hidden(real_folder):
                    continue
                if self.inside(real_folder) is None:
                    self.maps[real_folder] = f"{ENV_ROOT}/path{len(self.extra)}"
                    self.extra.append(real_folder)

    def _hidden(self, folder):
        return bool(self.course_root) and _overlaps(folder, os.path.realpath(self.course_root)) and \
            self.inside(folder) is None

    def inside(self, path):
        """Where the host ``path`` is seen inside, or None where it is not."""
        path = os.path.realpath(path)
        if _system(path):
            return path
        for host, there in sorted(self.maps.items(), key=lambda item: -len(item[0])):
            if path == host or path.startswith(host + "/"):
                return there + path[len(host):]
        return None

    def python(self):
        """The interpreter's path inside: the virtual environment's, when there is one."""
        return f"{ENV_ROOT}/venv/bin/python" if self.venv else self.interpreter

    def mounts(self, m):
        for host, there in self.maps.items():
            if there == f"{ENV_ROOT}/venv":
                continue
            m.args += ["--ro-bind", host, there]
        if self.venv:  # the environment's own bin/ and pyvenv.cfg name host paths: give it neutral ones
            m.args += ["--ro-bind", self.venv, f"{ENV_ROOT}/venv"]
            m.tmpfs(f"{ENV_ROOT}/venv/bin", 1)
            version = f"python{sys.version_info.major}.{sys.version_info.minor}"
            for name in ("python", "python3", version):
                m.args += ["--symlink", self.interpreter, f"{ENV_ROOT}/venv/bin/{name}"]
            config = (f"home = {os.path.dirname(self.interpreter)}\ninclude-system-site-packages = false\n"
                      f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
            m.args += ["--perms", "0444", "--ro-bind-data", m.fd(data=config.encode()), f"{ENV_ROOT}/venv/pyvenv.cfg",
                       "--remount-ro", f"{ENV_ROOT}/venv/bin"]

    def environment(self, environ):
        """PYTHONPATH and LD_LIBRARY_PATH as seen from inside (folders out of sight dropped)."""
        env = {}
        for variable in ("PYTHONPATH", "LD_LIBRARY_PATH"):
            folders = [self.inside(f) for f in environ.get(variable, "").split(os.pathsep) if f]
            if variable == "LD_LIBRARY_PATH" and self.base in self.maps:
                folders.insert(0, f"{ENV_ROOT}/python/lib")  # the interpreter's own RUNPATH names the host
            folders = [f for f in dict.fromkeys(folders) if f]
            if folders:
                env[variable] = os.pathsep.join(folders)
        return env


def gpu_binds():
    """bwrap arguments binding NVIDIA's device files, where there are any."""
    args = []
    for name in sorted(os.listdir("/dev")) if os.path.isdir("/dev") else []:
        if name.startswith("nvidia") or name == "dri":
            args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    return args


def kernel_environment(environ=None, layout=None):
    """The kernel's environment: HOME and /tmp of its own, neutral paths, the numeric libraries' settings."""
    environ = os.environ if environ is None else environ
    layout = layout or PythonLayout()
    env = {k: v for k, v in environ.items() if k in ENV_KEPT or k.startswith(ENV_PREFIXES)}
    env = {k: v for k, v in env.items() if not v.startswith("/") or layout.inside(v) == v}  # no host path
    env.update(layout.environment(environ))
    env.update(HOME=SANDBOX_HOME, TMPDIR="/tmp", USER="student", LOGNAME="student",
               MPLCONFIGDIR="/tmp/matplotlib", PYTHONDONTWRITEBYTECODE="1",
               JPY_PARENT_PID="1",  # the sandbox's PID 1 is the kernel's parent, and lives exactly as long
               PATH=f"{os.path.dirname(layout.python())}:/usr/local/bin:/usr/bin:/bin")
    return env


def sandbox_mounts(m, workdir, submitted, shipped, tmp_mb=512, work_mb=512, layout=None, connection=None):
    """Add the sandbox's file system to ``m``: the system and environment read-only, the work copy with
    the shipped files over it, HOME, /tmp, /dev/shm and the socket folder; everything else read-only.

    ``workdir``: the working folder's path inside; ``submitted``: the host folder copied into it (or None);
    ``shipped``: {relative path: trusted host path} copied over it read-only; ``connection``: the kernel's
    connection file, copied into the socket folder."""
    m.args += [*system_binds(), "--proc", "/proc", "--dev", "/dev", *gpu_binds()]
    for dest in ("/tmp", "/dev/shm", SANDBOX_HOME):
        m.tmpfs(dest, tmp_mb)
    (layout or PythonLayout()).mounts(m)
    start = len(m.args)
    copied = m.copy_tree(submitted, workdir, skip=set(shipped)) if submitted else 0
    m.args[start:start] = ["--size", str((work_mb * 2**20) + copied), "--perms", "0755", "--tmpfs", workdir]
    for relative, trusted in sorted(shipped.items()):
        dest = f"{workdir}/{relative}"
        if os.path.isdir(trusted):
            start = len(m.args)
            size = m.copy_tree(trusted, dest)
            m.args[start:start] = ["--size", str(size + 2**20), "--perms", "0755", "--tmpfs", dest]
            m.args += ["--remount-ro", dest]
        elif os.path.isfile(trusted):
            m.args += ["--perms", "0444", "--ro-bind-data", m.fd(trusted), dest]
    m.tmpfs(SOCKETS, SOCKETS_MB, perms="0755")
    if connection:
        m.args += ["--perms", "0444", "--ro-bind-data", m.fd(connection), f"{SOCKETS}/kernel.json"]
    m.args += ["--remount-ro", "/dev", "--remount-ro", "/"]


def _more_descriptors(wanted):
    """Raise this process's soft limit on open files when a submission needs more (one per file copied)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard != resource.RLIM_INFINITY
                                                        else wanted, hard))
        except (ValueError, OSError):
            pass


def _walk(top, limit=2000, skip=()):
    """Relative paths under ``top`` (folders end in "/"), breadth first, at most ``limit``, not entering
    the relative folders ``skip`` (no recursion; unreadable folders are passed over)."""
    found, queue = [], [pathlib.Path(top)]
    while queue and len(found) < limit:
        folder = queue.pop(0)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries[:limit]:
            relative = os.path.relpath(entry.path, top)
            if entry.is_dir(follow_symlinks=False):
                found.append(relative + "/")
                if relative not in skip:
                    queue.append(pathlib.Path(entry.path))
            else:
                found.append(relative)
    return found
