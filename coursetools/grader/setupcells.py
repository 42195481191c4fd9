"""The instructor's read-only set-up cells, run in the grader (docs/authoring.md, "How grading decides").

A test reads set-up data and helpers (``digit``, ``KERNELS``, ``correlate_valid``) from these cells,
run from the instructor's own notebook in the grader's Python, never from the student's kernel.
"""
import ast
import builtins
import contextlib
import io

from coursetools.grader import tamper


def imported_names(sources):
    """{name: (module, attribute or None)} bound by the import statements of the given (instructor) code."""
    return tamper.locked_imports([{"cell_type": "code", "source": source, "metadata": {"nbgrader": {"locked": True}}}
                                  for source in sources])


class SetUpFailed(NameError):
    """A set-up name the test reads, left unset because its read-only cell failed when the grader ran it."""


class SetUp:
    """The instructor's read-only set-up cells, run in the grader: the data and helpers a test reads.

    A test never reads a set-up name (``digit``, ``KERNELS``, ``correlate_valid``) from the kernel. The
    judge runs, from the instructor's own notebook, the last set-up cell before the test that binds the
    name, and the cells that one reads from, in a namespace made fresh for each test. Where a set-up cell
    calls a student's function (``numpy_result = conv2d_padded(img_np, ...)``), that call is an answer:
    it runs in the kernel on the grader's inputs, like any call a test makes."""

    def __init__(self, judge, code_cells):
        self.judge = judge
        answers = {name for kind, _, source in code_cells if kind in ("solution", "manual")
                   for name in tamper.bound_names(source)}
        # (position, source, names it binds): set-up cells only; tests and answers keep their positions
        self.cells = [(position, source, set(tamper.bound_names(source)) - answers)
                      for position, (kind, _, source) in enumerate(code_cells) if kind in ("readonly", "code")]
        self.positions = {cell_id: position for position, (_, cell_id, _) in enumerate(code_cells) if cell_id}
        self.names = set().union(*(names for _, _, names in self.cells))
        # the set-up names a test can read, directly or through the set-up cells it needs
        served = set().union(*(tamper.read_names(source) for kind, _, source in code_cells if kind == "tests"))
        data = self.names - set(imported_names([source for _, source, _ in self.cells]))  # modules: the grader's
        served &= data
        pending = list(served)
        while pending:
            name = pending.pop()
            for _, source, names in self.cells:
                if name in names:
                    needed = (tamper.read_names(source) & data) - served
                    served |= needed
                    pending.extend(needed)
        self.served = served
        self.end_position = len(code_cells)   # a test not found in the source stands after every cell
        self.namespace = None
        self.ran = {}          # position -> the exception its cell raised, or None

    def begin(self):
        self.namespace = SetUpNamespace(self)
        self.ran = {}

    def end(self):
        if self.namespace is not None:
            self.namespace.clear()
        self.namespace, self.ran = None, {}

    def binding_cell(self, name, before):
        """The last set-up cell before position ``before`` that binds ``name`` (None: no such cell)."""
        found = [cell for cell in self.cells if cell[0] < before and name in cell[2]]
        return found[-1] if found else None

    def value(self, name, before):
        """``name`` as the set-up cells before position ``before`` leave it. KeyError: no set-up cell binds it."""
        cell = self.binding_cell(name, before)
        if cell is None:
            raise KeyError(name)
        position, source, _ = cell
        if position not in self.ran:
            self.ran[position] = None
            try:
                tree = tamper.python_source(source)
                if tree is None:
                    raise SyntaxError("the cell does not parse")
                code = compile(WithoutImports().visit(tree), f"<set-up cell {position}>", "exec")
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    self.namespace.running.append(position)
                    try:
                        exec(code, self.namespace)  # noqa: S102 - the instructor's own set-up code, in the grader
                    finally:
                        self.namespace.running.pop()
            except Exception as raised:  # noqa: BLE001 - a name it did bind is still usable
                self.ran[position] = raised
        if dict.__contains__(self.namespace, name):
            return dict.__getitem__(self.namespace, name)
        raised = self.ran[position]
        what = "did not set it" if raised is None else f"raised {type(raised).__name__}: {raised}"
        raise SetUpFailed(f"`{name}` is not set: the read-only cell that sets it {what} when the grader ran it.")


class WithoutImports(ast.NodeTransformer):
    """A set-up cell without its import statements: the names they bind are the grader's modules,
    found on demand (``Judge.resolve``), so a course module is the grader's trusted copy."""

    def visit_Import(self, node):
        return ast.copy_location(ast.Pass(), node)

    visit_ImportFrom = visit_Import


class SetUpNamespace(dict):
    """The set-up cells' globals: what they bind, the grader's modules, and the student's answers on demand."""

    def __init__(self, setup):
        super().__init__(__name__="__main__", __builtins__=builtins)
        self._setup = setup
        self.running = []      # positions of the set-up cells being run (innermost last)

    def __missing__(self, name):
        if hasattr(builtins, name):
            raise KeyError(name)
        # a set-up function called later by the test reads its globals as of the test's place
        return self._setup.judge.resolve(name, self.running[-1] if self.running else self._setup.judge.position)
