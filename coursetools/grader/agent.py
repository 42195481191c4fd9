"""The grader's agent inside a graded kernel: it calls the student's code and reports what came back.

At grading, test cells do not run in the student's kernel (``coursetools.grader.judge`` runs them in
the grader). When a test reads a student's variable or calls a student's function, the grader
sends this agent one request, and the agent answers with plain data. Its source is sent into
the kernel when the kernel starts (``source()``), and ``install`` sets it up there behind a door
the grader reaches without looking up any name (``door_expression``); it imports nothing from the
course.

A request and its answer are JSON text. Values travel as tagged JSON (``Tagged``), with the type
they had: arrays (0-d and Fortran order kept), NumPy scalars and torch tensors as base64 ``.npy``
bytes (never pickle), numbers, text, bytes, ranges, tuples, lists, sets, dicts (Counter,
OrderedDict, defaultdict as themselves), exceptions (type, the builtin classes it derives from,
message), and a *handle* for anything else (a module, an ``nn.Module``, an iterator), which the
grader can ask about in later requests.

The agent holds nothing secret: the grader sends only the inputs of each call. What the kernel
does with the agent changes only what the grader observes of that kernel's own code.
"""
import base64
import builtins
import importlib
import io
import json
import os
import sys

MAX_ANSWER = 64 * 2**20   # characters; a larger answer is refused
# dict subclasses that cross as themselves (any other arrives as a plain dict), and the default
# factories a defaultdict keeps (another arrives as None: a missing key then raises KeyError)
DICT_KINDS = ("collections.Counter", "collections.OrderedDict", "collections.defaultdict")
FACTORIES = ("int", "float", "complex", "str", "bytes", "bool", "list", "tuple", "dict", "set", "frozenset")
LIMIT, DEPTH = 100_000, 8   # items of one container, nesting; beyond them a value is a handle
UNKNOWN = object()


