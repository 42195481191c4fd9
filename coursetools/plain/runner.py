"""Run a notebook's code cells in one plain Python process and score its tests as nbgrader would.

    python -m coursetools.plain.runner source/session10/07_convolution_from_scratch.ipynb
    python -m coursetools.plain.runner --spec submissions/nb07_flipped_kernel.toml
    python -m coursetools.plain.runner --json results.json source/session10/*.ipynb

No Jupyter, nbgrader, nbformat or IPython is needed: this module imports only
the standard library, so it runs on a GPU machine that has nothing but Python,
torch and numpy. (It is also the "floor" of the execution benchmark: the same
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
* Each cell gets a time limit (default 60 s, nbgrader_config.py's
  ``Execute.timeout``); a cell over it fails with ``CellTimeoutError`` and the
  next cells still run. A process that dies (``os._exit``, a crash) or hangs
  in C code past the limit fails that cell, and the cells after it are marked
  not run (``KernelDied``), as ``coursetools.grader.execution.ResilientExecute`` does.
* A graded test cell (nbgrader ``grade=true``, not a solution) scores as in
  ``nbgrader.utils.determine_grade``: 0 on an error, partial credit when its
  last expression's value is a number, else full ``points``. stderr output
  does not fail a test (``coursetools.grader.execution.HarmlessStderr``).

A submission spec (``submissions/*.toml``, see ``coursetools/autograde/submissions.py``)
is turned into cells the way ``build_notebooks`` plus nbgrader's autograde do:
answer cells from the spec (the solution, or the release's stub, or the spec's
own source), test and read-only cells from source/ with their hidden tests.

``run_notebook(path, timeout=60, ...)`` returns a dict (see ``run_cells``);
``run_spec(spec_path, ...)`` returns {notebook: result};
``spec_problems(spec, results)`` lists where a run differs from the spec's
``[expected]`` scores and ``[[message]]`` texts.
"""
import argparse
import ast
import json
import os
import pathlib
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
ASSIGNMENT = "session10"
SOURCE_DIR = REPO / "source" / ASSIGNMENT
DEFAULT_TIMEOUT = 60          # nbgrader_config.py: c.Execute.timeout
NOTEBOOK_TIMEOUT = 600        # nbgrader_config.py: c.ResilientExecute.notebook_timeout
STARTUP_TIMEOUT = 120         # imports and the prelude, before the first cell
KILL_GRACE = 10               # seconds past a cell's limit before the process is killed
STDOUT_LIMIT = 20000          # characters of a cell's output kept in the result

SOLUTION_MARKERS = re.compile(r"^\s*(###|===) ?(BEGIN|END) SOLUTION ?(===)?\s*$")  # as coursetools.autograde.submissions
# What the release puts in place of a solution (nbgrader_config.py gives it to ClearSolutions): running
# an untouched answer says what to do instead of a bare NotImplementedError.
CODE_STUB = '# YOUR CODE HERE\nraise NotImplementedError("not written yet: replace this line with your code")'


# ---------------------------------------------------------------- notebooks as JSON

