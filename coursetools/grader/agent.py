"""The grader's agent inside a graded kernel: it calls the student's code and reports what came back.

At grading, test cells do not run in the student's kernel (``coursetools.grader.judge`` runs them in
the grader). When a test reads a student's variable or calls a student's function, the grader
sends this agent one request, and the agent answers with plain data. Its source is sent into
the kernel when the kernel starts (``source()``); it imports nothing from the course.

A request and its answer are JSON text. Values travel as tagged JSON: arrays, NumPy scalars and
torch tensors as base64 ``.npy`` bytes (never pickle), tuples, dicts, exceptions (type, the
builtin classes it derives from, message), and a *handle* for anything else (a module, an
``nn.Module``, an iterator), which the grader can ask about in later requests.

The agent holds nothing secret: the grader sends only the inputs of each call. What the kernel
does with the agent changes only what the grader observes of that kernel's own code.
"""
import base64
import builtins
import io
import json
import sys

MAX_ANSWER = 64 * 2**20   # characters; a larger answer is refused


def _npy(array):
    buffer = io.BytesIO()
    import numpy
    numpy.save(buffer, numpy.ascontiguousarray(array), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text):
    import numpy
    return numpy.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


class TaggedDecoder:
    """Tagged JSON to values: the walk both sides share; each side decodes arrays, handles and the rest its way."""

    def decode(self, tree):
        if isinstance(tree, list):
            return [self.decode(item) for item in tree]
        if not isinstance(tree, dict):
            return tree
        if "$array" in tree:
            return self.decode_array(tree)
        if "$tuple" in tree:
            return tuple(self.decode(item) for item in tree["$tuple"])
        if "$dict" in tree:
            return {self.dict_key(self.decode(k)): self.decode(v) for k, v in tree["$dict"]}
        if "$handle" in tree:
            return self.decode_handle(tree)
        return self.decode_plain(tree)

    @staticmethod
    def dict_key(key):
        """A decoded key as the dict will hold it (the grader's side makes lists and arrays hashable)."""
        return key


