"""Graded test cells run in the grader, not in the student's kernel (docs/authoring.md, "How grading decides").

At autograde, ``ResilientExecute`` hands every graded test cell to a ``Judge`` instead of the
kernel. The judge runs the instructor's test code, hidden tests included, in the grader's own
Python, with the grader's trusted copy of the checks module (``convcheck`` from ``source/``) and
the grader's NumPy and PyTorch (``nn.Conv2d`` on the GPU where there is one). Whenever the test
reads a name it does not define (``conv2d``, ``hand_41``, ``I_41``), the judge asks the kernel's
agent (``coursetools.grader.agent``) for it; a student's function comes back as a ``RemoteFunction``
whose calls run in the kernel on the inputs the test chose, and whose results come back as plain
data. So the kernel never holds an expected value, a tolerance, a reference or the test code,
nothing it does can turn a failed comparison into a pass, and a lying object (``__array__``,
``__eq__``, ``__float__``, an ndarray subclass) is reduced to the plain value it stands for
before any comparison.

The verdict is written into the cell's outputs as nbgrader expects: an error output fails the
test, printed text is kept. Names bound by the notebook's own import statements (``np``,
``torch``, ``convcheck``, ...) are the grader's modules, never the kernel's.
"""
import builtins
import contextlib
import hashlib
import importlib
import importlib.util
import io
import itertools
import json
import os
import pathlib
import sys
import weakref

import numpy as np

from coursetools.grader import agent, libraryscan
from coursetools.grader.setupcells import SetUp, imported_names

COURSE_MODULES = ("convcheck", "coursedata", "plots")   # shipped modules (file or package): the grader loads its own
TRUSTED_TYPES = ("torch.", "numpy.")                   # classes a handle may claim to be (for isinstance)


class TestDidNotRun(BaseException):
    """The test could not be carried out (the kernel answered nonsense, or the student's code stopped it).

    A BaseException, so that a test's own ``except Exception`` cannot mistake it for an answer."""


class KernelLost(BaseException):
    """The kernel died or would not stop; the grader's execution deals with it (``cause`` says how)."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


# ----------------------------------------------------------------------------- plain data

_npy, _from_npy = agent._npy, agent._from_npy  # one encoding on both sides


def rebuild_error(info):
    """An exception like the one the student's code raised: its builtin class, or a subclass named like it."""
    bases = [getattr(builtins, name) for name in info.get("bases", [])
             if isinstance(getattr(builtins, name, None), type) and issubclass(getattr(builtins, name), BaseException)]
    base = bases[0] if bases else Exception
    message = str(info.get("message", ""))
    if not issubclass(base, Exception):  # KeyboardInterrupt, SystemExit: never raised inside the grader
        return TestDidNotRun(f"the student's code raised {info.get('type')} ({message[:200]})")
    name = str(info.get("type", base.__name__))
    kind = base if name == base.__name__ else type(name, (base,), {"__module__": "student"})
    try:
        return kind(message)
    except TypeError:  # a builtin that wants other arguments (UnicodeDecodeError, ...)
        return type(name, (Exception,), {"__module__": "student"})(message)