def read_notebook(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def cell_source(cell):
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def nbgrader_meta(cell):
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def cell_kind(cell):
    """'tests', 'solution', 'readonly', 'manual' (graded code answer) or 'code'."""
    meta = nbgrader_meta(cell)
    if meta.get("grade") and meta.get("solution"):
        return "manual"
    if meta.get("grade"):
        return "tests"
    if meta.get("solution"):
        return "solution"
    if meta.get("locked"):
        return "readonly"
    return "code"


def code_cells(notebook):
    """The code cells of a notebook (a JSON dict) as the runner's cell dicts."""
    cells = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = nbgrader_meta(cell)
        cells.append(dict(index=index, kind=cell_kind(cell), grade_id=meta.get("grade_id"),
                          points=meta.get("points", 0) if meta.get("grade") else 0,
                          source=cell_source(cell)))
    return cells


def solution_text(source):
    """The answer inside a source cell: its solution region, markers removed (coursetools.autograde.submissions)."""
    return "\n".join(line for line in source.splitlines() if not SOLUTION_MARKERS.match(line))


def clear_solution(source):
    """The release's version of an answer cell: nbgrader ClearSolutions' algorithm."""
    new_lines, in_solution, replaced = [], False, False
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line:
            in_solution = replaced = True
            indent = re.match(r"\s*", line).group(0)
            new_lines.extend(indent + stub for stub in CODE_STUB.split("\n"))
        elif "END SOLUTION" in line:
            in_solution = False
        elif not in_solution:
            new_lines.append(line)
    return "\n".join(new_lines) if replaced else CODE_STUB


# ---------------------------------------------------------------- submission specs without nbformat

def _load_toml(path):
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            tomllib = None
    if tomllib is not None:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    with open(path, encoding="utf-8") as handle:
        return parse_toml_subset(handle.read())


_TOML_KEY = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)\s*=\s*')
_TOML_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def parse_toml_subset(text):
    """The part of TOML the specs use, for Python < 3.11 without tomli: tables, arrays of
    tables, bare or quoted keys, strings (all four kinds), integers, floats, booleans, arrays,
    inline tables."""
    root, table, pos = {}, None, 0
    table = root

    def skip_space(p, newlines=True):
        while p < len(text):
            if text[p] == "#":
                while p < len(text) and text[p] != "\n":
                    p += 1
            elif text[p] in " \t\r" or (newlines and text[p] == "\n"):
                p += 1
            else:
                break
        return p

    def basic_unescape(raw):
        return re.sub(r"\\(u[0-9a-fA-F]{4}|.)",
                      lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u" else _TOML_ESCAPES[m.group(1)],
                      raw)

    def value(p):
        for quote in ("'''", '"""'):
            if text.startswith(quote, p):
                end = text.index(quote, p + 3)
                while text.startswith(quote[0], end + 3):  # up to two quotes may end the content
                    end += 1
                raw = text[p + 3:end]
                raw = raw[1:] if raw.startswith("\n") else raw
                return (raw if quote == "'''" else basic_unescape(raw)), end + 3
        if text[p] == "'":
            end = text.index("'", p + 1)
            return text[p + 1:end], end + 1
        if text[p] == '"':
            match = re.compile(r'"((?:[^"\\]|\\.)*)"').match(text, p)
            return basic_unescape(match.group(1)), match.end()
        if text[p] == "[":
            items, p = [], skip_space(p + 1)
            while text[p] != "]":
                item, p = value(p)
                items.append(item)
                p = skip_space(p)
                if text[p] == ",":
                    p = skip_space(p + 1)
            return items, p + 1
        if text[p] == "{":
            table, p = {}, skip_space(p + 1, newlines=False)
            while text[p] != "}":
                match = _TOML_KEY.match(text, p)
                table[key_name(match.group(1))], p = value(match.end())
                p = skip_space(p, newlines=False)
                if text[p] == ",":
                    p = skip_space(p + 1, newlines=False)
            return table, p + 1
        match = re.compile(r"[^\s,\]#}]+").match(text, p)
        word = match.group(0)
        if word in ("true", "false"):
            return word == "true", match.end()
        number = word.replace("_", "")
        return (float(number) if re.search(r"[.eE]", number) and not number.startswith("0x") else int(number, 0)), \
            match.end()

    def key_name(raw):
        return basic_unescape(raw[1:-1]) if raw.startswith('"') else raw

    while True:
        pos = skip_space(pos)
        if pos >= len(text):
            return root
        if text.startswith("[[", pos):
            end = text.index("]]", pos)
            name = key_name(text[pos + 2:end].strip())
            table = {}
            root.setdefault(name, []).append(table)
            pos = end + 2
        elif text[pos] == "[":
            end = text.index("]", pos)
            table = root.setdefault(key_name(text[pos + 1:end].strip()), {})
            pos = end + 1
        else:
            match = _TOML_KEY.match(text, pos)
            if not match:
                raise ValueError(f"cannot parse TOML near: {text[pos:pos + 40]!r}")
            table[key_name(match.group(1))], pos = value(match.end())


def load_spec(path):
    """A submission spec with the defaults of ``coursetools.autograde.submissions.load_spec``."""
    spec = _load_toml(path)
    spec.setdefault("base", "solution")
    spec.setdefault("cell", [])
    spec.setdefault("expected", {})
    spec.setdefault("message", [])
    return spec


