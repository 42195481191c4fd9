"""The plain runner (coursetools.plain.runner) scores as nbgrader does, and the GPU check runs without a GPU.

The runner is what proves the GPU path on a CUDA machine without Jupyter
(coursetools.tools.gpucheck, docs/gpu-check.md), so its scores must be nbgrader's:
the reference solutions and the blank release of every notebook are run once
each (two processes at a time) and compared, test cell by test cell, with the
autograded notebooks of the ``graded_course`` fixture. The reference runs use
the stub modules for matplotlib, ipywidgets and IPython, as on a GPU machine
that lacks them; the blank runs use the real ones.
"""
import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from coursetools import ASSIGNMENT
from coursetools.plain import runner as plainrun
from conftest import REPO

SOURCE = REPO / "source" / ASSIGNMENT
NOTEBOOKS = sorted(p.stem for p in SOURCE.glob("*.ipynb"))
SPECS = sorted((REPO / "submissions").glob("*.toml"))
STUBS = ("matplotlib", "ipywidgets", "IPython")


@pytest.fixture(scope="module")
def plain_runs():
    """{(student, notebook): plain-run result} for the reference and the blank release of every notebook."""
    blank = plainrun.load_spec(REPO / "submissions" / "blank.toml")
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for name in NOTEBOOKS:
            jobs[("reference", name)] = pool.submit(plainrun.run_notebook, SOURCE / f"{name}.ipynb", stubs=STUBS)
            jobs[("blank", name)] = pool.submit(plainrun.run_notebook, SOURCE / f"{name}.ipynb",
                                                cells=plainrun.spec_cells(blank, name))
        return {key: job.result() for key, job in jobs.items()}


def _autograded_failures(notebook):
    """{grade_id: first error line} of the graded code cells that failed in an autograded notebook."""
    failures = {}
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution"):
            errors = [f"{o['ename']}: {o['evalue']}" for o in cell.get("outputs", []) if o["output_type"] == "error"]
            if errors:
                failures[meta["grade_id"]] = errors[0].splitlines()[0]
    return failures


@pytest.mark.parametrize("student", ["reference", "blank"])
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_plain_run_scores_as_nbgrader(graded_course, plain_runs, student, notebook):
    nbgrader = graded_course.scores[student][notebook]
    plain = plain_runs[(student, notebook)]
    assert plain["crashed"] is None, plain["crashed"]
    assert plain["max_score"] == nbgrader["max_code_score"]
    assert plain["score"] == nbgrader["code_score"], "\n".join(plainrun.summary_lines(plain))
    assert (plain["further_score"], plain["max_further_score"]) == (nbgrader["further_score"],
                                                                   nbgrader["max_further_score"])
    autograded = graded_course.autograded_notebook(student, notebook)
    plain_failures = {t["grade_id"] for t in plain["tests"] if not t["passed"]}
    assert plain_failures == set(_autograded_failures(autograded))


def test_reference_runs_full_marks_with_stubs(plain_runs):
    """The stubs stand in for matplotlib and the widgets, and say where they were used."""
    for name in NOTEBOOKS:
        result = plain_runs[("reference", name)]
        assert result["passed"], "\n".join(plainrun.summary_lines(result))
        assert set(result["stubbed"]) == set(STUBS) | {"plots"}
        assert all(c["status"] == "ok" for c in result["cells"]), [c for c in result["cells"] if c["status"] != "ok"]
    widget_cells = [c for n in NOTEBOOKS for c in plain_runs[("reference", n)]["cells"] if "ipywidgets" in c["stubs"]]
    assert widget_cells, "no notebook imported ipywidgets"


def test_spec_cells_are_the_cells_autograde_runs(graded_course):
    """The json-only spec path gives the code cells nbgrader ran (answers from the spec, tests from source/)."""
    checked = 0
    for path in SPECS:
        spec = plainrun.load_spec(path)
        if plainrun.spec_unsupported(spec):
            continue
        for name in plainrun.spec_notebook_names(spec):
            autograded = graded_course.autograded_notebook(path.stem, name)
            assert autograded is not None, f"{path.stem}/{name} was not autograded"
            ran = [plainrun.cell_source(c) for c in autograded["cells"] if c["cell_type"] == "code"]
            assert [c["source"] for c in plainrun.spec_cells(spec, name)] == ran, f"{path.stem}/{name}"
            checked += 1
    assert checked >= len(NOTEBOOKS)


