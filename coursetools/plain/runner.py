"""Run a notebook's code cells in one plain Python process and score its tests as nbgrader would.

    python -m coursetools.plain.runner source/session10/07_convolution_from_scratch.ipynb
    python -m coursetools.plain.runner --spec submissions/nb07_flipped_kernel.toml
    python -m coursetools.plain.runner --json results.json source/session10/*.ipynb

No Jupyter, nbgrader, nbformat or IPython is needed: the runner, its child process
(``coursetools.plain.child``) and the stub modules (``coursetools.plain.stubs``) import
only the standard library and ``coursetools.core``, so they run on a GPU machine that has
nothing but Python, torch and numpy. (It is also the "floor" of the execution benchmark: the same
cells in one plain process, without a kernel.)

What it does, per notebook:

* The code cells run in order, in one namespace (a fresh ``__main__``), in a
  new subprocess whose working directory is the notebook's folder, so
  ``import convcheck`` works as it does in Jupyter. Cell sources are put in
  ``linecache`` like IPython does, so ``inspect.getsource`` works on functions
  defined in cells (convcheck reads student functions' source).
* IPython-only syntax: a cell that does not parse as Python has its lines
  starting with ``%`` or ``!`` replaced by ``pass`` (``%time``/``%timeit STMT``
  run STMT once); ``%%time``/``%%capture`` cells run their body, other cell
  magics (``%%bash``, ``%%html`` ...) are skipped. Every such line is reported.
* matplotlib uses the Agg backend, and figures are closed after each cell.
  When matplotlib, ipywidgets or IPython is not installed, a stub module takes
  its place (widgets keep their values and call their observers; plotting
  calls do nothing; the assignment's ``plots`` module is stubbed along with
  matplotlib), and the result says which cells imported a stub.
* Each cell gets a time limit (nbgrader_config.py's ``Execute.timeout``,
  read by ``coursetools.core.limits``); a cell over it fails with ``CellTimeoutError`` and the
  next cells still run. A process that dies (``os._exit``, a crash) or hangs
  in C code past the limit fails that cell, and the cells after it are marked
  not run (``KernelDied``), as ``coursetools.grader.execution.ResilientExecute`` does.
* A graded test cell (nbgrader ``grade=true``, not a solution) scores as in
  ``nbgrader.utils.determine_grade``: 0 on an error, partial credit when its
  last expression's value is a number, else full ``points``. stderr output
  does not fail a test (``coursetools.grader.preprocessors.HarmlessStderr``).

A submission spec (``submissions/*.toml``, read by ``coursetools.core.spec``) is turned
into cells the way ``build_notebooks`` plus nbgrader's autograde do, with the same
``coursetools.core.spec.submitted_notebook``: answer cells from the spec (the solution,
or the release's stub, or the spec's own source), test and read-only cells from source/
with their hidden tests.

``run_notebook(path, timeout=..., ...)`` returns a dict (see ``run_cells``);
``run_spec(spec_path, ...)`` returns {notebook: result};
``spec_problems(spec, results)`` lists where a run differs from the spec's
``[expected]`` scores and ``[[message]]`` texts.
"""
import argparse
import json
import os
import pathlib
import selectors
import subprocess
import sys
import tempfile
import time

from coursetools import ASSIGNMENT, REPO
from coursetools.core.cells import cell_kind, cell_source, going_further, nbgrader_meta, released_code
from coursetools.core.limits import load_limits
from coursetools.core.spec import expected_code_score, load_spec, submitted_names, submitted_notebook
from coursetools.grader import libraryscan

SOURCE_DIR = REPO / "source" / ASSIGNMENT
LIMITS = load_limits(REPO)                    # as nbgrader_config.py sets them for the grader
DEFAULT_TIMEOUT = LIMITS["cell_timeout"]
STARTUP_TIMEOUT = 120         # imports and the prelude, before the first cell
KILL_GRACE = 10               # seconds past a cell's limit before the process is killed
IMPORT_ROOT = str(REPO)       # the folder that holds coursetools/: the child is imported from it


# ---------------------------------------------------------------- notebooks and specs as JSON