def source_notebooks(source_dir=SOURCE_DIR):
    return sorted(p.stem for p in pathlib.Path(source_dir).glob("*.ipynb"))


# Spec keys (coursetools/autograde/submissions.py) that only nbgrader's sanitizing and robustness layer
# (RepairMetadata, RestoreCells, Preflight, TamperCheck) gives a meaning to.
_LAYER_KEYS = ("omit", "raw_notebook", "file", "symlink", "flag")
_LAYER_CELL_KEYS = ("cell_type", "nbgrader", "strip_nbgrader")


def spec_unsupported(spec):
    """Why a spec is not a plain-run case (empty when it is): it exercises the grading layer."""
    reasons = []
    for key in _LAYER_KEYS:
        if spec.get(key):
            reasons.append(f"[{key}]" + (" (tampering, robustness events: coursetools/grader/tamper.py, coursetools/core/events.py)"
                                         if key == "flag" else ""))
    for change in spec.get("cell", []):
        keys = [k for k in _LAYER_CELL_KEYS if k in change]
        if keys:
            reasons.append(f"cell {change['grade_id']}: {', '.join(keys)}")
    return reasons


def spec_cells(spec, name, source_dir=SOURCE_DIR):
    """The code cells nbgrader's autograde would run for notebook ``name`` of a spec.

    Same result as ``coursetools.autograde.submissions.build_notebooks`` followed by
    autograde's OverwriteCells: answer cells from the spec, everything locked
    or graded from source/ (hidden tests included).
    """
    if spec["base"] not in ("solution", "release"):
        raise ValueError(f"unknown base {spec['base']!r}: use 'solution' or 'release'")
    notebook = read_notebook(pathlib.Path(source_dir) / f"{name}.ipynb")
    cells = code_cells(notebook)
    known = {nbgrader_meta(c).get("grade_id") for c in notebook["cells"]} - {None}
    for cell in cells:
        if cell["kind"] == "solution":
            released = clear_solution(cell["source"])
            cell["source"] = solution_text(cell["source"]) if spec["base"] == "solution" else released
            cell["release"] = released
    by_id = {c["grade_id"]: c for c in cells if c["grade_id"]}
    for change in spec["cell"]:
        if change["notebook"] != name:
            continue
        if change["grade_id"] not in known:
            raise ValueError(f"{name} has no cell {change['grade_id']!r}")
        cell = by_id.get(change["grade_id"])
        if cell is None or cell["kind"] != "solution":
            continue  # tests and read-only cells are restored from source/ at autograde; markdown is not run
        if change.get("release"):
            cell["source"] = cell["release"]
        if "source" in change:
            cell["source"] = change["source"].strip("\n")
    for delete in spec.get("delete", []):
        if delete["notebook"] == name:
            doomed = {g for g in delete["grade_ids"] if g in by_id and by_id[g]["kind"] in ("solution", "code")}
            cells = [c for c in cells if c["grade_id"] not in doomed]  # deleted test/read-only cells come back
    for insert in spec.get("insert", []):
        if insert["notebook"] != name or insert.get("cell_type", "code") != "code":
            continue
        new = dict(index=-1 - len(cells), kind="code", grade_id=None, points=0, source=insert["source"].strip("\n"))
        after = insert.get("after", "")
        if after and after not in known:
            raise ValueError(f"{name} has no cell {after!r}")
        position = 0
        if after:
            order = [nbgrader_meta(c).get("grade_id") for c in notebook["cells"]]
            before_index = order.index(after)
            position = len([c for c in cells if c["index"] >= 0 and c["index"] <= before_index])
        cells.insert(position, new)
    for cell in cells:
        cell.pop("release", None)
    return cells


def spec_notebook_names(spec, source_dir=SOURCE_DIR):
    names = spec.get("submit") or source_notebooks(source_dir)
    for change in spec["cell"]:
        if change["notebook"] not in names:
            raise ValueError(f"cell change for {change['notebook']!r}, which this spec does not submit")
    return list(names)


def expected_code_score(spec, notebook, max_code):
    """As tests/test_corpus.py: [expected], else full marks on base solution, 0 on base release."""
    if notebook in spec["expected"]:
        return spec["expected"][notebook]
    return max_code if spec["base"] == "solution" else 0


