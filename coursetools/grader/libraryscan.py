"""Library convolutions in a student's function, found in the submitted source (run by the grader).

``library_calls(sources, "conv2d")`` reads every code cell the student wrote and follows
``conv2d`` through the student's own helpers and module-level names. It reports a use of:

* a library convolution or correlation, by any name or alias: ``F.conv2d``, ``nn.Conv2d``,
  ``scipy.signal.correlate2d``, ``np.convolve``, ``cv2.filter2D``, ``from ... import ... as c``,
  a ``functools.partial`` around one, a module-level alias (``_impl = F.conv2d``);
* an FFT (``np.fft``, ``scipy.fft``, ``torch.fft``): a convolution computed as a product of
  spectra is still a library convolution;
* a name built from strings (``getattr(F, "conv" + "2d")``, ``importlib.import_module(...)``,
  ``__import__(...)``), when the strings spell one of the above or cannot be read;
* the checks module's own references (``convcheck.conv2d_reference`` and its kin);
* a compiler (``torch.jit``, ``torch.compile``), whose code runs where the kernel's record cannot follow.

This is the first line. The second is the kernel's record of what a from-scratch function ran
(``recorder.Record``), which sees a library operation however the code that reached it was written.

Loops, slicing, ``np.pad``, ``sliding_window_view``, ``einsum``, ``tensordot`` and ``@`` are
the exercise's own tools and are not reported.
"""
import ast
import builtins

from coursetools.grader.tamper import _dotted  # 'a.b.c' for a chain of names and attributes

CONVOLUTIONS = {"convolve", "convolve2d", "correlate", "correlate2d", "fftconvolve", "oaconvolve", "conv1d",
                "conv2d", "conv3d", "Conv1d", "Conv2d", "Conv3d", "filter2D", "conv_transpose2d", "convolution",
                "LazyConv2d", "correlate1d", "convolve1d", "conv2d_input", "conv2d_weight", "convolution_backward",
                "autograd", "unfold"}
FFTS = {"fft", "fft2", "fftn", "rfft", "rfft2", "rfftn", "ifft", "ifft2", "ifftn", "irfft", "irfft2", "irfftn",
        "hfft", "ihfft"}
CHECKS_REFERENCES = {"conv2d_reference", "_batch_reference", "_reference_conv", "_torch_conv", "_numpy_conv",
                     "map_of", "_backward_reference", "_convolution", "_conv_forward", "mkldnn_convolution",
                     "cudnn_convolution"}
# compilers whose code runs where the kernel's record cannot follow it (TorchScript, torch.compile)
COMPILERS = {"jit", "_dynamo", "_inductor", "CompilationUnit"}
CHECKS_MODULE = "convcheck"  # anything of it (or of its submodules) used inside a student's function is reported
DYNAMIC = {"getattr", "__import__", "import_module", "eval", "exec", "compile", "vars", "globals", "locals"}
BUILTIN_NAMES = set(dir(builtins))
MODULE_ROUTES = {"__import__", "importlib", "sys", "builtins", "globals", "vars", "locals"}


