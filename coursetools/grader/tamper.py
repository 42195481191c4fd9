"""Detect submissions that tamper with the grading instead of solving the exercise.

The tests compare a student's values through the checks module (``convcheck``),
which uses NumPy, PyTorch, ``math`` and the builtins. All of them live in the
student's own kernel, so a cell can replace a comparison and make every test
pass. Two independent layers look for that:

* **The source scan** (``scan_notebook``) reads every code cell the student
  wrote, outside the kernel, so nothing the student runs can hide from it. It
  resolves import aliases (``import numpy as np``, ``from convcheck import
  check_array``, ``cc = convcheck``) and reports:

  - *tampering*: assigning or deleting an attribute or item of a protected
    module (``np.allclose = ...``, ``convcheck.check_scalar = ...``,
    ``torch.Tensor.__eq__ = ...``, ``builtins.isinstance = ...``,
    ``sys.modules["convcheck"] = ...``), ``setattr``/``delattr`` on one,
    ``mock.patch`` of one, rebinding the checks module's name, installing
    trace/profile/audit/import hooks, changing IPython's input transformers,
    exception handlers or events, reading the grader's stack frames
    (``sys._getframe``, ``f_back``, ``f_locals``), changing resource limits,
    or naming the gradebook;
  - *suspicious* (for the instructor to look at; no points are taken): ``exec``,
    ``eval``, ``compile`` or ``__import__`` of computed text, ``ctypes``, ``gc``
    object walks, running processes or signal handlers, writing files outside
    the assignment folder, rebinding a module name that the read-only cells
    imported (``np = ...``), stack inspection.

* **The runtime guard** (``coursetools.grader.guard``) is installed in the kernel by
  ``coursetools.grader.execution.ResilientExecute`` before the first cell runs, and
  asked after every code cell. It finds, whatever the code that did it:
  functions or callable objects defined in the notebook that sit in a
  protected module (``np.abs = lambda ...`` written as
  ``setattr(__import__("nu" + "mpy"), ...)``), protected callables replaced
  since they were first seen, a module name of the read-only cells rebound to
  a fake module, and notebook-defined hooks in IPython, the kernel, ``sys``
  (trace, profile, excepthook, displayhook, import hooks) or the IPython
  input transformers and events.

Policy (``coursetools.grader.preprocessors.TamperCheck``): *tampering* voids the notebook's
autograded tests (each scores 0, with a message saying why) and is listed in
the instructor's report; *suspicious* is only listed. An instructor who
disagrees overrides the scores in the formgrader.

Neither layer is a sandbox: a student who studies this module can find
constructs it does not know. The scan flags the tools that evasion needs
(``exec`` of computed text, ``ctypes``, ``gc``, frame access), so such a
submission still reaches the report.
"""
import ast
import inspect
import json
import pathlib

from coursetools.core.cells import cell_kind, cell_source, grade_id, nbgrader_meta
from coursetools.core.events import event
from coursetools.grader import agent, guard

CHECKS_MODULES = ("convcheck",)
PROTECTED_ROOTS = ("convcheck", "coursedata", "numpy", "torch", "math", "builtins", "numbers", "operator",
                   "fractions", "inspect", "IPython", "ipykernel", "nbgrader")
SETTINGS = ("torch.backends.",)  # attribute stores that are settings, not comparisons
FRAME_ATTRS = {"f_back", "f_locals", "f_globals", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "ag_frame"}
FRAME_CALLS = {"sys._getframe", "inspect.currentframe"}
STACK_CALLS = {"inspect.stack", "inspect.trace", "inspect.getouterframes", "inspect.getinnerframes",
               "traceback.extract_stack", "traceback.walk_stack", "traceback.print_stack"}
HOOK_CALLS = {"sys.settrace", "sys.setprofile", "sys.addaudithook", "threading.settrace", "threading.setprofile",
              "sys.setrecursionlimit"}
LIMIT_CALLS = {"resource.setrlimit", "resource.prlimit"}
HOOK_ATTRS = {"sys.excepthook", "sys.displayhook", "sys.meta_path", "sys.path_hooks", "sys.modules",
              "sys.stdout", "sys.stderr", "sys.__excepthook__"}
IPYTHON_OK = {"run_line_magic", "run_cell_magic", "system", "getoutput", "magic", "user_ns"}
IPYTHON_TAMPER = {"set_custom_exc", "input_transformers_cleanup", "input_transformers_post", "ast_transformers",
                  "events", "register_magic_function", "showtraceback", "_showtraceback", "run_cell",
                  "run_cell_async", "run_ast_nodes", "run_code", "kernel", "displayhook", "display_pub",
                  "set_hook", "CustomTB", "custom_exceptions", "input_transformer_manager", "compile",
                  "transform_cell", "showsyntaxerror", "excepthook", "register_post_execute"}
