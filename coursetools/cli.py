"""``python -m coursetools``: the instructor's commands.

    pipeline   release, collect the sample submissions, autograde, feedback,
               export grades, and print the score table (the README's first command)
    release    regenerate release/session10 from source/session10
    collect    turn submissions/*.toml into submitted/<student>/session10/
    autograde  autograde everything in submitted/
    feedback   write feedback HTML (hidden tests removed) to feedback/
    export     write grades.csv
    report     print each student's score per notebook
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
    for folder in (course.submitted, course.autograded, course.feedback):
        for student in samples:
            shutil.rmtree(folder / student, ignore_errors=True)


def collect(course, spec_dir):
    from coursetools.submissions import materialize_all
    specs = materialize_all(course, spec_dir)
    print(f"collected {len(specs)} submissions from {spec_dir}")
    return specs


def autograde(course, students=None):
    students = students or course.students()
    for student in students:
        course.nbgrader("db", "student", "add", student, quiet=True)
    result = course.nbgrader("autograde", ASSIGNMENT, "--force", check=False, quiet=True)
    if result.returncode != 0:
        print(result.stdout[-3000:], file=sys.stderr)
        raise SystemExit("autograde failed; see the log above")
    print(f"autograded {len(students)} submissions")


def feedback(course):
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force", quiet=True)
    print(f"feedback written to {course.feedback.relative_to(course.root)}")


def export(course, path):
    course.nbgrader("export", "--to", path, quiet=True)
    print(f"grades exported to {path}")


def report(course):
    from coursetools.scores import format_table, notebook_scores
    print(format_table(course, notebook_scores(course)))


def validate(paths):
    spec = importlib.util.spec_from_file_location("validate", REPO / "source" / ASSIGNMENT / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(paths)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursetools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=pathlib.Path, default=REPO, help="course root (default: this repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    pipeline_parser = sub.add_parser("pipeline", help="the whole instructor pipeline on the sample submissions")
    pipeline_parser.add_argument("--submissions", type=pathlib.Path, default=None)
    sub.add_parser("release", help="regenerate the student release")
    sub.add_parser("reset-samples", help="clear the sample submissions' grades and folders")
    collect_parser = sub.add_parser("collect", help="materialize sample submissions")
    collect_parser.add_argument("--submissions", type=pathlib.Path, default=None)
    grade_parser = sub.add_parser("autograde", help="autograde submitted/")
    grade_parser.add_argument("students", nargs="*")
    sub.add_parser("feedback", help="feedback HTML without hidden tests")
    export_parser = sub.add_parser("export", help="grades to CSV")
    export_parser.add_argument("--to", default="grades.csv")
    sub.add_parser("report", help="score table")
    validate_parser = sub.add_parser("validate", help="validate notebooks; exit 1 on any failure")
    validate_parser.add_argument("notebooks", nargs="+")
    trial_parser = sub.add_parser("trial", help="try submission specs in a throw-away copy")
    trial_parser.add_argument("specs", nargs="*", type=pathlib.Path)
    trial_parser.add_argument("--notebook", help="autograde only this notebook (name without .ipynb)")
    trial_parser.add_argument("--keep", type=pathlib.Path, help="make the copy here and keep it")
    nbtext_parser = sub.add_parser("nbtext", help="notebook <-> text", add_help=False)
    nbtext_parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    course = Course(args.root)
    if args.command == "nbtext":
        from coursetools import nbtext
        nbtext.main(args.rest)
    elif args.command == "validate":
        sys.exit(validate(args.notebooks))
    elif args.command == "trial":
        from coursetools.trial import run_trial
        run_trial(args.specs or [course.root / "submissions" / f"{name}.toml" for name in ("reference", "blank")],
                  args.notebook, args.keep)
    elif args.command == "release":
        release(course)
    elif args.command == "collect":
        collect(course, args.submissions or course.root / "submissions")
    elif args.command == "autograde":
        autograde(course, args.students)
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
        reset_samples(course, spec_dir)
        release(course)
        collect(course, spec_dir)
        autograde(course)
        feedback(course)
        export(course, "grades.csv")
        report(course)
