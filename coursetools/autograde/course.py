"""One nbgrader course directory: its paths, and nbgrader run inside it."""
import os
import pathlib
import shutil
import subprocess
import sys

from coursetools import ASSIGNMENT, REPO

NO_SANDBOX = "--ResilientExecute.sandbox=False"


class Course:
    """The repository, or a copy of it made by the tests, as an nbgrader course root."""

    def __init__(self, root=REPO, sandbox=True):
        self.root = pathlib.Path(root).resolve()
        self.sandbox = sandbox  # False only with --no-sandbox (coursetools.grader.sandbox)
        self.source = self.root / "source" / ASSIGNMENT
        self.release = self.root / "release" / ASSIGNMENT
        self.submitted = self.root / "submitted"
        self.autograded = self.root / "autograded"
        self.feedback = self.root / "feedback"
        self.data = self.root / "data"
        self.db = self.root / "gradebook.db"

    def notebooks(self):
        """Notebook names (without .ipynb) of the assignment, in order."""
        return sorted(p.stem for p in self.source.glob("*.ipynb"))

    def students(self):
        if not self.submitted.is_dir():
            return []
        return sorted(p.name for p in self.submitted.iterdir() if (p / ASSIGNMENT).is_dir())

    def nbgrader(self, *args, check=True, quiet=False):
        """Run ``nbgrader ARGS`` in the course root with this interpreter."""
        args = [*map(str, args), *self.grading_options(args)]
        command = [sys.executable, "-m", "nbgrader", *args]
        # nbgrader runs `alembic` and kernels from PATH: put this environment's bin/ first.
        bin_dir = os.path.dirname(sys.executable)
        env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
        result = subprocess.run(command, cwd=self.root, env=env, text=True,
                                stdout=subprocess.PIPE if quiet else None,
                                stderr=subprocess.STDOUT if quiet else None)
        if check and result.returncode != 0:
            tail = (result.stdout or "")[-4000:] if quiet else ""
            raise RuntimeError(f"nbgrader {' '.join(map(str, args))} failed ({result.returncode})\n{tail}")
        return result

    def grading_options(self, args):
        """Options an ``nbgrader autograde`` run of this course needs (none for other commands)."""
        return [NO_SANDBOX] if args and str(args[0]) == "autograde" and not self.sandbox else []

    def require_sandbox(self):
        """Raise coursetools.grader.sandbox.SandboxUnavailable (saying how to fix it) unless grading can be
        sandboxed."""
        if self.sandbox:
            from coursetools.grader.sandbox import check_available
            check_available()

    def sync_data(self):
        """Copy the digits from data/ into the assignment so the release carries them."""
        source_raw = self.data / "MNIST" / "raw"
        target_raw = self.source / "data" / "MNIST" / "raw"
        target_raw.mkdir(parents=True, exist_ok=True)
        for path in sorted(source_raw.glob("*-ubyte")):
            target = target_raw / path.name
            if not target.exists() or target.read_bytes() != path.read_bytes():
                shutil.copyfile(path, target)
