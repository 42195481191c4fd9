"""Content hashes of the course's own files, taken at the start of a grading run and checked after it.

A grading run trusts these files: the source notebooks (hidden tests and solutions), the
shipped modules and the digits, the release, the grading tools, the configuration, and the
files Python and IPython run at start-up (``.pth``, ``sitecustomize``, IPython startup
folders). Any change while students are graded stops the run (``CourseFilesChanged``):
the grades of a run whose tests or tools changed under it cannot be trusted.
"""
import glob
import hashlib
import os
import site
import sys


class CourseFilesChanged(RuntimeError):
    """Course files changed during a grading run; the message names them."""


def startup_files():
    """Files that Python or IPython run when any interpreter or kernel of this environment starts."""
    folders = set(site.getsitepackages()) | {site.getusersitepackages()}
    paths = set()
    for folder in folders:
        for pattern in ("*.pth", "sitecustomize.py", "usercustomize.py"):
            paths.update(glob.glob(os.path.join(folder, pattern)))
    for pattern in (os.path.join(sys.prefix, "etc", "ipython", "**", "*"), "/etc/ipython/**/*",
                    "/usr/local/etc/ipython/**/*", os.path.expanduser("~/.ipython/profile_*/startup/*"),
                    os.path.join(sys.prefix, "share", "jupyter", "kernels", "**", "*")):
        paths.update(glob.glob(pattern, recursive=True))
    return sorted(p for p in paths if os.path.isfile(p))


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def take(course):
    """{path: sha256} of the course's trusted files and of the environment's start-up files."""
    roots = [course.source, course.release, course.root / "coursetools", course.root / "nbgrader_config.py",
             course.data]
    hashes = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) \
            if root.is_dir() else []
        for path in paths:
            if "__pycache__" in path.parts or ".ipynb_checkpoints" in path.parts:
                continue
            try:
                hashes[str(path.relative_to(course.root))] = _digest(path)
            except OSError:
                hashes[str(path.relative_to(course.root))] = "unreadable"
    for path in startup_files():
        try:
            hashes[path] = _digest(path)
        except OSError:
            hashes[path] = "unreadable"
    return hashes


def changes(before, after):
    """Paths added, removed or changed between two manifests."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def check(course, before):
    """Raise CourseFilesChanged unless the course's files are as ``before`` says."""
    changed = changes(before, take(course))
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        raise CourseFilesChanged(
            f"grading stopped: course files changed while students were graded: {shown}. Grades given after "
            "the change cannot be trusted. Restore the files (git status shows the course's own; a new .pth or "
            "startup file is in the Python environment), then grade again with --force.")
    return before
