"""Check one student's submission folder before nbgrader sees it.

nbgrader gives up on a whole submission when one file in it is unusable. Before
autograding, ``preflight(course, student)`` makes the folder safe to grade and
says what it found, as events for the instructor's report:

* a notebook that is not valid JSON, not a notebook, or over the size limit is
  moved to ``quarantine/<student>/session10/`` (kept byte for byte) and scores 0,
  as a missing notebook does;
* a symbolic link that points outside the submission folder, or nowhere, is
  moved to quarantine as well (nbgrader would copy what it points to);
* an extra file over the size limit is quarantined; other extra files are
  listed and left alone (nbgrader copies the assignment's own files over any
  file of the same name, so a forged ``convcheck/`` file changes nothing, and a
  ``convcheck.py`` beside the package is never imported: a package comes first);
* a missing notebook, a changed kernelspec, and edited or deleted test and
  read-only cells are reported (autograding restores the cells and uses the
  assignment's kernelspec).

Nothing is deleted: what is moved out is under ``quarantine/``.
"""
import datetime
import json
import os
import pathlib

import nbformat

from coursetools import ASSIGNMENT
from coursetools.core.events import event
from coursetools.core.limits import DEFAULT_LIMITS

QUARANTINE = "quarantine"
NBGRADER_FILES = {"submission_secret.txt", "timestamp.txt"}  # nbgrader's own submit and collect write these
IGNORED = {".ipynb_checkpoints", "__pycache__", ".DS_Store", *NBGRADER_FILES}


def quarantine_dir(course, student):
    return course.root / QUARANTINE / student / ASSIGNMENT


def quarantine(course, student, path, folder):
    """Move ``path`` (file or link) from the submission into the student's quarantine; return where."""
    relative = pathlib.Path(path).relative_to(folder)
    target = quarantine_dir(course, student) / relative
    if target.exists() or target.is_symlink():
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        target = target.with_name(f"{target.name}.{stamp}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)  # a rename: a link stays a link, a file keeps its bytes
    return str(target.relative_to(course.root))


def _inside(folder, path):
    folder = os.path.realpath(folder)
    try:
        return os.path.commonpath([folder, os.path.realpath(path)]) == folder
    except ValueError:
        return False


def _problem_with_notebook(path, max_bytes):
    """Why nbgrader could not read this notebook, or None."""
    if not path.is_file():
        return "not a file"
    size = path.stat().st_size
    if size > max_bytes:
        return f"{size / 2**20:.1f} MiB, over the {max_bytes / 2**20:g} MiB limit"
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return f"not UTF-8 text ({error.reason} at byte {error.start})"
    except json.JSONDecodeError as error:
        return f"not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return "valid JSON but not a notebook (no list of cells)"
    try:
        nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as error:  # noqa: BLE001 - anything nbformat cannot read, nbgrader cannot either
        return f"not a readable notebook ({type(error).__name__}: {str(error)[:200]})"
    return None


def _cell_changes(notebook, release):
    """Locked and test cells of the release that the submission deleted or edited."""
    def locked(nb):
        found = {}
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade_id") and (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
                found[meta["grade_id"]] = cell
        return found
    theirs = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"): cell for cell in notebook.cells}
    deleted, edited = [], []
    for grade_id, cell in locked(release).items():
        mine = theirs.get(grade_id)
        if mine is None:
            deleted.append(grade_id)
        elif mine.get("source", "") != cell.source or mine.get("cell_type") != cell.cell_type:
            edited.append(grade_id)
    return deleted, edited


def preflight(course, student, max_notebook_mb=DEFAULT_LIMITS["max_notebook_mb"],
              max_file_mb=DEFAULT_LIMITS["max_file_mb"]):
    """Make submitted/<student>/session10 safe for nbgrader; return a list of events."""
    folder = course.submitted / student / ASSIGNMENT
    events = []
    if folder.is_symlink():
        events.append(event("symlink", f"the submission folder itself is a link to {os.readlink(folder)}; "
                                       "it was moved to quarantine",
                            moved_to=quarantine(course, student, folder, folder.parent.parent)))
        return events
    if not folder.is_dir():
        return [event("missing_notebook", "no submission folder")]
    expected = set(course.notebooks())

    # Links first: a link may point at a notebook outside, and os.walk must not follow one.
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = pathlib.Path(dirpath) / name
            if not path.is_symlink():
                continue
            target = os.readlink(path)
            if path.exists() and _inside(folder, path):
                continue
            why = "points nowhere" if not path.exists() else "points outside the submission"
            events.append(event("symlink", f"{path.relative_to(folder)} -> {target} {why}; moved to quarantine",
                                moved_to=quarantine(course, student, path, folder)))

    release_notebooks = {}
    for path in sorted(folder.glob("*.ipynb")):
        name = path.stem
        if name not in expected:
            events.append(event("extra_file", f"{path.name} is not a notebook of the assignment; not graded"))
            continue
        problem = _problem_with_notebook(path, max_notebook_mb * 2**20)
        if problem:
            events.append(event("invalid_notebook", f"{path.name}: {problem}; moved to quarantine, scores 0",
                                notebook=name, moved_to=quarantine(course, student, path, folder)))
            continue
        notebook = nbformat.read(path, as_version=4)
        release_path = course.release / path.name
        if release_path.exists():
            release = release_notebooks.setdefault(name, nbformat.read(release_path, as_version=4))
            theirs = notebook.metadata.get("kernelspec", {})
            ours = release.metadata.get("kernelspec", {})
            if theirs.get("name") != ours.get("name"):
                events.append(event("kernelspec", f"saved with kernel {theirs.get('name')!r} "
                                                  f"({theirs.get('display_name', '?')}); graded with "
                                                  f"{ours.get('name')!r}", notebook=name))
            _, edited = _cell_changes(notebook, release)  # deleted cells: reported by preprocessors.RestoreCells
            if edited:
                events.append(event("cells_restored", f"edited locked or test cells {', '.join(edited)}; "
                                                      "the originals were run", notebook=name))
    for name in sorted(expected):
        if not (folder / f"{name}.ipynb").exists() and not any(
                e["kind"] == "invalid_notebook" and e.get("notebook") == name for e in events):
            events.append(event("missing_notebook", f"{name}.ipynb was not handed in; scores 0", notebook=name))

    assignment_files = {p.relative_to(course.source) for p in course.source.rglob("*") if p.is_file()}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in IGNORED]
        for name in filenames:
            path = pathlib.Path(dirpath) / name
            relative = path.relative_to(folder)
            if name in IGNORED or path.suffix == ".ipynb" and path.parent == folder or path.is_symlink():
                continue
            size = path.stat().st_size
            if size > max_file_mb * 2**20:
                events.append(event("extra_file", f"{relative} is {size / 2**20:.1f} MiB, over the "
                                                  f"{max_file_mb:g} MiB limit; moved to quarantine",
                                    moved_to=quarantine(course, student, path, folder)))
            elif relative in assignment_files:
                if size != (course.source / relative).stat().st_size or size < 2**20 and \
                        path.read_bytes() != (course.source / relative).read_bytes():
                    events.append(event("extra_file", f"{relative} differs from the assignment's copy; "
                                                      "the assignment's own copy is used"))
            else:
                events.append(event("extra_file", f"{relative} is not part of the assignment; ignored"))
    return events