def _tree(source):
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _strings(node):
    """The text an expression spells when it is made of string constants only, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _strings(node.left), _strings(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_strings(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        return None if None in parts else "".join(parts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join" \
            and len(node.args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple)):
        glue = _strings(node.func.value)
        parts = [_strings(e) for e in node.args[0].elts]
        return None if glue is None or None in parts else glue.join(parts)
    return None


def _is_library_text(text):
    """Whether a dotted name (or a module path) names a convolution, an FFT or a checks reference."""
    parts = text.replace("/", ".").split(".")
    return bool(set(parts) & (CONVOLUTIONS | FFTS | CHECKS_REFERENCES | COMPILERS)) or parts[:2] == ["torch", "compile"]


UNREADABLE_KEY = "*"   # values stored under a name the scan cannot read: followed for any name it cannot trace
STORES = {"setattr", "__setattr__", "__setitem__", "setdefault", "update"}


def _namespace(node):
    """Whether an expression is a namespace, where a key is a name: globals(), vars(x), x.__dict__, sys.modules."""
    if isinstance(node, ast.Call):
        return (_dotted(node.func) or "").rsplit(".", 1)[-1] in ("globals", "vars", "locals")
    return isinstance(node, ast.Attribute) and node.attr in ("__dict__", "modules")


class _Program:
    """The student's code: top-level functions, module-level assignments and imports, over all cells.

    A value stored under a name by any route is kept under that name: ``builtins.fast = v``,
    ``globals()["fast"] = v``, ``setattr(module, "fast", v)``, ``vars(builtins).update(fast=v)``. One
    stored under a name the scan cannot read is kept under ``UNREADABLE_KEY``."""

    def __init__(self, sources):
        self.functions, self.assigned, self.imported = {}, {}, {}
        for source in sources:
            tree = _tree(source)
            for node in tree.body if tree else []:
                self._top(node)

    def _keep(self, name, value):
        if value is not None:
            self.assigned.setdefault(UNREADABLE_KEY if name is None else name, []).append(value)

    def _target(self, target, value):
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                self._keep(node.id, value)
            elif isinstance(node, ast.Attribute):
                self._keep(node.attr, value)
            elif isinstance(node, ast.Subscript):
                key = _strings(node.slice)
                if key is not None or _namespace(node.value):   # (out[i, j] = ... stores no name)
                    self._keep(key, value)

    def _store(self, call):
        """A call that stores values under names: setattr, __setitem__, setdefault, update."""
        method = (_dotted(call.func) or getattr(call.func, "attr", "")).rsplit(".", 1)[-1]
        if method not in STORES:
            return
        if method == "update":
            for keyword in call.keywords:
                self._keep(keyword.arg, keyword.value)
            for argument in call.args:
                if isinstance(argument, ast.Dict):
                    for key, value in zip(argument.keys, argument.values):
                        self._keep(None if key is None else _strings(key), value)
                elif _namespace(getattr(call.func, "value", None)):
                    self._keep(None, argument)
        else:
            at = 1 if method == "setattr" else 0
            if len(call.args) > at + 1:
                self._keep(_strings(call.args[at]), call.args[at + 1])

    def _top(self, node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            self.functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            self.functions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                self._target(target, node.value)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            self._store(node.value)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.imported[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                self.imported[alias.asname or alias.name] = f"{node.module or ''}.{alias.name}"
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            if isinstance(node, ast.For):   # for name, fn in pairs: setattr(builtins, name, fn)
                self._target(node.target, node.iter)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self._top(child)


def library_calls(sources, name):
    """The library convolutions ``name`` uses, directly or through the student's helpers (sorted texts)."""
    program = _Program(sources)
    found, seen, pending = set(), set(), [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        origin = program.imported.get(current)
        if origin is not None:
            if _is_library_text(origin) or origin.split(".")[0] == CHECKS_MODULE and "." in origin:
                found.add(f"{origin} (imported as {current})")
            pending.append(origin.rsplit(".", 1)[-1])  # a helper in a handed-in module: follow it there
        nodes = ([program.functions[current]] if current in program.functions else []) \
            + program.assigned.get(current, [])
        if not nodes and origin is None and current not in BUILTIN_NAMES:   # defined where the scan cannot read
            nodes = program.assigned.get(UNREADABLE_KEY, [])
        for root in nodes:
            local = _local_loads(root)
            for node in ast.walk(root):
                found |= _uses(node, program.imported)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in seen \
                        and id(node) not in local:
                    pending.append(node.id)
                elif isinstance(node, ast.Attribute) and node.attr in program.assigned:   # np.fast, set elsewhere
                    pending.append(node.attr)
    return sorted(found)


SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _own_nodes(scope):
    """The nodes of one function's body that belong to its own scope: nested functions and classes are left out
    (their names, which the function binds, are kept), and so are default values, decorators and annotations,
    which are read in the enclosing scope."""
    pending = list(scope.body) if isinstance(scope.body, list) else [scope.body]
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, SCOPES + (ast.ClassDef,)):
            pending.extend(ast.iter_child_nodes(node))


