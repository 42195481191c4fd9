"""The instructor's report after autograding: ``python -m coursetools report``.

Written to ``reports/report.md`` and printed. It has four parts:

1. **Scores**: each student's autograded points per notebook, with a letter for
   what happened to that notebook (T timed out, K kernel died, M out of memory,
   X tampering (reported; its tests voided where configured), F could not be graded, Q unreadable notebook
   quarantined, ? code to review, - not handed in).
2. **Needs attention**: every student with an alarm or warning (tampering,
   grading failures, timeouts, crashes, memory, quarantined files, code to
   review), grouped by kind, with the details the grader recorded.
3. **Most common mistakes**: the diagnoses in the failing tests' messages
   (convcheck's ``likely mistake: ...`` lines, and the hint a test gives for a
   known wrong answer), with how many students got each and in which tests:
   what to re-teach.
4. **Tests failed most often**, and notes (restored cells, extra files, ...).

Sources: the gradebook (scores), ``reports/outcomes/<student>.json`` (written by
``coursetools.robust.grade_student``) and the autograded notebooks (messages,
and the events the grading preprocessors recorded in them).
"""
import collections
import datetime
import json
import re

from coursetools import ASSIGNMENT
from coursetools.robust import KINDS, all_events, load_limits, load_outcomes

REPORT = "reports/report.md"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MISTAKE = re.compile(r"likely mistake:\s*(.+)")
HINT = re.compile(r"^\s*hint:\s*(.+)$", re.M)
LETTERS = [("tampering", "X"), ("grading_failed", "F"), ("invalid_notebook", "Q"), ("kernel_died", "K"),
           ("memory", "M"), ("timeout", "T"), ("notebook_timeout", "T"), ("suspicious", "?")]
NOT_A_MISTAKE = {"NotRun", "KernelDied", "GradingVoided", "CellTimeoutError"}


def autograded_notebook(course, student, notebook):
    """The autograded notebook as a dict, or None where there is none (or it is unreadable)."""
    path = course.autograded / student / ASSIGNMENT / f"{notebook}.ipynb"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def failing_tests(nb):
    """[(grade_id, ename, message)] for each autograded test cell of a notebook that has an error."""
    found = []
    for cell in nb.get("cells", []) if nb else []:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            first = errors[0]
            found.append((meta.get("grade_id"), first.get("ename", ""), ANSI.sub("", str(first.get("evalue", "")))))
    return found


def diagnoses(message):
    """The diagnoses in one failure message: its 'likely mistake' lines, else its hint (marked so)."""
    found = [m.strip().rstrip(".") for m in MISTAKE.findall(message)]
    if not found:
        found = [f"(hint) {m.strip().rstrip('.')}" for m in HINT.findall(message)]
    return found