MUTATORS = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__", "append", "insert",
            "extend", "remove", "__setattr__", "__delattr__"}
PROCESS_CALLS = {"os.system", "os.popen", "os.fork", "os.forkpty", "os.setsid", "os.kill", "os.killpg",
                 "signal.signal", "pty.spawn", "os.execv", "os.execve", "os.execl", "os.spawnl"}
PROCESS_ROOTS = ("subprocess", "multiprocessing", "socket", "ctypes", "gc")
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "importlib.import_module", "importlib.reload",
                 "builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__"}


def _dotted(node):
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class Aliases:
    """What names stand for: modules and objects imported from them, through imports and assignments."""

    def __init__(self):
        self.names = {"__builtins__": "builtins"}

    def learn(self, tree):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.names[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        self.names[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target = self.resolve(node.value)
                if target and _protected(target):
                    self.names[node.targets[0].id] = target

    def resolve(self, node):
        """The dotted path an expression stands for ('numpy.testing.assert_allclose'), or None."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):
            base = self.resolve(node.value)
            key = _const_str(node.slice)
            if base == "sys.modules" and key:
                return f"sys.modules[{key!r}]"
            if base and base.endswith(".__dict__") and key:
                return f"{base[:-len('.__dict__')]}.{key}"
            if base == "__main__" and key:
                return self.names.get(key, f"__main__.{key}")
            return f"{base}[]" if base else None
        if isinstance(node, ast.Call):
            func = self.call_name(node)
            args = node.args
            if func in ("getattr", "builtins.getattr") and len(args) >= 2:
                base, attr = self.resolve(args[0]), _const_str(args[1])
                return f"{base}.{attr}" if base and attr else (f"{base}.?" if base else None)
            if func in ("vars", "builtins.vars") and args:
                base = self.resolve(args[0])
                return f"{base}.__dict__" if base else None
            if func in ("__import__", "importlib.import_module", "builtins.__import__") and args:
                return _const_str(args[0])
            if func in ("get_ipython", "IPython.get_ipython", "IPython.core.getipython.get_ipython"):
                return "IPython.shell"
            if func in ("globals", "builtins.globals"):
                return "__main__"
            if func in ("sys._getframe", "inspect.currentframe"):
                return "frame"
        return None

    def call_name(self, call):
        name = self.resolve(call.func)
        if name:
            return name
        return _dotted(call.func)


def _protected(path):
    if not path:
        return False
    if path.startswith("sys.modules") or path.startswith("IPython.shell"):
        return True
    return path.split(".")[0] in PROTECTED_ROOTS


def _settings(path):
    return any(path.startswith(prefix) for prefix in SETTINGS)


def scan_source(tree, aliases, locked_modules):
    """Findings for one parsed cell. ``locked_modules``: {name: module} bound by the read-only cells."""
    found = []

    def add(kind, detail, node):
        found.append(event(kind, detail, line=getattr(node, "lineno", 0)))

    def check_store(target, node, verb):
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                check_store(element, node, verb)
            return
        if isinstance(target, ast.Starred):
            check_store(target.value, node, verb)
            return
        if isinstance(target, ast.Name):
            module = locked_modules.get(target.id)
            if module and module.split(".")[0] in CHECKS_MODULES:
                add("tampering", f"{verb} the name {target.id} (the checks module {module})", node)
            elif module:
                add("suspicious", f"{verb} the name {target.id} (the module {module} of the read-only cells)", node)
            return
        path = aliases.resolve(target)
        if isinstance(target, ast.Subscript) and path == "__main__":
            return
        if path and isinstance(target, ast.Subscript) and aliases.resolve(target.value) == "__main__":
            key = _const_str(target.slice)
            if key and key in locked_modules:
                check_store(ast.Name(id=key, lineno=node.lineno), node, verb)
            return
        if path in HOOK_ATTRS or (path and path.startswith("sys.modules")):
            add("tampering", f"{verb} {path}", node)
        elif path and _protected(path) and not _settings(path):
            add("tampering", f"{verb} {path.replace('[]', '[...]')}", node)
        elif isinstance(target, ast.Attribute) and target.attr in ("__code__", "__globals__", "__defaults__",
                                                                   "__kwdefaults__", "__closure__"):
            add("suspicious", f"{verb} a function's {target.attr}", node)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                check_store(target, node, "assigns")
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.target is not None:
            if not isinstance(node, ast.AnnAssign) or node.value is not None:
                check_store(node.target, node, "assigns")
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                check_store(target, node, "deletes")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            if node.attr in FRAME_ATTRS:
                add("tampering", f"reads the grader's stack frames (.{node.attr})", node)
            elif node.attr == "__subclasses__":  # how the grader reaches its agent and guard (agent.door_expression)
                add("suspicious", "walks the class hierarchy (.__subclasses__)", node)
            base = aliases.resolve(node.value)
            if base == "IPython.shell":
                if node.attr in IPYTHON_TAMPER:
                    add("tampering", f"changes IPython's {node.attr}", node)
                elif node.attr not in IPYTHON_OK:
                    add("suspicious", f"uses IPython's {node.attr}", node)
        elif isinstance(node, ast.Call):
            name = aliases.call_name(node) or ""
            args = node.args
            if name in ("setattr", "delattr", "object.__setattr__", "object.__delattr__", "type.__setattr__",
                        "builtins.setattr", "builtins.delattr") and args:
                target = aliases.resolve(args[0])
                if target and (_protected(target) or target in HOOK_ATTRS) and not _settings(target + "."):
                    attr = _const_str(args[1]) if len(args) > 1 else None
                    add("tampering", f"{name.split('.')[-1]} on {target}{'.' + attr if attr else ''}", node)
                elif target is None and not isinstance(args[0], ast.Name):
                    add("suspicious", f"{name.split('.')[-1]} on a computed object", node)
            elif "." in name and name.rsplit(".", 1)[1] in MUTATORS:
                owner = name.rsplit(".", 1)[0]
                if owner.startswith("sys.modules") or owner in HOOK_ATTRS or owner.endswith(".__dict__") and \
                        _protected(owner) or owner.startswith("IPython.shell"):
                    add("tampering", f"changes {owner} ({name.rsplit('.', 1)[1]})", node)
            if name.split(".")[-1] in ("patch", "object", "dict", "multiple") and "patch" in name or \
                    name.endswith("monkeypatch.setattr"):
                targets = [aliases.resolve(a) for a in args] + [_const_str(a) for a in args]
                if any(t and _protected(t) for t in targets):
                    add("tampering", f"patches {next(t for t in targets if t and _protected(t))} with {name}", node)
            if name in HOOK_CALLS:
                add("tampering", f"installs a hook with {name}", node)
            elif name in LIMIT_CALLS:
                add("tampering", f"changes the grader's resource limits ({name})", node)
            elif name in FRAME_CALLS:
                add("tampering", f"reads the grader's stack frames ({name})", node)
            elif name in STACK_CALLS:
                add("suspicious", f"inspects the call stack ({name})", node)
            elif name in DYNAMIC_CALLS:
                if not (args and isinstance(args[0], ast.Constant)):
                    add("suspicious", f"runs computed code or imports a computed name ({name})", node)
            elif name in PROCESS_CALLS or name.split(".")[0] in PROCESS_ROOTS:
                add("suspicious", f"uses {name}", node)
            elif name in ("open", "builtins.open", "io.open") and args:
                path = _const_str(args[0]) or ""
                mode = _const_str(args[1]) if len(args) > 1 else _const_str(
                    next((k.value for k in node.keywords if k.arg == "mode"), None)) or "r"
                if path.startswith("/") or ".." in path:
                    add("suspicious", f"opens {path!r} outside the assignment folder (mode {mode!r})", node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "gradebook" in node.value.lower():
            add("tampering", f"refers to the grader's gradebook ({node.value[:60]!r})", node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in ("ctypes", "gc", "nbgrader"):
                    add("suspicious", f"imports {module}", node)
    return found


def python_source(source):
    """A cell's source as Python (IPython magics turned into calls), or None if it does not parse."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - fall back to the raw text
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def bound_names(source):
    """The names a cell's code binds at the notebook's top level (not inside its functions or classes)."""
    tree, names = python_source(source), set()
    pending = list(tree.body) if tree else []
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            pending.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*")
        pending.extend(ast.iter_child_nodes(node))
    return sorted(names)


def read_names(source):
    """The names a cell's code reads and never binds, anywhere in it (what it needs from outside)."""
    tree = python_source(source)
    nodes = list(ast.walk(tree)) if tree else []
    names = [node for node in nodes if isinstance(node, ast.Name)]
    stored = {node.id for node in names if not isinstance(node.ctx, ast.Load)}
    stored |= {node.arg for node in nodes if isinstance(node, ast.arg)}   # parameters of its functions
    return {node.id for node in names if isinstance(node.ctx, ast.Load)} - stored


def instructor_code_cells(source_notebook):
    """The instructor's code cells as (kind, grade id, source) in notebook order (``cells.cell_kind``);
    [] if the notebook is unreadable."""
    try:
        cells = json.loads(pathlib.Path(source_notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [(cell_kind(cell), grade_id(cell), cell_source(cell)) for cell in cells if cell.get("cell_type") == "code"]


def graded_names(code_cells):
    """{grade id: names} that each answer cell binds, from ``instructor_code_cells``."""
    return {cell_id: bound_names(source) for kind, cell_id, source in code_cells
            if kind in ("solution", "manual") and cell_id}


def is_student_cell(cell):
    """A code cell whose source is the student's: not a locked (read-only or test) cell."""
    return cell.get("cell_type") == "code" and not nbgrader_meta(cell).get("locked")


def locked_imports(cells):
    """{name: (module, attr or None)} bound by import statements of the locked code cells."""
    names = {}
    for cell in cells:
        if cell.get("cell_type") != "code" or is_student_cell(cell):
            continue
        tree = python_source(cell.get("source", ""))
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        names[alias.asname] = (alias.name, None)
                    else:
                        names[alias.name.split(".")[0]] = (alias.name.split(".")[0], None)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        names[alias.asname or alias.name] = (node.module, alias.name)
    return names


def _path(binding):
    module, attr = binding
    return f"{module}.{attr}" if attr else module


def scan_notebook(nb):
    """Findings over the student's code cells: dicts with kind, detail, cell (grade_id or index), line."""
    cells = nb["cells"] if isinstance(nb, dict) else nb.cells
    trees = [python_source(c.get("source", "")) if c.get("cell_type") == "code" else None for c in cells]
    aliases = Aliases()
    for tree in trees:
        if tree is not None:
            aliases.learn(tree)
    locked = {name: _path(binding) for name, binding in locked_imports(cells).items()
              if _protected(_path(binding))}
    findings = []
    for index, (cell, tree) in enumerate(zip(cells, trees, strict=True)):
        if tree is None or not is_student_cell(cell):
            continue
        where = grade_id(cell) or f"cell {index + 1}"
        for finding in scan_source(tree, aliases, locked):
            finding["cell"] = where
            findings.append(finding)
    seen, unique = set(), []
    for finding in findings:
        key = (finding["kind"], finding["detail"], finding["cell"])
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique


# ----------------------------------------------------------------------------- the runtime guard

# convcheck's submodules too (source/session10/convcheck/*.py): a check replaced in one
# does not show in the package's namespace.
GUARDED_MODULES = ("convcheck", "convcheck.answers", "convcheck.backward", "convcheck.basic",
                   "convcheck.batch_diagnoses", "convcheck.batched", "convcheck.calls", "convcheck.contract",
                   "convcheck.diagnoses", "convcheck.failures", "convcheck.hooks", "convcheck.layers",
                   "convcheck.library", "convcheck.matrix", "convcheck.pasted", "convcheck.references",
                   "convcheck.single_channel",
                   "coursedata", "numpy", "numpy.testing", "numpy.linalg", "math", "builtins", "numbers", "operator",
                   "fractions", "torch", "torch.nn", "torch.nn.functional", "torch.testing")


def guard_install_code(token):
    """Kernel code that installs the guard (``coursetools.grader.guard``) behind a door named ``token``
    (``agent.door_expression``; its one strong reference in ``builtins``), before any student code
    (compiled under its own file name, so the guard is not taken for notebook code)."""
    return (f"exec(compile({inspect.getsource(guard)!r}, '<coursetools-guard>', 'exec'), _ct_ns := {{}})\n"
            f"__import__('builtins').__dict__[{token!r}] = type({token!r}, (complex,), {{'__slots__': (), "
            f"'__module__': {token!r}, "  # (a class of __main__ would be taken for notebook code)
            f"'check': staticmethod(_ct_ns['make_guard']({GUARDED_MODULES!r}, {CHECKS_MODULES!r}, get_ipython()))}})\n"
            "del _ct_ns\n")


def guard_call(token, aliases):
    """A user expression that runs the guard, looking up no name; ``aliases`` is a list of (name, module, attr)."""
    return agent.door_expression(token, "check", repr([tuple(a) for a in aliases]))


def alias_triples(bindings):
    """(name, module, attr) for the guard, from locked_imports() of protected modules."""
    return [(name, module, attr) for name, (module, attr) in bindings.items()
            if module.split(".")[0] in PROTECTED_ROOTS]
