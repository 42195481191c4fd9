"""Grading that survives real submissions (docs/grading-guarantees.md).

Each guarantee is proved here on the corpus graded once by the ``graded_course``
fixture (submissions/hostile_*.toml and partial*.toml, with their [expected]
scores asserted by test_corpus.py), or in a copy of that graded course:

* autograding never stops: every student and every notebook is graded, and a
  notebook that makes nbgrader fail loses only its own points;
* a timeout, a dead kernel or a memory blow-up costs only that notebook's points;
* edited or deleted test cells are restored before execution;
* tampering with the comparisons or the checks module earns nothing and is named
  in the instructor's report;
* no hidden-test source and no solution reaches a student's feedback;
* grading is reproducible, and a failed re-run keeps the earlier grades;
* the memory and time limits of nbgrader_config.py are applied.
"""
import functools
import html
import json
import os
import pathlib
import re
import shutil

import nbformat
import pytest

from coursetools import ASSIGNMENT
from coursetools.grader import mathjax
from coursetools.autograde.course import Course
from coursetools.autograde.grade import grade_student, grade_students
from coursetools.autograde.outcomes import all_events, load_outcomes
from coursetools.autograde.scores import notebook_scores
from coursetools.autograde.submissions import load_spec, materialize
from conftest import REPO

SPECS = sorted((REPO / "submissions").glob("*.toml"))
FLAGGED = [p for p in SPECS if load_spec(p)["flag"]]


# ----------------------------------------------------------------------------- helpers

def copy_graded(graded_course, target, students=()):
    """A copy of the graded course (gradebook, release, tools) with these students' folders, to change freely."""
    source = graded_course.course.root
    keep = set(students)

    def ignore(folder, names):
        folder = pathlib.Path(folder)
        if folder.parent == source and folder.name in ("submitted", "autograded", "quarantine"):
            return [n for n in names if n not in keep]
        if folder == source:
            return [n for n in names if n in ("feedback", "reports")]
        return [n for n in names if n == "__pycache__"]

    shutil.copytree(source, target, symlinks=True, ignore=ignore)
    return Course(target)


def write_spec(folder, name, text):
    path = pathlib.Path(folder) / f"{name}.toml"
    path.write_text(text)
    return path


def _text(value):
    return "".join(value) if isinstance(value, list) else str(value)


def outputs_text(cell):
    """All the text of a cell's outputs (as stored in a notebook file)."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(_text(output["text"]))
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}\n" + "\n".join(output.get("traceback", [])))
        else:
            parts.extend(_text(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


def cell_of(nb, grade_id):
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


# ----------------------------------------------------------------------------- never stops

def test_every_student_has_an_outcome_and_a_grade(graded_course):
    outcomes = load_outcomes(graded_course.course)
    assert set(outcomes) == set(graded_course.specs), "every collected student gets an outcome record"
    for student, spec in graded_course.specs.items():
        record = outcomes[student]
        submitted = spec.get("submit") or graded_course.course.notebooks()
        for notebook in submitted:
            assert graded_course.scores[student][notebook] is not None, f"{student}/{notebook} has no grade"
            assert record["notebooks"][notebook]["status"] in ("graded", "missing", "quarantined"), \
                f"{student}/{notebook}: {record['notebooks'][notebook]}"


@pytest.mark.parametrize("spec_path", FLAGGED, ids=[p.stem for p in FLAGGED])
def test_misbehaviour_is_recorded_and_reported(graded_course, instructor_report, spec_path):
    """Each hostile spec's [[flag]]s: the outcome record holds the event, the report names the student."""
    student = spec_path.stem
    events = all_events(load_outcomes(graded_course.course)[student])
    for flag in load_spec(spec_path)["flag"]:
        matching = [e for e in events if e["kind"] == flag["kind"]
                    and flag.get("notebook", e.get("notebook")) == e.get("notebook")
                    and flag.get("contains", "") in e["detail"]]
        assert matching, f"{student}: no {flag} among {events}"
    from coursetools.core.events import KINDS
    for flag in load_spec(spec_path)["flag"]:
        level, label = KINDS[flag["kind"]]
        if level != "note":
            section = instructor_report.split(f"### {label}")[1].split("\n## ")[0].split("\n### ")[0]
            assert f"**{student}**" in section, f"the report's '{label}' section does not name {student}"