def _has_stub(nb):
    """Whether an answer cell still raises the release's NotImplementedError (then NameErrors in tests follow)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            if any(o.get("ename") == "NotImplementedError" for o in cell.get("outputs", [])):
                return True
    return False


def not_attempted(ename, message):
    """A failure that only says the answer was never written (the release's stub ran)."""
    return ename == "NotImplementedError" or "NotImplementedError" in message


def collect(course):
    """Everything the report shows, as data: dict(students, notebooks, scores, outcomes, mistakes, failures)."""
    from coursetools.scores import notebook_scores
    notebooks = course.notebooks()
    scores = notebook_scores(course) if course.db.exists() else {}
    outcomes = load_outcomes(course)
    students = sorted(set(scores) | {s for s in outcomes if (course.submitted / s).is_dir()})
    mistakes = collections.defaultdict(lambda: {"students": set(), "where": set()})
    failures = collections.defaultdict(set)
    submitted = collections.defaultdict(set)
    events = {}
    unsandboxed = set()
    for student in students:
        record = outcomes.get(student, {})
        events[student] = all_events(record)
        flagged = {e.get("notebook") for e in events[student] if KINDS.get(e["kind"], ("note",))[0] == "alarm"}
        for notebook in notebooks:
            status = record.get("notebooks", {}).get(notebook, {}).get("status", "graded")
            nb = autograded_notebook(course, student, notebook) if status in ("graded", "kept_earlier") else None
            if nb is None:
                continue
            submitted[notebook].add(student)
            meta = nb.get("metadata", {}).get("coursetools", {})
            if meta.get("sandbox") == "off":
                unsandboxed.add((student, notebook))
            alarm = any(KINDS.get(e.get("kind"), ("note",))[0] == "alarm" for e in meta.get("events", []))
            if meta.get("voided") or alarm or notebook in flagged or None in flagged:
                events[student] += manual_overrides(course, student, notebook, nb)
            if meta.get("voided"):
                continue
            stubbed = _has_stub(nb)
            for grade_id, ename, message in failing_tests(nb):
                if ename in NOT_A_MISTAKE or not_attempted(ename, message) or stubbed and ename == "NameError":
                    continue
                failures[(notebook, grade_id)].add(student)
                for text in diagnoses(message):
                    mistakes[text]["students"].add(student)
                    mistakes[text]["where"].add(grade_id)
    return {"students": students, "notebooks": notebooks, "scores": scores, "outcomes": outcomes,
            "events": events, "mistakes": dict(mistakes), "failures": dict(failures), "submitted": dict(submitted),
            "unsandboxed": unsandboxed}


def manual_overrides(course, student, notebook, nb):
    """Events for hand-given scores on the autograded tests of a flagged notebook (they replace its grades)."""
    from nbgrader.api import Gradebook, MissingEntry
    tests = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])
             if c.get("cell_type") == "code" and c.get("metadata", {}).get("nbgrader", {}).get("grade")
             and not c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    found = []
    with Gradebook(f"sqlite:///{course.db}") as gradebook:
        try:
            submission = gradebook.find_submission_notebook(notebook, ASSIGNMENT, student)
        except MissingEntry:
            return []
        for grade in submission.grades:
            if grade.name in tests and grade.manual_score is not None and grade.manual_score != grade.auto_score:
                found.append(f"{grade.name}: {grade.manual_score:g} by hand where the grader gave "
                             f"{grade.auto_score if grade.auto_score is not None else '-'}")
    if not found:
        return []
    return [{"kind": "manual_override", "notebook": notebook,
             "detail": "a hand-given score replaces the grader's on this flagged notebook (check it in the "
                       "formgrader): " + "; ".join(found[:5])}]


def _sandbox_lines(data):
    off = data.get("unsandboxed") or set()
    if not off:
        return []
    students = sorted({s for s, _ in off})
    return [f"**Graded without the sandbox (--no-sandbox)**: {len(off)} notebooks of {len(students)} students "
            f"({', '.join(students[:8])}{' ...' if len(students) > 8 else ''}). Their code ran with the grader's "
            "file access, so these grades carry none of the sandbox's guarantees.", ""]


def _letters(events, notebook):
    kinds = {e["kind"] for e in events if e.get("notebook") == notebook}
    return "".join(dict.fromkeys(letter for kind, letter in LETTERS if kind in kinds))


def _cell(entry, letters, status):
    if status in ("missing",) and not letters:
        return "-"
    if entry is None:
        return ("-" + letters) if letters else "-"
    text = f"{entry['code_score']:g}/{entry['max_code_score']:g}"
    return f"{text} {letters}" if letters else text


