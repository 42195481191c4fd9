"""A cgroup for each sandboxed kernel (issue 26): memory, processes and CPU bounded for the sandbox as a whole.

Where the grader can make cgroups (as root, or in a delegated cgroup v2 subtree), each sandbox gets a
group of its own under ``coursetools-sandbox``: ``memory.max`` covers all its processes and the pages of
its tmpfs mounts (tmpfs pages are charged to the group that writes them), ``pids.max`` its processes and
threads, and an equal CPU weight, so one notebook with many threads cannot starve the others in
``grade-parallel``. cgroup v2 is used where it has the controllers, else cgroup v1's hierarchies; groups
are made under the grader's own group, so the limits the machine sets on the grader still hold.
Where no group can be made, ``parent()`` is None and the sandbox keeps the per-process limits only.
"""
import os
import pathlib
import time

ROOT = pathlib.Path("/sys/fs/cgroup")
NAME = "coursetools-sandbox"
V1 = ("memory", "pids", "cpu", "cpuacct")
_FOUND = []


def _own_paths():
    """{controller or "": the grader's own cgroup path} from /proc/self/cgroup."""
    own = {}
    try:
        lines = pathlib.Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path.lstrip("/")
    return own


def _enable(folder, wanted):
    """Switch on ``wanted`` controllers for the children of ``folder`` (cgroup v2)."""
    control = folder / "cgroup.subtree_control"
    missing = [c for c in wanted if c not in control.read_text().split()]
    if missing:
        control.write_text(" ".join(f"+{c}" for c in missing))


def _v2(own):
    """(2, {controller: parent}) in a cgroup v2 tree where memory, pids and cpu can be delegated, or None."""
    if not (ROOT / "cgroup.controllers").is_file():
        return None
    wanted = ("memory", "pids", "cpu")
    # the grader's own group (usable where it has no process of its own), its parent (a delegated subtree,
    # e.g. a systemd user session's slice, where the grader's scope has processes), then the root's
    mine = ROOT / own.get("", "")
    for base in dict.fromkeys((mine, mine.parent if mine != ROOT else ROOT, ROOT)):
        try:
            if not set(wanted) <= set((base / "cgroup.controllers").read_text().split()):
                continue
            parent = base / NAME
            parent.mkdir(exist_ok=True)
            _enable(base, wanted)
            _enable(parent, wanted)
            return 2, {c: parent for c in wanted}
        except OSError:
            continue
    return None


def _v1(own):
    """(1, {controller: parent}) in cgroup v1's hierarchies (memory and pids needed), or None."""
    parents = {}
    for controller in V1:
        mount = ROOT / controller
        if not mount.is_dir() or controller not in own:
            continue
        parent = mount / own[controller] / NAME
        try:
            parent.mkdir(exist_ok=True)
        except OSError:
            continue
        if os.access(parent, os.W_OK):
            parents[controller] = parent
    return (1, parents) if {"memory", "pids"} <= set(parents) else None


def parent():
    """(version, {controller: folder}) under which each sandbox gets its groups, or None where none can be made."""
    if not _FOUND:
        found = None
        if os.environ.get("COURSETOOLS_NO_CGROUP") != "1":  # the tests' way to see the fallback
            own = _own_paths()
            try:
                found = _v2(own) or _v1(own)
            except OSError:
                found = None
        _FOUND.append(found)
    return _FOUND[0]


def _read(path, default=""):
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return default


def _keyed(text):
    """{key: int} of a 'key value' file (memory.events, cpu.stat, pids.events)."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


class Group:
    """One sandbox's cgroup (a folder per hierarchy under cgroup v1, one folder under v2)."""

    def __init__(self, version, folders):
        self.version, self.folders = version, folders
        self.processes_peak = 0

    @classmethod
    def make(cls, name, memory_mb=0, processes=0):
        """A new group with its limits set, or None where none can be made."""
        found = parent()
        if found is None:
            return None
        version, parents = found
        folders = {}
        try:
            for controller, folder in parents.items():
                group = folder / name
                if group not in folders.values():
                    group.mkdir()
                folders[controller] = group
            group = cls(version, folders)
            group._limit(memory_mb, processes)
            return group
        except OSError:
            cls(version, folders).remove()
            return None

    def _limit(self, memory_mb, processes):
        memory, pids = self.folders["memory"], self.folders["pids"]
        if self.version == 2:
            if memory_mb:
                (memory / "memory.max").write_text(str(memory_mb * 2**20))
                if (memory / "memory.swap.max").exists():
                    (memory / "memory.swap.max").write_text("0")
            if processes:
                (pids / "pids.max").write_text(str(processes))
            if "cpu" in self.folders:
                (self.folders["cpu"] / "cpu.weight").write_text("100")  # every sandbox the same share
            return
        if memory_mb:
            (memory / "memory.limit_in_bytes").write_text(str(memory_mb * 2**20))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # no swapping past the limit either
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_mb * 2**20))
        if processes:
            (pids / "pids.max").write_text(str(processes))
        if "cpu" in self.folders:
            (self.folders["cpu"] / "cpu.shares").write_text("1024")

    def procs_files(self):
        """The cgroup.procs files a process writes its pid into to join the group (one per hierarchy)."""
        return [str(folder / "cgroup.procs") for folder in dict.fromkeys(self.folders.values())]

    def usage(self):
        """{memory_peak_mb, cpu_seconds, processes_peak, limits_hit} as far as this group can tell."""
        memory, pids = self.folders["memory"], self.folders["pids"]
        hit = []
        current = int(_read(pids / "pids.current", "0").strip() or 0)
        self.processes_peak = max(self.processes_peak, current,
                                  int(_read(pids / "pids.peak", "0").strip() or 0))
        if _keyed(_read(pids / "pids.events")).get("max"):
            hit.append("processes")
        if self.version == 2:
            peak = int(_read(memory / "memory.peak", "0").strip() or 0)
            events = _keyed(_read(memory / "memory.events"))
            if events.get("oom_kill") or events.get("oom"):
                hit.append("memory")
            cpu = _keyed(_read(self.folders.get("cpu", memory) / "cpu.stat")).get("usage_usec", 0) / 1e6
        else:
            peak = int(_read(memory / "memory.max_usage_in_bytes", "0").strip() or 0)
            oom = _keyed(_read(memory / "memory.oom_control"))
            if oom.get("oom_kill") or oom.get("under_oom"):  # (failcnt counts reclaimed page cache too)
                hit.append("memory")
            usage = _read(self.folders["cpuacct"] / "cpuacct.usage", "0") if "cpuacct" in self.folders else "0"
            cpu = int(usage.strip() or 0) / 1e9
        return {"memory_peak_mb": round(peak / 2**20, 1), "cpu_seconds": round(cpu, 2),
                "processes_peak": self.processes_peak, "limits_hit": hit}

    def kill(self):
        """SIGKILL every process still in the group (there should be none once the PID namespace is gone)."""
        for pid in _read(self.folders["pids"] / "cgroup.procs").split():
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass

    def remove(self):
        """Remove the group's folders; a group goes once its last process is gone."""
        for folder in dict.fromkeys(self.folders.values()):
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill()
                    time.sleep(0.05)
