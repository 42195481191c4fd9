"""Try submissions against the assignment in a throw-away copy of the course.

    python -m coursetools trial [--notebook 07_convolution_from_scratch] [SPEC.toml ...]

Copies the course to a temporary folder, regenerates the release there,
materializes the given submission specs (default: the reference and the blank
release), autogrades them and prints the score table, plus the message of
every failing test cell. Nothing in the repository changes.
"""
import json
import pathlib
import shutil
import tempfile

from coursetools import ASSIGNMENT, REPO
from coursetools.course import Course

COURSE_FILES = ["source", "data", "nbgrader_config.py", "coursetools", "course"]


def copy_course(target, root=REPO):
    """Copy what a course needs to run into ``target``; return it as a Course."""
    target = pathlib.Path(target)
    for name in COURSE_FILES:
        path = pathlib.Path(root) / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints",
                                                                                "data" if name == "source" else "-"))
        elif path.exists():
            shutil.copy2(path, target / name)
    return Course(target)


def failing_cells(course, student, notebook):
    """(grade_id, first lines of the error) for each graded cell with an error output."""
    path = course.autograded / student / ASSIGNMENT / f"{notebook}.ipynb"
    if not path.exists():
        return [("(notebook)", "not autograded")]
    failures = []
    for cell in json.loads(path.read_text())["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade") or cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                failures.append((meta["grade_id"], f"{output['ename']}: {output['evalue']}"))
    return failures


def run_trial(specs, notebook=None, keep=None):
    from coursetools.cli import release
    from coursetools.scores import format_table, notebook_scores
    from coursetools.submissions import materialize

    workdir = pathlib.Path(keep or tempfile.mkdtemp(prefix="session10-trial-"))
    course = copy_course(workdir)
    release(course)
    students = [materialize(course, spec) for spec in specs]
    for student in students:
        course.nbgrader("db", "student", "add", student, quiet=True)
    args = ["autograde", ASSIGNMENT, "--force"] + (["--notebook", notebook] if notebook else [])
    result = course.nbgrader(*args, check=False, quiet=True)
    if result.returncode:
        print(result.stdout[-3000:])
    print(format_table(course, notebook_scores(course)))
    for student in students:
        for name in ([notebook] if notebook else course.notebooks()):
            for grade_id, message in failing_cells(course, student, name):
                print(f"\n[{student} / {name} / {grade_id}]\n{message}")
    print(f"\ncourse copy: {workdir}")
    return course
