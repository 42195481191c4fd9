"""Calling a student's convolution, and the contract every result keeps before its values are compared."""
import numpy as np

from . import hooks
from .basic import to_numpy
from .failures import fail, fail_returned_nothing, short


def call_in_style(func, style, image, kernel, padding, stride, copy=True):
    """Call ``func`` as ``style`` says; probes pass copies, so a function that changes its inputs
    cannot change what it is compared with."""
    if copy:
        image, kernel = np.array(image, copy=True), np.array(kernel, copy=True)
    if style == "conv2d":
        return func(image, kernel)
    if style == "padded":
        return func(image, kernel, padding=padding)
    return func(image, kernel, padding=padding, stride=stride)


def same(got, expected):
    """Whether ``got`` is ``expected`` to 1e-9 (a probe's match, not a graded comparison)."""
    try:
        got = to_numpy(got).astype(np.float64)
    except (TypeError, ValueError):
        return False
    return got.shape == expected.shape and np.allclose(got, expected, rtol=1e-9, atol=1e-9)


def describe(value):
    """An argument as a call's text shows it: arrays by shape and dtype."""
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        shape = "x".join(str(n) for n in np.shape(value))
        return f"<{shape} array of {to_numpy(value).dtype}>"
    return short(value, 60)


def _left_by_call(value):
    """What the student's code left in the argument ``value``: ``value`` itself here. At grading the
    call ran on the kernel's copy, and the grader puts its own hook here (``hooks``)."""
    return value


def _unchanged(now, before):
    try:
        now = hooks.package._left_by_call(now)
        return np.array_equal(to_numpy(now), before, equal_nan=np.issubdtype(before.dtype, np.inexact))
    except (TypeError, ValueError):
        return False


def check_result(got, call, inputs, expected):
    """The contract every convolution keeps, checked before its values.

    ``inputs`` maps each argument's name to (the object passed, a copy made before the call).
    The result is a NumPy float array, float64 when every float input is float64, and the
    inputs are left as they were.
    """
    if got is None:
        fail_returned_nothing(call, "an array")
    if not isinstance(got, np.ndarray):
        kind = type(got).__name__
        hint = ("return a NumPy array, e.g. build the output with np.zeros and return it"
                if not kind == "Tensor" else "return a NumPy array (compute with NumPy, not torch)")
        fail(f"{call} must return a NumPy array.", "numpy.ndarray", f"{kind}: {short(got)}", hint=hint)
    for label, (now, before) in inputs.items():
        if not _unchanged(now, before):
            fail(f"{call} changed its argument `{label}` in place.", f"{label} left as it was",
                 f"{label} changed by the call",
                 mistake="writing into the caller's array (kernel[...] = ..., image += ..., np.copyto, "
                         "a flip or a pad done in place)",
                 hint=f"work on a copy: {label} = np.array({label}, dtype=float) makes a new array")
    if not np.issubdtype(got.dtype, np.floating):
        truncated = expected is not None and not (got.shape == np.shape(expected)
                                                  and np.allclose(got.astype(np.float64), expected))
        fail(f"{call} returned an array of {got.dtype}.", "a float array", f"dtype {got.dtype}",
             mistake="integer truncation: an integer output cannot hold fractional results" if truncated else None,
             hint="make the result a float array: convert the inputs with np.asarray(..., dtype=float), or create "
                  "the output with np.zeros(shape) (float64), not np.zeros_like(image), "
                  "an integer array for an integer image")
    floats = [before.dtype for _, before in inputs.values() if np.issubdtype(before.dtype, np.floating)]
    if floats and all(d.itemsize == 8 for d in floats) and got.dtype.itemsize < 8:
        fail(f"{call} returned {got.dtype} for float64 inputs.", "float64", str(got.dtype),
             mistake="precision dropped: float64 inputs must give a float64 result",
             hint="keep the inputs' precision: np.zeros((oH, oW)) is float64; do not cast to np.float32")
