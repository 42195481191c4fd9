"""Autograde one student so that nothing a submission does can stop the class being graded.

``grade_student(course, student)`` is the unit of work of the parallel runner
(``coursetools.autograde.parallel``); ``grade_students(course, students)`` does the same for a
list with one nbgrader run for all of them first (``python -m coursetools autograde``):

1. **Preflight** (``coursetools.autograde.preflight``): unreadable notebooks, links out of
   the submission and oversized files go to ``quarantine/``; the rest is listed.
2. **Back up** the student's earlier autograded notebooks (a temporary copy).
3. **Autograde** the student with nbgrader (``--student S --force``). Inside the
   run, ``coursetools.grader.execution`` limits time, memory and output, survives dead
   kernels and voids tampered notebooks.
4. **On a failure**, nbgrader has deleted the student's autograded folder; each
   notebook is then graded on its own (``--notebook N``), so only a notebook
   that still fails loses its points. For such a notebook the earlier autograded
   notebook is put back: the gradebook still holds its earlier grades (nbgrader
   writes grades only at the end of a notebook), and now the feedback matches.
5. **Sweep**: files the student's code wrote into the autograded folder while it
   ran are moved to quarantine, so the feedback folder never carries them; a
   change to the course's own files (source/, release/, the configuration, the
   tools) during the run is reported as an alarm.
6. **Record** what happened: ``reports/outcomes/<student>.json``
   (``coursetools.autograde.outcomes``, which the instructor's report reads). The record is
   also returned.

A student with no gradable notebook still gets a gradebook submission (every
notebook 0), so grades.csv and the report list every student.
"""
import datetime
import json
import os
import pathlib
import shutil
import tempfile
import time

from coursetools import ASSIGNMENT
from coursetools.autograde import manifest
from coursetools.autograde.outcomes import save_outcome
from coursetools.autograde.preflight import preflight
from coursetools.core.events import event
from coursetools.core.limits import load_limits


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _db_url(course):
    return getattr(course, "db_url", None) or f"sqlite:///{course.db}"


def _ensure_submission(course, student, zero=False):
    """A gradebook submission for the student; with ``zero``, every grade not yet given scores 0
    (what nbgrader does for a notebook that was not handed in)."""
    from nbgrader.api import Gradebook
    with Gradebook(_db_url(course)) as gradebook:
        gradebook.update_or_create_student(student)
        submission = gradebook.update_or_create_submission(ASSIGNMENT, student)
        for notebook in submission.notebooks if zero else []:
            for grade in notebook.grades:
                if grade.auto_score is None and grade.manual_score is None:
                    grade.auto_score = 0
                    grade.needs_manual_grade = False
        gradebook.db.commit()


def _sweep(course, student, submitted_files, graded):
    """Move files the notebooks wrote while being graded out of the autograded folder; return events."""
    folder = course.autograded / student / ASSIGNMENT
    if not folder.is_dir():
        return []
    assignment = {p.relative_to(course.source) for p in course.source.rglob("*") if p.is_file()}
    keep = assignment | submitted_files | {pathlib.Path(f"{n}.ipynb") for n in graded} | {pathlib.Path("timestamp.txt")}
    moved = []
    for dirpath, dirnames, filenames in os.walk(folder, topdown=True):
        for name in list(dirnames):
            if name in ("__pycache__", ".ipynb_checkpoints"):
                shutil.rmtree(pathlib.Path(dirpath) / name, ignore_errors=True)
                dirnames.remove(name)
        for name in filenames + [d for d in dirnames if (pathlib.Path(dirpath) / d).is_symlink()]:
            path = pathlib.Path(dirpath) / name
            relative = path.relative_to(folder)
            if relative in keep and not path.is_symlink():
                continue
            target = course.root / "quarantine" / student / "written-during-grading"
            target.mkdir(parents=True, exist_ok=True)
            moved.append(str(relative))
            os.replace(path, _free(target / str(relative).replace(os.sep, "__")))
    if not moved:
        return []
    shown = ", ".join(moved[:8]) + (f" and {len(moved) - 8} more" if len(moved) > 8 else "")
    return [event("files_written", f"the notebooks wrote {shown} while graded; moved to "
                                   f"quarantine/{student}/written-during-grading (not in the feedback)")]


def _free(path):
    if not path.exists() and not path.is_symlink():
        return path
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return path.with_name(f"{path.name}.{stamp}")


def _notebook_record(course, student, name):
    path = course.autograded / student / ASSIGNMENT / f"{name}.ipynb"
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text()).get("metadata", {}).get("coursetools", {})
    except (OSError, ValueError):
        return None
    return metadata


def prepare(course, student, limits=None):
    """Steps 1 and 2 for one student: preflight, and a backup of the earlier autograded notebooks."""
    limits = limits or load_limits(course.root)
    record = {"student": student, "assignment": ASSIGNMENT, "ok": True, "started": _now(), "events": [],
              "notebooks": {}, "runs": [], "log": ""}
    folder = course.submitted / student / ASSIGNMENT
    try:
        record["events"] += preflight(course, student, limits["max_notebook_mb"], limits["max_file_mb"])
    except Exception as error:  # noqa: BLE001 - a preflight bug must not stop the grading
        record["events"].append(event("grading_failed", f"preflight failed: {type(error).__name__}: {error}"))
    names = course.notebooks()
    state = {"record": record, "clock": time.monotonic(), "names": names,
             "handed_in": [n for n in names if (folder / f"{n}.ipynb").is_file()],
             "submitted_files": {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}
             if folder.is_dir() else set(),
             "backup": pathlib.Path(tempfile.mkdtemp(prefix=f"autograded-{student}-"))}
    autograded = course.autograded / student / ASSIGNMENT
    if autograded.is_dir():
        shutil.copytree(autograded, state["backup"] / ASSIGNMENT, symlinks=True)
    return state