@pytest.fixture(scope="module")
def instructor_report(graded_course):
    from coursetools.autograde import report
    path, text = report.write(graded_course.course)
    assert path.read_text() == text
    return text


def test_preflight_quarantines_and_loses_nothing(tmp_path):
    from coursetools.autograde.preflight import preflight
    course = Course(tmp_path)
    for folder in (course.source, course.release):
        folder.mkdir(parents=True)
    name = "01_recap_and_motivation"
    shutil.copy(REPO / "source" / ASSIGNMENT / f"{name}.ipynb", course.source)
    shutil.copy(REPO / "release" / ASSIGNMENT / f"{name}.ipynb", course.release)
    folder = course.submitted / "s" / ASSIGNMENT
    folder.mkdir(parents=True)
    broken = b'{"cells": [{"source": "half a not'
    (folder / f"{name}.ipynb").write_bytes(broken)
    (folder / "big.bin").write_bytes(b"0" * 5000)
    (folder / "notes.txt").write_text("mine")
    os.symlink("/etc/hostname", folder / "outside.txt")
    os.symlink("notes.txt", folder / "inside.txt")
    events = preflight(course, "s", max_notebook_mb=50, max_file_mb=0.001)
    kinds = sorted(e["kind"] for e in events)
    assert kinds.count("invalid_notebook") == 1 and kinds.count("symlink") == 1, events
    quarantine = tmp_path / "quarantine" / "s" / ASSIGNMENT
    assert (quarantine / f"{name}.ipynb").read_bytes() == broken
    assert (quarantine / "big.bin").stat().st_size == 5000
    assert os.readlink(quarantine / "outside.txt") == "/etc/hostname"
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "inside.txt").is_symlink()
    assert not (folder / f"{name}.ipynb").exists() and not (folder / "outside.txt").is_symlink()


def test_report_tallies_the_class_mistakes(graded_course, instructor_report):
    """Every failure a spec expects is in the report's data; diagnoses are counted per student across the class."""
    from coursetools.autograde import report
    data = report.collect(graded_course.course)
    for spec_path in SPECS:
        for message in load_spec(spec_path)["message"]:
            failing = data["failures"].get((message["notebook"], message["grade_id"]), set())
            assert spec_path.stem in failing, f"{spec_path.stem}: {message['grade_id']} not counted as failed"
    counts = sorted((len(entry["students"]) for entry in data["mistakes"].values()), reverse=True)
    assert counts and counts[0] >= 2, "the same diagnosis from several students is counted once per student"
    table = instructor_report.split("## Most common mistakes")[1].split("\n## ")[0]
    assert "| diagnosis | students | tests |" in table
    top = max(data["mistakes"].items(), key=lambda item: len(item[1]["students"]))
    assert f"| {top[0].replace('|', '/')} | {len(top[1]['students'])} |" in table


# ----------------------------------------------------------------------------- limits and crashes

def test_dead_kernel_and_timeout_cost_only_their_notebook(graded_course):
    for student in ("hostile_kernel_exit", "hostile_infinite_loop"):
        row = graded_course.scores[student]
        assert row["01_recap_and_motivation"]["code_score"] == 0
        assert row["04_hand_calculations"]["code_score"] == row["04_hand_calculations"]["max_code_score"]
    nb = graded_course.autograded_notebook("hostile_kernel_exit", "01_recap_and_motivation")
    errors = outputs_text(cell_of(nb, "nb01_test_q2_first_layer_params"))
    assert "NotRun" in errors and "kernel died" in errors


def test_memory_bomb_is_stopped_by_the_cap(graded_course):
    nb = graded_course.autograded_notebook("hostile_memory_bomb", "01_recap_and_motivation")
    assert "MemoryError" in outputs_text(cell_of(nb, "nb01_q2_first_layer_params"))
    # the kernel survived: the test cell after it ran and failed on its own (the answer was never set)
    assert "NameError" in outputs_text(cell_of(nb, "nb01_test_q2_first_layer_params"))


