"""Checks used by every test cell of Session 10.

Each failed check raises ``CheckFailure`` with four parts: what was expected,
what was got, where (which element or dimension) and a hint at the likely
mistake. The module holds no answers: hidden tests pass their expected values
in, and convolution references are computed by PyTorch at check time, on
``cuda`` when it is available and on the CPU otherwise.

torch is imported only when a check needs it, so notebooks that never touch
torch start quickly. A public check in such a notebook passes ``device=NUMPY``:
its reference is then computed by NumPy in float64 and torch is not loaded.
"""
import ast
import contextlib
import inspect
import math
import numbers
import sys
import textwrap

import numpy as np

__all__ = [
    "CheckFailure", "check", "check_true", "check_type", "check_scalar", "check_shape", "check_array",
    "check_raises", "compute_device", "tolerance", "conv2d_reference",
    "check_conv2d", "check_conv2d_batch", "diagnose_conv2d", "diagnose_conv2d_batch",
    "check_no_library_conv", "to_numpy", "NUMPY", "rng", "check_contract", "precision_of", "call_student",
]

NUMPY = "numpy"  # as a check's device: the reference convolution by NumPy in float64, without torch
GRADING_SEED = None  # set by the grader: a test's random inputs then differ for every student and course


def rng(seed):
    """The random generator of a test's inputs: ``np.random.default_rng(seed)``; at grading, one seeded
    from the grader's own secret too, so the inputs cannot be known in advance (a regrade repeats them)."""
    return np.random.default_rng(seed if GRADING_SEED is None else [GRADING_SEED, seed])


class CheckFailure(AssertionError):
    """A test failed; the message is meant for the student."""

    def _render_traceback_(self):
        # IPython (and so the Validate dialog) shows these lines instead of a traceback: the
        # diagnosis comes first, and none of this module's frames are shown.
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {first}", *rest]


NOT_WRITTEN = "`{name}` is not written yet: replace `raise NotImplementedError(...)` with your code, then run its cell."


def _not_written(func, fallback, error=None):
    """The one-line failure for a function still holding the release's stub: the function that raised
    (``conv2d`` when ``conv2d_padded`` calls an unwritten ``conv2d``), else ``func`` or the call's name."""
    name, tb = None, getattr(error, "__traceback__", None)
    while tb is not None:  # the innermost named function outside this module
        code = tb.tb_frame.f_code
        if tb.tb_frame.f_globals.get("__name__") != __name__ and not code.co_name.startswith("<"):
            name = code.co_name
        tb = tb.tb_next
    name = name or getattr(func, "__name__", None)
    if not name or name.startswith("<"):  # a lambda around the call: "conv2d(1-D image, ...)" names it
        name = str(fallback).split("(")[0].strip() or "this function"
    return CheckFailure(NOT_WRITTEN.format(name=name))


def _result_of(func, name, call, invoke, explain=None):
    """``invoke()``, which calls the student's ``func``: an unwritten function fails with one line, any
    other error with what it raised (``explain``, called only then, gives the (likely mistake, hint)
    to add); a CheckFailure from inside (a probe's) passes through."""
    try:
        return invoke()
    except CheckFailure:
        raise
    except NotImplementedError as unwritten:
        raise _not_written(func, name, unwritten) from None
    except Exception as error:  # noqa: BLE001 - turned into a readable failure
        mistake, hint = explain() if explain else (None, None)
        _fail(f"{call} raised an error.", "an array", f"{type(error).__name__}: {error}", hint=hint, mistake=mistake)


def _fail_explained(failure, diagnosis, hint, note):
    """Re-raise a value check's ``failure`` with the likely mistake (else the hint) and a closing note."""
    message = str(failure)
    if diagnosis:
        message += f"\n  likely mistake: {diagnosis}"
    elif hint:
        message += f"\n  hint:     {hint}"
    raise CheckFailure(f"{message}\n  ({note})") from None


def call_student(func, *args, name=None, **kwargs):
    """``func(*args, **kwargs)``; the release's unwritten stub (NotImplementedError) fails with one short line."""
    try:
        return func(*args, **kwargs)
    except NotImplementedError as unwritten:
        raise _not_written(func, name or "this function", unwritten) from None


def _fail(what, expected, got, where=None, hint=None, mistake=None):
    lines = [what, f"  expected: {expected}", f"  got:      {got}"]
    if where:
        lines.append(f"  where:    {where}")
    if mistake:
        lines.append(f"  likely mistake: {mistake}")
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailure("\n".join(lines))


def check(condition, message):
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(message)


def check_true(value, what, hint=None):
    if value is not True and value is not np.True_:
        _fail(what, True, repr(value), hint=hint)


def _short(value, limit=300):
    text = repr(value) if not isinstance(value, np.ndarray) else np.array2string(value, precision=4, threshold=40)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- basic checks

def check_type(value, types, name, hint=None):
    """``value`` must be an instance of ``types`` (a type or tuple of types)."""
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        _fail(f"{name} has the wrong type.", names, f"{type(value).__name__}: {_short(value)}", hint=hint)


def check_scalar(got, expected, name, rel=0.0, abs_tol=0.0, hint=None):
    """A number equal to ``expected``; exact unless a tolerance is given."""
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (numbers.Number, np.generic)) \
            or (isinstance(got, np.ndarray) and got.size != 1):
        _fail(f"{name} should be a single number.", expected, f"{type(got).__name__}: {_short(got)}", hint=hint)
    got_value = complex(got).real if isinstance(got, complex) else float(got)
    if not math.isfinite(got_value) or not math.isclose(got_value, float(expected), rel_tol=rel, abs_tol=abs_tol):
        tolerance_note = f" (tolerance: relative {rel:g}, absolute {abs_tol:g})" if (rel or abs_tol) else ""
        _fail(f"{name} is not right{tolerance_note}.", expected, got, hint=hint)


def _shape_of(value):
    return tuple(getattr(value, "shape", np.shape(value)))


def check_shape(got, expected_shape, name, hint=None):
    """An array (or tensor) of exactly ``expected_shape``, naming the first wrong dimension."""
    shape = _shape_of(got)
    expected_shape = tuple(expected_shape)
    if shape == expected_shape:
        return
    if len(shape) != len(expected_shape):
        where = f"number of dimensions: expected {len(expected_shape)}, got {len(shape)}"
    else:
        dim = next(d for d, (a, b) in enumerate(zip(shape, expected_shape)) if a != b)
        where = f"dimension {dim}: expected {expected_shape[dim]}, got {shape[dim]}"
    _fail(f"{name} has the wrong shape.", expected_shape, shape, where, hint)


def to_numpy(value):
    """A NumPy array from an array, a tensor on any device, or a nested list."""
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def check_array(got, expected, name, atol=0.0, rtol=0.0, hint=None, index_names=None):
    """Element-wise comparison, naming the first wrong element and the largest error.

    ``atol`` may be an array (a bound per element) as well as a number.
    """
    got_array = to_numpy(got)
    expected = np.asarray(expected)
    check_shape(got_array, expected.shape, name, hint)
    if got_array.dtype == object or not np.issubdtype(got_array.dtype, np.number) and got_array.dtype != bool:
        _fail(f"{name} must hold numbers.", "numeric array", f"dtype {got_array.dtype}", hint=hint)
    difference = np.abs(got_array.astype(np.float64) - expected.astype(np.float64))
    bound = np.broadcast_to(np.asarray(atol, dtype=np.float64) + rtol * np.abs(expected), expected.shape)
    wrong = ~(difference <= bound)  # also catches NaN
    if not wrong.any():
        return
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    names = index_names or ("i", "j") if expected.ndim == 2 else index_names
    where = "element " + (", ".join(f"{n}={v}" for n, v in zip(names, first)) if names else str(first))
    finite = difference[np.isfinite(difference)]
    # on lines of their own: nbgrader's Validate dialog does not wrap long lines
    where += f"\n  largest error: {finite.max() if finite.size else float('nan'):.3g}"
    if np.any(bound > 0):
        where += f" (tolerance at element {', '.join(map(str, first))}: {bound[first]:.3g})"
    _fail(f"{name}: {int(wrong.sum())} of {wrong.size} elements are wrong.", _short(expected[first].item()),
          _short(got_array[first].item()), where, hint)


def check_raises(func, exception, name, hint=None):
    """``func()`` must raise ``exception``; returns the exception so its message can be checked."""
    try:
        result = func()
    except exception as error:
        return error
    except NotImplementedError as unwritten:
        raise _not_written(func, name, unwritten) from None
    except Exception as error:  # noqa: BLE001 - any other error is the student's bug to see
        _fail(f"{name} raised the wrong kind of error.", exception.__name__,
              f"{type(error).__name__}: {error}", hint=hint)
    _fail(f"{name} did not raise an error.", exception.__name__, f"returned {_short(result)}", hint=hint)


# ---------------------------------------------------------------- devices and tolerances

