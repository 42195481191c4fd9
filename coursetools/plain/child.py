"""The plain runner's child process: runs the cells it is sent, one by one, in a fresh ``__main__``.

    python -u -m coursetools.plain.child < payload.json     (started by coursetools.plain.runner.run_cells)

Reads a JSON payload (cells, time limit, prelude, stubs) on stdin and answers one JSON line per event
(ready, start, done, fatal, end) on stdout. Standard library only (plus the stub modules): the GPU
check runs it where nothing but Python, torch and NumPy is installed.
"""
import ast
import json
import os
import re
import signal
import sys
import time

from coursetools.plain import stubs

STDOUT_LIMIT = 20000          # characters of a cell's output kept in the result


class CellTimeoutError(BaseException):
    """Raised in a cell that runs past its time limit (a BaseException: `except Exception` cannot swallow it)."""


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
        return stubs.Dummy()


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


def main():
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

    # sys.path and PYTHONPATH as in a kernel started in this folder (the parent added the import root)
    sys.path[0] = os.getcwd()
    if payload["import_root"]:
        del sys.path[sys.path.index(payload["import_root"], 1)]
        _restore_environ("PYTHONPATH", payload["pythonpath"])
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
        stubs.install(set(stubbed))

    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    namespace = module.__dict__
    sys.modules["__main__"] = module
    def display(*objects, **kwargs):
        """IPython's display (a builtin in a kernel), imported when first used."""
        try:
            from IPython.display import display as real_display
        except Exception:  # noqa: BLE001 - a broken IPython is as good as none
            real_display = stubs.display
        return real_display(*objects, **kwargs)

    shim = _IPythonShim()
    namespace.update(display=display, get_ipython=lambda: shim)

    reporters = []
    if payload["prelude"]:
        try:
            exec(compile(payload["prelude"], "<plainrun prelude>", "exec"),  # noqa: S102 - the caller's own code
                 {"__name__": "plainrun_prelude", "register_report": reporters.append})
        except BaseException as error:  # noqa: BLE001
            send("fatal", message=f"the prelude failed: {type(error).__name__}: {error}")
            return
    send("ready", stubbed=stubbed)

    def on_alarm(signum, frame):
        raise CellTimeoutError(f"the cell ran longer than {payload['timeout']} s")

    prefix = f"<cell {os.getpid()}:"
    for cell in payload["cells"]:
        index = cell["index"]
        signal.signal(signal.SIGALRM, on_alarm)   # again for each cell: an earlier cell may have replaced it
        send("start", index=index)
        out, err = _Capture(), _Capture()
        sys.stdout, sys.stderr = out, err
        status, fields, result = "ok", {}, None
        before = stubs.imported_roots()
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
                exec(compile(tree, filename, "exec"), namespace)  # noqa: S102 - running cells is the job
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
        if plt is not None and not plt.__dict__.get(stubs.STUB_MARK):
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
        stubs_now = stubs.imported_roots() - before
        if source is None and magic != "writefile":
            skipped = skipped + [f"cell magic %%{magic}"]
        send("done", index=index, status=status, result=result, seconds=seconds, stdout=out.text(),
             stderr=err.text(), skipped=skipped, stubs=sorted(stubs_now), report=report, **fields)
    send("end")


def _restore_environ(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


if __name__ == "__main__":
    main()
