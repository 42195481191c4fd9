"""``python -m coursetools``: the instructor's commands.

    pipeline   release, collect the sample class (SAMPLE_CLASS; --all: every spec),
               grade-parallel, feedback, export grades, report, and print the score
               table (the README's first command, `make grade`)
    release    regenerate release/session10 from source/session10
    collect    turn submissions/*.toml into submitted/<student>/session10/
    autograde  autograde everything in submitted/
    grade-parallel  autograde on every core, or on a Dask cluster (--scheduler)
    feedback   write feedback HTML (hidden tests removed) to feedback/
    export     write grades.csv
    report     the instructor's report: scores, flagged submissions, common mistakes
    validate   run notebooks and exit 1 if any test fails
    trial      try submission specs in a throw-away copy of the course
    nbtext     convert notebooks to and from the text form used for editing
"""
import argparse
import importlib.util
import pathlib
import shutil
import sys

from coursetools import ASSIGNMENT, REPO
from coursetools.course import Course

# The sample class of `make grade` (`python -m coursetools pipeline`): eight specs from
# submissions/ that show the whole range in about two minutes on two cores -- full marks,
# zero, a partial hand-in, four typical mistakes with their diagnoses, and one tamperer the
# report flags. `pipeline --all` grades every spec the same way; `python -m coursetools.corpus`
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
    from coursetools.scores import gradebook_students
    samples = {p.stem for p in pathlib.Path(spec_dir).glob("*.toml")}
    others = sorted(set(gradebook_students(course)) - samples)
    if others:
        raise SystemExit(f"the gradebook holds students who are not samples ({', '.join(others[:5])}...); "
                         "run the sample pipeline in a copy of the course instead")
    course.db.unlink(missing_ok=True)
    for folder in (course.submitted, course.autograded, course.feedback, course.root / "quarantine"):
        for student in samples:
            shutil.rmtree(folder / student, ignore_errors=True)
    for student in samples:  # their grading records (coursetools.robust)
        for suffix in (".json", ".log"):
            (course.root / "reports" / "outcomes" / f"{student}{suffix}").unlink(missing_ok=True)


def collect(course, spec_dir):
    from coursetools.submissions import materialize_all
    specs = materialize_all(course, spec_dir)
    print(f"collected {len(specs)} submissions from {spec_dir}")
    return specs


def autograde(course, students=None):
    """Autograde with coursetools.robust: preflight, one nbgrader run, then a notebook-by-notebook
    retry of whatever it did not grade; one broken submission never stops the others."""
    from coursetools.robust import KINDS, all_events, grade_students
    students = students or course.students()
    outcomes = grade_students(course, students)
    flagged = [o["student"] for o in outcomes
               if not o.get("ok") or any(KINDS.get(e["kind"], ("note",))[0] != "note" for e in all_events(o))]
    print(f"autograded {len(students)} submissions"
          + (f"; {len(flagged)} flagged (python -m coursetools report): {', '.join(flagged[:10])}"
             + (" ..." if len(flagged) > 10 else "") if flagged else ""))
    return outcomes


def feedback(course):
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force", quiet=True)
    print(f"feedback written to {course.feedback.relative_to(course.root)}")


def export(course, path):
    course.nbgrader("export", "--to", path, quiet=True)
    print(f"grades exported to {path}")