def spec_problems(spec, results):
    """Where ``results`` ({notebook: run result}) differ from the spec's expected scores and messages."""
    problems = []
    for notebook, result in results.items():
        if result.get("crashed"):
            problems.append(f"{notebook}: {result['crashed']}")
        want = expected_code_score(spec, notebook, result["max_score"])
        if result["score"] != want:
            problems.append(f"{notebook}: expected {want:g} code points, got {result['score']:g} "
                            f"of {result['max_score']:g}")
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


def _error_text(cell_result):
    if cell_result["status"] == "ok":
        return None
    return f"{cell_result.get('ename')}: {cell_result.get('evalue')}"


def run_cells(cells, cwd, timeout=DEFAULT_TIMEOUT, prelude=None, env=None, python=None, stubs=(),
              memory_limit_mb=None, notebook_timeout=NOTEBOOK_TIMEOUT, name=None):
    """Run ``cells`` (dicts with ``source`` and optionally ``kind``, ``grade_id``, ``points``,
    ``index``) in one fresh subprocess in ``cwd``.

    ``prelude``: Python source run in the child before the cells, in its own
    namespace, with ``register_report(fn)`` available: ``fn()`` is called after
    every cell and its JSON-able dict is stored as the cell's ``report``.
    ``stubs``: module names ("matplotlib", "ipywidgets", "IPython") to stub even
    when installed. ``env``: extra environment variables for the child.
    ``memory_limit_mb``: RLIMIT_DATA for the child, set before anything is
    imported (nbgrader_config.py caps the kernel at 4096; default: no cap).
    ``notebook_timeout``: wall-clock seconds for all cells (default 600, as
    ResilientExecute); the cells after it are not run.

    Returns a dict: ``name``, ``score``, ``max_score``, ``passed`` (every test
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
    payload = dict(cells=[dict(index=c["index"], source=c["source"]) for c in cells], timeout=timeout,
                   prelude=prelude or "", stubs=list(stubs), memory_limit_mb=memory_limit_mb)
    child_env = dict(os.environ)
    child_env.update({"MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    child_env.update(env or {})
    results = {}
    crashed = None
    stubbed = []
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr_file:
        proc = subprocess.Popen([python or sys.executable, "-u", str(pathlib.Path(__file__).resolve()), "--child"],
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
    from coursetools.grader import libraryscan  # here, not at the top: the child runs this file as a script
    cell_results, tests, score, max_score = [], [], 0.0, 0.0
    student = [c["source"] for c in cells if c["kind"] in ("solution", "code")]
    from_scratch = libraryscan.tested_from_scratch([c["source"] for c in cells
                                                    if c["kind"] not in ("solution", "code")])
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
            refused = libraryscan.refusal(cell["source"], from_scratch, student)
            if refused:  # as the grader decides it (coursetools.grader.judge)
                got, error = 0.0, f"CheckFailure: {refused}"
            score += got
            max_score += points
            tests.append(dict(grade_id=cell["grade_id"], points=points, score=got, passed=got == points,
                              error=error, seconds=result.get("seconds")))
    return dict(name=name, cwd=str(cwd), score=score, max_score=max_score,
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
    lines = [f"{result['name']}: {result['score']:g}/{result['max_score']:g} code points, "
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
        lines.append(f"  cell {cell['index']} ({cell['kind']}{' ' + cell['grade_id'] if cell['grade_id'] else ''}) "
                     f"{cell['status']}: {cell.get('ename')}: {(cell.get('evalue') or '').splitlines()[0][:160] if cell.get('evalue') else ''}")
    for cell in result["cells"]:
        if cell.get("skipped"):
            lines.append(f"  cell {cell['index']}: IPython syntax skipped: " + "; ".join(cell["skipped"]))
        if cell.get("stubs"):
            lines.append(f"  cell {cell['index']}: ran with stub module(s) {', '.join(cell['stubs'])} "
                         "(not installed here)")
    return lines


# ---------------------------------------------------------------- the child: runs the cells

class CellTimeoutError(BaseException):
    """Raised in a cell that runs past its time limit (a BaseException: `except Exception` cannot swallow it)."""


class _Dummy:
    """Stands in for any object of a stubbed module: every attribute, call and item is another _Dummy."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Dummy()

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Dummy()

    def __getitem__(self, key):
        return _Dummy()

    def __setitem__(self, key, value):
        pass

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return "<stub>"