def test_output_flood_is_cut(graded_course):
    nb = graded_course.autograded_notebook("hostile_output_flood", "01_recap_and_motivation")
    text = outputs_text(cell_of(nb, "nb01_q2_first_layer_params"))
    assert len(text) < 200_000 and text.count("\n") <= 1001
    html_path = graded_course.course.feedback / "hostile_output_flood" / ASSIGNMENT / "01_recap_and_motivation.html"
    assert html_path.stat().st_size < 2_000_000


# ----------------------------------------------------------------------------- restored cells

def test_edited_and_deleted_tests_run_as_written_by_the_instructor(graded_course):
    source = nbformat.read(graded_course.course.source / "04_hand_calculations.ipynb", as_version=4)
    originals = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.nbgrader.get("solution")}
    for student in ("hostile_edited_tests", "hostile_deleted_cells"):
        nb = graded_course.autograded_notebook(student, "04_hand_calculations")
        for grade_id, text in originals.items():
            cell = cell_of(nb, grade_id)
            assert cell["cell_type"] == "code", f"{student}: {grade_id} is not a code cell"
            assert text in "".join(cell["source"]), f"{student}: {grade_id} did not run the instructor's test"
            assert cell["metadata"]["nbgrader"]["points"] == cell_of(
                {"cells": [c for c in source.cells]}, grade_id).metadata.nbgrader["points"]


# ----------------------------------------------------------------------------- tampering

def test_tampering_is_caught_by_the_source_scan_and_the_runtime_guard(graded_course):
    events = {s: all_events(r) for s, r in load_outcomes(graded_course.course).items()}
    sources = {e.get("source") for s in ("hostile_math_tamper", "hostile_checks_tamper") for e in events[s]
               if e["kind"] == "tampering"}
    assert sources == {"source scan", "runtime guard"}
    obfuscated = [e for e in events["hostile_obfuscated_tamper"] if e["kind"] == "tampering"]
    assert obfuscated and all(e["source"] == "runtime guard" for e in obfuscated)
    nb = graded_course.autograded_notebook("hostile_math_tamper", "01_recap_and_motivation")
    text = outputs_text(cell_of(nb, "nb01_test_q2_first_layer_params"))
    assert "CheckFailure" in text and "GradingVoided" not in text, "judged on its value, not voided (the default)"


def test_no_false_alarm_on_honest_submissions(graded_course):
    for student, record in load_outcomes(graded_course.course).items():
        if student.startswith("hostile_"):
            continue
        bad = [e for e in all_events(record) if e["kind"] in ("tampering", "suspicious", "grading_failed",
                                                               "course_files_changed", "kernel_died", "contained",
                                                               "resource_limit", "graded_name_rebound",
                                                               "setup_name_rebound")]
        assert not bad, f"{student}: {bad}"


def test_source_scan_unit():
    from coursetools.grader.tamper import scan_notebook

    def scan(code, setup="import numpy as np\nimport convcheck\n"):
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell(setup, metadata={"nbgrader": {"locked": True, "grade_id": "setup"}}),
            nbformat.v4.new_code_cell(code)])
        return {f["kind"] for f in scan_notebook(nb)}

    for hostile in ["np.allclose = lambda *a, **k: True", "convcheck.check_array = print",
                    "import torch\ntorch.Tensor.__eq__ = lambda a, b: True", "import builtins\nbuiltins.abs = id",
                    "__builtins__.isinstance = lambda a, b: True", "import sys\nsys.modules['convcheck'] = 1",
                    "setattr(np, 'isclose', None)", "from convcheck import check_scalar\ncheck_scalar.__code__ = None",
                    "cc = convcheck\ncc.check = None", "convcheck = None", "import sys\nsys.settrace(print)",
                    "get_ipython().set_custom_exc((Exception,), print)", "import sys\nx = sys._getframe(1)",
                    "from unittest import mock\nmock.patch('numpy.allclose', return_value=True).start()",
                    "import resource\nresource.setrlimit(resource.RLIMIT_DATA, (-1, -1))",
                    "vars(np)['abs'] = None", "del convcheck.check", "np.testing.assert_allclose = print"]:
        assert "tampering" in scan(hostile), hostile
    for suspicious in ["exec(code)", "import ctypes", "import os\nos.system('ls')", "np = None"]:
        assert scan(suspicious) == {"suspicious"}, suspicious
    for honest in ["import torch\ntorch.backends.cudnn.deterministic = True", "np.random.seed(0)",
                   "import torch\nlayer = torch.nn.Conv2d(1, 1, 3)\nlayer.weight.data = torch.ones(1, 1, 3, 3)",
                   "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 80",
                   "def f(x):\n    return np.abs(x).sum()", "import torch.nn as nn\nclass M(nn.Module):\n"
                   "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3)"]:
        assert scan(honest) == set(), honest
    for path in sorted((REPO / "source" / ASSIGNMENT).glob("*.ipynb")):
        found = scan_notebook(nbformat.read(path, as_version=4))
        assert not found, f"the reference solution of {path.name} is flagged: {found}"