def read_notebook(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _runner_cell(cell, index):
    meta = nbgrader_meta(cell)
    return dict(index=index, kind=cell_kind(cell), grade_id=meta.get("grade_id"),
                points=meta.get("points", 0) if meta.get("grade") else 0, source=cell_source(cell))


def code_cells(notebook):
    """The code cells of a notebook (a JSON dict) as the runner's cell dicts."""
    return [_runner_cell(cell, index) for index, cell in enumerate(notebook.get("cells", []))
            if cell.get("cell_type") == "code"]


def source_notebooks(source_dir=SOURCE_DIR):
    return sorted(p.stem for p in pathlib.Path(source_dir).glob("*.ipynb"))


# Spec keys (coursetools/core/spec.py) that only nbgrader's sanitizing and robustness layer
# (RepairMetadata, RestoreCells, Preflight, TamperCheck) gives a meaning to.
_LAYER_KEYS = ("omit", "raw_notebook", "file", "symlink", "flag")
_LAYER_CELL_KEYS = ("cell_type", "nbgrader", "strip_nbgrader")


def spec_unsupported(spec):
    """Why a spec is not a plain-run case (empty when it is): it exercises the grading layer."""
    reasons = []
    for key in _LAYER_KEYS:
        if spec.get(key):
            reasons.append(f"[{key}]" + (" (tampering, robustness events: coursetools/grader/tamper.py, "
                                         "coursetools/core/events.py)" if key == "flag" else ""))
    for change in spec.get("cell", []):
        keys = [k for k in _LAYER_CELL_KEYS if k in change]
        if keys:
            reasons.append(f"cell {change['grade_id']}: {', '.join(keys)}")
    return reasons


def _restored_at_autograde(cell):
    """Test and read-only cells: autograde runs them as source/ has them, whatever the submission did."""
    return cell_kind(cell) not in ("solution", "code")


def spec_cells(spec, name, source_dir=SOURCE_DIR):
    """The code cells nbgrader's autograde would run for notebook ``name`` of a spec.

    The notebook ``coursetools.autograde.submissions.build_notebooks`` hands in, after autograde's
    OverwriteCells and RestoreCells: answer cells from the spec, everything locked or graded from
    source/ (hidden tests included). The grading layer's cell keys (``spec_unsupported``) are left out.
    """
    source = read_notebook(pathlib.Path(source_dir) / f"{name}.ipynb")
    notebook = released_code(source)
    source_index = {id(cell): index for index, cell in enumerate(notebook["cells"])}
    answers_only = dict(spec, cell=[{k: v for k, v in change.items() if k not in _LAYER_CELL_KEYS}
                                    for change in spec["cell"]])
    submitted_notebook(answers_only, name, notebook, source, restored=_restored_at_autograde)
    code = [c for c in notebook["cells"] if c.get("cell_type") == "code"]
    cells = [_runner_cell(cell, source_index.get(id(cell))) for cell in code]
    inserted = [c for c in cells if c["index"] is None]
    for number, cell in enumerate(inserted):  # negative indexes: cells that are not in source/
        cell["index"] = -1 - (len(cells) - len(inserted) + number)
    return cells


def spec_notebook_names(spec, source_dir=SOURCE_DIR):
    return submitted_names(spec, source_notebooks(source_dir))


def spec_problems(spec, results):
    """Where ``results`` ({notebook: run result}) differ from the spec's expected scores and messages."""
    problems = []
    for notebook, result in results.items():
        if result.get("crashed"):
            problems.append(f"{notebook}: {result['crashed']}")
        for prefix, further in (("", False), ("further_", True)):
            got, maximum = result[f"{prefix}score"], result[f"max_{prefix}score"]
            want = expected_code_score(spec, notebook, maximum, further)
            if got != want:
                problems.append(f"{notebook}: expected {want:g} {'going-further' if further else 'code'} points, "
                                f"got {got:g} of {maximum:g}")
    for message in spec["message"]:
        result = results.get(message["notebook"])
        if result is None:
            continue
        test = next((t for t in result["tests"] if t["grade_id"] == message["grade_id"]), None)
        if test is None:
            problems.append(f"{message['notebook']}: no test cell {message['grade_id']}")
        elif message["contains"] not in (test["error"] or ""):
            problems.append(f"{message['grade_id']} should fail with {message['contains']!r}; "
                            f"it {'passed' if test['passed'] else 'failed with: ' + test['error'][:300]}")
    return problems


# ---------------------------------------------------------------- the parent: one subprocess per notebook

def grade_cell(cell_result, points):
    """Points for a graded test cell: nbgrader.utils.determine_grade and get_partial_grade."""
    if cell_result["status"] != "ok":
        return 0.0
    text = cell_result.get("result")
    if text is None:
        return float(points)
    try:
        grade = float(text)
    except ValueError:
        return float(points)
    if grade < 0:
        return float(points)
    if grade > points:
        raise ValueError(f"partial credit {grade} is greater than the cell's {points} points")
    return grade


def refused_tests(cells):
    """{index: why} of the test cells that fail because an answer uses a library convolution where the
    test wants it written from scratch, as the grader decides it (coursetools.grader.judge)."""
    student = [c["source"] for c in cells if c["kind"] in ("solution", "code")]
    from_scratch = libraryscan.tested_from_scratch([c["source"] for c in cells
                                                    if c["kind"] not in ("solution", "code")])
    refusals = {}
    for cell in cells:
        if cell["kind"] == "tests":
            why = libraryscan.refusal(cell["source"], from_scratch, student)
            if why:
                refusals[cell["index"]] = why
    return refusals


def _error_text(cell_result):
    if cell_result["status"] == "ok":
        return None
    return f"{cell_result.get('ename')}: {cell_result.get('evalue')}"


def run_cells(cells, cwd, timeout=DEFAULT_TIMEOUT, prelude=None, env=None, python=None, stubs=(),
              memory_limit_mb=None, notebook_timeout=LIMITS["notebook_timeout"], name=None):
    """Run ``cells`` (dicts with ``source`` and optionally ``kind``, ``grade_id``, ``points``,
    ``index``) in one fresh subprocess in ``cwd``.

    ``prelude``: Python source run in the child before the cells, in its own
    namespace, with ``register_report(fn)`` available: ``fn()`` is called after
    every cell and its JSON-able dict is stored as the cell's ``report``.
    ``stubs``: module names ("matplotlib", "ipywidgets", "IPython") to stub even
    when installed. ``env``: extra environment variables for the child.
    ``memory_limit_mb``: RLIMIT_DATA for the child, set before anything is
    imported (nbgrader_config.py caps the kernel at 4096; default: no cap).
    ``notebook_timeout``: wall-clock seconds for all cells (as ResilientExecute's
    ``notebook_timeout``); the cells after it are not run.

    Returns a dict: ``name``, ``score``, ``max_score`` (the core's code points),
    ``further_score``, ``max_further_score`` (going further's), ``passed`` (every test
    passed), ``tests`` (one per graded cell: grade_id, points, score, passed,
    error), ``cells`` (every code cell: status ok/error/timeout/not run,
    ename, evalue, traceback, stdout, result, seconds, skipped lines, stubs,
    report), ``stubbed``, ``seconds``, ``crashed`` (None or what happened)
    and ``stderr_tail``.
    """
    cells = [dict(c) for c in cells]
    for position, cell in enumerate(cells):
        cell.setdefault("index", position)
        cell.setdefault("kind", "code")
        cell.setdefault("grade_id", None)
        cell.setdefault("points", 0)
    child_env = dict(os.environ)
    child_env.update({"MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    child_env.update(env or {})
    pythonpath = child_env.get("PYTHONPATH")
    added_root = IMPORT_ROOT not in (pythonpath or "").split(os.pathsep)
    if added_root:  # so that the child finds coursetools; it takes the entry out again
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [IMPORT_ROOT, pythonpath]))
    payload = dict(cells=[dict(index=c["index"], source=c["source"]) for c in cells], timeout=timeout,
                   prelude=prelude or "", stubs=list(stubs), memory_limit_mb=memory_limit_mb,
                   import_root=IMPORT_ROOT if added_root else None, pythonpath=pythonpath)
    results = {}
    crashed = None
    stubbed = []
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr_file:
        proc = subprocess.Popen([python or sys.executable, "-u", "-m", "coursetools.plain.child"],
                                cwd=str(cwd), env=child_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr_file)
        try:
            proc.stdin.write(json.dumps(payload).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        buffer, running, running_since, phase_start = b"", None, None, time.monotonic()
        notebook_deadline = started + notebook_timeout if notebook_timeout else float("inf")
        while True:
            limit = (running_since + timeout + KILL_GRACE) if running is not None else phase_start + STARTUP_TIMEOUT
            if time.monotonic() >= notebook_deadline and running is not None:
                proc.kill()
                crashed = f"the notebook ran longer than {notebook_timeout:g} s: the process was killed"
                results[running] = dict(status="timeout", ename="CellTimeoutError", evalue=crashed,
                                        seconds=time.monotonic() - running_since)
                break
            limit = min(limit, notebook_deadline + 1.0)
            wait = limit - time.monotonic()
            if wait <= 0:
                proc.kill()
                crashed = (f"no reply within {timeout} s (+{KILL_GRACE} s grace) from cell {running}: the process "
                           "was killed" if running is not None else f"the process did not start within "
                           f"{STARTUP_TIMEOUT} s: killed")
                if running is not None:
                    results[running] = dict(status="timeout", ename="CellTimeoutError",
                                            evalue=f"the cell ran longer than {timeout} s and did not stop; "
                                                   "the process was killed", seconds=time.monotonic() - running_since)
                break
            if not selector.select(timeout=min(wait, 1.0)):
                continue
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                event = message.pop("event")
                if event == "ready":
                    stubbed = message["stubbed"]
                    phase_start = time.monotonic()
                elif event == "start":
                    running, running_since = message["index"], time.monotonic()
                elif event == "done":
                    results[message.pop("index")] = message
                    running, phase_start = None, time.monotonic()
                elif event == "fatal":
                    crashed = message["message"]
        selector.close()
        proc.wait()
        stderr_file.seek(0)
        stderr_tail = stderr_file.read()[-4000:].decode("utf-8", "replace")
    if crashed is None and len(results) < len(cells):
        running_text = f" while running cell {running}" if running is not None else ""
        crashed = f"the process exited with status {proc.returncode}{running_text}"
        if running is not None:
            results[running] = dict(status="error", ename="KernelDied",
                                    evalue=f"the process died while running this cell (exit status {proc.returncode})",
                                    seconds=time.monotonic() - running_since)
    cell_results, tests, points_of = [], [], {False: [0.0, 0.0], True: [0.0, 0.0]}   # further -> [score, max]
    refusals = refused_tests(cells)
    for cell in cells:
        result = results.get(cell["index"]) or dict(
            status="not run", ename="KernelDied", evalue=f"not run: {crashed or 'the process stopped early'}")
        result = dict(result, index=cell["index"], kind=cell["kind"], grade_id=cell["grade_id"], points=cell["points"])
        cell_results.append(result)
        if cell["kind"] == "tests":
            points = float(cell["points"])
            error = _error_text(result)
            try:
                got = grade_cell(result, points)
            except ValueError as problem:  # nbgrader's autograde stops on this; here the cell scores 0
                got, error = 0.0, f"ValueError: {problem}"
            if cell["index"] in refusals:
                got, error = 0.0, f"CheckFailure: {refusals[cell['index']]}"
            points_of[going_further(cell["grade_id"])][0] += got
            points_of[going_further(cell["grade_id"])][1] += points
            tests.append(dict(grade_id=cell["grade_id"], points=points, score=got, passed=got == points,
                              error=error, seconds=result.get("seconds")))
    (score, max_score), (further_score, max_further_score) = points_of[False], points_of[True]
    return dict(name=name, cwd=str(cwd), score=score, max_score=max_score, further_score=further_score,
                max_further_score=max_further_score,
                passed=crashed is None and all(t["passed"] for t in tests), tests=tests, cells=cell_results,
                stubbed=stubbed, seconds=time.monotonic() - started, crashed=crashed, stderr_tail=stderr_tail)


def copy_assignment(folder, target):
    """Copy the notebook's folder to ``target`` as nbgrader's autograde does (its helper modules and
    data); when the folder has no ``data/MNIST`` (it is git-ignored), the course's ``data/MNIST`` is
    copied in, so ``coursedata`` finds the digits."""
    import shutil
    folder, target = pathlib.Path(folder), pathlib.Path(target)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    if not (target / "data" / "MNIST" / "raw").is_dir():
        for parent in folder.resolve().parents:
            if (parent / "data" / "MNIST" / "raw").is_dir():
                shutil.copytree(parent / "data" / "MNIST", target / "data" / "MNIST",
                                ignore=shutil.ignore_patterns("*.py", "*.md"))
                break
    return target


def run_notebook(path, timeout=DEFAULT_TIMEOUT, cells=None, isolate=True, **options):
    """Run the notebook at ``path`` (or ``cells`` in its folder) and score it; see ``run_cells``.

    With ``isolate`` (the default) the cells run in a temporary copy of the notebook's folder
    (``copy_assignment``), so whatever they write or change stays out of the repository.
    """
    path = pathlib.Path(path).resolve()
    if cells is None:
        cells = code_cells(read_notebook(path))
    if not isolate:
        return run_cells(cells, path.parent, timeout=timeout, name=path.stem, **options)
    with tempfile.TemporaryDirectory(prefix="plainrun-") as scratch:
        folder = copy_assignment(path.parent, pathlib.Path(scratch) / path.parent.name)
        result = run_cells(cells, folder, timeout=timeout, name=path.stem, **options)
    result.update(cwd=str(path.parent), isolated=True)
    return result


def run_spec(spec_path, timeout=DEFAULT_TIMEOUT, notebooks=None, source_dir=SOURCE_DIR, **options):
    """Run one submission spec: {notebook: result} for its notebooks (or those of them in ``notebooks``)."""
    spec = load_spec(spec_path) if not isinstance(spec_path, dict) else spec_path
    results = {}
    for name in spec_notebook_names(spec, source_dir):
        if notebooks is not None and name not in notebooks:
            continue
        results[name] = run_notebook(pathlib.Path(source_dir) / f"{name}.ipynb", timeout=timeout,
                                     cells=spec_cells(spec, name, source_dir), **options)
    return results


def summary_lines(result, verbose=False):
    failed = [t for t in result["tests"] if not t["passed"]]
    further = (f" (+ {result['further_score']:g}/{result['max_further_score']:g} going further)"
               if result["max_further_score"] else "")
    lines = [f"{result['name']}: {result['score']:g}/{result['max_score']:g} code points{further}, "
             f"{len(result['tests']) - len(failed)}/{len(result['tests'])} test cells passed, "
             f"{result['seconds']:.1f} s"]
    if result["crashed"]:
        lines.append(f"  process: {result['crashed']}")
    for test in failed:
        error = test["error"] or "partial credit"
        lines.append(f"  FAIL {test['grade_id']} ({test['score']:g}/{test['points']:g}): "
                     + (error if verbose else error.splitlines()[0][:200]))
    other = [c for c in result["cells"] if c["kind"] != "tests" and c["status"] != "ok"]
    for cell in other:
        first_line = cell["evalue"].splitlines()[0][:160] if cell.get("evalue") else ""
        lines.append(f"  cell {cell['index']} ({cell['kind']}{' ' + cell['grade_id'] if cell['grade_id'] else ''}) "
                     f"{cell['status']}: {cell.get('ename')}: {first_line}")
    for cell in result["cells"]:
        if cell.get("skipped"):
            lines.append(f"  cell {cell['index']}: IPython syntax skipped: " + "; ".join(cell["skipped"]))
        if cell.get("stubs"):
            lines.append(f"  cell {cell['index']}: ran with stub module(s) {', '.join(cell['stubs'])} "
                         "(not installed here)")
    return lines


# ---------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursetools.plain.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path, help="notebooks to run (default with --spec: "
                        "the spec's notebooks)")
    parser.add_argument("--spec", type=pathlib.Path, help="run this submission spec (submissions/*.toml)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per cell (default {DEFAULT_TIMEOUT:g}, as nbgrader_config.py)")
    parser.add_argument("--stub", action="append", default=[], choices=["matplotlib", "ipywidgets", "IPython"],
                        help="use the stub module even where the real one is installed")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    parser.add_argument("--verbose", "-v", action="store_true", help="whole error messages")
    parser.add_argument("--memory-limit-mb", type=int, default=None,
                        help="cap the process's data segment (autograde caps the kernel at 4096 MiB)")
    parser.add_argument("--in-place", action="store_true",
                        help="run in the notebook's own folder, not in a temporary copy of it")
    args = parser.parse_args(argv)
    if not args.notebooks and not args.spec:
        parser.error("give notebooks, or --spec")
    options = dict(timeout=args.timeout, stubs=args.stub, memory_limit_mb=args.memory_limit_mb,
                   isolate=not args.in_place)
    problems = []
    if args.spec:
        spec = load_spec(args.spec)
        for reason in spec_unsupported(spec):
            print(f"warning: {args.spec.stem} exercises the grading layer, which the plain runner does not "
                  f"reproduce: {reason}")
        names = [p.stem for p in args.notebooks] or None
        results = run_spec(spec, notebooks=names, **options)
        problems = spec_problems(spec, results)
    else:
        results = {}
        for path in args.notebooks:
            results[path.stem] = run_notebook(path, **options)
    for result in results.values():
        print("\n".join(summary_lines(result, args.verbose)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.spec:
        for problem in problems:
            print(f"SPEC MISMATCH {args.spec.stem}: {problem}")
        print(f"{args.spec.stem}: {'as the spec expects' if not problems else 'differs from the spec'}")
        return 1 if problems else 0
    return 0 if all(r["passed"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