def test_child_sees_the_path_a_kernel_would(tmp_path):
    """The child imports coursetools from the repository, then leaves sys.path and PYTHONPATH as a kernel
    started in the notebook's folder has them."""
    check = (f"import os, sys\nassert sys.path[0] == os.getcwd(), sys.path\n"
             f"assert os.environ.get('PYTHONPATH') == {os.environ.get('PYTHONPATH')!r}, os.environ.get('PYTHONPATH')\n"
             f"assert {str(REPO)!r} not in sys.path[1:] or {str(REPO)!r} in os.environ.get('PYTHONPATH', ''), sys.path")
    result = plainrun.run_cells([dict(source=check)], tmp_path, timeout=30)
    assert result["cells"][0]["status"] == "ok", result["cells"][0]


def test_runner_semantics(tmp_path):
    """Partial credit, magics, stderr, getsource, a timeout, an error and a dying process, in one run."""
    cells = [
        dict(kind="tests", points=1, source="%matplotlib inline\n!ls\nimport sys\nprint('noise', file=sys.stderr)"),
        dict(kind="tests", points=2, source="0.5"),
        dict(kind="tests", points=1, source="import time\nwhile True:\n    time.sleep(0.01)"),
        dict(kind="code", source="def f():\n    return 1"),
        dict(kind="tests", points=1, source="import inspect\nassert 'return 1' in inspect.getsource(f)"),
        dict(kind="tests", points=1, source="raise ValueError('boom')"),
        dict(kind="code", source="open('written.txt', 'w').write('x')"),
        dict(kind="code", source="import os\nos._exit(3)"),
        dict(kind="tests", points=1, source="pass"),
    ]
    for position, cell in enumerate(cells):
        cell.update(grade_id=f"c{position}" if cell["kind"] == "tests" else None)
    result = plainrun.run_cells(cells, tmp_path, timeout=2)
    by_id = {t["grade_id"]: t for t in result["tests"]}
    assert result["cells"][0]["skipped"] == ["%matplotlib inline", "!ls"]
    assert by_id["c0"]["score"] == 1 and by_id["c1"]["score"] == 0.5
    assert by_id["c2"]["error"].startswith("CellTimeoutError")
    assert by_id["c4"]["passed"], by_id["c4"]["error"]
    assert by_id["c5"]["error"] == "ValueError: boom"
    assert result["cells"][7]["ename"] == "KernelDied" and by_id["c8"]["error"].startswith("KernelDied")
    assert result["score"] == 2.5 and result["max_score"] == 7 and result["crashed"]
    assert (tmp_path / "written.txt").exists()



def test_a_cell_that_takes_the_alarm_does_not_lift_the_next_cells_limit(tmp_path):
    """A cell that ignores SIGALRM (the child's per-cell timer) leaves the later cells their time limit."""
    cells = [dict(kind="code", source="import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)"),
             dict(kind="tests", points=1, source="import time\nwhile True:\n    time.sleep(0.01)"),
             dict(kind="tests", points=1, source="pass")]
    for position, cell in enumerate(cells):
        cell.update(grade_id=f"c{position}" if cell["kind"] == "tests" else None)
    result = plainrun.run_cells(cells, tmp_path, timeout=1)
    by_id = {t["grade_id"]: t for t in result["tests"]}
    assert by_id["c1"]["error"].startswith("CellTimeoutError: the cell ran longer than 1 s"), by_id["c1"]
    assert by_id["c2"]["passed"] and not result["crashed"]

def test_notebook_runs_in_a_copy_of_its_folder(tmp_path):
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "source": "open('out.txt', 'w').write('x')",
                           "outputs": [], "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    result = plainrun.run_notebook(tmp_path / "nb.ipynb")
    assert result["cells"][0]["status"] == "ok" and result["isolated"]
    assert not (tmp_path / "out.txt").exists()


def test_gpucheck_cpu_fallback_smoke(tmp_path):
    """The GPU check on notebook 07 with CUDA hidden: it says it fell back, and every check it ran passed
    (07's tests reach convcheck's references and tolerances through the check's logging wrappers)."""
    out = tmp_path / "gpu-check.md"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "coursetools.tools.gpucheck", "--quick", "--notebooks", "07",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no CUDA device: CPU fallback — the CUDA run is still owed" in proc.stdout
    assert "ALL CHECKS PASSED" in proc.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["summary"] and all(report["summary"].values())
    assert report["reference"][0]["notebook"] == "07_convolution_from_scratch"
    assert "tolerance:cpu" in out.read_text()
    assert report["timing"]["rows"] and report["tolerance"]["worst"]
    assert "CPU fallback" in out.read_text()
