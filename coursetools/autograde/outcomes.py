"""The records of grading: ``reports/outcomes/<student>.json``, one per student.

``coursetools.autograde.grade`` writes them (``save_outcome``); the instructor's report
(``coursetools.autograde.report``) and the pipeline read them (``load_outcomes``,
``all_events``). Readers depend on this module, never on the grader.

A record: ``student``, ``ok`` (every handed-in notebook was graded in its run), ``started``,
``seconds``, ``notebooks`` ({name: {"status", "events", "resources"}}, status one of graded,
missing, quarantined, failed, kept_earlier; ``resources`` what its sandbox used: ``cgroup`` (v1, v2 or
None: per-process limits only), ``memory_peak_mb``, ``cpu_seconds``, ``processes_peak``,
``disk_peak_mb`` per tmpfs, ``limits_hit``, ``detached``, ``written_outside``), ``events``
(about the submission as a whole), ``runs`` (nbgrader calls and their exit codes) and ``log``
(nbgrader's output of failed runs, saved beside the record as ``<student>.log``).
"""
import json
import os
import pathlib

OUTCOMES = pathlib.Path("reports") / "outcomes"


def save_outcome(course, record):
    """Write reports/outcomes/<student>.json (the log stays out; it is in the returned record)."""
    folder = course.root / OUTCOMES
    folder.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in record.items() if k != "log"}
    path = folder / f"{record['student']}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)
    if record.get("log"):
        (folder / f"{record['student']}.log").write_text(record["log"])
    return path


def load_outcomes(course):
    """{student: outcome record} from reports/outcomes/."""
    folder = course.root / OUTCOMES
    outcomes = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            outcomes[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return outcomes


def resource_records(record):
    """{notebook: resource record} of an outcome record (the notebooks graded in a sandbox)."""
    return {name: entry["resources"] for name, entry in record.get("notebooks", {}).items() if entry.get("resources")}


def all_events(record):
    """Every event of an outcome record, each with its notebook set when it belongs to one."""
    events = [dict(e) for e in record.get("events", [])]
    for name, entry in record.get("notebooks", {}).items():
        for e in entry.get("events", []):
            events.append(dict(e, notebook=e.get("notebook", name)))
    return events