class Remote(agent.Tagged):
    """The grader's side of the agent: requests, plain values both ways, proxies for the rest."""

    def __init__(self, rpc):
        self.rpc = rpc                           # request dict -> answer dict
        self._tokens = weakref.WeakValueDictionary()   # token -> the test's array it stands for
        self._token_of = {}                             # id(array) -> token
        self._next_token = itertools.count(1)
        self._left = {}     # token -> what the student's code left in its copy of that array (never the test's)
        self._sent = {}     # token -> the test's array as last sent
        self.on_change = None   # (function name, [argument labels]) -> None: a call wrote into the test's inputs
        self.on_notes = None    # (graded name, call number, notes kept in the kernel) -> None: after a watched call
        self.kernel_twin = None  # a set-up function of the grader's -> the kernel's own (RemoteFunction) or None
        self._calls = 0

    def request(self, **request):
        answer = self.rpc(request)
        if not isinstance(answer, dict):
            raise TestDidNotRun("the kernel's answer was not understood")
        if "failed" in answer:
            raise TestDidNotRun(f"the kernel could not answer ({answer['failed'].get('type')}: "
                                f"{str(answer['failed'].get('message'))[:200]})")
        return answer

    # --- to the kernel

    def _token(self, array):
        key = id(array)
        token = self._token_of.get(key)
        if token is None or self._tokens.get(token) is not array:
            token = next(self._next_token)
            self._token_of[key] = token
            self._tokens[token] = array
        return token

    def encode_array(self, array):
        layout = {} if array.ndim < 2 or array.flags.c_contiguous else {"order": "F"}  # a transposed view stays one
        token, keep = self._token(array), {}
        sent = self._sent.get(token)
        if token in self._left and sent is not None and sent.shape == array.shape and np.array_equal(
                sent, array, equal_nan=True):
            keep = {"keep": True}  # the test left it alone: the kernel's copy stays as the student's code left it
        else:
            self._left.pop(token, None)  # the kernel's copy is made equal to the test's array
        self._sent[token] = array.copy()
        return {"$array": _npy(array), "token": token, **layout, **keep}

    def encode_other(self, value):
        if isinstance(value, (RemoteFunction, RemoteObject)):
            return {"$handle": value._handle}
        twin = self.kernel_twin(value) if self.kernel_twin is not None and callable(value) else None
        if twin is not None:
            return {"$handle": twin._handle}
        if isinstance(value, np.ndarray):
            raise TypeError("an object array cannot be sent to the student's code")
        raise TypeError(f"a {type(value).__name__} cannot be sent to the student's code")

    # --- from the kernel

    def decode_array(self, tree):
        array = _from_npy(tree["$array"])
        return np.asfortranarray(array) if tree.get("order") == "F" else array

    def decode_handle(self, tree):
        if tree.get("callable") and not str(tree.get("type", "")).startswith(TRUSTED_TYPES):
            return RemoteFunction(self, tree)
        return RemoteObject(self, tree)

    def decode_plain(self, tree):
        value = self.decode_simple(tree)
        if value is self.UNKNOWN:
            raise TestDidNotRun("the kernel's answer held a value of an unknown kind")
        return value

    def value(self, tree):
        """A value from the kernel; an answer that is not one fails the test as not run."""
        try:
            return self.decode(tree)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, ImportError) as error:
            raise TestDidNotRun(f"the kernel's answer was not understood ({type(error).__name__}: "
                                f"{str(error)[:200]})") from None

    def result(self, answer):
        """The value of an answer, or raise what the student's code raised.

        Arrays the call changed in place are recorded (``left_by_call``), never copied into the test's
        own arrays: references and tolerances computed after the call still see the test's inputs."""
        for token, tree in (answer.get("changed") or {}).items():
            if self._tokens.get(int(token)) is not None:
                self._left[int(token)] = self.value(tree)
        if "raised" in answer:
            raise rebuild_error(answer["raised"])
        if "value" not in answer:
            raise TestDidNotRun("the kernel's answer held no value")
        return self.value(answer["value"])

    def left_by_call(self, value):
        """What the student's code left in its copy of the test's array ``value`` (``value`` if unchanged)."""
        token = self._token_of.get(id(value)) if isinstance(value, np.ndarray) else None
        if token is None or self._tokens.get(token) is not value:
            return value
        return self._left.get(token, value)

    def call(self, handle, name, args, kwargs, watched=None):
        """Call a handle in the kernel; the answer. Tells ``on_change`` which of the test's arrays it wrote into.

        A call ``watched`` (the graded name of a from-scratch function) runs under the kernel's record
        (``recorder.Record``), and ``on_notes`` hears what it ran."""
        flags = {}
        if watched is not None:
            self._calls += 1
            flags["record"] = self._calls
        answer = self.request(op="call", handle=handle, args=[self.encode(a) for a in args],
                              kwargs={str(k): self.encode(v) for k, v in kwargs.items()}, **flags)
        if watched is not None and self.on_notes is not None:
            self.on_notes(watched, self._calls, answer.get("notes"))
        changed = {int(token) for token in answer.get("changed") or {}}
        if changed and self.on_change is not None:
            sent = [(f"argument {n + 1}", a) for n, a in enumerate(args)] + [(f"`{k}`", v) for k, v in kwargs.items()]
            labels = [label for label, value in sent if isinstance(value, np.ndarray)
                      and self._token_of.get(id(value)) in changed and self._tokens.get(self._token_of[id(value)])
                      is value]
            self.on_change(name, labels)
        return answer

    def get(self, name):
        answer = self.request(op="get", name=name)
        if answer.get("missing") or answer.get("builtin"):
            raise KeyError(name)
        return self.result(answer)


class RemoteFunction:
    """A student's function: calling it runs it in the kernel on the given inputs."""

    def __init__(self, remote, info):
        self._remote, self._handle = remote, info["$handle"]
        self.__name__ = self.__qualname__ = info.get("name") or "function"
        self._type = info.get("type", "")

    _watched = None   # the graded name of a from-scratch function: its calls run under the kernel's record

    def __call__(self, *args, **kwargs):
        return self._remote.result(self._remote.call(self._handle, self.__name__, args, kwargs, self._watched))

    def __repr__(self):
        return f"<the student's function {self.__name__}>"


