"""The instructor's report after autograding: ``python -m coursetools report``.

Written to ``reports/report.md`` and printed. It has four parts:

1. **Scores**: each student's autograded points per notebook, with a letter for
   what happened to that notebook (T timed out, K kernel died, M out of memory,
   X tampering (reported; its tests voided where configured), F could not be graded, Q unreadable notebook
   quarantined, ? code to review, A active content removed from its pages, B handed in blank, - not handed
   in); then the student's code, written (hand-graded; "not graded yet" until the formgrader has them) and total points.
   Everything a student controls (names, file names, messages, printed text) is escaped (``inert``).
2. **Needs attention**: every student with an alarm or warning (tampering,
   grading failures, timeouts, crashes, memory, quarantined files, code to
   review), grouped by kind, with the details the grader recorded.
3. **Most common mistakes**: the diagnoses in the failing tests' messages
   (convcheck's ``likely mistake: ...`` lines, and the hint a test gives for a
   known wrong answer), with how many students got each and in which tests:
   what to re-teach.
4. **Tests failed most often**, notebooks handed in blank, and notes (restored cells,
   extra files, ...).

Answers never written are left out of 3 and 4: an answer cell still as released (the same text
as the release's cell, or nbgrader's checksum of it as handed out) was not attempted, whatever the
tests that check it raise; so is a whole notebook with every answer cell as released, and a test
stopped by an unanswered cell it depends on. Files nbgrader's own submit and collect write
(``submission_secret.txt``, ``timestamp.txt``) are not reported as extra files.

Sources: the gradebook (scores), ``reports/outcomes/<student>.json`` (the records of grading,
``coursetools.autograde.outcomes``) and the autograded notebooks (messages,
and the events the grading preprocessors recorded in them).
"""
import collections
import datetime
import json
import re

from coursetools import ASSIGNMENT
from coursetools.autograde.outcomes import all_events, load_outcomes
from coursetools.autograde.preflight import NBGRADER_FILES  # filtered here too, for records made before
from coursetools.core.events import KINDS, severity
from coursetools.core.limits import load_limits

