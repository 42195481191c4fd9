"""Parallel autograding (coursetools.autograde.parallel): same grades as nbgrader, no lost grades, and on Dask.

Notebook 01 only (a course copy whose source holds nothing else), so each
submission costs one kernel start: the whole file runs in a minute or two.
"""
import csv
import os
import shutil

import pytest

from coursetools import ASSIGNMENT, cli, pipeline
from coursetools.autograde import parallel
from coursetools.autograde.course import Course
from coursetools.autograde.scores import notebook_scores
from conftest import REPO

NOTEBOOK = "01_recap_and_motivation"
WRONG = """
n_inputs = 224 * 224 * 3
n_neurons = 256
first_layer_params = n_inputs * n_neurons   # forgot the biases
"""


def write_spec(folder, name, text):
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    """A released course copy whose assignment is notebook 01 alone, and three submission specs."""
    from coursetools.tools.trial import copy_course
    root = tmp_path_factory.mktemp("parallel-course")
    course = copy_course(root / "course")
    for path in course.source.glob("*.ipynb"):
        if path.stem != NOTEBOOK:
            path.unlink()
    pipeline.release(course)
    specs = root / "specs"
    specs.mkdir()
    paths = {
        "reference": REPO / "submissions" / "reference.toml",
        "blank": REPO / "submissions" / "blank.toml",
        "wrong": write_spec(specs, "wrong", f"base = 'solution'\n[[cell]]\nnotebook = '{NOTEBOOK}'\n"
                                            f"grade_id = 'nb01_q2_first_layer_params'\nsource = '''{WRONG}'''\n"),
    }
    return course, paths


def class_copy(small_course, target, students):
    """A copy of the released course with ``students`` ({id: spec kind}) submitted."""
    from coursetools.autograde.submissions import materialize
    course, specs = small_course
    shutil.copytree(course.root, target, ignore=shutil.ignore_patterns("__pycache__"))
    copy = Course(target)
    for student, kind in students.items():
        materialize(copy, specs[kind], student)
    return copy


def exported_rows(course, path):
    course.nbgrader("export", "--to", path, quiet=True)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return sorted(rows, key=lambda row: row["student_id"])


def expected_code_score(kind):
    return {"reference": 2.0, "blank": 0.0, "wrong": 0.0}[kind]


def assert_graded(course, students, outcomes):
    assert sorted(o["student"] for o in outcomes) == sorted(students)
    failed = [(o["student"], o["error"] or o["log_tail"]) for o in outcomes if not o["ok"]]
    assert not failed, failed[0]
    assert sum(o["lock_errors"] for o in outcomes) == 0
    for outcome in outcomes:  # nbgrader succeeded at the first try (no per-notebook retry was needed)
        events = (outcome.get("record") or {}).get("events", []) if isinstance(outcome.get("record"), dict) else []
        assert not [e for e in events if e["kind"] == "grading_failed"], (outcome["student"], events)
    scores = notebook_scores(course)
    for student, kind in students.items():
        entry = scores[student][NOTEBOOK]
        assert entry is not None, f"{student}: no grade in the gradebook"
        assert entry["code_score"] == expected_code_score(kind), (student, kind, entry)
        assert (course.autograded / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb").exists()


def test_same_csv_as_sequential_nbgrader(small_course, tmp_path):
    students = {"ada": "reference", "bo": "blank", "cy": "wrong", "dee": "reference"}
    sequential = class_copy(small_course, tmp_path / "sequential", students)
    concurrent = class_copy(small_course, tmp_path / "parallel", students)

    sequential.nbgrader("autograde", ASSIGNMENT, "--force", quiet=True)
    outcomes = parallel.grade_parallel(concurrent, workers=2, progress=False)

    assert_graded(concurrent, students, outcomes)
    expected = exported_rows(sequential, tmp_path / "sequential.csv")
    got = exported_rows(concurrent, tmp_path / "parallel.csv")
    assert len(got) == len(students)
    assert got == expected
    assert notebook_scores(concurrent) == notebook_scores(sequential)


def test_stress_eight_workers_sixteen_submissions(small_course, tmp_path):
    kinds = ["reference", "blank", "wrong", "reference"]
    students = {f"s{i:02d}": kinds[i % len(kinds)] for i in range(16)}
    course = class_copy(small_course, tmp_path / "stress", students)

    outcomes = parallel.grade_parallel(course, workers=8, progress=False)

    assert len({o["worker"] for o in outcomes}) > 1, "the jobs ran in one worker"
    assert_graded(course, students, outcomes)
    rows = exported_rows(course, tmp_path / "stress.csv")
    assert [row["student_id"] for row in rows] == sorted(students)
    for row in rows:
        assert float(row["raw_score"]) == expected_code_score(students[row["student_id"]])
    log = (course.root / ".grade-parallel.log")
    assert parallel.LOCK_ERROR not in (log.read_text() if log.exists() else "")


def test_grade_parallel_on_a_local_dask_cluster(small_course, tmp_path):
    distributed = pytest.importorskip("distributed")
    students = {"dask-a": "reference", "dask-b": "blank", "dask-c": "wrong"}
    course = class_copy(small_course, tmp_path / "dask", students)

    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        outcomes = parallel.grade_parallel(course, scheduler=cluster.scheduler_address, progress=False)

    assert_graded(course, students, outcomes)
    graded_by = {int(o["worker"].rsplit(":", 1)[1]) for o in outcomes}
    assert graded_by <= worker_pids and os.getpid() not in graded_by


def test_grade_parallel_command(small_course, tmp_path, capsys):
    students = {"cli-a": "reference", "cli-b": "blank"}
    course = class_copy(small_course, tmp_path / "cli", students)
    with pytest.raises(SystemExit) as stop:
        cli.main(["--root", str(course.root), "grade-parallel", "--workers", "2", "--no-progress"])
    assert stop.value.code == 0
    assert "autograded 2 submissions" in capsys.readouterr().out
    assert_graded(course, students, [{"student": s, "ok": True, "lock_errors": 0} for s in students])