def test_runtime_guard_unit():
    """The guard's module is self-contained (its source is what the kernel runs), and it sees a replaced function."""
    import ast
    import builtins
    import sys
    import types
    from coursetools.grader import guard, tamper
    tree = ast.parse(pathlib.Path(guard.__file__).read_text())
    assert [type(node).__name__ for node in tree.body] == ["Expr", "FunctionDef"]  # a docstring, then make_guard
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported <= set(sys.stdlib_module_names), imported
    shell = types.SimpleNamespace(input_transformers_cleanup=[], input_transformers_post=[], ast_transformers=[],
                                  custom_exceptions=(), events=types.SimpleNamespace(callbacks={}),
                                  displayhook=None, display_pub=None)
    probe = types.ModuleType("_coursetools_guard_probe")
    probe.check = len
    probe.seed = lambda n: n
    probe.seed.__module__ = "torch.random"
    sys.modules[probe.__name__] = probe
    token = "_coursetools_guard_test"
    try:
        check = guard.make_guard((probe.__name__,), ("convcheck",), shell)
        assert "_coursetools_guard_probe.check is replaced by notebook code" not in check([])
        probe.check = eval(compile("lambda value: True", "<string>", "eval"))  # as a notebook cell would define it
        assert "_coursetools_guard_probe.check is replaced by notebook code" in check([])
        probe.seed = functools.wraps(probe.seed)(lambda n: n)   # torch._dynamo's import wraps torch.manual_seed so
        assert not any("seed" in finding for finding in check([]))
        namespace = {"get_ipython": lambda: shell}
        exec(tamper.guard_install_code(token), namespace)  # noqa: S102 - the kernel code the grader sends
        assert isinstance(eval(tamper.guard_call(token, []), namespace), list)
        assert "_ct_ns" not in namespace
    finally:
        sys.modules.pop(probe.__name__, None)
        builtins.__dict__.pop(token, None)


# ----------------------------------------------------------------------------- nothing secret in feedback