class RemoteObject:
    """Any other object of the kernel's (an nn.Module, a module, an iterator), asked about one step at a time."""

    def __init__(self, remote, info):
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_handle", info["$handle"])
        object.__setattr__(self, "_type", str(info.get("type", "")))

    @property
    def __class__(self):
        module, _, name = self._type.rpartition(".")
        if self._type.startswith(TRUSTED_TYPES):
            try:
                kind = importlib.import_module(module)
                for part in name.split("."):
                    kind = getattr(kind, part)
                if isinstance(kind, type):
                    return kind  # so that isinstance(layer, nn.Conv2d) answers as it would in the kernel
            except (ImportError, AttributeError):
                pass
        return RemoteObject

    def _ask(self, op, **fields):
        return self._remote.result(self._remote.request(op=op, handle=self._handle, **fields))

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return self._ask("getattr", attr=attr)

    def __call__(self, *args, **kwargs):
        return self._remote.result(self._remote.call(self._handle, self._type, args, kwargs))

    def __getitem__(self, key):
        return self._ask("getitem", key=self._remote.encode(key))

    def __len__(self):
        return self._ask("len")

    def __iter__(self):
        return iter(self._ask("list"))

    def __next__(self):
        return self._ask("next")

    def __array__(self, dtype=None, copy=None):
        array = np.asarray(self._ask("array"))
        return array.astype(dtype) if dtype is not None else array

    def __repr__(self):
        text = self._ask("repr")
        return text if isinstance(text, str) else f"<{self._type}>"

    def __setattr__(self, attr, value):
        raise TypeError("the test cannot change the student's objects")


# ----------------------------------------------------------------------------- the test's namespace

class Namespace(dict):
    """The test's globals: what the test defines, the grader's modules, and the kernel's other names on demand."""

    def __init__(self, judge):
        super().__init__(__name__="__main__", __builtins__=builtins)
        self._judge = judge
        self._fetched = set()

    def __missing__(self, name):
        if hasattr(builtins, name):
            raise KeyError(name)
        value = self._judge.resolve(name)
        self[name] = value
        self._fetched.add(name)
        return value

    def __contains__(self, name):  # `name in globals()` asks the kernel too, as it would in the kernel
        if dict.__contains__(self, name):
            return True
        try:
            self[name]
        except KeyError:
            return False
        return True

    def bound_by_test(self):
        """The names the test code itself bound (kept for later test cells, as the kernel would keep them)."""
        return {k: v for k, v in self.items() if k not in self._fetched and not k.startswith("__")}


def shipped_module_path(source_dir, name):
    """Where the shipped module ``name`` lives in ``source_dir``: its package folder or its file (None: neither)."""
    folder, file = pathlib.Path(source_dir) / name, pathlib.Path(source_dir) / f"{name}.py"
    return folder if (folder / "__init__.py").is_file() else file if file.is_file() else None


def load_module(name, path):
    """A fresh module from ``path``, a file or a package folder (the grader's trusted copy of a shipped module).

    The copy is isolated: while it loads, ``name`` and its submodules are taken out of ``sys.modules``
    (a package's relative imports must find the fresh copy), and afterwards whatever was there is put back."""
    path = pathlib.Path(path)
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    ours = [key for key in sys.modules if key == name or key.startswith(name + ".")]
    previous = {key: sys.modules.pop(key) for key in ours}
    sys.modules[name] = module  # dataclasses, pickling and relative imports look the module up while it loads
    try:
        spec.loader.exec_module(module)
    finally:
        for key in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
            del sys.modules[key]
        sys.modules.update(previous)
    return module