def _stub_subplots(nrows=1, ncols=1, *args, squeeze=True, **kwargs):
    try:
        import numpy as np
        axes = np.empty((nrows, ncols), dtype=object)
        for i in range(nrows):
            for j in range(ncols):
                axes[i, j] = _Dummy()
        if squeeze:
            axes = axes.squeeze()
            axes = axes.item() if axes.ndim == 0 else axes
    except ImportError:
        axes = _Dummy() if nrows * ncols == 1 else [_Dummy() for _ in range(nrows * ncols)]
    return _Dummy(), axes


class _Widget:
    """A stand-in widget: keeps its keyword arguments as attributes and calls observers when ``value`` changes."""

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_observers", [])
        if args:
            kwargs.setdefault("children", args[0])
        if "value" not in kwargs and kwargs.get("options"):
            first = list(kwargs["options"])[0]
            kwargs["value"] = first[1] if isinstance(first, tuple) and len(first) == 2 else first
        kwargs.setdefault("value", None)
        for key, value in kwargs.items():
            object.__setattr__(self, key, value)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Dummy()

    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        object.__setattr__(self, name, value)
        if old is not value and old != value:
            for handler, names in list(self._observers):
                if names is None or name in names:
                    handler(dict(name=name, old=old, new=value, owner=self, type="change"))

    def observe(self, handler, names=None, type="change"):
        names = [names] if isinstance(names, str) else names
        self._observers.append((handler, names))

    def unobserve(self, handler, names=None, type="change"):
        self._observers[:] = [o for o in self._observers if o[0] is not handler]

    def on_click(self, handler, remove=False):
        pass

    def clear_output(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"{type(self).__name__}(value={self.value!r})"


def _interact_value(abbreviation):
    if isinstance(abbreviation, _Widget):
        return abbreviation.value
    if isinstance(abbreviation, tuple) and abbreviation and all(isinstance(v, (int, float)) for v in abbreviation):
        low, high = abbreviation[0], abbreviation[1] if len(abbreviation) > 1 else abbreviation[0]
        middle = (low + high) / 2
        return int(middle) if all(isinstance(v, int) for v in abbreviation) else middle
    if isinstance(abbreviation, (list, tuple)) and abbreviation:
        first = abbreviation[0]
        return first[1] if isinstance(first, tuple) and len(first) == 2 else first
    if isinstance(abbreviation, dict) and abbreviation:
        return next(iter(abbreviation.values()))
    return getattr(abbreviation, "_fixed_value", abbreviation)


def _stub_interact(function=None, **kwargs):
    """ipywidgets.interact: calls the function once with the widgets' starting values."""
    def apply(func):
        func(**{k: _interact_value(v) for k, v in kwargs.items()})
        return func
    return apply(function) if function is not None else apply


def _stub_display(*objects, **kwargs):
    print(*objects)  # what IPython.display.display does outside a kernel


class _DisplayObject:
    def __init__(self, data=None, *args, **kwargs):
        self.data = data

    def __repr__(self):
        return f"<{type(self).__name__}: {str(self.data)[:60]!r}>"


def _make_stub_module(fullname):
    import types

    class StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            if root == "ipywidgets":
                value = type(name, (_Widget,), {})
            else:
                value = _Dummy()
            setattr(self, name, value)
            return value

    module = StubModule(fullname)
    module.__path__ = []
    module.__plainrun_stub__ = True
    root = fullname.split(".")[0]
    if fullname == "matplotlib.pyplot":
        module.subplots = _stub_subplots
    if root == "ipywidgets":
        module.interact = module.interact_manual = _stub_interact
        module.interactive = lambda function, **kwargs: _Widget(result=_stub_interact(function, **kwargs))
        module.fixed = lambda value: type("fixed", (), {"_fixed_value": value})()
    if root == "IPython":
        module.display = _stub_display
        module.get_ipython = lambda: None
        for name in ("HTML", "Markdown", "Image", "Math", "Latex", "SVG", "JSON", "Javascript", "Pretty"):
            setattr(module, name, type(name, (_DisplayObject,), {}))
        module.clear_output = lambda *args, **kwargs: None
    return module


def _install_stubs(roots):
    """Serve every import of ``roots`` (and their submodules) from stub modules."""
    import importlib.abc
    import importlib.util

    class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname.split(".")[0] in roots:
                return importlib.util.spec_from_loader(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            return _make_stub_module(spec.name)

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, StubFinder())


def _stub_roots():
    """Top-level names of the stub modules imported so far."""
    return {name.split(".")[0] for name, module in list(sys.modules.items())
            if getattr(module, "__dict__", {}).get("__plainrun_stub__")}


class _Capture:
    """sys.stdout / sys.stderr during a cell: keeps the first STDOUT_LIMIT characters."""

    encoding = "utf-8"

    def __init__(self):
        self.parts, self.size = [], 0

    def write(self, text):
        if self.size < STDOUT_LIMIT:
            self.parts.append(text[: STDOUT_LIMIT - self.size])
        self.size += len(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        return 2  # the child's fd 2 is a log file: faulthandler and friends can write there

    def text(self):
        return "".join(self.parts) + ("\n[... output cut ...]" if self.size > STDOUT_LIMIT else "")


class _IPythonShim:
    """What ``get_ipython()`` returns in the runner: magics do nothing."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = magic = system = run_line_magic

    def __getattr__(self, name):
        return _Dummy()


_LINE_MAGIC = re.compile(r"^(\s*)([%!])(%?)(\w*)\s*(.*)$")
_RUN_ONCE_MAGICS = {"time", "timeit", "capture", "prun"}


def transform_ipython(source):
    """(python source, skipped lines, cell magic) for a cell that may use IPython syntax.

    Source that already parses is left alone. Otherwise lines starting with % or !
    become ``pass`` (``%time X``/``%timeit X`` become ``X``); a cell magic other than
    %%time/%%timeit/%%capture/%%prun makes the whole cell skipped (source None).
    """
    try:
        ast.parse(source)
        return source, [], None
    except SyntaxError:
        pass
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    skipped = []
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split()[0] if lines[first].lstrip()[2:].split() else ""
        if magic not in _RUN_ONCE_MAGICS and magic != "writefile":
            return None, [lines[first].strip()], magic
        skipped.append(lines[first].strip())
        if magic == "writefile":
            return None, skipped, "writefile"
        lines = lines[first + 1:]
    out = []
    for line in lines:
        match = _LINE_MAGIC.match(line)
        if match and not match.group(3):
            indent, sign, name, rest = match.group(1), match.group(2), match.group(4), match.group(5)
            skipped.append(line.strip())
            if sign == "%" and name in ("time", "timeit") and rest:
                rest = re.sub(r"^(-\w+\s+\S+\s+|-\w+\s+)*", "", rest) if name == "timeit" else rest
                out.append(indent + rest)
            else:
                out.append(indent + "pass")
        else:
            out.append(line)
    return "\n".join(out), skipped, None


def _write_file_magic(source):
    lines = source.lstrip("\n").split("\n")
    args = lines[0].split()[1:]
    append = "-a" in args or "--append" in args
    target = [a for a in args if not a.startswith("-")][0]
    with open(target, "a" if append else "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines[1:]) + "\n")


def _format_traceback(error, filename_prefix):
    import traceback
    frames = traceback.extract_tb(error.__traceback__)
    keep = [i for i, frame in enumerate(frames) if frame.filename.startswith(filename_prefix)]
    tb = error.__traceback__
    for _ in range(keep[0] if keep else 0):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))[-6000:]


def _child_main():
    import builtins
    import io
    import linecache
    import types

    payload = json.loads(sys.stdin.read())
    sys.stdin = io.StringIO("")  # input() in a cell gets EOF, as in nbgrader (no stdin there)
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # C-level output goes to the parent's log file, not into the protocol
    real_stdout = sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace")
    real_stderr = sys.stderr

    def send(event, **fields):
        protocol.write(json.dumps(dict(fields, event=event), default=str) + "\n")
        protocol.flush()

    # sys.path as in a kernel started in this folder: the folder first, not coursetools/
    sys.path[0] = os.getcwd()
    if payload.get("memory_limit_mb"):
        import resource
        limit = int(payload["memory_limit_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    import importlib.util
    stubbed = []
    for root in ("matplotlib", "ipywidgets", "IPython"):
        try:
            found = importlib.util.find_spec(root) is not None
        except (ImportError, ValueError):
            found = False
        if root in payload["stubs"] or not found:
            stubbed.append(root)
    if "matplotlib" in stubbed:
        stubbed.append("plots")  # the assignment's figure module only draws, with matplotlib
    if stubbed:
        _install_stubs(set(stubbed))

    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    namespace = module.__dict__
    sys.modules["__main__"] = module
    def display(*objects, **kwargs):
        """IPython's display (a builtin in a kernel), imported when first used."""
        try:
            from IPython.display import display as real_display
        except Exception:  # noqa: BLE001 - a broken IPython is as good as none
            real_display = _stub_display
        return real_display(*objects, **kwargs)

    shim = _IPythonShim()
    namespace.update(display=display, get_ipython=lambda: shim)

    reporters = []
    if payload["prelude"]:
        try:
            exec(compile(payload["prelude"], "<plainrun prelude>", "exec"),
                 {"__name__": "plainrun_prelude", "register_report": reporters.append})
        except BaseException as error:  # noqa: BLE001
            send("fatal", message=f"the prelude failed: {type(error).__name__}: {error}")
            return
    send("ready", stubbed=stubbed)

    def on_alarm(signum, frame):
        raise CellTimeoutError(f"the cell ran longer than {payload['timeout']} s")

    signal.signal(signal.SIGALRM, on_alarm)
    prefix = f"<cell {os.getpid()}:"
    for cell in payload["cells"]:
        index = cell["index"]
        send("start", index=index)
        out, err = _Capture(), _Capture()
        sys.stdout, sys.stderr = out, err
        status, fields, result = "ok", {}, None
        before = _stub_roots()
        started = time.perf_counter()
        source, skipped, magic = transform_ipython(cell["source"])
        signal.setitimer(signal.ITIMER_REAL, payload["timeout"])
        try:
            if magic == "writefile":
                _write_file_magic(cell["source"])
            elif source is not None:
                filename = f"{prefix}{index}>"
                linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
                tree = ast.parse(source, filename)
                last = None
                if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
                    last = tree.body.pop()
                exec(compile(tree, filename, "exec"), namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
                    if value is not None:
                        namespace["_"] = value
                        result = repr(value)
        except BaseException as error:  # noqa: BLE001 - a cell's error is its result
            signal.setitimer(signal.ITIMER_REAL, 0)
            status = "timeout" if isinstance(error, CellTimeoutError) else "error"
            fields = dict(ename=type(error).__name__, evalue=str(error),
                          traceback=_format_traceback(error, prefix))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - started
        sys.stdout, sys.stderr = real_stdout, real_stderr
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None and not plt.__dict__.get("__plainrun_stub__"):
            try:
                plt.close("all")  # the inline backend closes each cell's figures
            except Exception:  # noqa: BLE001
                pass
        report = {}
        for reporter in reporters:
            try:
                report.update(reporter())
            except Exception as error:  # noqa: BLE001
                report["report_error"] = f"{type(error).__name__}: {error}"
        stubs_now = _stub_roots() - before
        send("done", index=index, status=status, result=result, seconds=seconds, stdout=out.text(),
             stderr=err.text(), skipped=skipped if magic is None else skipped + ([f"cell magic %%{magic}"]
                                                                               if source is None and magic != "writefile" else []),
             stubs=sorted(stubs_now), report=report, **fields)
    send("end")


# ---------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursetools.plain.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path, help="notebooks to run (default with --spec: "
                        "the spec's notebooks)")
    parser.add_argument("--spec", type=pathlib.Path, help="run this submission spec (submissions/*.toml)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per cell (default 60)")
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
    if sys.argv[1:2] == ["--child"]:
        _child_main()
    else:
        sys.exit(main())