def render(course, data=None):
    """The report as Markdown text."""
    data = data or collect(course)
    notebooks, students = data["notebooks"], data["students"]
    limits = load_limits(course)
    lines = [f"# Autograding report: {ASSIGNMENT}", "",
             f"{datetime.datetime.now():%Y-%m-%d %H:%M}. {len(students)} students, {len(notebooks)} notebooks. "
             f"Limits: {limits['cell_timeout']} s per cell, {limits['notebook_timeout']} s per notebook, "
             f"{limits['memory_limit_mb']} MiB per kernel (nbgrader_config.py; docs/grading-guarantees.md).", "",
             *_sandbox_lines(data), 
             "## Scores", "",
             "Autograded (code) points per notebook; written answers are graded by hand in the formgrader.", "",
             "| student | " + " | ".join(n[:2] for n in notebooks) + " | total | flags |",
             "|---|" + "---:|" * len(notebooks) + "---:|---|"]
    for student in students:
        row = data["scores"].get(student, {})
        record = data["outcomes"].get(student, {})
        events = data["events"].get(student, [])
        cells, total, total_max = [], 0.0, 0.0
        for notebook in notebooks:
            entry = row.get(notebook)
            status = record.get("notebooks", {}).get(notebook, {}).get("status", "graded")
            cells.append(_cell(entry, _letters(events, notebook), status))
            if entry:
                total += entry["code_score"]
                total_max += entry["max_code_score"]
        flagged = [KINDS[k][1] for k in dict.fromkeys(e["kind"] for e in events)
                   if k in KINDS and KINDS[k][0] in ("alarm", "warn")]
        lines.append(f"| {student} | " + " | ".join(cells) + f" | {total:g}/{total_max:g} | {'; '.join(flagged)} |")
    lines += ["", "Letters: X tampering (named under Needs attention), F could not be graded, "
                  "Q unreadable notebook (quarantined), K kernel died, M out of memory, T timed out, "
                  "? code to review, - not handed in.", ""]

    lines += ["## Needs attention", ""]
    attention = False
    for kind, (level, label) in KINDS.items():
        if level == "note":
            continue
        rows = [(s, e) for s in students for e in data["events"].get(s, []) if e["kind"] == kind]
        if not rows:
            continue
        attention = True
        lines.append(f"### {label} ({len({s for s, _ in rows})} students)")
        lines.append("")
        for student, e in rows:
            where = " / ".join(x for x in (e.get("notebook"), e.get("cell")) if x)
            how = f" [{e['source']}]" if e.get("source") else ""
            lines.append(f"- **{student}**{' (' + where + ')' if where else ''}: {e['detail']}{how}")
        lines.append("")
    if not attention:
        lines += ["Nothing: no submission timed out, crashed, tampered or failed to grade.", ""]

    lines += ["## Most common mistakes", "",
              "What to re-teach: the diagnoses in the failing tests' messages (`likely mistake: ...`; where a "
              "message has none, its hint, marked (hint)). Answers never attempted are left out.", ""]
    mistakes = sorted(data["mistakes"].items(), key=lambda item: (-len(item[1]["students"]), item[0]))
    if mistakes:
        lines += ["| diagnosis | students | tests |", "|---|---:|---|"]
        for text, entry in mistakes[:30]:
            where = ", ".join(sorted(entry["where"]))
            lines.append(f"| {text.replace('|', '/')} | {len(entry['students'])} | {where} |")
    else:
        lines.append("No diagnosed mistakes.")
    lines += ["", "## Tests failed most often", ""]
    failures = sorted(data["failures"].items(), key=lambda item: (-len(item[1]), item[0]))
    if failures:
        lines += ["Answers never attempted are left out.", "",
                  "| test | notebook | students failing | of handed in |", "|---|---|---:|---:|"]
        for (notebook, grade_id), who in failures[:20]:
            lines.append(f"| {grade_id} | {notebook} | {len(who)} | {len(data['submitted'].get(notebook, ()))} |")
    else:
        lines.append("No test failed.")

    notes = [(s, e) for s in students for e in data["events"].get(s, [])
             if KINDS.get(e["kind"], ("note",))[0] == "note" and e["kind"] != "missing_notebook"]
    if notes:
        lines += ["", "## Notes", ""]
        for student, e in notes:
            where = f" ({e['notebook']})" if e.get("notebook") else ""
            lines.append(f"- {student}{where}: {KINDS.get(e['kind'], ('', e['kind']))[1]}: {e['detail']}")
    return "\n".join(lines) + "\n"


def write(course, path=None):
    """Write the report (default reports/report.md); return (path, text)."""
    text = render(course)
    path = course.root / (path or REPORT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, text
