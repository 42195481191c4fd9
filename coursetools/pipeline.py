"""The instructor's operations, one function each: what ``python -m coursetools`` runs.

The command-line module (``coursetools.cli``) only parses arguments and calls these; the
tools (``coursetools.tools``: trial, corpus) and the tests call them as a library.
"""
import importlib.util
import pathlib
import shutil
import time

from coursetools import ASSIGNMENT, REPO
from coursetools.autograde import lms, parallel, report as instructor_report
from coursetools.autograde.grade import grade_students
from coursetools.autograde.outcomes import OUTCOMES, all_events
from coursetools.autograde.scores import format_table, gradebook_students, notebook_scores
from coursetools.autograde.submissions import materialize, materialize_all
from coursetools.core.events import severity

# The sample class of `make grade` (`python -m coursetools pipeline`): eight specs from
# submissions/ that show the whole range in about two minutes on two cores -- full marks,
# zero, a partial hand-in, four typical mistakes with their diagnoses, and one tamperer the
# report flags. `pipeline --all` grades every spec the same way; `python -m coursetools.tools.corpus`
# (`make corpus`) also checks each against its expected scores.
SAMPLE_CLASS = (
    "reference",               # the reference solution: full marks
    "blank",                   # the release handed in untouched: zero
    "partial",                 # notebooks 01 and 04 only, 04 half done
    "nb06_output_size_round",  # rounds instead of taking the floor
    "nb07_flipped_kernel",     # true convolution instead of cross-correlation
    "nb08_sobel_swapped",      # the lecture's Sobel labels: G_x and G_y swapped
    "nb10_missing_bias",       # the capstone forgets the bias
    "hostile_numpy_tamper",    # replaces numpy.abs to pass a check: flagged, earns nothing for it
)


def release(course):
    course.sync_data()
    result = course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True, check=False)
    if result.returncode:
        if "there are submissions associated with it" in result.stdout:
            raise SystemExit(
                "release: the gradebook already holds submissions for a notebook whose graded cells changed.\n"
                "nbgrader will not change the cells under existing grades. If these are only the sample\n"
                "submissions, `python -m coursetools reset-samples` clears them; with a real class, keep the\n"
                "cells as they were or start a new assignment.")
        raise SystemExit(f"release failed:\n{result.stdout[-3000:]}")
    for cache in course.release.rglob("__pycache__"):
        shutil.rmtree(cache)
    print(f"released {len(course.notebooks())} notebooks to {course.release.relative_to(course.root)}")


def reset_samples(course, spec_dir):
    """Forget earlier runs of the sample submissions, and refuse if real students are graded here."""
    samples = {p.stem for p in pathlib.Path(spec_dir).glob("*.toml")}
    others = sorted(set(gradebook_students(course)) - samples)
    if others:
        raise SystemExit(f"the gradebook holds students who are not samples ({', '.join(others[:5])}...); "
                         "run the sample pipeline in a copy of the course instead")
    course.db.unlink(missing_ok=True)
    for folder in (course.submitted, course.autograded, course.feedback, course.root / "quarantine"):
        for student in samples:
            shutil.rmtree(folder / student, ignore_errors=True)
    for student in samples:  # their grading records (coursetools.autograde.grade)
        for suffix in (".json", ".log"):
            (course.root / OUTCOMES / f"{student}{suffix}").unlink(missing_ok=True)


def collect(course, spec_dir):
    specs = materialize_all(course, spec_dir)
    print(f"collected {len(specs)} submissions from {spec_dir}")
    return specs


def autograde(course, students=None):
    """Autograde with coursetools.autograde.grade: preflight, one nbgrader run, then a notebook-by-notebook
    retry of whatever it did not grade; one broken submission never stops the others."""
    students = students or course.students()
    outcomes = grade_students(course, students)
    flagged = [o["student"] for o in outcomes
               if not o.get("ok") or any(severity(e["kind"]) != "note" for e in all_events(o))]
    print(f"autograded {len(students)} submissions"
          + (f"; {len(flagged)} flagged (python -m coursetools report): {', '.join(flagged[:10])}"
             + (" ..." if len(flagged) > 10 else "") if flagged else ""))
    return outcomes


def feedback(course):
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force", quiet=True)
    print(f"feedback written to {course.feedback.relative_to(course.root)}")


def export(course, path, fmt="nbgrader"):
    """grades.csv as nbgrader writes it, or the CSV that Canvas or Moodle imports (autograde/lms.py)."""
    if fmt == "nbgrader":
        course.nbgrader("export", "--to", path, quiet=True)
    else:
        pending = lms.export(f"sqlite:///{course.db}", path, fmt)
        for student, assignment in pending:
            print(f"{student}/{assignment}: written answers not graded yet; left empty")
    print(f"grades exported to {path}" + ("" if fmt == "nbgrader" else f" ({fmt} gradebook import)"))


def report(course):
    """Print the instructor's report and write it to reports/report.md."""
    path, text = instructor_report.write(course)
    print(text)
    print(f"report written to {path.relative_to(course.root)}")


def validate(paths):
    spec = importlib.util.spec_from_file_location("validate", REPO / "source" / ASSIGNMENT / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(paths)


def sample_specs(spec_dir, names=(), everyone=False):
    """The spec files the pipeline grades: ``names`` (spec names or paths in ``spec_dir``),
    every spec in ``spec_dir`` with ``everyone``, else SAMPLE_CLASS."""
    spec_dir = pathlib.Path(spec_dir)
    if everyone:
        return sorted(spec_dir.glob("*.toml"))
    paths = [spec_dir / f"{pathlib.Path(name).stem}.toml" for name in (names or SAMPLE_CLASS)]
    missing = [path.stem for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(f"pipeline: no spec {', '.join(missing)} in {spec_dir}")
    return paths


def _section(text, title):
    """One ``## title`` section of a Markdown report ("" when there is none)."""
    for part in text.split("\n## "):
        if part.startswith(title):
            return "## " + part.strip()
    return ""


def pipeline(course, spec_paths, spec_dir, workers=None, progress=True):
    """release, collect, grade-parallel, feedback, export, report; ends with the score table.

    The same steps for the sample class and for every spec (``--all``); grading is
    ``grade-parallel``, as for a real class and for ``python -m coursetools.tools.corpus``.
    Returns grade-parallel's exit status (1 when a submission could not be graded).
    """
    started = time.perf_counter()
    reset_samples(course, spec_dir)
    course.require_sandbox()
    release(course)
    students = [materialize(course, path) for path in spec_paths]
    print(f"collected {len(students)} submissions: {', '.join(students)}", flush=True)
    status = parallel.main(course, students, workers, progress=progress)
    if status == 2:  # nothing was graded (no gradebook, no sandbox, course files changed): said why
        raise SystemExit(status)
    feedback(course)
    export(course, "grades.csv")
    path, text = instructor_report.write(course)
    attention = _section(text, "Needs attention")
    if attention:
        print("\n" + attention)
    print("\n" + format_table(course, notebook_scores(course)))
    print(f"\nreport written to {path.relative_to(course.root)} (flags, most common mistakes, "
          f"tests failed most often); the whole pipeline took {time.perf_counter() - started:.0f} s")
    return status