class Tagged:
    """Values to tagged JSON and back, alike on both sides: a value arrives with the type it had.

    Each side sends arrays and the objects no tag covers its own way (``encode_array``,
    ``encode_other``, ``decode_array``, ``decode_handle``). A subclass of a plain kind (a lying
    ``int``, a namedtuple, a student's dict) arrives as the plain value it holds, read with the
    base class's own methods, never the subclass's.

    What it uses is bound here, once, when the agent is set up (before any student code runs): its
    methods look up no module by a name of the namespace the agent was run in (``json``, ``sys``,
    ``builtins`` rebound there change nothing), only attributes of the class."""

    modules, builtins, import_module = sys.modules, builtins, staticmethod(importlib.import_module)
    loads, dumps, BytesIO = staticmethod(json.loads), staticmethod(json.dumps), io.BytesIO
    b64encode, b64decode = staticmethod(base64.b64encode), staticmethod(base64.b64decode)
    MAX_ANSWER, DICT_KINDS, FACTORIES, LIMIT, DEPTH, UNKNOWN = MAX_ANSWER, DICT_KINDS, FACTORIES, LIMIT, DEPTH, UNKNOWN

    @classmethod
    def npy(cls, array):
        numpy = cls.import_module("numpy")
        array = numpy.asarray(array)
        if not array.flags.c_contiguous:  # (never ascontiguousarray: it makes a 0-d array 1-d)
            array = array.copy(order="C")
        buffer = cls.BytesIO()
        numpy.save(buffer, array, allow_pickle=False)
        return cls.b64encode(buffer.getvalue()).decode("ascii")

    @classmethod
    def from_npy(cls, text):
        return cls.import_module("numpy").load(cls.BytesIO(cls.b64decode(text)), allow_pickle=False)

    def encode(self, value, depth=0):
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            return value if -2**53 < value < 2**53 else {"$int": str(value)}
        if kind is float:
            return value if value == value and abs(value) != float("inf") else {"$float": repr(value)}
        numpy, torch = self.modules.get("numpy"), self.modules.get("torch")
        if numpy is not None and issubclass(kind, numpy.ndarray):
            plain = value if kind is numpy.ndarray else numpy.ndarray.view(value, numpy.ndarray)
            return self.encode_other(value) if plain.dtype.hasobject else self.encode_array(plain)
        if numpy is not None and issubclass(kind, numpy.generic) and not issubclass(kind, numpy.object_):
            return {"$scalar": self.npy(numpy.asarray(value))}
        if torch is not None and issubclass(kind, torch.Tensor):
            return self.encode_tensor(torch, value)
        if torch is not None and kind is torch.device:
            return {"$device": str(value)}
        if torch is not None and kind is torch.dtype:
            return {"$dtype": str(value).replace("torch.", "")}
        if issubclass(kind, int):
            return {"$int": str(int.__int__(value))}
        if issubclass(kind, float):
            return {"$float": repr(float.__float__(value))}
        if issubclass(kind, str):
            return str.__str__(value)
        if issubclass(kind, complex):
            number = complex.__complex__(value)
            return {"$complex": [repr(number.real), repr(number.imag)]}
        if issubclass(kind, (bytes, bytearray)):
            data = self.b64encode(bytes(memoryview(value))).decode("ascii")
            return {"$bytes": data, "type": "bytearray"} if issubclass(kind, bytearray) else {"$bytes": data}
        if kind is range:
            return {"$range": [value.start, value.stop, value.step]}
        fractions, decimal = self.modules.get("fractions"), self.modules.get("decimal")
        if fractions is not None and kind is fractions.Fraction:
            return {"$fraction": [str(value.numerator), str(value.denominator)]}
        if decimal is not None and kind is decimal.Decimal:
            return {"$decimal": str(value)}
        if depth < self.DEPTH:
            container = self.encode_container(value, kind, depth + 1, torch)
            if container is not None:
                return container
        return self.encode_other(value)

    def encode_container(self, value, kind, depth, torch):
        """Lists, tuples, sets, frozensets and dicts (with their subclasses), or None."""
        for base, tag in ((list, None), (tuple, "$tuple"), (set, "$set"), (frozenset, "$frozenset")):
            if issubclass(kind, base):
                if base.__len__(value) > self.LIMIT:
                    return None
                items = [self.encode(item, depth) for item in base.__iter__(value)]
                if tag is None:
                    return items
                size = torch is not None and issubclass(kind, torch.Size)
                return {tag: items, "type": "torch.Size"} if size else {tag: items}
        if not issubclass(kind, dict) or dict.__len__(value) > self.LIMIT:
            return None
        name = f"{kind.__module__}.{kind.__qualname__}"
        items = kind.items(value) if name == "collections.OrderedDict" else dict.items(value)
        tree = {"$dict": [[self.encode(k, depth), self.encode(v, depth)] for k, v in items]}
        if name in self.DICT_KINDS:
            tree["type"] = name
        if name == "collections.defaultdict":
            factory = kind.default_factory.__get__(value)
            if isinstance(factory, type) and factory.__module__ == "builtins" and factory.__name__ in self.FACTORIES:
                tree["factory"] = factory.__name__
        return tree

    def encode_tensor(self, torch, value):
        data = torch.Tensor.cpu(torch.Tensor.detach(value))
        dtype = str(data.dtype).replace("torch.", "")
        if data.dtype == torch.bfloat16:  # NumPy has no bfloat16: float32 holds every value
            data = torch.Tensor.float(data)
        return {"$tensor": self.npy(torch.Tensor.numpy(data)), "dtype": dtype,
                "requires_grad": bool(torch.Tensor.requires_grad.__get__(value))}

    def decode(self, tree):
        if isinstance(tree, list):
            return [self.decode(item) for item in tree]
        if not isinstance(tree, dict):
            return tree
        if "$array" in tree:
            return self.decode_array(tree)
        if "$handle" in tree:
            return self.decode_handle(tree)
        if "$tuple" in tree:
            items = tuple(self.decode(item) for item in tree["$tuple"])
            if tree.get("type") == "torch.Size":
                return self.import_module("torch").Size(items)
            return items
        if "$set" in tree:
            return {self.decode(item) for item in tree["$set"]}
        if "$frozenset" in tree:
            return frozenset(self.decode(item) for item in tree["$frozenset"])
        if "$dict" in tree:
            return self.decode_dict(tree)
        return self.decode_plain(tree)

    def decode_dict(self, tree):
        collections = self.import_module("collections")
        items = [(self.decode(k), self.decode(v)) for k, v in tree["$dict"]]
        kind = tree.get("type")
        if kind == "collections.Counter":
            return collections.Counter(dict(items))
        if kind == "collections.OrderedDict":
            return collections.OrderedDict(items)
        if kind == "collections.defaultdict":
            factory = tree.get("factory")
            factory = getattr(self.builtins, factory) if factory in self.FACTORIES else None
            return collections.defaultdict(factory, items)
        return dict(items)

    def decode_plain(self, tree):
        value = self.decode_simple(tree)
        if value is self.UNKNOWN:
            raise ValueError(f"unknown value {sorted(tree)}")
        return value

    def decode_simple(self, tree):
        """A tagged number, text, tensor, device or dtype (both sides decode them alike), else UNKNOWN."""
        if "$scalar" in tree:
            return self.from_npy(tree["$scalar"])[()]
        if "$int" in tree:
            return int(tree["$int"])
        if "$float" in tree:
            return float(tree["$float"])
        if "$complex" in tree:
            return complex(*(float(part) for part in tree["$complex"]))
        if "$bytes" in tree:
            data = self.b64decode(tree["$bytes"])
            return bytearray(data) if tree.get("type") == "bytearray" else data
        if "$range" in tree:
            return range(*(int(part) for part in tree["$range"]))
        if "$fraction" in tree:
            return self.import_module("fractions").Fraction(int(tree["$fraction"][0]), int(tree["$fraction"][1]))
        if "$decimal" in tree:
            return self.import_module("decimal").Decimal(str(tree["$decimal"]))
        if "$tensor" in tree:
            return self.decode_tensor(tree)
        if "$device" in tree:
            return self.import_module("torch").device(str(tree["$device"]))
        if "$dtype" in tree:
            torch = self.import_module("torch")
            kind = getattr(torch, str(tree["$dtype"]), None)
            if not isinstance(kind, torch.dtype):
                raise ValueError("an unknown dtype")
            return kind
        return self.UNKNOWN

    def decode_tensor(self, tree):
        torch = self.import_module("torch")
        tensor = torch.from_numpy(self.from_npy(tree["$tensor"]).copy())
        dtype = getattr(torch, str(tree.get("dtype")), None)
        if isinstance(dtype, torch.dtype) and dtype != tensor.dtype:
            tensor = tensor.to(dtype)
        if tree.get("requires_grad") and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor


