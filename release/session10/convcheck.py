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
    "check_no_library_conv", "to_numpy", "NUMPY", "rng",
]

NUMPY = "numpy"  # as a check's device: the reference convolution by NumPy in float64, without torch
GRADING_SEED = None  # set by the grader: a test's random inputs then differ for every student and course


def rng(seed):
    """The random generator of a test's inputs: ``np.random.default_rng(seed)``; at grading, one seeded
    from the grader's own secret too, so the inputs cannot be known in advance (a regrade repeats them)."""
    return np.random.default_rng(seed if GRADING_SEED is None else [GRADING_SEED, seed])


class CheckFailure(AssertionError):
    """A test failed; the message is meant for the student."""


def _fail(what, expected, got, where=None, hint=None):
    lines = [what, f"  expected: {expected}", f"  got:      {got}"]
    if where:
        lines.append(f"  where:    {where}")
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
    summary = (f"{int(wrong.sum())} of {wrong.size} elements are wrong; largest error "
               f"{finite.max() if finite.size else float('nan'):.3g}")
    if np.any(bound > 0):
        summary += f"; tolerance at that element {bound[first]:.3g}"
    _fail(f"{name}: {summary}.", _short(expected[first].item()), _short(got_array[first].item()),
          where, hint)


def check_raises(func, exception, name, hint=None):
    """``func()`` must raise ``exception``; returns the exception so its message can be checked."""
    try:
        result = func()
    except exception as error:
        return error
    except Exception as error:  # noqa: BLE001 - any other error is the student's bug to see
        _fail(f"{name} raised the wrong kind of error.", exception.__name__,
              f"{type(error).__name__}: {error}", hint=hint)
    _fail(f"{name} did not raise an error.", exception.__name__, f"returned {_short(result)}", hint=hint)


# ---------------------------------------------------------------- devices and tolerances

def compute_device():
    """``torch.device('cuda')`` when a GPU is available, else the CPU."""
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tolerance(dtype, device=None):
    """Relative error allowed per unit of ``sum(|image patch| * |kernel|)``.

    float64 sums agree to about 1e-15 of that magnitude; the 1e-10 allowed here
    only absorbs summation order. float32 keeps about 7 digits on the CPU. On a
    GPU, float32 convolutions may run in TF32 (10-bit mantissa), which costs
    up to about 1e-3 of the magnitude, so the bound there is wider.
    """
    dtype = np.dtype(str(dtype).replace("torch.", "")) if type(dtype).__module__.startswith("torch") else np.dtype(dtype)
    if dtype == np.float64:
        return 1e-10
    on_gpu = device is not None and str(device).startswith("cuda")
    return 4e-3 if on_gpu else 1e-5


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


def _call(func, style, image, kernel, padding, stride):
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
        return f"output shape {got.shape} does not follow (H + 2p - k) // s + 1 = {expected_shape}"
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
            if np.issubdtype(got_int.dtype, np.integer) or _same(np.trunc(ref(int_image, blur)), got_int.astype(float)) \
                    or _same(np.floor(ref(int_image, blur)), got_int.astype(float)):
                return ("integer truncation: on an integer image the output must still be a float array "
                        "(create it with dtype float, not zeros_like(image))")
            return "wrong on an integer image with a fractional kernel"
        return None
    if _same(got, ref(image, kernel[::-1, ::-1])):
        return "flipped kernel: this is true convolution; deep learning's 'convolution' is cross-correlation, no flip"
    square_diagnosis = _diagnose_square(func, style, image, padding, stride, device)
    if square_diagnosis:
        return square_diagnosis
    if padding:
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
    if report_right and _same(got_square, ref(img, square)):
        return ("right for a square image and kernel, wrong for a 7x9 image with a 2x3 kernel: "
                "keep rows (H, kH = shape[0]) and columns (W, kW = shape[1]) apart")
    return None


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
            return f"with stride={stride} the output shape is {got.shape}, expected {want.shape}"
        return f"right with stride 1, wrong with stride={stride}: check the patch's top-left corner"
    return None


def _conv_atol(image, kernel, padding, stride, dtype, device):
    magnitude = conv2d_reference(np.abs(image), np.abs(kernel), padding, stride, device)
    return tolerance(dtype, device) * (magnitude + 1.0)