REPORT = "reports/report.md"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MISTAKE = re.compile(r"likely mistake:\s*(.+)")
# Markdown's inline syntax (emphasis, code, links and images, HTML, entities, table cells, strikethrough,
# maths): a student's text shows these literally once each is backslash-escaped. An underscore inside a
# word starts nothing (CommonMark), so names like blank_student stay readable. Line-start syntax
# (headings, lists, quotes, rows) cannot arise: the text is one line and never starts one.
MARKDOWN_SYNTAX = re.compile(r"[\\`*\[\]<>&|~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
HINT = re.compile(r"^\s*hint:\s*(.+)$", re.M)
LETTERS = [("tampering", "X"), ("grading_failed", "F"), ("invalid_notebook", "Q"), ("kernel_died", "K"),
           ("memory", "M"), ("timeout", "T"), ("notebook_timeout", "T"), ("suspicious", "?"),
           ("active_content", "A")]
NOT_A_MISTAKE = {"NotRun", "KernelDied", "GradingVoided", "CellTimeoutError"}


def inert(text):
    """Text a student controls (names, file names, messages, printed output), safe inside one report line:
    on one line, with every Markdown and HTML character escaped, so it shows verbatim and starts nothing."""
    text = " ".join(CONTROL.sub(" ", ANSI.sub("", str(text))).split())
    return MARKDOWN_SYNTAX.sub(lambda found: "\\" + found.group(0), text)


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


def _source(cell):
    text = cell.get("source", "")
    text = "".join(text) if isinstance(text, list) else str(text)
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").splitlines()).strip()


def _meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def release_answers(course, notebook):
    """{grade_id: release source} of the answer (solution) cells of a notebook, or {} without a release."""
    try:
        nb = json.loads((course.release / f"{notebook}.ipynb").read_text())
    except (OSError, ValueError):
        return {}
    return {_meta(c).get("grade_id"): _source(c) for c in nb.get("cells", []) if _meta(c).get("solution")}


STUB = re.compile(r"^(# YOUR CODE HERE|YOUR ANSWER HERE|raise NotImplementedError\(.*\))$")


def _unchanged(cell, release):
    """Whether an answer cell is still as released: the same text as the release's cell, or nbgrader's
    checksum of the cell as handed out (kept in its metadata) still matches (a release regenerated since,
    with other stubs), or nothing but nbgrader's placeholder lines."""
    grade_id = _meta(cell).get("grade_id")
    text = _source(cell)
    if grade_id in release and text == release[grade_id]:
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and all(STUB.match(line) for line in lines):
        return True
    checksum = _meta(cell).get("checksum")
    if not checksum:
        return False
    from nbformat import from_dict
    from nbgrader.utils import compute_checksum
    source = cell.get("source", "")
    try:
        return compute_checksum(from_dict(dict(cell, source="".join(source) if isinstance(source, list)
                                               else source))) == checksum
    except Exception:  # noqa: BLE001 - metadata a student broke: not provably untouched
        return False


def _raised(cell, *names):
    return any(o.get("output_type") == "error" and o.get("ename") in names for o in cell.get("outputs", []))


def answer_state(nb, release):
    """What was answered in an autograded notebook (its answer cells are the submitted ones).

    Returns dict(answers, blank, tests): the answer cells' grade_ids, those still as released, and per
    test cell (grade_id) a dict(group, blank_above, blocked): the code answer cells right above the test
    (the answer it checks), whether an answer cell above it is still as released, and whether one of its
    own answer cells stopped on an unanswered one (NotImplementedError, or NameError with a blank above)."""
    answers, blank, tests = [], set(), {}
    pending, group = [], []
    for cell in nb.get("cells", []) if nb else []:
        meta = _meta(cell)
        if meta.get("solution"):
            answers.append(meta.get("grade_id"))
            if _unchanged(cell, release):
                blank.add(meta.get("grade_id"))
            if cell.get("cell_type") == "code":
                pending.append(cell)
        elif meta.get("grade") and cell.get("cell_type") == "code":
            if pending:
                group, pending = pending, []
            ids = [_meta(c).get("grade_id") for c in group]
            blank_above = bool(blank)
            blocked = any(_raised(c, "NotImplementedError") or blank_above and _raised(c, "NameError")
                          for c in group if _meta(c).get("grade_id") not in blank)
            tests[meta.get("grade_id")] = {"group": ids, "blank_above": blank_above, "blocked": blocked}
    return {"answers": answers, "blank": blank, "tests": tests}


def is_blank(state):
    """A handed-in notebook with no answer written: every answer cell still as released."""
    return bool(state["answers"]) and set(state["answers"]) <= state["blank"]


def not_attempted(ename, message, test=None, state=None):
    """A failure that only says an answer was never written: the test's own answer cells are still as
    released (whatever that makes the test raise), the notebook is blank, or the failure comes from an
    unanswered cell it depends on (the release stub's NotImplementedError, or a NameError or a stopped
    answer cell below a blank one)."""
    if ename == "NotImplementedError" or "NotImplementedError" in message:
        return True
    if state is None:
        return False
    if is_blank(state):
        return True
    info = state["tests"].get(test)
    if info is None:
        return False
    if info["group"] and set(info["group"]) <= state["blank"]:
        return True
    return info["blocked"] or info["blank_above"] and ename == "NameError"


def nbgrader_file(event):
    """An "extra file" that nbgrader's own submit or collect wrote (not the student's)."""
    return event.get("kind") == "extra_file" and event.get("detail", "").split(" ", 1)[0] in NBGRADER_FILES


def collect(course):
    """Everything the report shows, as data: dict(students, notebooks, scores, outcomes, mistakes, failures)."""
    from coursetools.autograde.scores import notebook_scores
    notebooks = course.notebooks()
    scores = notebook_scores(course) if course.db.exists() else {}
    outcomes = load_outcomes(course)
    students = sorted(set(scores) | {s for s in outcomes if (course.submitted / s).is_dir()})
    mistakes = collections.defaultdict(lambda: {"students": set(), "where": set()})
    failures = collections.defaultdict(set)
    submitted = collections.defaultdict(set)
    answered = collections.defaultdict(set)
    blank = set()
    releases = {notebook: release_answers(course, notebook) for notebook in notebooks}
    events = {}
    unsandboxed, no_cgroup = set(), set()
    for student in students:
        record = outcomes.get(student, {})
        events[student] = [e for e in all_events(record) if not nbgrader_file(e)]
        flagged = {e.get("notebook") for e in events[student] if severity(e["kind"]) == "alarm"}
        for notebook in notebooks:
            status = record.get("notebooks", {}).get(notebook, {}).get("status", "graded")
            nb = autograded_notebook(course, student, notebook) if status in ("graded", "kept_earlier") else None
            if nb is None:
                continue
            submitted[notebook].add(student)
            meta = nb.get("metadata", {}).get("coursetools", {})
            if meta.get("sandbox") == "off":
                unsandboxed.add((student, notebook))
            elif "resources" in meta and not meta["resources"].get("cgroup"):
                no_cgroup.add((student, notebook))
            alarm = any(severity(e.get("kind")) == "alarm" for e in meta.get("events", []))
            if meta.get("voided") or alarm or notebook in flagged or None in flagged:
                events[student] += manual_overrides(course, student, notebook, nb)
            if meta.get("voided"):
                continue
            state = answer_state(nb, releases[notebook])
            if is_blank(state):
                blank.add((student, notebook))
                continue
            failing = {grade_id: (ename, message) for grade_id, ename, message in failing_tests(nb)}
            for grade_id, info in state["tests"].items():
                ename, message = failing.get(grade_id, ("", ""))
                if not (info["group"] and set(info["group"]) <= state["blank"]) and not \
                        (grade_id in failing and not_attempted(ename, message, grade_id, state)):
                    answered[(notebook, grade_id)].add(student)
            for grade_id, (ename, message) in failing.items():
                if ename in NOT_A_MISTAKE or not_attempted(ename, message, grade_id, state):
                    continue
                failures[(notebook, grade_id)].add(student)
                for text in diagnoses(message):
                    mistakes[text]["students"].add(student)
                    mistakes[text]["where"].add(grade_id)
    return {"students": students, "notebooks": notebooks, "scores": scores, "outcomes": outcomes,
            "events": events, "mistakes": dict(mistakes), "failures": dict(failures), "submitted": dict(submitted),
            "answered": dict(answered), "blank": blank, "unsandboxed": unsandboxed,
            "no_cgroup": no_cgroup}


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


def plural(count, word):
    """'1 student', '2 students'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _sandbox_lines(data):
    lines = []
    for key, what, meaning in (
            ("unsandboxed", "Graded without the sandbox (--no-sandbox)",
             "Their code ran with the grader's file access, so these grades carry none of the sandbox's guarantees."),
            ("no_cgroup", "Graded without a cgroup",
             "The grader could not make one (run as root, or give it a delegated cgroup v2 subtree): memory and "
             "processes were limited per process, not for each sandbox as a whole.")):
        found = data.get(key) or set()
        if found:
            students = sorted({s for s, _ in found})
            lines += [f"**{what}**: {plural(len(found), 'notebook')} of {plural(len(students), 'student')} "
                      f"({', '.join(inert(s) for s in students[:8])}{' ...' if len(students) > 8 else ''}). "
                      + meaning, ""]
    return lines


def _letters(events, notebook):
    kinds = {e["kind"] for e in events if e.get("notebook") == notebook}
    return "".join(dict.fromkeys(letter for kind, letter in LETTERS if kind in kinds))


def _cell(entry, letters, status, blank=False):
    if status in ("missing",) and not letters:
        return "-"
    if entry is None:
        return ("-" + letters) if letters else "-"
    letters = letters + ("B" if blank else "")
    text = f"{entry['code_score']:g}/{entry['max_code_score']:g}"
    return f"{text} {letters}" if letters else text


def render(course, data=None):
    """The report as Markdown text."""
    from coursetools.autograde.scores import further_text, total_text, totals, written_text
    data = data or collect(course)
    notebooks, students = data["notebooks"], data["students"]
    limits = load_limits(course.root)
    lines = [f"# Autograding report: {ASSIGNMENT}", "",
             f"{datetime.datetime.now():%Y-%m-%d %H:%M}. {plural(len(students), 'student')}, "
             f"{plural(len(notebooks), 'notebook')}. "
             f"Limits: {limits['cell_timeout']} s per cell, {limits['notebook_timeout']} s per notebook, "
             f"{limits['memory_limit_mb']} MiB per kernel (nbgrader_config.py; docs/grading-guarantees.md).", "",
             *_sandbox_lines(data),
             "## Scores", "",
             "The core's autograded (code) points per notebook, then the student's code, written and total points "
             "of the core, then the optional *going further* parts' points, apart: the core alone earns full "
             "marks. Written answers are graded by hand in the formgrader; until they are, they show as *not "
             "graded yet* and count 0 in the total (*so far*).", "",
             "| student | " + " | ".join(n[:2] for n in notebooks) + " | code | written | total | going further "
             "| flags |",
             "|---|" + "---:|" * len(notebooks) + "---:|---:|---:|---:|---|"]
    for student in students:
        row = data["scores"].get(student, {})
        record = data["outcomes"].get(student, {})
        events = data["events"].get(student, [])
        cells = []
        for notebook in notebooks:
            status = record.get("notebooks", {}).get(notebook, {}).get("status", "graded")
            cells.append(_cell(row.get(notebook), _letters(events, notebook), status,
                               (student, notebook) in data.get("blank", ())))
        sums = totals(row, notebooks)
        flagged = [KINDS[k][1] for k in dict.fromkeys(e["kind"] for e in events)
                   if k in KINDS and KINDS[k][0] in ("alarm", "warn")]
        lines.append(f"| {inert(student)} | " + " | ".join(cells) + f" | {sums['code']:g}/{sums['max_code']:g} | "
                     f"{written_text(sums)} | {total_text(sums)} | {further_text(sums)} | {'; '.join(flagged)} |")
    lines += ["", "Letters: X tampering (named under Needs attention), F could not be graded, "
                  "Q unreadable notebook (quarantined), K kernel died, M out of memory, T timed out, "
                  "? code to review, A scripts or other active content shown (removed from the pages), "
                  "B handed in blank (no answer written), - not handed in.", ""]

    lines += ["## Needs attention", ""]
    attention = False
    for kind, (level, label) in KINDS.items():
        if level == "note":
            continue
        rows = [(s, e) for s in students for e in data["events"].get(s, []) if e["kind"] == kind]
        if not rows:
            continue
        attention = True
        lines.append(f"### {label} ({plural(len({s for s, _ in rows}), 'student')})")
        lines.append("")
        for student, e in rows:
            where = " / ".join(inert(x) for x in (e.get("notebook"), e.get("cell")) if x)
            how = f" \\[{inert(e['source'])}\\]" if e.get("source") else ""
            lines.append(f"- **{inert(student)}**{' (' + where + ')' if where else ''}: {inert(e['detail'])}{how}")
        lines.append("")
    if not attention:
        lines += ["Nothing: no submission timed out, crashed, tampered or failed to grade.", ""]

    lines += ["## Most common mistakes", "",
              "What to re-teach: the diagnoses in the failing tests' messages (`likely mistake: ...`; where a "
              "message has none, its hint, marked (hint)). Answers never written (still as released, or stopped "
              "by one that is) are left out.", ""]
    mistakes = sorted(data["mistakes"].items(), key=lambda item: (-len(item[1]["students"]), item[0]))
    if mistakes:
        lines += ["| diagnosis | students | tests |", "|---|---:|---|"]
        for text, entry in mistakes[:30]:
            where = ", ".join(sorted(entry["where"]))
            lines.append(f"| {inert(text)} | {len(entry['students'])} | {inert(where)} |")
    else:
        lines.append("No diagnosed mistakes.")
    lines += ["", "## Tests failed most often", ""]
    failures = sorted(data["failures"].items(), key=lambda item: (-len(item[1]), item[0]))
    if failures:
        lines += ["Answers never written are left out: a test counts only the students who answered what it "
                  "checks.", "", "| test | notebook | students failing | of those who answered |",
                  "|---|---|---:|---:|"]
        answered = data.get("answered", {})
        for (notebook, grade_id), who in failures[:20]:
            count = len(answered.get((notebook, grade_id), who))
            lines.append(f"| {inert(grade_id)} | {inert(notebook)} | {len(who)} | {count} |")
    else:
        lines.append("No test failed.")

    blank = sorted(data.get("blank", ()))
    if blank:
        lines += ["", "## Handed in blank", "",
                  "No answer written (every answer cell as released): left out of the mistakes and failed tests.", ""]
        by_student = collections.defaultdict(list)
        for student, notebook in blank:
            by_student[student].append(notebook)
        lines += [f"- {inert(student)}: {inert(', '.join(names))}" for student, names in by_student.items()]

    notes = [(s, e) for s in students for e in data["events"].get(s, [])
             if severity(e["kind"]) == "note" and e["kind"] != "missing_notebook"]
    if notes:
        lines += ["", "## Notes", ""]
        for student, e in notes:
            where = f" ({inert(e['notebook'])})" if e.get("notebook") else ""
            lines.append(f"- {inert(student)}{where}: {inert(KINDS.get(e['kind'], ('', e['kind']))[1])}: "
                         f"{inert(e['detail'])}")
    return "\n".join(lines) + "\n"


def write(course, path=None):
    """Write the report (default reports/report.md); return (path, text)."""
    text = render(course)
    path = course.root / (path or REPORT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, text