def _fresh(path, since):
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False


def finish(course, state, result=None, since=None):
    """Steps 4 to 6 for one student, after an nbgrader run that began at ``since`` (time.time()).

    ``result`` is that run's CompletedProcess (None when there was none). Notebooks it did not
    grade afresh are graded one by one."""
    record = state["record"]
    student = record["student"]
    autograded = course.autograded / student / ASSIGNMENT
    handed_in, names = state["handed_in"], state["names"]
    since = time.time() if since is None else since
    failed = []
    try:
        if result is not None:
            record["runs"].append({"notebook": "*", "returncode": result.returncode})
        missing = [n for n in handed_in if not _fresh(autograded / f"{n}.ipynb", since)]
        if missing:
            if result is not None:
                record["log"] += result.stdout[-6000:]
            record["events"].append(event("retried", "nbgrader did not grade this submission in one run (exit code "
                                                     f"{result.returncode if result else '-'}); "
                                                     f"{', '.join(missing)} graded one by one"))
            for name in missing:
                retry = course.nbgrader("autograde", ASSIGNMENT, "--student", student, "--notebook", name,
                                        "--force", check=False, quiet=True)
                record["runs"].append({"notebook": name, "returncode": retry.returncode})
                if retry.returncode != 0 or not (autograded / f"{name}.ipynb").exists():
                    record["log"] += f"\n--- {name} ---\n" + retry.stdout[-4000:]
                    failed.append(name)
        _ensure_submission(course, student, zero=not handed_in)
        for name in failed:
            earlier = state["backup"] / ASSIGNMENT / f"{name}.ipynb"
            if earlier.exists():
                autograded.mkdir(parents=True, exist_ok=True)
                shutil.copy2(earlier, autograded / f"{name}.ipynb")
                status, detail = "kept_earlier", "nbgrader could not grade this notebook; the earlier grades are kept"
            else:
                status, detail = "failed", "nbgrader could not grade this notebook; it scores 0 until it is regraded"
            record["notebooks"][name] = {"status": status, "events": [event("grading_failed", detail, notebook=name)]}
            record["ok"] = False
        record["events"] += _sweep(course, student, state["submitted_files"],
                                   [n for n in handed_in if n not in failed])
    finally:
        shutil.rmtree(state["backup"], ignore_errors=True)
    quarantined = {e.get("notebook") for e in record["events"] if e["kind"] == "invalid_notebook"}
    for name in names:
        if name in record["notebooks"]:
            continue
        if name in handed_in:
            metadata = _notebook_record(course, student, name) or {}
            record["notebooks"][name] = {"status": "graded", "events": metadata.get("events", []),
                                         "voided": bool(metadata.get("voided"))}
            if metadata.get("resources"):
                record["notebooks"][name]["resources"] = metadata["resources"]
        elif name in quarantined:
            record["notebooks"][name] = {"status": "quarantined", "events": []}
        else:
            record["notebooks"][name] = {"status": "missing", "events": []}
    record["seconds"] = round(time.monotonic() - state["clock"], 1)
    save_outcome(course, record)
    return record


def _alarm_on_change(course, before, records, others=0):
    """Record a course-files alarm on each record; return the changed paths."""
    changed = manifest.changes(before, manifest.take(course))
    if changed:
        note = f" (graded in one run with {others} other students)" if others else ""
        for record in records:
            record["events"].append(event("course_files_changed", "course files changed while this submission was "
                                                                  f"graded{note}: " + ", ".join(changed[:10])))
    return changed


def grade_student(course, student):
    """Autograde one student's submission; return the outcome record (a JSON-able dict,
    described in ``coursetools.autograde.outcomes``), also saved as reports/outcomes/<student>.json.
    """
    state = prepare(course, student)
    watched, since, result = manifest.take(course), time.time(), None
    if state["handed_in"]:
        result = course.nbgrader("autograde", ASSIGNMENT, "--student", student, "--force", check=False, quiet=True)
    record = finish(course, state, result, since)
    _alarm_on_change(course, watched, [record])
    save_outcome(course, record)
    return record


def grade_students(course, students):
    """``grade_student`` for each student, with one nbgrader run for all of them first.

    One run saves nbgrader's start-up per student (seconds each). A notebook that run
    did not grade is then graded on its own, exactly as ``grade_student`` does.
    Returns the outcome records. Raises ``manifest.CourseFilesChanged`` (after saving the
    records) when the course's files changed during the run.
    """
    course.require_sandbox()
    limits = load_limits(course.root)
    watched = manifest.take(course)
    states = {student: prepare(course, student, limits) for student in students}
    since, result = time.time(), None
    graded = [s for s in students if states[s]["handed_in"]]
    if graded:
        exclude = sorted(set(course.students()) - set(graded))
        args = ["autograde", ASSIGNMENT, "--force"]
        if exclude:
            args.append("--CourseDirectory.student_id_exclude=" + ",".join(exclude))
        result = course.nbgrader(*args, check=False, quiet=True)
    records = [finish(course, states[student], result, since) for student in students]
    changed = _alarm_on_change(course, watched, records, others=len(records) - 1)
    for record in records:
        save_outcome(course, record)
    if changed:
        manifest.check(course, watched)
    return records

