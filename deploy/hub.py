"""A JupyterHub for one course on loopback, with a class of local Unix users (docs/hub.md).

    sudo .venv/bin/python deploy/hub.py [--auth pam] [--port 8000]     (make hub)

Makes the users (an instructor, a grader, three students; homes 0700), the exchange and course
folder under /srv/nbgrader, /etc/jupyter/nbgrader_config.py (deploy/nbgrader_config.py) and the
students' role config, copies the course to /srv/nbgrader/courses/<course id> (the instructor's,
shared with the grader through a group), starts the hub and prints how to log in. On Ctrl-C, or
when anything fails, it stops the hub and removes every user, file and folder it made. A run that
was killed before it could do so (SIGKILL, a reboot) leaves its list of them in LEDGER, and the next
run removes those first. It refuses to start when any other of them already exists.
tests/test_hub.py uses the same ClassHub.
"""
import argparse
import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

DEPLOY = pathlib.Path(__file__).resolve().parent
REPO = DEPLOY.parent
COURSE_ID = "nn-engineers-session10"
SRV = pathlib.Path("/srv/nbgrader")
EXCHANGE = SRV / "exchange"
STATIC = SRV / "static"
MATHJAX_SETTINGS = REPO / "coursetools" / "grader" / "templates" / "base" / "coursetools_mathjax_config.js"
COURSE_DIR = SRV / "courses" / COURSE_ID
ETC = pathlib.Path("/etc/jupyter")
SYSTEM_CONFIG = ETC / "nbgrader_config.py"
STUDENT_CONFIG = ETC / f"{COURSE_ID}-student"
PROXY = DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
LEDGER = pathlib.Path("/var/lib/course-hub/made.json")   # written before each thing is made
SAMPLE = {"instructors": ["s10instructor"], "graders": ["s10grader"],
          "students": ["s10student1", "s10student2", "s10student3"]}
COURSE_FILES = ["source", "data", "nbgrader_config.py", "coursetools", "course"]