def check_conv2d(func, image, kernel, padding=0, stride=1, style="full", name=None, expected=None,
                 device=None, reference_dtype=np.float64):
    """Compare ``func`` with torch's convolution (or with a hand-calculated ``expected``).

    On a mismatch the message names the first wrong element, gives both values,
    states the tolerance and the largest error, and adds the diagnosis from
    ``diagnose_conv2d``.
    """
    device = device or compute_device()
    name = name or getattr(func, "__name__", "conv")
    shape = np.shape(image)
    call = f"{name}(image {shape[0]}x{shape[1]}, kernel {np.shape(kernel)[0]}x{np.shape(kernel)[1]}" + \
        (f", padding={padding}" if style != "conv2d" else "") + (f", stride={stride}" if style == "full" else "") + ")"
    try:
        got = _call(func, style, image, kernel, padding, stride)
    except CheckFailure:
        raise
    except Exception as error:  # noqa: BLE001 - turned into a readable failure
        _fail(f"{call} raised an error.", "an array", f"{type(error).__name__}: {error}",
              hint=diagnose_conv2d(func, style, device))
    if got is None:
        _fail(f"{call} returned nothing.", "an array", None, hint="did you forget `return output`?")
    if expected is None:
        expected = conv2d_reference(image, kernel, padding, stride, device, reference_dtype)
    floats = [np.dtype(d) for d in (to_numpy(got).dtype, np.asarray(image).dtype, np.asarray(kernel).dtype,
                                    reference_dtype) if np.issubdtype(d, np.floating)]
    dtype = np.float32 if any(d.itemsize < 8 for d in floats) else np.float64  # float32 anywhere: float32 bound
    atol = _conv_atol(image, kernel, padding, stride, dtype, device)
    try:
        check_array(got, expected, call, atol=atol)
    except CheckFailure as failure:
        diagnosis = diagnose_conv2d(func, style, device)
        message = str(failure)
        if diagnosis:
            message += f"\n  likely mistake: {diagnosis}"
        message += (f"\n  (reference: {_reference_name(device)}; "
                    f"tolerance {tolerance(dtype, device):g} x sum|patch*kernel|)")
        raise CheckFailure(message) from None
    return to_numpy(got)


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
        return f"output shape {got.shape}, expected (N, C_out, H_out, W_out) = {want.shape}"
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
    return _diagnose_batch_extra(func, x, w, b, device, got)


def check_conv2d_batch(func, x, weight, bias=None, stride=1, padding=0, device=None, name=None):
    """Compare a batched convolution with ``torch.nn.functional.conv2d``, naming (n, c, i, j)."""
    device = device or compute_device()
    name = name or getattr(func, "__name__", "conv")
    call = (f"{name}(x {tuple(np.shape(x))}, weight {tuple(np.shape(weight))}, "
            f"bias={'None' if bias is None else tuple(np.shape(bias))}, stride={stride}, padding={padding})")
    try:
        got = func(x, weight, bias, stride=stride, padding=padding)
    except Exception as error:  # noqa: BLE001
        _fail(f"{call} raised an error.", "an array", f"{type(error).__name__}: {error}",
              hint=diagnose_conv2d_batch(func, device))
    if got is None:
        _fail(f"{call} returned nothing.", "an array", None, hint="did you forget to return the output?")
    expected = _batch_reference(x, weight, bias, stride, padding, device)
    dtype = to_numpy(got).dtype if np.issubdtype(to_numpy(got).dtype, np.floating) else np.float64
    magnitude = _batch_reference(np.abs(x), np.abs(weight), None if bias is None else np.abs(bias),
                                       stride, padding, device)
    atol = tolerance(dtype, device) * (magnitude + 1.0)
    try:
        check_array(got, expected, call, atol=atol, index_names=("n", "c", "i", "j"))
    except CheckFailure as failure:
        diagnosis = diagnose_conv2d_batch(func, device)
        message = str(failure)
        if diagnosis:
            message += f"\n  likely mistake: {diagnosis}"
        message += f"\n  (reference: {_reference_name(device)}; tolerance {tolerance(dtype, device):g} x sum|x*w|)"
        raise CheckFailure(message) from None
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
                value = at_function(image, kernel, i, j)
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
    try:
        got = func(image, kernel)
    except CheckFailure:
        raise
    except Exception as error:  # noqa: BLE001 - turned into a readable failure
        _fail(f"{call} raised an error.", "an array", f"{type(error).__name__}: {error}")
    if got is None:
        _fail(f"{call} returned nothing.", "an array", None, hint="did you forget the `return`?")
    rotated = np.ascontiguousarray(kernel[::-1, ::-1])
    expected = conv2d_reference(image, rotated, device=device)
    atol = tolerance(np.float64, device) * (conv2d_reference(np.abs(image), np.abs(rotated), device=device) + 1.0)
    try:
        check_array(got, expected, call, atol=atol)
    except CheckFailure as failure:
        message = str(failure)
        try:
            mistake = _orientation_mistake(to_numpy(got).astype(np.float64), image, kernel, device)
        except (TypeError, ValueError):
            mistake = None
        if mistake:
            message += f"\n  likely mistake: {mistake}"
        message += f"\n  (reference: {_reference_name(device)} with the kernel rotated by 180 degrees)"
        raise CheckFailure(message) from None
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


def _diagnose_batch_extra(func, x, w, b, device, got=None):
    """More probes for ``diagnose_conv2d_batch``: called when the probe raised (``got`` None)
    or when its result matched no earlier diagnosis."""
    n, c_in = x.shape[:2]

    def attempt(*args, **kwargs):
        try:
            return to_numpy(func(*args, **kwargs)).astype(np.float64)
        except Exception:  # noqa: BLE001 - a probe that fails tells nothing
            return None

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
    try:
        got = func(*args, **kwargs)
    except CheckFailure:
        raise
    except Exception as error:  # noqa: BLE001 - turned into a readable failure
        _fail(f"{call} raised an error.", "an array", f"{type(error).__name__}: {error}",
              hint=diagnose_conv2d(func, style) if style else None)
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