def compute_device():
    """``torch.device('cuda')`` when a GPU is available, else the CPU."""
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tolerance(dtype, device=None, terms=1):
    """Relative error allowed per unit of ``sum(|image patch| * |kernel|)``.

    ``dtype`` is the precision of the computation: that of the inputs and the reference,
    never the dtype a student happened to give the output. float64 sums agree to about
    1e-15 of that magnitude; the 1e-10 allowed here only absorbs summation order. float32
    keeps about 7 digits on the CPU, and a sum of ``terms`` products loses up to about
    ``terms`` units of rounding. On a GPU, float32 convolutions may run in TF32 (10-bit
    mantissa), which costs up to about 1e-3 of the magnitude, so the bound there is wider.
    """
    dtype = np.dtype(str(dtype).replace("torch.", "")) if type(dtype).__module__.startswith("torch") else np.dtype(dtype)
    if dtype == np.float64:
        return 1e-10
    on_gpu = device is not None and str(device).startswith("cuda")
    summed = 2 * max(int(terms), 1) * float(np.finfo(np.float32).eps)
    return max(4e-3 if on_gpu else 1e-5, summed)


def precision_of(*values):
    """The precision a convolution of ``values`` is computed and judged in: float32 when any float
    input is float32 (or narrower), float64 otherwise (integers are exact)."""
    floats = [to_numpy(v).dtype for v in values if v is not None]
    narrow = any(np.issubdtype(d, np.floating) and d.itemsize < 8 for d in floats)
    return np.dtype(np.float32) if narrow else np.dtype(np.float64)


def _unchanged(now, before):
    try:
        return np.array_equal(to_numpy(now), before, equal_nan=np.issubdtype(before.dtype, np.inexact))
    except (TypeError, ValueError):
        return False


def _check_result(got, call, inputs, expected):
    """The contract every convolution keeps, checked before its values.

    ``inputs`` maps each argument's name to (the object passed, a copy made before the call).
    The result is a NumPy float array, float64 when every float input is float64, and the
    inputs are left as they were.
    """
    if got is None:
        _fail(f"{call} returned nothing.", "an array", None, hint="did you forget `return output`?")
    if not isinstance(got, np.ndarray):
        kind = type(got).__name__
        hint = ("return a NumPy array, e.g. build the output with np.zeros and return it"
                if not kind == "Tensor" else "return a NumPy array (compute with NumPy, not torch)")
        _fail(f"{call} must return a NumPy array.", "numpy.ndarray", f"{kind}: {_short(got)}", hint=hint)
    for label, (now, before) in inputs.items():
        if not _unchanged(now, before):
            _fail(f"{call} changed its argument `{label}` in place.", f"{label} left as it was",
                  f"{label} changed by the call",
                  mistake="writing into the caller's array (kernel[...] = ..., image += ..., np.copyto, "
                          "a flip or a pad done in place)",
                  hint=f"work on a copy: {label} = np.array({label}, dtype=float) makes a new array")
    if not np.issubdtype(got.dtype, np.floating):
        truncated = expected is not None and not (got.shape == np.shape(expected)
                                                  and np.allclose(got.astype(np.float64), expected))
        _fail(f"{call} returned an array of {got.dtype}.", "a float array", f"dtype {got.dtype}",
              mistake="integer truncation: an integer output cannot hold fractional results" if truncated else None,
              hint="make the result a float array: convert the inputs with np.asarray(..., dtype=float), or create "
                   "the output with np.zeros(shape) (float64), not np.zeros_like(image), an integer array for an integer image")
    floats = [before.dtype for _, before in inputs.values() if np.issubdtype(before.dtype, np.floating)]
    if floats and all(d.itemsize == 8 for d in floats) and got.dtype.itemsize < 8:
        _fail(f"{call} returned {got.dtype} for float64 inputs.", "float64", str(got.dtype),
              mistake="precision dropped: float64 inputs must give a float64 result",
              hint="keep the inputs' precision: np.zeros((oH, oW)) is float64; do not cast to np.float32")


def _torch_conv(x, w, b, padding, stride, device, dtype):
    import torch
    import torch.nn.functional as F
    tx = torch.as_tensor(np.ascontiguousarray(x, dtype=dtype), device=device)
    tw = torch.as_tensor(np.ascontiguousarray(w, dtype=dtype), device=device)
    tb = None if b is None else torch.as_tensor(np.asarray(b, dtype=dtype), device=device)
    with torch.no_grad():
        return F.conv2d(tx, tw, tb, stride=stride, padding=padding).cpu().numpy()