def secret_lines(course):
    """Lines of hidden tests and solutions (long enough to matter) that the release does not show anyway."""
    region = re.compile(r"(?:BEGIN (?:SOLUTION|HIDDEN TESTS))[^\n]*\n(.*?)\n[^\n]*END (?:SOLUTION|HIDDEN TESTS)",
                        re.S)
    secret, public = {}, []
    for path in sorted(course.source.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for match in region.finditer(cell.source):
                for line in match.group(1).splitlines():
                    if len(line.strip()) >= 20:
                        secret[line.strip()] = path.stem
    for path in sorted(course.release.glob("*.ipynb")):
        public += [cell.source for cell in nbformat.read(path, as_version=4).cells]
    public += [path.read_text() for path in course.source.glob("*.py")]
    public = "\n".join(public)
    return {line: nb for line, nb in secret.items() if line not in public}


def test_feedback_holds_no_hidden_test_or_solution(graded_course):
    course = graded_course.course
    secrets = secret_lines(course)
    assert len(secrets) > 100
    checked = 0
    for student in graded_course.specs:
        folder = course.feedback / student / ASSIGNMENT
        written = set()
        for path in (course.submitted / student / ASSIGNMENT).glob("*.ipynb"):
            try:  # the student's own code may repeat a solution line: that is theirs to see
                written |= {line.strip() for cell in json.loads(path.read_text())["cells"]
                            for line in "".join(cell.get("source", "")).splitlines()}
            except ValueError:
                pass
        for page in folder.glob("*.html"):
            text = html.unescape(page.read_text())
            leaked = [line for line in secrets if line in text and line not in written]
            assert not leaked, f"feedback {student}/{page.name} shows: {leaked[:3]}"
            checked += 1
        allowed = {p.relative_to(course.source) for p in course.source.rglob("*") if p.is_file()} | \
            {p.relative_to(course.submitted / student / ASSIGNMENT)
             for p in (course.submitted / student / ASSIGNMENT).rglob("*") if p.is_file()}
        allowed |= {pathlib.Path(name) for name in mathjax.feedback_files()}  # the environment's, for maths
        for path in folder.rglob("*"):
            relative = path.relative_to(folder)
            assert path.suffix == ".html" or relative in allowed or path.is_dir(), \
                f"feedback {student} carries {relative}, which the student did not hand in"
    assert checked > len(graded_course.specs)


def test_a_hidden_line_never_reaches_the_students_output(graded_course):
    """hostile_stderr warns with its caller's line every time a test calls it. The tests run in the grader
    (coursetools.grader.judge), so the caller is never a hidden test: no hidden line is in the autograded notebook
    or the feedback."""
    course = graded_course.course
    submitted = json.loads((course.submitted / "hostile_stderr" / ASSIGNMENT / "03_the_convolution_operation.ipynb")
                           .read_text())
    theirs = "\n".join("".join(c["source"]) for c in submitted["cells"])  # their own lines are theirs to see
    secrets = [line for line in secret_lines(course) if line not in theirs]
    nb = graded_course.autograded_notebook("hostile_stderr", "03_the_convolution_operation")
    shown = "\n".join(outputs_text(c) for c in nb["cells"])
    assert not [line for line in secrets if line in shown]
    page = html.unescape((course.feedback / "hostile_stderr" / ASSIGNMENT / "03_the_convolution_operation.html")
                         .read_text())
    assert not [line for line in secrets if line in page]


def test_feedback_cuts_a_hidden_line_from_any_output(graded_course):
    """The feedback's last line of defence: an output line quoting a hidden test or a solution is replaced."""
    import nbformat
    from coursetools.grader.preprocessors import REDACTED, HideHiddenTests
    course = graded_course.course
    nb = nbformat.read(course.autograded / "hostile_stderr" / ASSIGNMENT / "03_the_convolution_operation.ipynb",
                       as_version=4)
    secrets = sorted(secret_lines(course), key=len)
    leak = secrets[-1]
    cell = next(c for c in nb.cells if c.cell_type == "code" and not c.get("metadata", {}).get("nbgrader"))
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"before\n{leak}\nafter\n"))
    resources = {"nbgrader": {"db_url": f"sqlite:///{course.db}", "assignment": ASSIGNMENT}}
    hidden = HideHiddenTests(source_directory=str(course.source))
    nb, _ = hidden.preprocess(nb, resources)
    assert cell.outputs[-1].text == f"before\n{REDACTED}\nafter\n"


# ----------------------------------------------------------------------------- reproducible, and failures

FAIL_04 = '''
from nbgrader.preprocessors import NbGraderPreprocessor as _Base


class FailOnPurpose(_Base):
    """Test fault: nbgrader fails on notebook 04 of student 'partial'."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        if info["student"] == "partial" and info["notebook"] == "04_hand_calculations":
            raise RuntimeError("fault injected by tests/test_robustness.py")
        return nb, resources


c.Autograde.sanitize_preprocessors = [FailOnPurpose] + list(c.Autograde.sanitize_preprocessors)
'''


def test_regrading_is_reproducible_and_a_failed_regrade_keeps_earlier_grades(graded_course, tmp_path):
    course = copy_graded(graded_course, tmp_path / "course", ["partial"])
    before = notebook_scores(course)["partial"]

    record = grade_student(course, "partial")          # a plain re-run (--force): same scores
    assert record["ok"]
    assert notebook_scores(course)["partial"] == before
    kept = (course.autograded / "partial" / ASSIGNMENT / "04_hand_calculations.ipynb").read_bytes()

    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write(FAIL_04)
    record = grade_student(course, "partial")          # nbgrader now fails on notebook 04
    assert not record["ok"]
    assert record["notebooks"]["04_hand_calculations"]["status"] == "kept_earlier"
    assert record["notebooks"]["01_recap_and_motivation"]["status"] == "graded"
    after = notebook_scores(course)["partial"]
    assert after == before, "the failed re-run changed the gradebook"
    assert (course.autograded / "partial" / ASSIGNMENT / "04_hand_calculations.ipynb").read_bytes() == kept
    assert any(e["kind"] == "grading_failed" for e in all_events(record))