class Agent(Tagged):
    """Answers the grader's requests about one kernel's namespace.

    The graded names are pinned: after each answer cell runs, what that cell bound is kept here
    (a function as a copy whose code, defaults and closure later cells cannot swap), and a test
    reads and calls the pinned objects, never what a later cell rebound under the same name.
    While a graded function runs, the pinned objects stand in the namespace under their names, so
    one answer calling another (``conv2d_padded`` calling ``conv2d``) calls the graded one too."""

    FunctionType = type(lambda: None)
    MISSING = object()

    def __init__(self, namespace):
        self.namespace = namespace
        self.handles = {}      # handle -> object the grader may ask about
        self.arrays = {}       # grader's array token -> the array given to the student's code
        self.pins = {}         # graded name -> (what its answer cell bound, what the tests get)
        self.seen = dict(namespace)   # the namespace as the last cell left it
        self.told = set()             # pinned functions whose code a later cell swapped, already named
        self.record = None            # what graded calls ran (Record), set up by install

    # --- graded names

    @staticmethod
    def kernel_name(name):
        """Names IPython or Python bind after a cell (output history, ``__warningregistry__``), never an answer."""
        if name.startswith("__") and name.endswith("__"):
            return True
        return name in ("In", "Out", "exit", "quit", "get_ipython", "_ih", "_oh", "_dh") or (
            name.startswith("_") and name.lstrip("_i").isdigit() or name in ("_", "__", "___", "_i", "_ii", "_iii"))

    def pinned(self, value):
        """What the tests get for a value an answer cell bound: a plain function as an unchangeable copy."""
        if type(value) is not self.FunctionType:
            return value
        copy = self.FunctionType(value.__code__, value.__globals__, value.__name__, value.__defaults__,
                                 value.__closure__)
        copy.__kwdefaults__ = dict(value.__kwdefaults__) if value.__kwdefaults__ else None
        copy.__qualname__, copy.__module__, copy.__doc__ = value.__qualname__, value.__module__, value.__doc__
        copy.__dict__.update(value.__dict__)
        return copy

    def after_cell(self, answer, names, locked=False, watched=()):
        """Called after every cell: pin what an answer cell bound; name the pinned names a student's other
        cell rebound, and the ``watched`` (set-up) names it rebound. A read-only cell of the instructor's
        that rebinds a pinned name takes it back from the pins."""
        now, before = self.namespace, self.seen
        changed = {name for name, value in dict.items(now)
                   if before.get(name, self.MISSING) is not value and not self.kernel_name(name)}
        changed |= {name for name in before if name not in now and not self.kernel_name(name)}
        self.seen = dict(now)
        if answer:
            for name in changed | set(names):
                value = now.get(name, self.MISSING)
                self.pins[name] = (value, self.pinned(value))   # (MISSING stays MISSING)
            return {"value": None}
        if locked:
            for name in changed:
                self.pins.pop(name, None)
            return {"value": {"rebound": [], "altered": [], "watched": []}}
        rebound = sorted(name for name in changed if name in self.pins)
        setup = sorted(name for name in changed if name in watched and name not in self.pins)
        altered = sorted(name for name, (original, graded) in self.pins.items() if type(graded) is self.FunctionType
                         and original.__code__ is not graded.__code__ and name not in self.told)
        self.told.update(altered)
        return {"value": {"rebound": rebound, "altered": altered, "watched": setup}}

    def swap_in_pins(self):
        """Put the pinned objects in the namespace for a graded call; what they replaced, to put back."""
        replaced = {}
        for name, (_, graded) in self.pins.items():
            current = self.namespace.get(name, self.MISSING)
            if graded is not self.MISSING and current is not graded:
                replaced[name] = current
                self.namespace[name] = graded
        return replaced

    def swap_out_pins(self, replaced):
        for name, value in replaced.items():
            if value is self.MISSING:
                self.namespace.pop(name, None)
            else:
                self.namespace[name] = value

    # --- values to the grader

    def encode_array(self, array):
        layout = {"order": "F"} if array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous else {}
        return {"$array": self.npy(array), **layout}

    def encode_other(self, value):
        return self.handle(value)

    def handle(self, value):
        number = len(self.handles) + 1
        self.handles[number] = value
        kind = type(value)
        return {"$handle": number, "type": f"{kind.__module__}.{kind.__qualname__}",
                "name": str(getattr(value, "__name__", "")) if isinstance(getattr(value, "__name__", ""), str) else "",
                "callable": callable(value)}

    @staticmethod
    def raised(error):
        bases = [c.__name__ for c in type(error).__mro__ if c.__module__ == "builtins"]
        try:
            message = str(error)
        except BaseException:  # noqa: BLE001 - a broken __str__ is still an answer
            message = "(the error's message could not be read)"
        return {"type": type(error).__name__, "bases": bases, "message": message[:20_000]}

    # --- values from the grader

    def decode_array(self, tree):
        numpy = self.import_module("numpy")
        array = self.from_npy(tree["$array"]).copy()
        if tree.get("order") == "F":  # the grader's array was not C-contiguous: neither is the student's copy
            array = numpy.asfortranarray(array)
        token = tree.get("token")
        if token is None:
            return array
        known = self.arrays.get(token)
        if known is not None and known.shape == array.shape and known.dtype == array.dtype:
            if not tree.get("keep"):  # (kept: the test did not touch it, so it holds what the student's code left)
                numpy.copyto(known, array)  # the same array again: what the student's code holds sees the change
            return known
        self.arrays[token] = array
        return array

    def decode_handle(self, tree):
        return self.handles[tree["$handle"]]

    # --- requests

    def answer(self, request):
        op = request["op"]
        if op == "get":
            name = request["name"]
            if name in self.pins:
                graded = self.pins[name][1]
                return {"missing": True} if graded is self.MISSING else {"value": self.encode(graded)}
            if name in self.namespace:
                return {"value": self.encode(self.namespace[name])}
            if hasattr(self.builtins, name):
                return {"value": None, "builtin": True}
            return {"missing": True}
        if op == "cell":
            answer = self.after_cell(bool(request.get("answer")), list(request.get("names", [])),
                                     bool(request.get("locked")), set(request.get("watched", [])))
            if self.record is not None:
                answer["notes"] = self.record.taken(None)
            return answer
        if op == "arm":
            if self.record is not None:
                self.record.arm()
            return {"value": None}
        if op == "forget":  # the test cell is over: its arrays and objects are no longer needed
            self.handles.clear()
            self.arrays.clear()
            return {"value": None}
        target = self.handles[request["handle"]]
        if op == "call":
            args = [self.decode(a) for a in request.get("args", [])]
            kwargs = {k: self.decode(v) for k, v in request.get("kwargs", {}).items()}
            arrays = {token: array.copy() for token, array in self.arrays.items()}
            call = request.get("record")
            replaced = self.swap_in_pins()
            try:
                if call is not None and self.record is not None:
                    result = self.record.watching(call, target, args, kwargs)
                else:
                    result = target(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - whatever the student's code raises is an answer
                answer = {"raised": self.raised(error)}
            else:
                answer = {"value": self.encode(result)}
            finally:
                self.swap_out_pins(replaced)
            numpy = self.import_module("numpy") if arrays else None
            answer["changed"] = {token: {"$array": self.npy(self.arrays[token])} for token, before in arrays.items()
                                 if token in self.arrays and not (before.shape == self.arrays[token].shape and
                                                                  numpy.array_equal(before, self.arrays[token],
                                                                                    equal_nan=True))}
            if call is not None and self.record is not None:
                answer["notes"] = self.record.taken(call)
            return answer
        try:
            if op == "getattr":
                value = getattr(target, request["attr"])
            elif op == "getitem":
                value = target[self.decode(request["key"])]
            elif op == "len":
                value = len(target)
            elif op == "list":
                value = list(target)[:100_000]
            elif op == "next":
                value = next(target)
            elif op == "repr":
                value = repr(target)[:10_000]
            elif op == "array":
                value = self.import_module("numpy").asarray(target)
            else:
                raise ValueError(f"unknown request {op!r}")
        except BaseException as error:  # noqa: BLE001 - a failed request is an answer too
            return {"raised": self.raised(error)}
        return {"value": self.encode(value)}

    def serve(self, text):
        """One request (JSON text) in, one answer (JSON text) out."""
        try:
            answer = self.dumps(self.answer(self.loads(text)))
        except BaseException as error:  # noqa: BLE001 - the grader reads a failed request as a failed test
            answer = self.dumps({"failed": self.raised(error)})
        return answer if len(answer) <= self.MAX_ANSWER else self.dumps(
            {"failed": {"type": "AnswerTooLarge", "bases": [], "message": "the result is too large"}})



_npy, _from_npy = Tagged.npy, Tagged.from_npy   # one encoding on both sides


def install(namespace, token):
    """Set up the agent over ``namespace`` (the kernel's user namespace) behind a door named ``token``.

    The door is a class the grader finds through built-in types alone (``door_expression``); the
    strong reference that keeps it alive sits in ``builtins``, and nothing is ever looked up there."""
    agent = Agent(namespace)
    # Record and RECORD_FD: the recorder's source runs just ahead of this one (``source()``)
    fd = os.environ.pop(RECORD_FD, None)  # noqa: F821
    agent.record = Record(int(fd) if fd and fd.isdigit() else None)  # noqa: F821
    door = type(token, (complex,), {"__slots__": (), "__module__": token,  # never taken for notebook code
                                    "serve": staticmethod(agent.serve)})
    builtins.__dict__[token] = door
    return door


def door_expression(token, method, argument):
    """Kernel code that calls ``method`` of the door ``token`` on ``argument`` (Python literal text).

    It looks up no name at all: from the literal ``0j`` through the slots of built-in types (which no
    notebook can rebind) to the subclasses of ``complex``, the first one named ``token`` (made before
    any student code ran), compared with ``str.__eq__`` of the literal (a lying name cannot match)."""
    return (f"[c for c in (0j).__class__.__subclasses__() if {token!r}.__eq__("
            f"().__class__.__class__.__dict__['__name__'].__get__(c))][0].{method}({argument})")


def source():
    """The source to run in a kernel: the record (``coursetools.grader.recorder``), then this module."""
    import inspect
    from coursetools.grader import recorder
    return inspect.getsource(recorder) + "\n\n" + inspect.getsource(sys.modules[__name__])