def _numpy_conv(x, w, b, padding, stride, dtype):
    x = np.pad(np.asarray(x, dtype=dtype), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, np.shape(w)[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,ocij->nohw", windows, np.asarray(w, dtype=dtype))
    return out if b is None else out + np.asarray(b, dtype=dtype)[None, :, None, None]


def _reference_conv(x, w, b, padding, stride, device, dtype):
    if str(device) == NUMPY:
        return _numpy_conv(x, w, b, padding, stride, dtype)
    return _torch_conv(x, w, b, padding, stride, device, dtype)


def _reference_name(device):
    return "NumPy, float64" if str(device) == NUMPY else f"torch on {device}"


def _batch_reference(x, weight, bias=None, stride=1, padding=0, device=None, dtype=np.float64):
    """``nn.Conv2d``'s forward for x (N, C_in, H, W) and weight (C_out, C_in, kH, kW): the capstone's
    self-check compares with it. Private: a student's function that calls it earns nothing."""
    device = device or compute_device()
    return _reference_conv(x, weight, bias, padding, stride, device, dtype).astype(np.float64)


def conv2d_reference(image, kernel, padding=0, stride=1, device=None, dtype=np.float64):
    """Cross-correlation of a 2-D image with a 2-D kernel by ``torch.nn.functional.conv2d`` (or NumPy)."""
    device = device or compute_device()
    image, kernel = np.asarray(image), np.asarray(kernel)
    out = _reference_conv(image[None, None], kernel[None, None], None, padding, stride, device, dtype)
    return out[0, 0].astype(np.float64)


# ---------------------------------------------------------------- single-channel convolution

LIBRARY_CONVOLUTIONS = {
    "convolve", "convolve2d", "correlate", "correlate2d", "fftconvolve", "oaconvolve",
    "conv1d", "conv2d", "conv3d", "Conv2d", "Conv1d", "filter2D", "conv_transpose2d", "convolution",
}
LIBRARY_MODULES = {"numpy", "scipy", "cv2", "torch", "skimage", "tensorflow", "jax"}


def _top_module(obj):
    return (getattr(obj, "__module__", None) or getattr(obj, "__name__", "") or "").split(".")[0]


def _library_calls(func, seen=None):
    """Library convolutions named in ``func``'s source, following the student's
    own helper functions (``conv2d_padded`` calling ``conv2d``)."""
    seen = set() if seen is None else seen
    if func in seen or not inspect.isfunction(func):
        return []
    seen.add(func)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in LIBRARY_CONVOLUTIONS:
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Name) and node.id in func.__globals__:
            target = func.__globals__[node.id]
            if inspect.isfunction(target) and target.__module__ == func.__module__:
                found.extend(_library_calls(target, seen))
            elif getattr(target, "__name__", None) in LIBRARY_CONVOLUTIONS and _top_module(target) in LIBRARY_MODULES:
                found.append(f"{target.__module__}.{target.__name__}")
        elif isinstance(node, ast.ImportFrom) and any(a.name in LIBRARY_CONVOLUTIONS for a in node.names):
            found.append(f"from {node.module} import " + ", ".join(a.name for a in node.names))
    return sorted(set(found))


@contextlib.contextmanager
def _library_convolutions_blocked(found):
    """While active, library convolutions raise and record their name, so a
    call hidden from the source check is still caught."""
    patches = []

    def blocker(name):
        def blocked(*args, **kwargs):
            found.append(name)
            raise CheckFailure(f"{name} was called")
        return blocked

    targets = [(np, "convolve"), (np, "correlate")]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        targets += [(torch, "conv2d"), (torch.nn.functional, "conv2d")]
    for module_name, names in (("scipy.signal", ("convolve", "convolve2d", "correlate", "correlate2d",
                                                  "fftconvolve", "oaconvolve")),
                               ("scipy.ndimage", ("convolve", "correlate"))):
        if module_name in sys.modules:
            targets += [(sys.modules[module_name], n) for n in names]
    for module, name in targets:
        if hasattr(module, name):
            patches.append((module, name, getattr(module, name)))
            setattr(module, name, blocker(f"{module.__name__}.{name}"))
    try:
        yield
    finally:
        for module, name, original in patches:
            setattr(module, name, original)


def _reject_library_conv(func, name, probe_args, allowed, hint):
    """Fail when ``func`` calls a library convolution: named in its source, or called on ``probe_args``."""
    name = name or getattr(func, "__name__", "your function")
    found = _library_calls(func)
    if not found:
        runtime = []
        with _library_convolutions_blocked(runtime):
            try:
                func(*probe_args)
            except Exception:  # noqa: BLE001 - a blocked call is in ``runtime``; the value checks report the rest
                pass
        found = runtime
    if found:
        _fail(f"{name} must compute the convolution itself.", allowed, "a call to " + ", ".join(found), hint=hint)


def check_no_library_conv(func, name=None):
    """The exercise is to write the loops: reject a call to a library convolution."""
    _reject_library_conv(func, name, (np.arange(16.0).reshape(4, 4), np.ones((2, 2))), "loops or NumPy slicing only",
                         "write the sliding-window loops; a library convolution is what the exercise replaces")


def _call(func, style, image, kernel, padding, stride, copy=True):
    """Call ``func`` as ``style`` says; probes pass copies, so a function that changes its inputs
    cannot change what it is compared with."""
    if copy:
        image, kernel = np.array(image, copy=True), np.array(kernel, copy=True)
    if style == "conv2d":
        return func(image, kernel)
    if style == "padded":
        return func(image, kernel, padding=padding)
    return func(image, kernel, padding=padding, stride=stride)


def _same(got, expected):
    try:
        got = to_numpy(got).astype(np.float64)
    except (TypeError, ValueError):
        return False
    return got.shape == expected.shape and np.allclose(got, expected, rtol=1e-9, atol=1e-9)


def _pad_one_side(image, padding):
    return np.pad(image, ((padding, 0), (padding, 0))), np.pad(image, ((0, padding), (0, padding)))


def diagnose_conv2d(func, style="full", device=None):
    """Run probe inputs through ``func`` and name the likely mistake, or return None.

    ``style`` says how the function is called: ``"conv2d"`` (image, kernel),
    ``"padded"`` (image, kernel, padding) or ``"full"`` (image, kernel, padding, stride).
    """
    device = device or compute_device()
    padding = 0 if style == "conv2d" else 2  # 2, so one-sided padding is not an off-by-one
    stride = 1
    rng = np.random.default_rng(10)
    image = rng.integers(-4, 5, size=(7, 9)).astype(np.float64)
    kernel = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0]])  # no symmetry: flips and transposes differ
    try:
        got = to_numpy(_call(func, style, image, kernel, padding, stride)).astype(np.float64)
    except Exception as error:  # noqa: BLE001 - the diagnosis reports it
        square = _diagnose_square(func, style, image, padding, stride, device, report_right=True)
        if square:
            return f"{square} (on a 7x9 probe image it raised {type(error).__name__}: {str(error).strip()})"
        return _raised("on a 7x9 probe image it raised", error)
    def ref(img, ker, pad=padding, st=stride):
        return conv2d_reference(img, ker, pad, st, device)

    expected_shape = ref(image, kernel).shape

    if got.shape != expected_shape:
        if got.shape == expected_shape[::-1]:
            return "rows and columns swapped: the output's height and width are exchanged"
        if got.shape in {(expected_shape[0] - 1, expected_shape[1] - 1), (expected_shape[0] + 1, expected_shape[1] + 1)}:
            return "off-by-one output size: the number of positions is (H + 2p - k) // s + 1"
        if got.shape == ref(image, kernel.T).shape:
            return "kernel transposed: kernel[m, n] multiplies image[row + m, col + n]; kH is kernel.shape[0]"
        if stride > 1 and got.shape == ref(image, kernel, padding, 1).shape:
            return "stride ignored when computing the output size"
        if padding and got.shape == ref(image, kernel, 0, stride).shape:
            return "padding ignored: the image was not padded before sliding the kernel"
        for one_side in _pad_one_side(image, padding):
            if got.shape == ref(one_side, kernel, 0, stride).shape:
                return "padding on one side only: pad p rows/columns on every side (top, bottom, left, right)"
        return (f"{GENERIC_SHAPE} {got.shape} on a 7x9 probe image with a 2x3 kernel (padding {padding}, "
                f"stride {stride}), where (H + 2p - kH) // s + 1 gives {expected_shape}")
    if _same(got, ref(image, kernel)) and style == "full":
        strided = _diagnose_stride(func, image, kernel, device)
        if strided:
            return strided
    if _same(got, ref(image, kernel)):
        # Right on a float image: try an integer image with a fractional kernel.
        int_image = np.arange(63).reshape(7, 9)
        blur = np.full((2, 3), 1.0 / 6.0)
        try:
            got_int = to_numpy(_call(func, style, int_image, blur, padding, stride))
        except Exception as error:  # noqa: BLE001
            return f"on an integer image it raised {type(error).__name__}: {error}"
        if not _same(got_int, ref(int_image, blur)):
            if not np.issubdtype(got_int.dtype, np.integer) and _rounded(got_int, ref(int_image, blur)):
                return "results rounded to whole numbers (round() of each sum): keep the fractions"
            if np.issubdtype(got_int.dtype, np.integer) or _same(np.trunc(ref(int_image, blur)), got_int.astype(float)) \
                    or _same(np.floor(ref(int_image, blur)), got_int.astype(float)):
                return ("integer truncation: on an integer image the output must still be a float array "
                        "(create it with dtype float, not zeros_like(image))")
            return "wrong on an integer image with a fractional kernel"
        return None
    if _same(got, ref(image, kernel[::-1, ::-1])):
        return "flipped kernel: this is true convolution; deep learning's 'convolution' is cross-correlation, no flip"
    named = _value_mistake(got, image, kernel, ref)
    if named:
        return named
    square_diagnosis = _diagnose_square(func, style, image, padding, stride, device)
    if square_diagnosis:
        return square_diagnosis
    if padding and _right_without_padding(func, style, image, kernel, stride, device):
        # all 2p zero rows/columns on one side (e.g. padded[:H, :W] = image): right shape, shifted values
        for pads in ((2 * padding, 0), (0, 2 * padding)):
            if _same(got, ref(np.pad(image, (pads, pads)), kernel, 0, stride)):
                return "padding on one side only: pad p rows/columns on every side"
        constant = np.ones((7, 9))
        try:
            got_const = to_numpy(_call(func, style, constant, kernel, padding, stride)).astype(np.float64)
            want_const = ref(constant, kernel)
            inner = (slice(padding, padding + 7 - kernel.shape[0] + 1), slice(padding, padding + 9 - kernel.shape[1] + 1))
            if got_const.shape == want_const.shape and np.allclose(got_const[inner], want_const[inner]) \
                    and not np.allclose(got_const, want_const):
                return "border bug: a constant image is right inside but wrong at the edges; pad with zeros"
        except Exception:  # noqa: BLE001
            pass
    impulse = np.zeros((7, 9))
    impulse[3, 4] = 1.0
    try:
        got_impulse = to_numpy(_call(func, style, impulse, kernel, padding, stride))
        if _same(got_impulse, ref(impulse, kernel)):
            return "right on an impulse image but wrong in general: check how patch values are multiplied and summed"
    except Exception:  # noqa: BLE001
        pass
    return None


def _value_mistake(got, image, kernel, ref):
    """A mistake in how one output is computed, named from the right shape and wrong values; or None."""
    right = ref(image, kernel)
    (kH, kW), whole = kernel.shape, np.ones_like(kernel)
    variants = [
        (ref(image, kernel[::-1]), "kernel flipped upside down (kernel[::-1]): use the kernel as it is, no flip"),
        (ref(image, kernel[:, ::-1]), "kernel flipped left to right (kernel[:, ::-1]): use the kernel as it is, no flip"),
        (np.abs(right), "absolute value taken: a convolution keeps the sign of the sum (no abs)"),
        (np.maximum(right, 0), "negative outputs set to 0 (a ReLU, max(0, ...) or clip inside the convolution): "
                               "the convolution itself is linear; an activation comes after it"),
        (np.clip(right, 0, 255), "outputs clipped to 0..255: the convolution itself does not clip"),
        (right / kernel.size, "divided by the number of kernel entries (np.mean instead of np.sum): "
                              "output[i, j] is the SUM of patch * kernel"),
        (ref(image, whole) * kernel.sum(), "sum of the patch times the sum of the kernel: multiply element by "
                                           "element first, then add: np.sum(patch * kernel)"),
        (ref(image, np.tile(kernel.sum(axis=0), (kH, 1))), "a matrix product (patch @ kernel.T, np.dot) instead of "
                                                           "the element-wise product: np.sum(patch * kernel)"),
        (ref(image, np.tile(kernel.sum(axis=1)[:, None], (1, kW))), "a matrix product (patch.T @ kernel, np.dot) "
                                                                    "instead of the element-wise product: np.sum(patch * kernel)"),
    ]
    if kH == kW:
        variants.append((ref(image, np.tile(kernel.sum(axis=1), (kH, 1))),
                         "a matrix product (patch @ kernel, np.dot) instead of the element-wise product: np.sum(patch * kernel)"))
    for wrong, text in variants:
        if not _same(wrong, right) and _same(got, wrong):
            return text
    if _rounded(got, right):
        return "results rounded to whole numbers (round(), int() or an integer output array): keep the fractions"
    offset = got - right
    if got.shape == right.shape and np.allclose(offset, offset.flat[0]) and not np.isclose(offset.flat[0], 0):
        return f"every output is off by the same {offset.flat[0]:g}: something is added outside the sum (a bias or a +1)"
    scale = np.sum(got * right) / max(np.sum(right * right), 1e-300)
    if got.shape == right.shape and not np.isclose(scale, 1) and _same(got, scale * right):
        return f"every output is {scale:g} times the right value: a factor outside the sum (a normalisation?)"
    return None


def _rounded(got, right):
    """Whole numbers within half a unit of the right values, which are not all whole: rounded sums."""
    got = to_numpy(got).astype(np.float64)
    return (got.shape == right.shape and not np.allclose(right, np.round(right)) and np.allclose(got, np.round(got))
            and bool(np.all(np.abs(got - right) <= 0.5 + 1e-9)))


def _right_without_padding(func, style, image, kernel, stride, device):
    """Whether ``func`` is right on the probe with padding 0: only then can a wrong result be the border's."""
    try:
        got = to_numpy(_call(func, style, image, kernel, 0, stride)).astype(np.float64)
    except Exception:  # noqa: BLE001 - a probe that fails tells nothing
        return False
    return _same(got, conv2d_reference(image, kernel, 0, stride, device))