# ----------------------------------------------------------------------------- configured limits

LIMITS = '''
c.Execute.timeout = 8
c.ResilientExecute.notebook_timeout = 20
c.ResilientExecute.memory_limit_mb = 1536
'''

STUBBORN = '''
base = "solution"
submit = ["01_recap_and_motivation", "04_hand_calculations"]

[[cell]]
notebook = "01_recap_and_motivation"
grade_id = "nb01_q2_first_layer_params"
source = """
first_layer_params = 224 * 224 * 3 * 256 + 256
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
"""

[[insert]]
notebook = "04_hand_calculations"
after = "nb04_setup"
source = """
import resource
import torch
print("RLIMIT_DATA", resource.getrlimit(resource.RLIMIT_DATA))
try:
    hog = torch.ones(2 ** 29)  # 2 GiB
except (RuntimeError, MemoryError) as error:
    print("allocation refused:", type(error).__name__)
    raise
"""
'''

SLEEP_CELL = '''
[[insert]]
notebook = "01_recap_and_motivation"
after = "nb01_setup"
source = "import time; time.sleep(6)"
'''

# a cell that writes a file beside the notebook and one among the course's sources
PLANT_CELL = '''
[[insert]]
notebook = "01_recap_and_motivation"
after = "nb01_setup"
source = """
open("leak.txt", "w").write("written while graded")
open("../../../source/session10/planted.txt", "w").write("a submission wrote this")
"""
'''

# four 6 s cells: the notebook outlives its time limit; then a cell that writes files
SLOW = '''
base = "solution"
submit = ["01_recap_and_motivation"]
''' + SLEEP_CELL * 4 + PLANT_CELL


def test_configured_limits_apply(graded_course, tmp_path):
    """With tight limits: a loop that swallows KeyboardInterrupt is killed, a notebook over its time limit
    stops, a 2 GiB torch tensor is refused under a 1.5 GiB cap and the kernel goes on. Files written while
    graded stay in the notebook's sandbox."""
    import time
    course = copy_graded(graded_course, tmp_path / "course")
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write(LIMITS)
    stubborn = materialize(course, write_spec(tmp_path, "stubborn", STUBBORN))
    slow = materialize(course, write_spec(tmp_path, "slow", SLOW))
    started = time.monotonic()
    records = {r["student"]: r for r in grade_students(course, [stubborn, slow])}
    took = time.monotonic() - started
    scores = notebook_scores(course)

    nb = json.loads((course.autograded / stubborn / ASSIGNMENT / "01_recap_and_motivation.ipynb").read_text())
    assert "CellTimeoutError" in outputs_text(cell_of(nb, "nb01_q2_first_layer_params"))
    assert "NotRun" in outputs_text(cell_of(nb, "nb01_test_q2_first_layer_params"))
    assert scores[stubborn]["01_recap_and_motivation"]["code_score"] == 0
    kinds = {(e["kind"], e.get("notebook")) for e in all_events(records[stubborn])}
    assert ("timeout", "01_recap_and_motivation") in kinds

    nb = json.loads((course.autograded / stubborn / ASSIGNMENT / "04_hand_calculations.ipynb").read_text())
    memory_cell = next(c for c in nb["cells"] if "RLIMIT_DATA" in "".join(c["source"]))
    text = outputs_text(memory_cell)
    assert f"RLIMIT_DATA ({1536 * 2**20}, {1536 * 2**20})" in text
    assert "allocation refused" in text
    assert scores[stubborn]["04_hand_calculations"]["code_score"] == 10, "the kernel must survive the refusal"
    assert ("memory", "04_hand_calculations") in kinds

    assert scores[slow]["01_recap_and_motivation"]["code_score"] == 0
    slow_kinds = {(e["kind"], e.get("notebook")) for e in all_events(records[slow])}
    assert ("notebook_timeout", "01_recap_and_motivation") in slow_kinds
    # what the notebook wrote stayed in its sandbox: nothing reached the autograded folder, the
    # quarantine or the course's sources, so there is nothing to sweep and no alarm
    assert ("files_written", None) not in slow_kinds and ("course_files_changed", None) not in slow_kinds
    assert not list(course.root.rglob("leak.txt")) and not list(course.root.rglob("planted.txt"))
    print(f"limits test: two students graded in {took:.0f} s")