def run(*cmd, **kw):
    return subprocess.run(list(map(str, cmd)), check=True, **kw)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class ClassHub:
    """The hub and everything it needs, made on enter and removed on exit (even after a failure)."""

    def __init__(self, instructors, graders, students, notebooks=None, auth="shared-password", port=None,
                 venv=None, log=print):
        self.instructors, self.graders, self.students = list(instructors), list(graders), list(students)
        self.users = self.instructors + self.graders + self.students
        self.staff_group = f"{self.instructors[0]}-staff"
        self.notebooks = notebooks      # None: the whole assignment; else these notebook names only
        self.auth = auth
        self.venv = pathlib.Path(venv or sys.prefix)
        self.port = port
        self.log = log
        self.password = secrets.token_urlsafe(12)
        self.made_users, self.made_paths, self.traversed = [], [], []
        self.made_group = self.made_etc = False
        self.hub = None
        self.state = None

    # ---- the lifecycle --------------------------------------------------------------------
    def __enter__(self):
        self.refuse_clobber()
        try:
            self.setup()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def refuse_clobber(self):
        if os.geteuid() != 0:
            raise SystemExit("hub: run as root (it makes Unix users and spawns servers as them)")
        if not PROXY.exists():
            raise SystemExit(f"hub: no {PROXY}: npm install --prefix {DEPLOY} (make hub does)")
        if not (self.venv / "bin" / "jupyterhub").exists():
            raise SystemExit(f"hub: no JupyterHub in {self.venv}: "
                             "pip install -c requirements.txt -r deploy/requirements-hub.txt (make hub does)")
        self.remove_leftovers()
        taken = [u for u in self.users + [self.staff_group] if _exists(u)]
        taken += [str(p) for p in (SRV, SYSTEM_CONFIG, STUDENT_CONFIG) if p.exists()]
        if taken:
            raise SystemExit(f"hub: already exists, refusing to touch it: {', '.join(taken)}")

    def record(self):
        """Write down what this run has made, or is about to make, so that a run killed before its
        clean-up leaves a list for the next one (remove_leftovers)."""
        LEDGER.parent.mkdir(parents=True, exist_ok=True)
        hub_alive = self.hub and self.hub.poll() is None
        made = {"run": _process_identity(os.getpid()), "users": self.made_users,
                "group": self.staff_group if self.made_group else None, "etc": self.made_etc,
                "paths": [str(p) for p in self.made_paths], "traversed": [str(d) for d in self.traversed],
                "state": self.state and str(self.state), "hub": _process_identity(self.hub.pid) if hub_alive else None}
        scratch = LEDGER.with_suffix(".tmp")
        scratch.write_text(json.dumps(made))
        os.replace(scratch, LEDGER)

    def remove_leftovers(self):
        """Remove what a killed run listed in LEDGER; refuse while that run is still alive."""
        if not LEDGER.exists():
            return
        made = json.loads(LEDGER.read_text())
        if _still_running(made["run"]):
            raise SystemExit(f"hub: another run (PID {made['run']['pid']}) holds the class; stop it first")
        self.log(f"hub: a run was killed before its clean-up; removing what it listed in {LEDGER}")
        if made["hub"] and _still_running(made["hub"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(made["hub"]["pid"], signal.SIGKILL)
        own_group = self.staff_group
        self.made_users, self.made_group = list(made["users"]), bool(made["group"])
        self.staff_group = made["group"] or own_group
        self.made_etc, self.made_paths = made["etc"], [pathlib.Path(p) for p in made["paths"]]
        self.traversed = [pathlib.Path(d) for d in made["traversed"]]
        self.state = made["state"] and pathlib.Path(made["state"])
        failed = self.cleanup()
        self.state, self.staff_group = None, own_group
        if failed:
            raise SystemExit(f"hub: could not remove a killed run's leftovers ({', '.join(failed)}); see {LEDGER}")

    def setup(self):
        self.state = pathlib.Path(tempfile.mkdtemp(prefix="course-hub."))   # root only: hub db, secret, logs
        self.made_group = True
        self.record()
        run("groupadd", self.staff_group)
        for user in self.users:
            self.made_users.append(user)
            self.record()
            run("useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash", user)
            if self.auth == "pam":
                run("chpasswd", input=f"{user}:{self.password}\n", text=True)
        for user in self.instructors + self.graders:
            run("usermod", "-a", "-G", self.staff_group, user)
        self.grant_traverse()
        self.make_exchange()
        self.make_config()
        self.make_course()

    def grant_traverse(self):
        """Users must run the environment's Python; a pyenv under a 0700 /root blocks them: o+x until exit."""
        if self.can_run():
            return
        for target in {os.path.realpath(self.venv / "bin" / "python"), str(self.venv / "bin" / "python"),
                       str(REPO / "coursetools")}:
            d = pathlib.Path(target).parent
            while d != d.parent:
                if not d.stat().st_mode & 0o001:
                    self.traversed.append(d)
                    self.record()
                    d.chmod(d.stat().st_mode | 0o001)
                d = d.parent
        if not self.can_run():
            raise SystemExit(f"hub: user {self.students[0]} cannot run {self.venv}/bin/python")

    def can_run(self):
        return subprocess.run(["runuser", "-u", self.students[0], "--", str(self.venv / "bin" / "python"), "-c",
                               "import jupyterhub, nbgrader"], capture_output=True).returncode == 0

    def make_exchange(self):
        # nbgrader's docs: the exchange is writable by everyone (ugo+rw); release_assignment
        # chmods it when the low bits differ, sticky excepted, so 1777 keeps students from
        # deleting each other's files. The course's folder there is the instructor's.
        self.made_paths.append(SRV)
        self.record()
        SRV.mkdir(mode=0o755)
        EXCHANGE.mkdir(mode=0o755)
        EXCHANGE.chmod(0o1777)
        # the feedback's MathJax settings, served by every single-user server without a login
        # (extra_static_paths, jupyterhub_config.py): what a page opened through /files/ can load
        STATIC.mkdir(mode=0o755)
        shutil.copyfile(MATHJAX_SETTINGS, STATIC / MATHJAX_SETTINGS.name)
        (STATIC / MATHJAX_SETTINGS.name).chmod(0o644)
        (EXCHANGE / COURSE_ID).mkdir()
        shutil.chown(EXCHANGE / COURSE_ID, self.instructors[0], self.instructors[0])

    def make_config(self):
        self.made_etc = not ETC.exists()
        self.made_paths += [SYSTEM_CONFIG, STUDENT_CONFIG]
        self.record()
        ETC.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEPLOY / "nbgrader_config.py", SYSTEM_CONFIG)
        shutil.copytree(DEPLOY / "student", STUDENT_CONFIG)
        for path in (SYSTEM_CONFIG, *STUDENT_CONFIG.rglob("*"), STUDENT_CONFIG):
            path.chmod(0o755 if path.is_dir() else 0o644)

    def make_course(self):
        """The course folder, owned by the instructor, shared with graders (group, setgid), closed to
        students; each staff member finds it as ~/course, their formgrader's course root."""
        (SRV / "courses").mkdir(mode=0o755)
        ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        for name in COURSE_FILES:
            src = REPO / name
            dest = COURSE_DIR / name
            if src.is_dir():
                shutil.copytree(src, dest, ignore=ignore)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
        shutil.rmtree(COURSE_DIR / "source" / "session10" / "data", ignore_errors=True)
        # SQLite makes a new database file 0644 less the umask, so a gradebook made by the instructor's
        # first nbgrader command is read-only to the graders. An empty file is a new database to SQLite,
        # which keeps the file's mode (and gives its journal the same): made here, it is group-writable.
        (COURSE_DIR / "gradebook.db").touch()
        if self.notebooks:
            for nb in (COURSE_DIR / "source" / "session10").glob("*.ipynb"):
                if nb.stem not in self.notebooks:
                    nb.unlink()
        run("chown", "-R", f"{self.instructors[0]}:{self.staff_group}", COURSE_DIR)
        run("chmod", "-R", "u+rwX,g+rwX,o-rwx", COURSE_DIR)
        run("find", COURSE_DIR, "-type", "d", "-exec", "chmod", "g+s", "{}", "+")
        for user in self.instructors + self.graders:
            home = pathlib.Path(f"/home/{user}")
            self.as_user(user, f"ln -s {COURSE_DIR} ~/course && mkdir -p ~/.jupyter && "
                               f"echo \"c = get_config(); c.CourseDirectory.root = '{home}/course'\" "
                               f"> ~/.jupyter/nbgrader_config.py")

    def start(self):
        port, hub_port, api_port = free_ports(3)
        self.port = self.port or port
        settings = {"port": self.port, "hub_port": hub_port, "api_port": api_port, "state": str(self.state),
                    "proxy": str(PROXY), "venv": str(self.venv), "auth": self.auth, "password": self.password,
                    "instructors": self.instructors, "graders": self.graders, "students": self.students,
                    "student_config": str(STUDENT_CONFIG), "static": str(STATIC)}
        (self.state / "settings.json").write_text(json.dumps(settings))
        env = dict(os.environ, COURSE_HUB_SETTINGS=str(self.state / "settings.json"),
                   PATH=f"{self.venv}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.hub_log = open(self.state / "hub.log", "w")
        self.hub = subprocess.Popen([str(self.venv / "bin" / "jupyterhub"), "-f", str(DEPLOY / "jupyterhub_config.py")],
                                    cwd=self.state, env=env, stdout=self.hub_log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.record()
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2) as r:
                    if r.status == 200:
                        return
            if self.hub.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not start:\n{self.log_tail()}")
            time.sleep(0.3)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n=40):
        path = self.state and self.state / "hub.log"
        return "\n".join(path.read_text().splitlines()[-n:]) if path and path.exists() else ""

    def as_user(self, user, command, check=True, timeout=600):
        """A shell command as USER in a login shell, the course environment first on PATH."""
        p = subprocess.run(["runuser", "-l", user, "-c", f"export PATH={self.venv}/bin:$PATH; {command}"],
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode:
            raise RuntimeError(f"{user}: {command}: exit {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return p

    def cleanup(self):
        """Stop the hub and remove what this made, only that; each step runs even if another fails.
        The ledger goes when all steps succeed, else it keeps what stayed. Returns the failed steps."""
        failed = []
        for step in (self._stop_hub, self._remove_users, self._remove_paths, self._restore_traverse):
            try:
                step()
            except Exception as error:  # noqa: BLE001 - go on removing the rest, then say what stayed
                self.log(f"hub cleanup: {step.__name__}: {error}")
                failed.append(step.__name__)
        if failed:
            self.record()
        else:
            LEDGER.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                LEDGER.parent.rmdir()
        return failed

    def _stop_hub(self):
        if self.hub and self.hub.poll() is None:
            os.killpg(self.hub.pid, signal.SIGTERM)   # the hub stops its proxy and servers
            try:
                self.hub.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.hub.pid, signal.SIGKILL)
                self.hub.wait()
        self._stop_proxy()

    def _stop_proxy(self):
        pid_file = self.state and self.state / "jupyterhub-proxy.pid"
        if pid_file and pid_file.exists():
            with contextlib.suppress(OSError, ValueError):   # the file may outlive its process
                pid = int(pid_file.read_text())
                if b"configurable-http-proxy" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGTERM)

    def _remove_users(self):
        for user in self.made_users:
            if not _exists(user):   # listed before it was made: a killed run may not have made it
                continue
            for sig in (signal.SIGTERM, signal.SIGKILL):   # leftovers of the users made here, by PID
                pids = subprocess.run(["pgrep", "-u", user], capture_output=True, text=True).stdout.split()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), sig)
                if pids:
                    time.sleep(0.5)
            run("userdel", "-r", user, capture_output=True)
        self.made_users = []
        if self.made_group and _exists(self.staff_group):
            run("groupdel", self.staff_group)
        self.made_group = False

    def _remove_paths(self):
        for path in reversed(self.made_paths):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        self.made_paths = []
        if self.made_etc:
            with contextlib.suppress(OSError):
                ETC.rmdir()
        if self.state:
            shutil.rmtree(self.state, ignore_errors=True)

    def _restore_traverse(self):
        for d in self.traversed:
            d.chmod(d.stat().st_mode & ~0o001)
        self.traversed = []