def _raised(prefix, error):
    text = f"{prefix} {type(error).__name__}: {str(error).strip()}"
    if isinstance(error, ValueError) and "operands could not be broadcast" in str(error):
        text += (" -- a patch smaller than the kernel: the loops run past the edge; there are"
                 " (H + 2p - k) // s + 1 output rows, and the patch for row i starts at i * s")
    return text


def _diagnose_square(func, style, image, padding, stride, device, report_right=False):
    """Probe a 7x7 image with an asymmetric 3x3 kernel: transposed kernel, swapped rows and columns."""
    square = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0], [0.0, 1.0, -2.0]])
    img = image[:7, :7]
    try:
        got_square = to_numpy(_call(func, style, img, square, padding, stride)).astype(np.float64)
    except Exception:  # noqa: BLE001
        return None

    def ref(i, k):
        return conv2d_reference(i, k, padding, stride, device)
    if _same(got_square, ref(img, square.T)):
        return "kernel transposed: kernel[m, n] multiplies image[row + m, col + n], not kernel[n, m]"
    if _same(got_square, ref(img, square).T) or _same(got_square, ref(img.T, square)):
        return "rows and columns swapped: output[i, j] must come from the patch at row i, column j"
    named = _value_mistake(got_square, img, square, ref)
    if named:
        return named
    if report_right and _same(got_square, ref(img, square)):
        return ("right for a square image and kernel, wrong for a 7x9 image with a 2x3 kernel: "
                "keep rows (H, kH = shape[0]) and columns (W, kW = shape[1]) apart")
    return None