def report(course):
    """Print the instructor's report and write it to reports/report.md."""
    from coursetools import report as instructor_report
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
    ``grade-parallel``, as for a real class and for ``python -m coursetools.corpus``.
    Returns grade-parallel's exit status (1 when a submission could not be graded).
    """
    import time
    from coursetools import parallel, report as instructor_report
    from coursetools.scores import format_table, notebook_scores
    from coursetools.submissions import materialize
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursetools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=pathlib.Path, default=REPO, help="course root (default: this repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    no_sandbox = argparse.ArgumentParser(add_help=False)
    no_sandbox.add_argument("--no-sandbox", action="store_true",
                            help="run students' code without the bubblewrap sandbox, with your file access "
                                 "(only where the sandbox cannot start; the report says so)")
    pipeline_parser = sub.add_parser("pipeline", help="the whole instructor pipeline on the sample class",
                                     parents=[no_sandbox])
    pipeline_parser.add_argument("specs", nargs="*",
                                 help=f"spec names in --submissions (default: the sample class, {', '.join(SAMPLE_CLASS)})")
    pipeline_parser.add_argument("--all", action="store_true", dest="everyone",
                                 help="every spec in --submissions (the whole corpus; python -m coursetools.corpus "
                                      "also checks each against its spec)")
    pipeline_parser.add_argument("--submissions", type=pathlib.Path, default=None,
                                 help="folder of submission specs (default: submissions/)")
    pipeline_parser.add_argument("--workers", type=int, help="grade-parallel workers (default: one per core)")
    pipeline_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("release", help="regenerate the student release")
    sub.add_parser("reset-samples", help="clear the sample submissions' grades and folders")
    collect_parser = sub.add_parser("collect", help="materialize sample submissions")
    collect_parser.add_argument("--submissions", type=pathlib.Path, default=None)
    grade_parser = sub.add_parser("autograde", help="autograde submitted/", parents=[no_sandbox])
    grade_parser.add_argument("students", nargs="*")
    parallel_parser = sub.add_parser("grade-parallel", help="autograde submitted/ on every core or a Dask cluster",
                                     parents=[no_sandbox])
    parallel_parser.add_argument("students", nargs="*")
    parallel_parser.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    parallel_parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    parallel_parser.add_argument("--db-url", help="gradebook URL (default: gradebook.db with a busy timeout)")
    parallel_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("feedback", help="feedback HTML without hidden tests")
    export_parser = sub.add_parser("export", help="grades to CSV")
    export_parser.add_argument("--to", default="grades.csv")
    sub.add_parser("report", help="instructor's report (also reports/report.md)")
    validate_parser = sub.add_parser("validate", help="validate notebooks; exit 1 on any failure")
    validate_parser.add_argument("notebooks", nargs="+")
    trial_parser = sub.add_parser("trial", help="try submission specs in a throw-away copy", parents=[no_sandbox])
    trial_parser.add_argument("specs", nargs="*", type=pathlib.Path)
    trial_parser.add_argument("--notebook", help="autograde only this notebook (name without .ipynb)")
    trial_parser.add_argument("--keep", type=pathlib.Path, help="make the copy here and keep it")
    nbtext_parser = sub.add_parser("nbtext", help="notebook <-> text", add_help=False)
    nbtext_parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    course = Course(args.root, sandbox=not getattr(args, "no_sandbox", False))
    from coursetools.manifest import CourseFilesChanged
    from coursetools.sandbox import SandboxUnavailable
    try:
        run(args, course)
    except (SandboxUnavailable, CourseFilesChanged) as error:
        raise SystemExit(f"{args.command}: {error}") from None


def run(args, course):
    """Carry out one parsed command."""
    if args.command == "nbtext":
        from coursetools import nbtext
        nbtext.main(args.rest)
    elif args.command == "validate":
        sys.exit(validate(args.notebooks))
    elif args.command == "trial":
        from coursetools.trial import run_trial
        run_trial(args.specs or [course.root / "submissions" / f"{name}.toml" for name in ("reference", "blank")],
                  args.notebook, args.keep, sandbox=course.sandbox)
    elif args.command == "release":
        release(course)
    elif args.command == "collect":
        collect(course, args.submissions or course.root / "submissions")
    elif args.command == "autograde":
        autograde(course, args.students)
    elif args.command == "grade-parallel":
        from coursetools import parallel
        sys.exit(parallel.main(course, args.students, args.workers, args.scheduler, args.db_url,
                               not args.no_progress))
    elif args.command == "feedback":
        feedback(course)
    elif args.command == "export":
        export(course, args.to)
    elif args.command == "report":
        report(course)
    elif args.command == "reset-samples":
        reset_samples(course, course.root / "submissions")
    elif args.command == "pipeline":
        spec_dir = args.submissions or course.root / "submissions"
        if args.specs and args.everyone:
            raise SystemExit("pipeline: give spec names or --all, not both")
        sys.exit(pipeline(course, sample_specs(spec_dir, args.specs, args.everyone), spec_dir,
                          args.workers, not args.no_progress))