def _process_identity(pid):
    """PID, start time and boot: a PID alone may belong to another process after a reboot."""
    start = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return {"pid": pid, "start": start, "boot": pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()}


def _still_running(identity):
    try:
        return _process_identity(identity["pid"]) == identity
    except (OSError, IndexError):
        return False


def _exists(name):
    """A Unix user or group of this name."""
    return (subprocess.run(["id", "-u", name], capture_output=True).returncode == 0
            or subprocess.run(["getent", "group", name], capture_output=True).returncode == 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auth", choices=["shared-password", "pam"], default="shared-password")
    parser.add_argument("--port", type=int, help="the hub's port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ClassHub(**SAMPLE, auth=args.auth, port=args.port) as hub:
        instructor = SAMPLE["instructors"][0]
        print(f"""
The course hub is up ({time.monotonic() - t0:.0f} s): {hub.url}
  log in as {', '.join(hub.users)}
  password  {hub.password}{' (each user, PAM)' if args.auth == 'pam' else ' (shared by all: loopback only)'}
  instructor: the course is ~/course; in a terminal there:
      python -m coursetools release && nbgrader release_assignment session10
  students: Nbgrader > Assignment List > Fetch; Validate; Submit
  instructor: nbgrader collect session10 && python -m coursetools grade-parallel
      grade by hand: {hub.url}/user/{instructor}/formgrader (its own tab)
      python -m coursetools feedback && nbgrader release_feedback session10
  hub log: {hub.state}/hub.log
Ctrl-C stops the hub and removes the users, /srv/nbgrader and /etc/jupyter files it made.""", flush=True)
        try:
            while hub.hub.poll() is None:
                time.sleep(1)
            print(f"the hub stopped:\n{hub.log_tail()}")
        except KeyboardInterrupt:
            print("\nstopping")
    print("removed the class, the exchange and the configuration")


if __name__ == "__main__":
    main()