def _stride_shape_mistake(got_shape, want_shape, image_shape, kernel_shape, padding, stride):
    """Which wrong output-size rule gives ``got_shape``."""
    spans = [n + 2 * padding - k for n, k in zip(image_shape, kernel_shape)]
    rules = [
        ([-(-d // stride) + 1 for d in spans], "rounded up: (H + 2p - k) / s + 1 takes the floor, //, not ceil"),
        ([int(round(d / stride)) + 1 for d in spans], "rounded: (H + 2p - k) / s + 1 takes the floor, //, not round()"),
        ([(d + 1) // stride for d in spans], "(H + 2p - k + 1) // s: the size is (H + 2p - k) // s + 1"),
        ([d // stride for d in spans], "off-by-one output size: the size is (H + 2p - k) // s + 1, the + 1 is missing"),
    ]
    for shape, text in rules:
        if tuple(shape) == tuple(got_shape) and tuple(shape) != tuple(want_shape):
            return f"with stride={stride} the output shape is {tuple(got_shape)}, expected {tuple(want_shape)}: {text}"
    return f"with stride={stride} the output shape is {tuple(got_shape)}, expected {tuple(want_shape)}"


def _diagnose_stride(func, image, kernel, device):
    """Probe stride 2 and 3 once stride 1 is right."""
    for stride in (2, 3):
        want = conv2d_reference(image, kernel, 1, stride, device)
        try:
            got = to_numpy(func(image, kernel, padding=1, stride=stride)).astype(np.float64)
        except Exception as error:  # noqa: BLE001
            return _raised(f"with stride={stride} it raised", error)
        if _same(got, want):
            continue
        dense = conv2d_reference(image, kernel, 1, 1, device)
        if got.shape == dense.shape:
            return "stride ignored when computing the output size: use (H + 2p - k) // stride + 1"
        if got.shape == want.shape and _same(got, dense[: want.shape[0], : want.shape[1]]):
            return "stride ignored when slicing: the patch for output (i, j) starts at (i * stride, j * stride)"
        if got.shape != want.shape:
            return _stride_shape_mistake(got.shape, want.shape, image.shape, kernel.shape, 1, stride)
        if _same(got, dense[::stride, : want.shape[1]]) or _same(got, dense[: want.shape[0], ::stride]):
            return ("stride applied along one axis only: the patch for output (i, j) starts at row i * stride "
                    "AND column j * stride")
        return f"right with stride 1, wrong with stride={stride}: check the patch's top-left corner"
    return None


def _conv_atol(image, kernel, padding, stride, dtype, device):
    magnitude = conv2d_reference(np.abs(image), np.abs(kernel), padding, stride, device)
    return tolerance(dtype, device, terms=np.size(kernel)) * (magnitude + 1.0)


GENERIC_SHAPE = "output shape"  # how diagnose_conv2d's catch-all line starts


def _culprit_line(name, culprits):
    listed = " and ".join(f"`{c}`" for c in culprits)
    return (f"{listed} {'fails its' if len(culprits) == 1 else 'fail their'} own tests too; if {name} calls "
            f"{'it' if len(culprits) == 1 else 'them'}, fix {listed} first and run this test again")


def _shape_line(got_shape, expected_shape, image_shape, kernel_shape, padding, stride):
    """The output-size rule, worked for the failing call itself."""
    (H, W), (kH, kW) = image_shape, kernel_shape
    return (f"output shape {tuple(got_shape)} for a {H}x{W} image, a {kH}x{kW} kernel, padding {padding} and "
            f"stride {stride}: rows (H + 2p - kH) // s + 1 = ({H} + {2 * padding} - {kH}) // {stride} + 1 = "
            f"{expected_shape[0]}, columns ({W} + {2 * padding} - {kW}) // {stride} + 1 = {expected_shape[1]}")


def _wrong_helpers(helpers):
    """The names in ``helpers`` ({name: function(image, kernel)}) whose function is wrong on a small probe."""
    image = np.random.default_rng(3).standard_normal((6, 7))
    kernel = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0]])
    wrong = []
    for helper_name, helper in (helpers or {}).items():
        try:
            ok = _same(_call(helper, "conv2d", image, kernel, 0, 1), conv2d_reference(image, kernel, device=NUMPY))
        except Exception:  # noqa: BLE001 - a helper that raises is wrong too
            ok = False
        if not ok:
            wrong.append(helper_name)
    return wrong


def check_conv2d(func, image, kernel, padding=0, stride=1, style="full", name=None, expected=None,
                 device=None, reference_dtype=np.float64, hint=None, diagnose=True, depends_on=None):
    """Compare ``func`` with torch's convolution (or with a hand-calculated ``expected``).

    The result must keep the contract (``_check_result``): a NumPy float array, float64 for
    float64 inputs, inputs unchanged. The reference is computed from copies of the inputs made
    before the call; the tolerance follows the inputs' precision and the reference's device.
    On a mismatch the message names the first wrong element, gives both values, states the
    tolerance and the largest error, and adds the diagnosis from ``diagnose_conv2d`` (or ``hint``).
    ``depends_on`` ({name: function}) names the student's functions this one is meant to reuse
    (``conv2d_padded`` calls ``conv2d``): when one of them is wrong, the message points there instead.
    """
    device = device or compute_device()
    name = name or getattr(func, "__name__", "conv")
    shape = np.shape(image)
    call = f"{name}(image {shape[0]}x{shape[1]}, kernel {np.shape(kernel)[0]}x{np.shape(kernel)[1]}" + \
        (f", padding={padding}" if style != "conv2d" else "") + (f", stride={stride}" if style == "full" else "") + ")"
    image_before, kernel_before = np.array(image, copy=True), np.array(kernel, copy=True)

    def explain():  # (likely mistake, hint): a wrong helper first, else the probes' diagnosis
        culprits = _wrong_helpers(depends_on)
        if culprits:
            return _culprit_line(name, culprits), None
        return None, diagnose_conv2d(func, style, device) if diagnose else hint

    got = _result_of(func, name, call, lambda: _call(func, style, image, kernel, padding, stride, copy=False), explain)
    if expected is None:
        expected = conv2d_reference(image_before, kernel_before, padding, stride, device, reference_dtype)
    precision = precision_of(image_before, kernel_before, np.zeros(0, reference_dtype))
    _check_result(got, call, {"image": (image, image_before), "kernel": (kernel, kernel_before)}, expected)
    atol = _conv_atol(image_before, kernel_before, padding, stride, precision, device)
    try:
        check_array(got, expected, call, atol=atol)
    except CheckFailure as failure:
        culprit, diagnosis = explain()
        diagnosis = culprit or (diagnosis if diagnose else None)
        if got.shape != np.shape(expected) and (diagnosis is None or diagnosis.startswith(GENERIC_SHAPE)):
            diagnosis = _shape_line(got.shape, np.shape(expected), np.shape(image_before), np.shape(kernel_before),
                                    padding, stride)
        _fail_explained(failure, diagnosis, hint, f"reference: {_reference_name(device)}; tolerance "
                        f"{tolerance(precision, device, np.size(kernel_before)):g} x sum|patch*kernel| for {precision} inputs")
    return to_numpy(got)


_CONTRACT_LABELS = {"integers": "integer inputs", "float64": "float64 inputs", "uint8": "uint8 inputs",
                    "layout": "a transposed (non-contiguous) image", "repeat": "repeated calls"}
_CONTRACT_HINTS = {
    "integers": "integer inputs must give the same float values as the same numbers given as floats",
    "float64": "float64 inputs are computed in float64: no float32 step anywhere (np.float32, torch's default dtype)",
    "uint8": "uint8 products wrap around (200 * 3 is 88 in uint8): convert the inputs to float before multiplying",
    "layout": "index with slices ([row:row + kH, col:col + kW]); do not rely on memory layout "
              "(.ravel() positions, np.frombuffer, as_strided with strides computed from the shape)",
    "repeat": "compute every call afresh: a result remembered from an earlier call (lru_cache, a dict keyed "
              "by id(image)) is stale once the caller changes the array in place",
}


def _contract_cases(style, seed):
    """(what, first inputs, inputs written into them before a second call, or None) for each probe."""
    rng = np.random.default_rng(seed)
    shape, kshape = ((2, 2, 6, 7), (3, 2, 2, 3)) if style == "batch" else ((6, 7), (2, 3))
    flipped_axes = (0, 1, 3, 2) if style == "batch" else (1, 0)
    transposed = rng.standard_normal(tuple(shape[a] for a in flipped_axes)).transpose(flipped_axes)
    return [
        ("integers", [rng.integers(-9, 10, size=shape), rng.integers(-3, 4, size=kshape)], None),
        ("uint8", [rng.integers(150, 256, size=shape).astype(np.uint8),
                   rng.integers(2, 5, size=kshape).astype(np.uint8)], None),
        ("layout", [transposed, rng.standard_normal(kshape)], None),
        ("repeat", [rng.standard_normal(shape), rng.standard_normal(kshape)],
         [rng.standard_normal(shape), rng.standard_normal(kshape)]),
        ("float64", [rng.standard_normal(shape), rng.standard_normal(kshape)], 1e-6 * rng.standard_normal(shape)),
    ]


def check_contract(func, style="full", name=None, seed=0):
    """What every convolution keeps besides its values, each probe named in its failure.

    Each probe first asks for the right values on contiguous float64 copies (NumPy's reference),
    then compares the probe with the function's own result on those copies. Every call must return a NumPy
    float array (float64 for float64 inputs) and leave its inputs unchanged; and
      integer and uint8 inputs give what the same numbers as float64 give (no truncation,
      no uint8 overflow); a transposed, non-contiguous image gives what its contiguous copy
      gives; a second call after the caller changed the arrays in place gives what a fresh
      call gives (nothing cached); and with float64 inputs f(X + D) - f(X) equals f(D) for a
      tiny D (a float32 step anywhere loses that).
    ``style`` is as in ``diagnose_conv2d``, or ``"batch"`` for ``func(x, weight, bias=None, stride=1, padding=0)``.
    """
    name = name or getattr(func, "__name__", "your function")
    padding = 0 if style == "conv2d" else 1

    def run(args, label):
        inputs = {k: (v, np.array(v, copy=True)) for k, v in zip(("x", "weight") if style == "batch"
                                                                  else ("image", "kernel"), args)}
        call = f"{label}: {name}({', '.join(f'{k} {_describe(v)}' for k, v in zip(inputs, args))}" + \
            ("" if style == "conv2d" else f", padding={padding}") + ")"
        got = _result_of(func, name, call, lambda: func(args[0], args[1], None, stride=1, padding=padding)
                         if style == "batch" else _call(func, style, args[0], args[1], padding, 1, copy=False))
        _check_result(got, call, inputs, None)
        return got, call

    def bound(args, precision=np.float64):
        x, w = (np.abs(np.asarray(a, dtype=np.float64)) for a in args)
        per_output = x.max(initial=0) * w.sum() / (w.shape[0] if style == "batch" else 1)
        return tolerance(precision) * (per_output + 1.0)

    def reference(args):
        x, w = (np.ascontiguousarray(a, dtype=np.float64) for a in args)
        if style == "batch":
            return _batch_reference(x, w, None, 1, padding, NUMPY)
        return conv2d_reference(x, w, padding, 1, NUMPY)

    for what, args, later in _contract_cases(style, seed):
        label, hint = _CONTRACT_LABELS[what], _CONTRACT_HINTS[what]
        plain, call = run([np.ascontiguousarray(a, dtype=np.float64) for a in args], "contiguous float64 copies")
        # Earned by a function that is right and keeps the contract: all zeros is self-consistent too.
        # (float32 bounds here: a float32 step is the "float64" probe's to name.)
        check_array(plain, reference(args), call, atol=bound(args, np.float32),
                    hint="the contract is checked on a function that gives the right values: fix the value tests first")
        if what == "float64":
            shifted, call = run([args[0] + later, args[1]], label)
            tiny, _ = run([later, args[1]], label)
            check_array(shifted - plain, tiny, f"{call} minus the same call without the tiny change D",
                        atol=bound([args[0], args[1]]), hint=hint)
            continue
        got, call = run(args, label)
        check_array(got, plain, f"{call} compared with the call on contiguous float64 copies", atol=bound(args), hint=hint)
        if later is not None:
            for array, new in zip(args, later):
                array[...] = new
            again, call = run(args, f"{label} (second call, after the caller changed both arrays in place)")
            fresh, _ = run([np.array(a, copy=True) for a in args], "fresh copies")
            check_array(again, fresh, f"{call} compared with a call on fresh copies", atol=bound(args), hint=hint)


# ---------------------------------------------------------------- batched multi-channel convolution

def diagnose_conv2d_batch(func, device=None):
    """Probe a batched ``func(x, weight, bias=None, stride=1, padding=0)`` and name the likely mistake."""
    device = device or compute_device()
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    want = _batch_reference(x, w, b, 1, 1, device)
    try:
        got = to_numpy(func(x, w, b, stride=1, padding=1)).astype(np.float64)
    except Exception as error:  # noqa: BLE001
        return _diagnose_batch_extra(func, x, w, b, device) or \
            f"on a probe batch it raised {type(error).__name__}: {error}"
    if got.shape != want.shape:
        if got.shape[:2] == (2, 3):
            return "output has C_in channels: each output channel must sum over all input channels"
        if got.shape == (want.shape[0],) + want.shape[2:] + (want.shape[1],):
            return "channels last: the output must be (N, C_out, H_out, W_out), channels before height and width"
        if _same(got, _batch_reference(x, w.transpose(0, 1, 3, 2), b, 1, 1, device)):
            return ("kernel transposed: weight[o, c, m, n] multiplies x[n, c, row + m, col + n], with m along the "
                    "height (kH = weight.shape[2]) and n along the width (kW = weight.shape[3])")
        if got.shape == want.shape[:2] + tuple(n - 1 for n in want.shape[2:]):
            return ("output one row and one column short: H_out = (H + 2p - kH) // s + 1 (is the + 1 missing, or the "
                    "padding counted on one side only? The padded height is H + 2p)")
        if got.shape[2:] == tuple(n + 1 for n in want.shape[2:]) or got.shape[2:] == tuple(n - 2 for n in want.shape[2:]):
            return "off-by-one output size: H_out = (H + 2p - kH) // s + 1"
        return (f"{GENERIC_SHAPE} {got.shape} on a probe batch x {x.shape}, weight {w.shape}, padding 1, where "
                f"(N, C_out, H_out, W_out) is {want.shape}")
    if _same(got, _batch_reference(x, w, None, 1, 1, device)):
        return "missing bias: add bias[c_out] to every element of output channel c_out"
    if _same(got + 0.0, _batch_reference(x, w, b * 3, 1, 1, device)):
        return "bias added once per input channel: add it once, after summing over channels"
    swapped = np.transpose(w.reshape(3, 4, 3, 2), (1, 0, 2, 3))
    if _same(got, _batch_reference(x, swapped, b, 1, 1, device)):
        return "weight axes mixed up: weight is (C_out, C_in, kH, kW), so weight[o, c] pairs output o with input c"
    if _same(got, _batch_reference(x, w[:, :, ::-1, ::-1], b, 1, 1, device)):
        return "flipped kernel: cross-correlation does not flip the kernel"
    per_channel = np.stack([_batch_reference(x[:, c:c + 1], w[:, c:c + 1], None, 1, 1, device)
                            for c in range(3)])
    if _same(got, per_channel.max(axis=0) + b[None, :, None, None]) or \
            _same(got, per_channel[-1] + b[None, :, None, None]) or \
            _same(got, per_channel[0] + b[None, :, None, None]):
        return "channels not summed: output channel o is the SUM over input channels c of x[n, c] * weight[o, c]"
    return _batch_value_mistake(got, x, w, b, device) or _diagnose_batch_extra(func, x, w, b, device, got)


def check_conv2d_batch(func, x, weight, bias=None, stride=1, padding=0, device=None, name=None, hint=None,
                       diagnose=True):
    """Compare a batched convolution with ``torch.nn.functional.conv2d``, naming (n, c, i, j).

    The contract, the reference and the tolerance are as in ``check_conv2d``.
    """
    device = device or compute_device()
    name = name or getattr(func, "__name__", "conv")
    call = (f"{name}(x {tuple(np.shape(x))}, weight {tuple(np.shape(weight))}, "
            f"bias={'None' if bias is None else tuple(np.shape(bias))}, stride={stride}, padding={padding})")
    before = {label: (value, np.array(value, copy=True)) for label, value in
              (("x", x), ("weight", weight), ("bias", bias)) if value is not None}
    got = _result_of(func, name, call, lambda: func(x, weight, bias, stride=stride, padding=padding),
                     lambda: (None, diagnose_conv2d_batch(func, device) if diagnose else hint))
    x0, w0 = before["x"][1], before["weight"][1]
    b0 = before["bias"][1] if "bias" in before else None
    expected = _batch_reference(x0, w0, b0, stride, padding, device)
    precision = precision_of(x0, w0, b0)
    _check_result(got, call, before, expected)
    magnitude = _batch_reference(np.abs(x0), np.abs(w0), None if b0 is None else np.abs(b0), stride, padding, device)
    bound = tolerance(precision, device, terms=np.prod(np.shape(w0)[1:]))
    try:
        check_array(got, expected, call, atol=bound * (magnitude + 1.0), index_names=("n", "c", "i", "j"))
    except CheckFailure as failure:
        diagnosis = diagnose_conv2d_batch(func, device) if diagnose else None
        if got.ndim == 4 and got.shape[2:] != expected.shape[2:] and (diagnosis is None or diagnosis.startswith(GENERIC_SHAPE)):
            diagnosis = "height and width: " + _shape_line(got.shape[2:], expected.shape[2:], np.shape(x0)[2:],
                                                           np.shape(w0)[2:], padding, stride)
        _fail_explained(failure, diagnosis, hint,
                        f"reference: {_reference_name(device)}; tolerance {bound:g} x sum|x*w| for {precision} inputs")
    return to_numpy(got)


# ---- added for notebooks 04-05

def _is_number(value):
    return isinstance(value, (numbers.Number, np.number)) and not isinstance(value, (bool, np.bool_))


def _known_mistake(got, mistakes, same):
    """The explanation attached to the first known wrong answer that ``got`` matches, or None."""
    for wrong, explanation in (mistakes or {}).items():
        try:
            if same(got, wrong):
                return explanation
        except Exception:  # noqa: BLE001 - a value that cannot be compared matches nothing
            continue
    return None


def check_hand_value(got, expected, name, abs_tol=0.0, hint=None, mistakes=None):
    """A number typed in by hand, equal to ``expected`` within ``abs_tol``.

    Fractions (``fractions.Fraction(10, 9)``) count as numbers. ``mistakes``
    maps known wrong values to what they suggest; when ``got`` is one of them
    (and is not right), its explanation replaces ``hint``.
    """
    if hasattr(got, "shape") and np.size(to_numpy(got)) == 1 and np.ndim(to_numpy(got)) == 0:
        got = to_numpy(got).item()
    if _is_number(got) and mistakes:
        tol = max(abs_tol, 1e-9)
        try:
            right = math.isclose(float(got), float(expected), abs_tol=tol)
        except (TypeError, ValueError, OverflowError):
            right = False
        if not right:
            hint = _known_mistake(got, mistakes, lambda g, w: math.isclose(float(g), float(w), abs_tol=tol)) or hint
    check_scalar(got, expected, name, abs_tol=abs_tol, hint=hint)


def check_entry(grid, index, expected, name, abs_tol=0.0, hint=None, mistakes=None):
    """Element ``index`` (a tuple such as ``(0, 1)``) of a grid typed in by hand.

    The grid may be nested lists or tuples, or an array. A missing element is
    reported as such, not as an IndexError. With ``expected=None`` it only
    checks that the element exists and is a number (a self-check).
    """
    index = tuple(index)
    label = name + "".join(f"[{i}]" for i in index)
    value = grid
    try:
        for i in index:
            value = value[i]
    except (IndexError, KeyError, TypeError):
        _fail(f"{name} has no element {label}.", f"a grid of numbers with an element at {index}",
              f"{type(grid).__name__}: {_short(grid)}",
              hint="write the grid as a list of rows, e.g. [[a, b], [c, d]], with one row per output row")
    if expected is None:
        if not _is_number(value):
            _fail(f"{label} should be a single number.", "a number", f"{type(value).__name__}: {_short(value)}",
                  hint="type the number itself, e.g. -2, without quotes")
        return
    check_hand_value(value, expected, label, abs_tol=abs_tol, hint=hint, mistakes=mistakes)


def _as_tuple(value):
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        return tuple(to_numpy(value).tolist())
    return tuple(value)


def check_int_sequence(got, length, name, hint=None):
    """A tuple or list (or torch.Size) of ``length`` whole numbers; returns it as a tuple of ints."""
    if isinstance(got, (str, bytes, dict, set)) or not hasattr(got, "__len__"):
        _fail(f"{name} should be a tuple or list of {length} whole numbers.", f"{length} ints",
              f"{type(got).__name__}: {_short(got)}", hint=hint)
    values = _as_tuple(got)
    if len(values) != length:
        _fail(f"{name} should hold {length} numbers.", f"{length} numbers", f"{len(values)}: {_short(got)}", hint=hint)
    for position, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
            _fail(f"{name}[{position}] should be a whole number (an int).", "an int such as 5",
                  f"{type(value).__name__}: {_short(value)}",
                  hint="write whole numbers without a decimal point or quotes: 5, not 5.0 or '5'")
    return tuple(int(v) for v in values)


def check_sizes(got, expected, name, labels=None, hint=None, mistakes=None):
    """Whole numbers (a tuple, list or torch.Size) equal to ``expected``; names the first wrong position.

    ``labels`` names the positions (e.g. ``("channels", "height", "width")``);
    ``mistakes`` maps known wrong tuples to what they suggest.
    """
    expected = tuple(int(v) for v in expected)
    try:
        as_ints = tuple(int(v) for v in _as_tuple(got))
    except Exception:  # noqa: BLE001 - reported by check_int_sequence below
        as_ints = None
    if as_ints != expected:
        hint = _known_mistake(as_ints, {tuple(k): v for k, v in (mistakes or {}).items()},
                              lambda g, w: g == w) or hint
    values = check_int_sequence(got, len(expected), name, hint=hint)
    if values == expected:
        return
    wrong = [p for p, (a, b) in enumerate(zip(values, expected)) if a != b]
    position = wrong[0]
    label = labels[position] if labels else f"position {position}"
    _fail(f"{name}: {len(wrong)} of {len(expected)} numbers are wrong.", expected, values,
          where=f"{label}: expected {expected[position]}, got {values[position]}", hint=hint)


def check_choice(got, choices, name, expected=None, hint=None, mistakes=None):
    """``got`` must be one of the offered strings ``choices`` (case and surrounding spaces ignored).

    With ``expected``, it must be that one; ``mistakes`` maps wrong choices to what they suggest.
    """
    def norm(text):
        return " ".join(text.split()).lower()
    offered = {norm(c): c for c in choices}
    if not isinstance(got, str) or norm(got) not in offered:
        _fail(f"{name} must be one of the offered answers.", " | ".join(repr(c) for c in choices),
              f"{type(got).__name__}: {_short(got)}", hint="copy one of the offered strings, quotes included")
    if expected is not None and norm(got) != norm(expected):
        chosen = offered[norm(got)]
        _fail(f"{name} is not right.", repr(expected), repr(chosen), hint=(mistakes or {}).get(chosen, hint))


def _call_text(name, args, kwargs):
    return f"{name}(" + ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]) + ")"


def check_function_values(func, cases, name=None, hint=None, mistakes=None):
    """Call ``func`` on each case and compare the number it returns.

    ``cases`` holds ``(args, kwargs, expected)`` triples. ``mistakes`` maps a
    description to a function with the same signature that makes that mistake;
    when the student's wrong result equals that function's result for the
    failing call, the description becomes the hint.
    """
    name = name or getattr(func, "__name__", "your function")
    for args, kwargs, expected in cases:
        call = _call_text(name, args, kwargs)
        try:
            got = func(*args, **kwargs)
        except NotImplementedError as unwritten:
            raise _not_written(func, name, unwritten) from None
        except Exception as error:  # noqa: BLE001 - turned into a readable failure
            _fail(f"{call} raised an error.", expected, f"{type(error).__name__}: {error}", hint=hint)
        if got is None:
            _fail(f"{call} returned nothing.", expected, None, hint="did you forget `return`?")
        this_hint = hint
        if not (_is_number(got) and got == expected):
            this_hint = _known_mistake(got, {f: d for d, f in (mistakes or {}).items()},
                                       lambda g, f: bool(f(*args, **kwargs) == g)) or hint
        check_scalar(got, expected, call, hint=this_hint)


def check_counts(got, expected, name, hint=None):
    """A dict {value: how many times it occurs}, compared with ``expected``; keys compared as numbers."""
    if not isinstance(got, dict):
        _fail(f"{name} should be a dict {{value: count}}.", "dict", f"{type(got).__name__}: {_short(got)}", hint=hint)
    try:
        counts = {float(k): v for k, v in got.items()}
    except (TypeError, ValueError):
        _fail(f"{name}'s keys should be numbers (the values found).", "number keys", _short(list(got)), hint=hint)
    want = {float(k): int(v) for k, v in expected.items()}
    missing = sorted(set(want) - set(counts))
    extra = sorted(set(counts) - set(want))
    if missing or extra:
        where = (f"missing keys: {_short(missing)}" if missing else "") + \
                ("; " if missing and extra else "") + (f"unexpected keys: {_short(extra)}" if extra else "")
        _fail(f"{name} does not have the right keys.", _short(sorted(want)), _short(sorted(counts)), where,
              hint="count only the non-zero values" if 0.0 in extra else hint)
    for key in sorted(want):
        value = counts[key]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)) \
                or int(value) != want[key]:
            _fail(f"{name}: the count for value {key:g} is not right.", want[key], _short(value),
                  where=f"key {key:g}", hint=hint)