class Judge:
    """Runs one notebook's graded test cells in the grader, against one kernel's agent."""

    def __init__(self, rpc, source_dir, instructor_sources, student_sources, seed_material=None, on_event=None,
                 code_cells=(), read_record=None):
        self.remote = Remote(rpc)
        self.remote.on_change = self.changed_inputs
        self.remote.on_notes = self.heard
        self.remote.kernel_twin = self.kernel_twin
        self.read_record = read_record   # () -> the notes in the kernel's record pipe, or None (no pipe)
        self.ran, self.hidden = {}, {}   # from-scratch name -> what the record saw it run, or hide
        self.notes_heard = 0             # how many of those so far
        self.on_event = on_event    # on_event(kind, detail, **extra): ResilientExecute._event at grading
        self.events = []    # (kind, detail, extra) reported, each once
        self.grade_id = ""
        self.source_dir = pathlib.Path(source_dir)
        # modules: the grader's, whether a read-only cell or one of the instructor's plain cells imports them
        self.imports = imported_names(list(instructor_sources) + [source for kind, _, source in code_cells
                                                                  if kind in ("readonly", "code")])
        self.student_sources = list(student_sources)
        self.from_scratch = libraryscan.tested_from_scratch(instructor_sources)
        self.seed_material = seed_material
        self.modules = {}
        self.kept = {}      # names earlier test cells bound, as their kernel would still hold them
        self.setup = SetUp(self, list(code_cells))   # code_cells: tamper.instructor_code_cells of the source
        self.position = len(code_cells)              # where the running test stands among the code cells

    def report(self, kind, detail, **extra):
        if any(seen[:2] == (kind, detail) for seen in self.events):
            return
        self.events.append((kind, detail, extra))
        if self.on_event is not None:
            self.on_event(kind, detail, **extra)

    def changed_inputs(self, name, labels):
        what = ", ".join(labels) or "an array inside an argument"
        self.report("inputs_changed", f"{name} wrote into the arrays a test passed it ({what}); the test's own arrays "
                                  "were kept", test=self.grade_id)

    def resolve(self, name, before=None):
        """A name the test (or a set-up cell) reads and does not bind: the grader's module, the grader's run
        of the set-up cells before position ``before``, or else the student's answer from the kernel."""
        if name in self.imports:
            module_name, attribute = self.imports[name]
            module = self.module(module_name)
            return getattr(module, attribute) if attribute else module
        if self.setup.namespace is not None:
            with contextlib.suppress(KeyError):
                return self.setup.value(name, self.position if before is None else before)
        value = self.remote.get(name)
        if isinstance(value, RemoteFunction) and name in self.from_scratch:
            value._watched = name
        return value

    def kernel_twin(self, value):
        """The kernel's own binding of the set-up function ``value`` that a test passes to a student's function
        (``numerical_gradient(wavy, x)``), or None. It is an input like the arrays: what the student's code
        makes of it is the answer, and the test's expected values stay the grader's."""
        namespace = self.setup.namespace
        names = [name for name, bound in dict.items(namespace or {}) if bound is value and name in self.setup.names]
        for name in names:
            with contextlib.suppress(KeyError):
                twin = self.remote.get(name)
                if isinstance(twin, RemoteFunction):
                    return twin
        return None

    def module(self, name):
        if name in self.modules:
            return self.modules[name]
        top, _, rest = name.partition(".")
        shipped = shipped_module_path(self.source_dir, top) if top in COURSE_MODULES else None
        if shipped is None:
            module = importlib.import_module(name)
        elif rest:  # a submodule of the grader's own copy (convcheck.references)
            module = self.module(top)
            for part in rest.split("."):
                module = getattr(module, part)
        else:
            module = load_module(top, shipped)
            if top == "convcheck":
                self.arm_checks(module)
        self.modules[name] = module
        return module

    def arm_checks(self, checks):
        """The grader's convcheck: library convolutions found in the submitted source, what a call left in
        its inputs (the kernel's copies), grading seeds.

        All are names the package's checks read when they run (``convcheck/hooks.py``), so setting them
        on the package reaches every submodule."""
        original = checks._reject_library_conv
        sources = self.student_sources

        def reject_library_conv(func, name, probe_args, allowed, hint):
            if not isinstance(func, RemoteFunction):
                return original(func, name, probe_args, allowed, hint)
            name = name or func.__name__
            found = libraryscan.library_calls(sources, func.__name__)
            if not found and func._watched is not None:
                with contextlib.suppress(Exception):  # what it raises is another test's business
                    func(*probe_args)
                found = self.seen_running(func._watched)
            if found:
                checks.failures.fail(f"{name} must compute the convolution itself.", allowed,
                                     "a call to " + ", ".join(found), hint=hint)

        checks._reject_library_conv = reject_library_conv
        checks._left_by_call = self.remote.left_by_call
        checks.GRADING_SEED = self.seed_material

    def library_verdict(self, source):
        """The failure for a test of a from-scratch function that uses a library convolution, or None: found in
        its source, or seen in the kernel's record when it ran."""
        message = libraryscan.refusal(source, self.from_scratch, self.student_sources, self.seen_running)
        return None if message is None else self.module("convcheck").CheckFailure(message)

    def seen_running(self, name):
        """What the kernel's record saw from-scratch function ``name`` run that it must not (sorted texts)."""
        return sorted({f"{what} (seen when it ran)" for what in self.ran.get(name, ())} |
                      {f"code that hid what it ran: it {what}" for what in self.hidden.get(name, ())})

    def heard(self, name, call, kept):
        """The notes of watched call ``call`` of ``name``: from the pipe (where the kernel has one) and kept."""
        piped = self.take_notes()
        notes = [n for n in piped or () if n.get("call") == call]
        if piped is not None and not any(n.get("kind") == "end" for n in notes):  # (the pipe's own end only)
            notes.append({"kind": "hid", "what": "cut the grader's record of the call short"})
        notes += [n for n in kept or () if isinstance(n, dict) and n.get("call") == call]
        for note in notes:
            kind, what = note.get("kind"), str(note.get("what"))[:300]
            if kind in ("ran", "hid"):
                self.notes_heard += 1
            if kind == "ran":
                self.ran.setdefault(name, set()).add(what)
                self.report("library_ran", f"{name} ran {what}: a library operation that can convolve",
                            test=self.grade_id)
            elif kind == "hid":
                self.hidden.setdefault(name, set()).add(what)
                self.report("record_hidden", f"while {name} was graded, its code {what}", test=self.grade_id)

    def take_notes(self, kept=()):
        """Read the pipe; report the notes made outside graded calls (and those ``kept`` in the kernel). The
        pipe's notes of graded calls are returned (None: the kernel has no pipe)."""
        piped = self.read_record() if self.read_record is not None else None
        for note in [*(piped or ()), *(kept or ())]:
            if isinstance(note, dict) and note.get("call") is None and note.get("kind") in ("unreadable", "hid"):
                self.report("unreadable_code", str(note.get("what"))[:300])
        return piped

    def run(self, source, grade_id=""):
        """Run one test cell's code; return (printed text, the exception it raised or None)."""
        refused = self.library_verdict(source)
        if refused is not None:
            return "", refused
        namespace = Namespace(self)
        namespace.update(self.kept)
        self.grade_id = grade_id
        self.position = self.setup.positions.get(grade_id, self.setup.end_position)
        self.setup.begin()
        printed = io.StringIO()
        error = None
        heard = self.notes_heard
        try:
            code = compile(source, f"<test {grade_id}>", "exec")
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                exec(code, namespace)  # noqa: S102 - the instructor's own test code, in the grader
        except (Exception, TestDidNotRun) as raised:  # noqa: BLE001 - every failure of the test is its verdict
            error = raised
        finally:
            seen = self.library_verdict(source) if self.notes_heard != heard else None
            if seen is not None and not isinstance(error, TestDidNotRun):
                error = seen   # what the record saw while this test ran decides too
            self.kept.update({k: v for k, v in namespace.bound_by_test().items()
                              if not isinstance(v, (RemoteFunction, RemoteObject))})
            namespace.clear()
            self.setup.end()
            self.remote._left.clear()
            self.remote._sent.clear()
        if not isinstance(error, TestDidNotRun):
            with contextlib.suppress(Exception, TestDidNotRun):  # a kernel that cannot forget is asked next time
                self.remote.request(op="forget")
        return printed.getvalue(), error