PLANTER = '''
base = "solution"
submit = ["01_recap_and_motivation"]
''' + PLANT_CELL


def test_without_the_sandbox_a_changed_course_stops_the_run(graded_course, tmp_path, capsys):
    """--no-sandbox grades as before the sandbox: files written while graded are swept into quarantine,
    a file planted among the sources stops the run with a clear message (from the CLI: one line, no
    traceback), and the report says that the grading ran without the sandbox."""
    from coursetools import cli
    from coursetools.autograde import manifest
    from coursetools.autograde import report as instructor_report
    course = copy_graded(graded_course, tmp_path / "course")
    course.sandbox = False
    planter = materialize(course, write_spec(tmp_path, "planter", PLANTER))
    with pytest.raises(manifest.CourseFilesChanged) as stopped:
        grade_students(course, [planter])
    assert "grading stopped: course files changed" in str(stopped.value)
    assert "source/session10/planted.txt" in str(stopped.value)
    kinds = {e["kind"] for e in all_events(load_outcomes(course)[planter])}
    assert {"files_written", "course_files_changed"} <= kinds
    assert (course.root / "quarantine" / planter / "written-during-grading" / "leak.txt").exists()
    _, text = instructor_report.write(course)
    assert "**Graded without the sandbox (--no-sandbox)**: 1 notebook of 1 student (planter)" in text

    (course.source / "planted.txt").unlink()
    with pytest.raises(SystemExit) as exited:
        cli.main(["--root", str(course.root), "autograde", "--no-sandbox", planter])
    assert str(exited.value).startswith("autograde: grading stopped: course files changed")


def test_void_on_tampering_still_zeroes_a_tampering_notebook(graded_course, tmp_path):
    """With c.TamperCheck.void_on_tampering = True, a tampering notebook's tests score 0 and say why."""
    course = copy_graded(graded_course, tmp_path / "course", ["hostile_obfuscated_tamper"])
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write("\nc.TamperCheck.void_on_tampering = True\n")
    record = grade_student(course, "hostile_obfuscated_tamper")
    nb = json.loads((course.autograded / "hostile_obfuscated_tamper" / ASSIGNMENT / "01_recap_and_motivation.ipynb")
                    .read_text())
    assert "GradingVoided" in outputs_text(cell_of(nb, "nb01_test_q2_first_layer_params"))
    assert any(e["kind"] == "tampering" for e in all_events(record))


def test_a_manual_score_on_a_voided_notebook_is_named(graded_course, tmp_path):
    """A hand-given score on a test of a flagged notebook raises it above what the grader gave: the report
    names it under Needs attention; the same score on an unflagged notebook is the formgrader's business."""
    from nbgrader.api import Gradebook
    from coursetools.autograde import report as instructor_report
    course = copy_graded(graded_course, tmp_path / "course", ["hostile_math_tamper", "reference"])
    with Gradebook(f"sqlite:///{course.db}") as gradebook:
        for student in ("hostile_math_tamper", "reference"):
            grade = gradebook.find_grade("nb01_test_q2_first_layer_params", "01_recap_and_motivation", ASSIGNMENT,
                                         student)
            grade.manual_score = 2 if student == "hostile_math_tamper" else 1
        gradebook.db.commit()
    data = instructor_report.collect(course)
    named = [e for e in data["events"]["hostile_math_tamper"] if e["kind"] == "manual_override"]
    assert named and "nb01_test_q2_first_layer_params: 2 by hand where the grader gave 0" in named[0]["detail"]
    assert not [e for e in data["events"]["reference"] if e["kind"] == "manual_override"]
    text = instructor_report.render(course, data)
    assert "has a hand-given score on a flagged notebook" in text