# ---- added for notebooks 02-03

def map_of(at_function, name=None):
    """A whole-map function ``(image, kernel) -> array`` from a one-position function.

    ``at_function(image, kernel, i, j)`` computes one output element; the map
    calls it at every valid position (no padding, stride 1). This lets
    ``check_conv2d(..., style="conv2d")`` and ``diagnose_conv2d`` test a
    function that works one element at a time.
    """
    label = name or f"{getattr(at_function, '__name__', 'your function')} at every (i, j)"

    def whole_map(image, kernel):
        rows = np.shape(image)[0] - np.shape(kernel)[0] + 1
        cols = np.shape(image)[1] - np.shape(kernel)[1] + 1
        out = np.empty((max(rows, 0), max(cols, 0)))
        for i in range(rows):
            for j in range(cols):
                value = call_student(at_function, image, kernel, i, j)
                if value is None:
                    _fail(f"{label}: the function returned nothing at (i={i}, j={j}).", "a number", None,
                          hint="did you forget the `return`?")
                if np.size(value) != 1:
                    _fail(f"{label}: one position must give one number.", "a single number",
                          f"{type(value).__name__} of shape {np.shape(value)} at (i={i}, j={j})",
                          hint="sum the element-wise products over the whole patch: np.sum(patch * kernel)")
                out[i, j] = float(np.asarray(value).reshape(-1)[0])
        return out

    whole_map.__name__ = label
    return whole_map