class Agent(TaggedDecoder):
    def __init__(self, namespace):
        self.namespace = namespace
        self.handles = {}      # handle -> object the grader may ask about
        self.arrays = {}       # grader's array token -> the array given to the student's code

    # --- values to the grader

    def encode(self, value, depth=0):
        numpy = sys.modules.get("numpy")
        torch = sys.modules.get("torch")
        kind = type(value)
        if value is None or kind in (bool, str) or kind is float or kind is int:
            return value if kind is not float or value == value and abs(value) != float("inf") \
                else {"$float": repr(value)}
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return {"$int": str(int.__int__(value)), "type": kind.__qualname__}
        if isinstance(value, float):
            return {"$float": repr(float.__float__(value)), "type": kind.__qualname__}
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, complex):
            return {"$complex": [complex.__complex__(value).real, complex.__complex__(value).imag]}
        if numpy is not None and isinstance(value, numpy.ndarray) and value.dtype.hasobject is False:
            return {"$array": _npy(numpy.ndarray.view(value, numpy.ndarray).copy())}
        if numpy is not None and isinstance(value, numpy.generic) and not isinstance(value, numpy.object_):
            return {"$scalar": _npy(numpy.asarray(value))}
        if torch is not None and isinstance(value, torch.Tensor):
            data = torch.Tensor.detach(value).cpu()
            return {"$tensor": _npy(data.numpy() if data.dtype != torch.bfloat16 else data.float().numpy()),
                    "requires_grad": bool(value.requires_grad)}
        if torch is not None and isinstance(value, torch.device):
            return {"$device": str(value)}
        if torch is not None and isinstance(value, torch.dtype):
            return {"$dtype": str(value).replace("torch.", "")}
        fractions = sys.modules.get("fractions")
        if fractions is not None and kind is fractions.Fraction:
            return {"$fraction": [str(value.numerator), str(value.denominator)]}
        if depth < 8 and kind in (list, tuple) and len(value) <= 100_000:
            items = [self.encode(item, depth + 1) for item in value]
            return items if kind is list else {"$tuple": items}
        if depth < 8 and kind is dict and len(value) <= 100_000:
            return {"$dict": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()]}
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
        array = _from_npy(tree["$array"]).copy()
        if tree.get("order") == "F":  # the grader's array was not C-contiguous: neither is the student's copy
            import numpy
            array = numpy.asfortranarray(array)
        token = tree.get("token")
        if token is None:
            return array
        known = self.arrays.get(token)
        if known is not None and known.shape == array.shape and known.dtype == array.dtype:
            import numpy
            numpy.copyto(known, array)  # the same array again: what the student's code holds sees the change
            return known
        self.arrays[token] = array
        return array

    def decode_handle(self, tree):
        return self.handles[tree["$handle"]]

    def decode_plain(self, tree):
        value = decode_simple(tree)
        if value is not UNKNOWN:
            return value
        raise ValueError(f"unknown value {sorted(tree)}")

    # --- requests

    def answer(self, request):
        op = request["op"]
        if op == "get":
            name = request["name"]
            if name in self.namespace:
                return {"value": self.encode(self.namespace[name])}
            if hasattr(builtins, name):
                return {"value": None, "builtin": True}
            return {"missing": True}
        if op == "forget":  # the test cell is over: its arrays and objects are no longer needed
            self.handles.clear()
            self.arrays.clear()
            return {"value": None}
        target = self.handles[request["handle"]]
        if op == "call":
            args = [self.decode(a) for a in request.get("args", [])]
            kwargs = {k: self.decode(v) for k, v in request.get("kwargs", {}).items()}
            arrays = {token: array.copy() for token, array in self.arrays.items()}
            blocked = []
            try:
                if request.get("block_libraries"):
                    with _Blocked(blocked):
                        result = target(*args, **kwargs)
                else:
                    result = target(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - whatever the student's code raises is an answer
                answer = {"raised": self.raised(error)}
            else:
                answer = {"value": self.encode(result)}
            answer["changed"] = {token: {"$array": _npy(self.arrays[token])} for token, before in arrays.items()
                                 if token in self.arrays and not _equal(before, self.arrays[token])}
            if request.get("block_libraries"):
                answer["blocked"] = blocked
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
                import numpy
                value = numpy.asarray(target)
            else:
                raise ValueError(f"unknown request {op!r}")
        except BaseException as error:  # noqa: BLE001 - a failed request is an answer too
            return {"raised": self.raised(error)}
        return {"value": self.encode(value)}

    def serve(self, text):
        """One request (JSON text) in, one answer (JSON text) out."""
        try:
            answer = json.dumps(self.answer(json.loads(text)))
        except BaseException as error:  # noqa: BLE001 - the grader reads a failed request as a failed test
            answer = json.dumps({"failed": self.raised(error)})
        return answer if len(answer) <= MAX_ANSWER else json.dumps({"failed": {"type": "AnswerTooLarge", "bases": [],
                                                                               "message": "the result is too large"}})


UNKNOWN = object()


def decode_simple(tree):
    """A tagged value that both sides decode alike (numbers, tensors, devices, dtypes, fractions), else UNKNOWN."""
    if "$tensor" in tree:
        import torch
        return torch.from_numpy(_from_npy(tree["$tensor"]).copy())
    if "$scalar" in tree:
        return _from_npy(tree["$scalar"])[()]
    if "$int" in tree:
        return int(tree["$int"])
    if "$float" in tree:
        return float(tree["$float"])
    if "$complex" in tree:
        return complex(*tree["$complex"])
    if "$fraction" in tree:
        import fractions
        return fractions.Fraction(int(tree["$fraction"][0]), int(tree["$fraction"][1]))
    if "$device" in tree:
        import torch
        return torch.device(str(tree["$device"]))
    if "$dtype" in tree:
        import torch
        kind = getattr(torch, str(tree["$dtype"]), None)
        if not isinstance(kind, torch.dtype):
            raise ValueError("an unknown dtype")
        return kind
    return UNKNOWN


def _equal(before, after):
    import numpy
    return before.shape == after.shape and numpy.array_equal(before, after, equal_nan=True)


class _Blocked:
    """While active, library convolutions and FFTs raise, and their names are recorded."""

    TARGETS = {
        "numpy": ("convolve", "correlate"), "numpy.fft": ("fft", "fft2", "fftn", "rfft", "rfft2", "rfftn",
                                                          "ifft", "ifft2", "ifftn", "irfft", "irfft2", "irfftn"),
        "scipy.signal": ("convolve", "convolve2d", "correlate", "correlate2d", "fftconvolve", "oaconvolve"),
        "scipy.ndimage": ("convolve", "correlate"), "scipy.fft": ("fft", "fft2", "fftn", "rfft2", "rfftn",
                                                                   "ifft2", "ifftn", "irfft2", "irfftn"),
        "torch": ("conv1d", "conv2d", "conv3d", "convolution"), "torch.nn.functional": ("conv1d", "conv2d", "conv3d"),
        "torch.fft": ("fft", "fft2", "fftn", "rfft", "rfft2", "rfftn", "ifft", "ifft2", "ifftn", "irfft2", "irfftn"),
        "cv2": ("filter2D",),
    }

    def __init__(self, found):
        self.found, self.patches = found, []

    def __enter__(self):
        for module_name, names in self.TARGETS.items():
            module = sys.modules.get(module_name)
            for name in names if module is not None else ():
                if hasattr(module, name):
                    self.patches.append((module, name, getattr(module, name)))
                    setattr(module, name, self._blocker(f"{module_name}.{name}"))
        return self

    def _blocker(self, name):
        def blocked(*args, **kwargs):
            self.found.append(name)
            raise RuntimeError(f"{name} is a library convolution")
        return blocked

    def __exit__(self, *exc):
        for module, name, original in reversed(self.patches):
            setattr(module, name, original)
        return False


def source():
    """This module's source, to run in a kernel."""
    import inspect
    return inspect.getsource(sys.modules[__name__])