def grading_seed(secret, student, grade_id):
    """A seed for a test's random inputs: the course's secret, the student and the test (reproducible)."""
    digest = hashlib.sha256(f"{secret}\0{student}\0{grade_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def course_secret(course_root):
    """The course's grading secret (course/.grading-secret, made on first use, never released)."""
    path = pathlib.Path(course_root) / "course" / ".grading-secret"
    try:
        return path.read_text().strip()
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(16).hex()
        try:
            with open(path, "x") as handle:
                handle.write(secret + "\n")
        except FileExistsError:
            return path.read_text().strip()
        return secret


def error_output(error):
    """The cell output for a failed test: the message first, no trace of the grader's code."""
    from coursetools.grader.preprocessors import failure_output  # nbgrader's: only where a verdict is written
    name = type(error).__name__
    value = str(error)
    if isinstance(error, TestDidNotRun):
        name, value = "TestDidNotRun", f"this test did not run: {value}"
    return failure_output(name, value)


def install_code(name):
    """Kernel code that sets up the agent behind a door named ``name`` (run silently before the first cell)."""
    return (f"exec(compile({agent.source()!r}, '<grader agent>', 'exec'), _ct_ns := {{'__name__': {name!r}}})\n"
            f"_ct_ns['install'](get_ipython().user_ns, {name!r})\ndel _ct_ns\n")


def request_expression(name, request):
    """The user expression that hands one request to the agent; it looks up no name (``agent.door_expression``)."""
    return agent.door_expression(name, "serve", repr(json.dumps(request)))