def _orientation_mistake(got, image, kernel, device):
    """Which wrong orientation of the kernel explains a true-convolution map ``got``."""
    variants = [
        (kernel, "no flip: this is cross-correlation; true convolution rotates the kernel by 180 degrees "
                 "(kernel[::-1, ::-1]) before sliding it"),
        (kernel[::-1, :], "only the rows were flipped (kernel[::-1]); flip both axes: kernel[::-1, ::-1] "
                          "or np.flip(kernel)"),
        (kernel[:, ::-1], "only the columns were flipped (kernel[:, ::-1]); flip both axes: "
                          "kernel[::-1, ::-1] or np.flip(kernel)"),
    ]
    if kernel.shape[0] == kernel.shape[1]:
        variants.append((kernel.T, "kernel transposed: a 180-degree rotation is kernel[::-1, ::-1], not kernel.T"))
    for variant, text in variants:
        if _same(got, conv2d_reference(image, variant, device=device)):
            return text
    return None


def check_true_convolution(func, image, kernel, name=None, device=None):
    """Compare a whole-map ``func(image, kernel)`` with TRUE convolution (kernel rotated by 180 degrees).

    The reference is torch's cross-correlation with ``kernel[::-1, ::-1]``. On a
    mismatch the message names the first wrong element and, where it can, the
    orientation the function used instead (no flip, one axis, transpose).
    """
    device = device or compute_device()
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    name = name or getattr(func, "__name__", "true convolution")
    call = f"{name}(image {image.shape[0]}x{image.shape[1]}, kernel {kernel.shape[0]}x{kernel.shape[1]})"
    before = {"image": (image, image.copy()), "kernel": (kernel, kernel.copy())}
    got = _result_of(func, name, call, lambda: func(image, kernel))
    image, kernel = before["image"][1], before["kernel"][1]
    rotated = np.ascontiguousarray(kernel[::-1, ::-1])
    expected = conv2d_reference(image, rotated, device=device)
    _check_result(got, call, before, expected)
    atol = tolerance(np.float64, device) * (conv2d_reference(np.abs(image), np.abs(rotated), device=device) + 1.0)
    try:
        check_array(got, expected, call, atol=atol)
    except CheckFailure as failure:
        try:
            mistake = _orientation_mistake(to_numpy(got).astype(np.float64), image, kernel, device)
        except (TypeError, ValueError):
            mistake = None
        _fail_explained(failure, mistake, None,
                        f"reference: {_reference_name(device)} with the kernel rotated by 180 degrees")
    return to_numpy(got)


# ---- added for notebooks 08-10

def conv_atol(x, weight, bias=None, padding=0, stride=1, dtype=np.float32, device="cpu"):
    """The element-wise error bound for a convolution computed in ``dtype`` on ``device``.

    ``x`` and ``weight`` are a 2-D image and kernel, or a batch (N, C_in, H, W)
    and a weight (C_out, C_in, kH, kW), as arrays or tensors. The bound is
    ``tolerance(dtype, device)`` times (sum |patch * weight| + |bias| + 1), the
    scale ``check_conv2d`` uses. ``device`` is where the result under test was
    computed: "cpu" for NumPy code, the module's device for a torch layer.
    """
    x = np.abs(to_numpy(x).astype(np.float64))
    weight = np.abs(to_numpy(weight).astype(np.float64))
    if x.ndim == 2:
        magnitude = conv2d_reference(x, weight, padding, stride)
    else:
        magnitude = _batch_reference(x, weight, None if bias is None else np.abs(to_numpy(bias)),
                                           stride, padding)
    return tolerance(dtype, device) * (magnitude + 1.0)


