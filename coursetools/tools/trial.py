"""Try submissions against the assignment in a throw-away copy of the course.

    python -m coursetools trial [--notebook 07_convolution_from_scratch] [SPEC.toml ...]

Copies the course to a temporary folder, regenerates the release there,
materializes the given submission specs (default: the reference and the blank
release), autogrades them and prints the score table, plus the message of
every failing test cell. Nothing in the repository changes.
"""
import pathlib
import shutil
import tempfile

from coursetools import ASSIGNMENT, REPO
from coursetools.autograde import manifest
from coursetools.autograde.course import Course

COURSE_FILES = ["source", "data", "nbgrader_config.py", "coursetools", "course"]


def copy_course(target, root=REPO, sandbox=True):
    """Copy what a course needs to run into ``target``; return it as a Course."""
    target = pathlib.Path(target)
    for name in COURSE_FILES:
        path = pathlib.Path(root) / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints",
                                                                                "data" if name == "source" else "-"))
        elif path.exists():
            shutil.copy2(path, target / name)
    return Course(target, sandbox=sandbox)


def failing_cells(course, student, notebook):
    """(grade_id, the error) for each autograded test cell that failed."""
    from coursetools.autograde.report import autograded_notebook, failing_tests
    graded = autograded_notebook(course, student, notebook)
    if graded is None:
        return [("(notebook)", "not autograded")]
    return [(grade_id, f"{ename}: {text}") for grade_id, ename, text in failing_tests(graded)]


def run_trial(specs, notebook=None, keep=None, sandbox=True):
    from coursetools.pipeline import release
    from coursetools.autograde.scores import format_table, notebook_scores
    from coursetools.autograde.submissions import materialize

    workdir = pathlib.Path(keep or tempfile.mkdtemp(prefix="session10-trial-"))
    course = copy_course(workdir, sandbox=sandbox)
    course.require_sandbox()
    release(course)
    watched = manifest.take(course)
    students = [materialize(course, spec) for spec in specs]
    for student in students:
        course.nbgrader("db", "student", "add", student, quiet=True)
    args = ["autograde", ASSIGNMENT, "--force"] + (["--notebook", notebook] if notebook else [])
    result = course.nbgrader(*args, check=False, quiet=True)
    if result.returncode:
        print(result.stdout[-3000:])
    manifest.check(course, watched)
    print(format_table(course, notebook_scores(course)))
    for student in students:
        for name in ([notebook] if notebook else course.notebooks()):
            for grade_id, message in failing_cells(course, student, name):
                print(f"\n[{student} / {name} / {grade_id}]\n{message}")
    print(f"\ncourse copy: {workdir}")
    return course