def _local_loads(root):
    """The name loads in ``root`` that read a function's own local (a parameter, or a name it assigns or loops
    over and does not declare global): that value lies inside the function, which is read anyway, so a
    module-level name of the same spelling is not followed from there."""
    local_loads = set()
    for scope in (node for node in ast.walk(root) if isinstance(node, SCOPES)):
        own = list(_own_nodes(scope))
        declared = {name for node in own if isinstance(node, (ast.Global, ast.Nonlocal)) for name in node.names}
        bound = {node.arg for node in ast.walk(scope.args) if isinstance(node, ast.arg)}
        bound |= {node.id for node in own if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
        bound |= {node.name for node in own if isinstance(node, SCOPES[:2] + (ast.ClassDef,))}
        local_loads |= {id(node) for node in own if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
                        and node.id in bound - declared}
    return local_loads


def _uses(node, imported=()):
    """What one node uses: a library convolution, an FFT, the checks module, or a name built at run time
    (for getattr: only on a module, since getattr(obj, name) on the student's own objects is ordinary)."""
    found = set()
    if isinstance(node, ast.Attribute):
        text = _dotted(node) or node.attr
        if node.attr in CONVOLUTIONS | CHECKS_REFERENCES or text.split(".")[0] == CHECKS_MODULE:
            found.add(text)
        elif node.attr in COMPILERS or text.startswith("torch.compile"):
            found.add(f"{text} (compiled code the grader cannot follow)")
        elif node.attr in FFTS or node.attr == "fft":
            found.add(text)
    elif isinstance(node, ast.Call):
        callee = _dotted(node.func) or ""
        last = callee.rsplit(".", 1)[-1]
        if last in DYNAMIC:
            spelled = [_strings(arg) for arg in (node.args[1:2] if last == "getattr" else node.args[:1])]
            if last in ("eval", "exec", "compile", "vars", "globals", "locals"):
                found.add(f"{callee}(...) (code or names built at run time)")
            elif not spelled or spelled[0] is None:
                on = {n.id for n in ast.walk(node.args[0]) if isinstance(n, ast.Name)} if node.args else set()
                if last != "getattr" or on & (set(imported) | MODULE_ROUTES):
                    found.add(f"{callee}(...) with a name built at run time")
            elif _is_library_text(spelled[0]):
                found.add(f"{callee}({spelled[0]!r})")
    elif isinstance(node, (ast.Import, ast.ImportFrom)):  # an import inside the function
        module = node.module if isinstance(node, ast.ImportFrom) else None
        for alias in node.names:
            text = f"{module}.{alias.name}" if module else alias.name
            if _is_library_text(text):
                found.add(f"import of {text}")
    return found


CHECK_CALLS = {"check_no_library_conv", "check_no_library_conv_batch", "check_no_library_conv_backward"}


def tested_from_scratch(sources):
    """Names of the functions the tests require to be written from scratch (given to check_no_library_conv)."""
    names = set()
    for source in sources:
        tree = _tree(source)
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.Call) and (_dotted(node.func) or "").rsplit(".", 1)[-1] in CHECK_CALLS \
                    and node.args and isinstance(node.args[0], ast.Name):
                names.add(node.args[0].id)
    return names


def free_names(source):
    """Every name a piece of code reads."""
    tree = _tree(source)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} if tree else set()


def refusal(test_source, from_scratch, student_sources, seen_running=lambda name: ()):
    """The failure message of a test that calls a from-scratch function using a library convolution, or None:
    found in the student's source, or (``seen_running(name)``) seen when the function ran.

    Such a function earns nothing: every test that names it fails, and says which call it makes."""
    offending = {}
    for name in sorted(free_names(test_source) & set(from_scratch)):
        found = library_calls(student_sources, name) or seen_running(name)
        if found:
            offending[name] = "a call to " + ", ".join(found)
    if not offending:
        return None
    got = "; ".join(offending.values()) if len(offending) == 1 else \
        "; ".join(f"{name}: {what}" for name, what in offending.items())
    return (f"{' and '.join(offending)} must compute the convolution itself, so this test earns no points.\n"
            "  expected: loops, slicing or einsum\n"
            f"  got:      {got}\n"
            "  hint:     write the sliding-window loops; a library convolution is what the exercise "
            "replaces, and while it calls one every test of it scores 0")