def _close(got, wrong, atol, rtol):
    try:
        got = to_numpy(got).astype(np.float64)
        wrong = np.asarray(to_numpy(wrong), dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if got.shape != wrong.shape:
        return False
    return bool(np.all(np.abs(got - wrong) <= np.max(atol) + rtol * np.abs(wrong)))


def check_array_with_mistakes(got, expected, name, mistakes=(), atol=0.0, rtol=0.0, hint=None, index_names=None):
    """``check_array``; on a failure, ``got`` is also compared with known wrong arrays.

    ``mistakes`` holds ``(wrong_array, explanation)`` pairs; the first one that
    ``got`` matches (same shape, within the same tolerance) is added to the
    message as the likely mistake.
    """
    try:
        check_array(got, expected, name, atol=atol, rtol=rtol, hint=hint, index_names=index_names)
    except CheckFailure as failure:
        for wrong, explanation in mistakes or ():
            if _close(got, wrong, atol, rtol):
                raise CheckFailure(f"{failure}\n  likely mistake: {explanation}") from None
        raise


def check_no_library_conv_batch(func, name=None):
    """``check_no_library_conv`` for a batched ``func(x, weight, bias=None, stride=1, padding=0)``."""
    _reject_library_conv(func, name, (np.arange(50.0).reshape(1, 2, 5, 5), np.ones((3, 2, 2, 2))),
                         "loops or NumPy (slicing, einsum, tensordot)",
                         "build the output from patches and weights; a library convolution is what the exercise replaces")


def check_conv_layer(layer, name, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
    """``layer`` must be an ``nn.Conv2d`` with this configuration; names the first setting that differs."""
    import torch.nn as nn
    check_type(layer, nn.Conv2d, name, hint="create it with nn.Conv2d(in_channels, out_channels, kernel_size, ...)")

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    wanted = [("in_channels", in_channels, layer.in_channels), ("out_channels", out_channels, layer.out_channels),
              ("kernel_size", pair(kernel_size), tuple(layer.kernel_size)), ("stride", pair(stride), tuple(layer.stride)),
              ("padding", pair(padding), layer.padding if isinstance(layer.padding, str) else tuple(layer.padding))]
    for setting, want, have in wanted:
        if want != have:
            _fail(f"{name}.{setting} is not right.", want, have,
                  hint=f"pass {setting}={want[0] if isinstance(want, tuple) else want} to nn.Conv2d")
    if bias != (layer.bias is not None):
        _fail(f"{name} {'needs' if bias else 'must not have'} a bias.", f"bias={bias}",
              f"bias={layer.bias is not None}", hint=f"pass bias={bias} to nn.Conv2d")


def check_conv_weight(layer, kernels, name):
    """``layer.weight`` (C_out, C_in, kH, kW) must hold ``kernels`` (same shape), naming the wrong filter.

    A filter that equals another expected filter (wrong order), its transpose
    or its flip is reported as such.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    weight = to_numpy(layer.weight).astype(np.float64)
    check_shape(weight, kernels.shape, f"{name}.weight",
                hint="nn.Conv2d's weight has shape (out_channels, in_channels, kH, kW)")
    for o in range(kernels.shape[0]):
        got, want = weight[o], kernels[o]
        if np.allclose(got, want, rtol=1e-6, atol=1e-6):
            continue
        mistake = None
        others = [k for k in range(kernels.shape[0]) if k != o and np.allclose(got, kernels[k], rtol=1e-6, atol=1e-6)]
        if others:
            mistake = f"filter {o} holds the kernel meant for filter {others[0]}: load kernel number o into weight[o]"
        elif np.allclose(got, np.swapaxes(want, -1, -2), rtol=1e-6, atol=1e-6):
            mistake = "the kernel is transposed: weight[o, c, m, n] must be kernel[m, n]"
        elif np.allclose(got, want[..., ::-1, ::-1], rtol=1e-6, atol=1e-6):
            mistake = "the kernel is flipped: nn.Conv2d does not flip; copy the kernel as it is"
        elif np.allclose(got, -want, rtol=1e-6, atol=1e-6):
            mistake = "the kernel has the wrong sign"
        check_array(got, want, f"{name}.weight[{o}]", atol=1e-6, rtol=1e-6,
                    hint=mistake or "copy the kernel in with torch.no_grad(): layer.weight[o, 0] = torch.tensor(kernel)",
                    index_names=("c", "m", "n"))


def check_channels(got, expected, name, atol=0.0, labels=None):
    """Feature maps (1, C, H, W) compared channel by channel with ``expected`` (C, H, W).

    ``atol`` may be an array of ``expected``'s shape. A channel that equals
    another channel's expected map is reported as a wrong order.
    """
    expected = np.asarray(expected, dtype=np.float64)
    got_array = to_numpy(got)
    check_shape(got_array, (1,) + expected.shape, name, hint="(batch, channels, height, width)")
    got_array = got_array[0].astype(np.float64)
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), expected.shape)
    for c in range(expected.shape[0]):
        label = f"{name}[0, {c}]" + (f" ({labels[c]})" if labels else "")
        if np.all(np.abs(got_array[c] - expected[c]) <= atol[c]):
            continue
        others = [k for k in range(expected.shape[0])
                  if k != c and np.all(np.abs(got_array[c] - expected[k]) <= atol[k])]
        hint = None
        if others:
            hint = (f"channel {c} shows what channel {others[0]} should show"
                    + (f" ({labels[others[0]]})" if labels else "") + ": the filters are in the wrong order")
        check_array(got_array[c], expected[c], label, atol=atol[c], hint=hint)


def _batch_value_mistake(got, x, w, b, device):
    """A mistake in how each output is computed, for the batched probe (stride 1, padding 1); or None."""
    def ref(weight, bias=None):
        return _batch_reference(x, weight, bias, 1, 1, device)
    plain, bias = ref(w), b[None, :, None, None]
    right = plain + bias
    first_only = plain.copy()
    first_only[:, 0] += b[0]
    variants = [
        (ref(w[:, :, ::-1, :], b), "kernel flipped upside down (weight[..., ::-1, :]): use the weights as they are, no flip"),
        (ref(w[:, :, :, ::-1], b), "kernel flipped left to right (weight[..., ::-1]): use the weights as they are, no flip"),
        (plain / np.prod(w.shape[1:]) + bias, "divided by the number of weights (np.mean instead of np.sum): each output "
                                              "is the SUM over c, kH and kW of patch * weight[o]"),
        (np.abs(plain) + bias, "absolute value taken: a convolution keeps the sign of the sum (no abs)"),
        (np.abs(right), "absolute value taken: a convolution keeps the sign of the sum (no abs)"),
        (np.maximum(plain, 0) + bias, "negative sums set to 0 (a ReLU inside the layer): nn.Conv2d's forward is linear; "
                                      "the activation is a separate step"),
        (np.maximum(right, 0), "negative outputs set to 0 (a ReLU inside the layer): nn.Conv2d's forward is linear; "
                               "the activation is a separate step"),
        (plain + 2 * bias, "bias added twice: add bias[o] once to output channel o"),
        (plain - bias, "bias subtracted: add bias[o] to output channel o"),
        (first_only, "bias added to the first channel only: bias[o] goes to every element of output channel o"),
    ]
    for wrong, text in variants:
        if not _same(wrong, right) and _same(got, wrong):
            return text
    offset = got - right
    if got.shape == right.shape and np.allclose(offset, offset.flat[0]) and not np.isclose(offset.flat[0], 0):
        return f"every output is off by the same {offset.flat[0]:g}: something is added outside the sum"
    return None


def _diagnose_batch_extra(func, x, w, b, device, got=None):
    """More probes for ``diagnose_conv2d_batch``: called when the probe raised (``got`` None)
    or when its result matched no earlier diagnosis."""
    n, c_in = x.shape[:2]

    def attempt(*args, **kwargs):
        try:
            return to_numpy(func(*args, **kwargs)).astype(np.float64)
        except Exception:  # noqa: BLE001 - a probe that fails tells nothing
            return None

    square_k = np.random.default_rng(21).standard_normal((4, 3, 3, 3))  # kH == kW: a transposed kernel runs
    got_square = attempt(x, square_k, b, stride=1, padding=1)
    if got_square is not None and not _same(got_square, _batch_reference(x, square_k, b, 1, 1, device)) \
            and _same(got_square, _batch_reference(x, square_k.transpose(0, 1, 3, 2), b, 1, 1, device)):
        return ("kernel transposed: weight[o, c, m, n] multiplies x[n, c, row + m, col + n], with m along the "
                "height (kH = weight.shape[2]) and n along the width (kW = weight.shape[3])")
    square_w = w[:3]  # C_out == C_in == 3: a (C_in, C_out) mix-up no longer fails on the shapes
    if got is None:
        no_bias = attempt(x, w, None, stride=1, padding=1)
        if no_bias is not None and _same(no_bias, _batch_reference(x, w, None, 1, 1, device)):
            return ("bias added along the wrong axis: reshape it to (1, C_out, 1, 1), e.g. "
                    "bias[None, :, None, None], so that it lines up with the channel axis")
        unpadded = attempt(x, w, b, stride=1, padding=0)
        if unpadded is not None and _same(unpadded, _batch_reference(x, w, b, 1, 0, device)):
            return ("padding breaks it: pad only the two spatial axes, np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))); "
                    "np.pad(x, p) also pads the batch and channel axes")
    else:
        ref_no_bias = _batch_reference(x, w, None, 1, 1, device)
        if got.shape == ref_no_bias.shape and len(b) == got.shape[-1] and _same(got, ref_no_bias + b):
            return "bias added along the wrong axis: use bias[None, :, None, None] so it follows the channel axis"
        if _same(got, np.broadcast_to(ref_no_bias.sum(axis=0, keepdims=True), ref_no_bias.shape)
                 + b[None, :, None, None]):
            return "summed over the batch too: each image n has its own output; sum only over c, kH and kW"
        if _same(got, np.broadcast_to(ref_no_bias.sum(axis=1, keepdims=True), ref_no_bias.shape)
                 + b[None, :, None, None]):
            return ("summed over the output channels too: output channel o uses only its own filter weight[o]; "
                    "sum over c, kH and kW")
        if _same(got, _batch_reference(x, w, b, 1, 1, device)):
            return _diagnose_batch_stride(func, x, w, b, device)
    swapped = attempt(x, square_w, b[:3], stride=1, padding=1)
    if swapped is not None and not _same(swapped, _batch_reference(x, square_w, b[:3], 1, 1, device)) \
            and _same(swapped, _batch_reference(x, np.transpose(square_w, (1, 0, 2, 3)), b[:3], 1, 1, device)):
        return ("weight axes mixed up: weight is (C_out, C_in, kH, kW), so weight[o, c] pairs output channel o "
                "with input channel c (not weight[c, o])")
    return None


def _diagnose_batch_stride(func, x, w, b, device):
    """Probe stride 2 and 3 once stride 1 is right."""
    for stride in (2, 3):
        want = _batch_reference(x, w, b, stride, 1, device)
        try:
            got = to_numpy(func(x, w, b, stride=stride, padding=1)).astype(np.float64)
        except Exception as error:  # noqa: BLE001
            return f"with stride={stride} it raised {type(error).__name__}: {error}"
        if _same(got, want):
            continue
        dense = _batch_reference(x, w, b, 1, 1, device)
        if got.shape == dense.shape:
            return "stride ignored when computing the output size: use (H + 2p - kH) // stride + 1"
        if got.shape == want.shape and _same(got, dense[:, :, : want.shape[2], : want.shape[3]]):
            return "stride ignored when slicing: the patch for output (i, j) starts at (i * stride, j * stride)"
        if _same(got, dense[:, :, ::stride, : want.shape[3]]) or _same(got, dense[:, :, : want.shape[2], ::stride]):
            return ("stride applied along one axis only: the patch for output (i, j) starts at row i * stride "
                    "AND column j * stride")
        if got.shape != want.shape:
            return f"with stride={stride} the output shape is {got.shape}, expected {want.shape}"
        return f"right with stride 1, wrong with stride={stride}: check where each patch starts"
    return None


# ---- added for notebooks 06-07

def _describe(value):
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        shape = "x".join(str(n) for n in np.shape(value))
        return f"<{shape} array of {to_numpy(value).dtype}>"
    return _short(value, 60)


def call_conv(func, *args, name=None, style=None, **kwargs):
    """Call a student's convolution and return its result as a float64 array.

    An error, a missing result or a result that is not numbers becomes a
    readable failure naming the call; with ``style`` (as in ``diagnose_conv2d``)
    the failure also carries the probes' diagnosis.
    """
    name = name or getattr(func, "__name__", "your function")
    call = f"{name}(" + ", ".join([_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()]) + ")"
    got = _result_of(func, name, call, lambda: func(*args, **kwargs),
                     (lambda: (None, diagnose_conv2d(func, style))) if style else None)
    if got is None:
        _fail(f"{call} returned nothing.", "an array", None, hint="did you forget `return output`?")
    try:
        result = to_numpy(got).astype(np.float64)
    except (TypeError, ValueError):
        _fail(f"{call} must return an array of numbers.", "a NumPy array", f"{type(got).__name__}: {_short(got)}")
    return result


def check_value_error(func, name, why, hint=None):
    """``func()`` must raise ValueError with a non-empty message; ``why`` says what is wrong with the call."""
    error = check_raises(func, ValueError, name, hint=hint or f"{why}: raise ValueError('...') saying so")
    check(str(error).strip() != "",
          f"{name} raised ValueError without a message. Say what is wrong ({why}), e.g. raise ValueError('...').")
    return error


def check_conv_property(got, want, name, atol, hint=None, func=None, style="full"):
    """Two results that a property of convolution says are equal (``check_array`` within ``atol``).

    With ``func``, a failure also carries ``diagnose_conv2d(func, style)`` as the likely mistake.
    """
    try:
        check_array(got, want, name, atol=atol, hint=hint)
    except CheckFailure as failure:
        diagnosis = diagnose_conv2d(func, style) if func is not None else None
        raise CheckFailure(str(failure) + (f"\n  likely mistake: {diagnosis}" if diagnosis else "")) from None
