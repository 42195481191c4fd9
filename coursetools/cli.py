"""``python -m coursetools``: the instructor's commands.

    pipeline   release, collect the sample class (SAMPLE_CLASS; --all: every spec),
               grade-parallel, feedback, export grades, report, and print the score
               table (the README's first command, `make grade`)
    release    regenerate release/session10 from source/session10
    collect    turn submissions/*.toml into submitted/<student>/session10/
    autograde  autograde everything in submitted/
    grade-parallel  autograde on every core, or on a Dask cluster (--scheduler)
    feedback   write feedback HTML (hidden tests removed) to feedback/
    export     write grades.csv (--format canvas|moodle: the CSV that LMS's gradebook imports)
    report     the instructor's report: scores, flagged submissions, common mistakes
    validate   run notebooks and exit 1 if any test fails
    trial      try submission specs in a throw-away copy of the course
    nbtext     convert notebooks to and from the text form used for editing
"""
import argparse
import pathlib
import sys

from coursetools import REPO
from coursetools.autograde.course import Course
from coursetools.autograde.lms import FORMATS
from coursetools.pipeline import (SAMPLE_CLASS, autograde, collect, export, feedback, pipeline, release, report,
                                  reset_samples, sample_specs, validate)


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
                                 help=f"spec names in --submissions (default: the sample class, "
                                      f"{', '.join(SAMPLE_CLASS)})")
    pipeline_parser.add_argument("--all", action="store_true", dest="everyone",
                                 help="every spec in --submissions (the whole corpus; "
                                      "python -m coursetools.tools.corpus also checks each against its spec)")
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
    export_parser.add_argument("--to", default=None, help="CSV path (default: grades.csv, canvas.csv or moodle.csv)")
    export_parser.add_argument("--format", choices=FORMATS, default="nbgrader",
                               help="nbgrader (default): nbgrader's export; canvas or moodle: that gradebook's "
                                    "import, one column per assignment, points out of its total, empty while "
                                    "written answers are ungraded")
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
    from coursetools.autograde.manifest import CourseFilesChanged
    from coursetools.grader.sandbox import SandboxUnavailable
    try:
        run(args, course)
    except (SandboxUnavailable, CourseFilesChanged) as error:
        raise SystemExit(f"{args.command}: {error}") from None


def run(args, course):
    """Carry out one parsed command."""
    if args.command == "nbtext":
        from coursetools.tools import nbtext
        nbtext.main(args.rest)
    elif args.command == "validate":
        sys.exit(validate(args.notebooks))
    elif args.command == "trial":
        from coursetools.tools.trial import run_trial
        run_trial(args.specs or [course.root / "submissions" / f"{name}.toml" for name in ("reference", "blank")],
                  args.notebook, args.keep, sandbox=course.sandbox)
    elif args.command == "release":
        release(course)
    elif args.command == "collect":
        collect(course, args.submissions or course.root / "submissions")
    elif args.command == "autograde":
        autograde(course, args.students)
    elif args.command == "grade-parallel":
        from coursetools.autograde import parallel
        sys.exit(parallel.main(course, args.students, args.workers, args.scheduler, args.db_url,
                               not args.no_progress))
    elif args.command == "feedback":
        feedback(course)
    elif args.command == "export":
        default = "grades.csv" if args.format == "nbgrader" else f"{args.format}.csv"
        export(course, args.to or default, args.format)
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
