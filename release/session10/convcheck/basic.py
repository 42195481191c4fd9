"""Comparisons of plain values: type, number, shape, array, an error raised."""
import fractions
import math
import numbers

import numpy as np

from .failures import CheckFailure, check, fail, not_written, short


def to_numpy(value):
    """A NumPy array from an array, a tensor on any device, or a nested list."""
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# One type policy for every notebook (docs/authoring.md, "Answer types"): a NumPy scalar counts as the
# Python type it stands for, a Fraction wherever a float does, a tuple and a list for each other; a
# bool is not a number unless one is asked for.
_ALSO_ACCEPTED = {int: (np.integer,), float: (np.floating, fractions.Fraction), list: (tuple,), tuple: (list,)}


def accepted_types(types):
    """``types`` (a tuple of types) with what the type policy accepts in their place."""
    return types + tuple(t for wanted in types for t in _ALSO_ACCEPTED.get(wanted, ()))


def check_type(got, types, name, *, hint=None):
    """``got`` must be an instance of ``types`` (a type or tuple of types), under the type policy above."""
    types = types if isinstance(types, tuple) else (types,)
    accepted = accepted_types(types)
    is_bool = isinstance(got, (bool, np.bool_))
    if not isinstance(got, accepted) or (is_bool and not any(t in (bool, np.bool_) for t in accepted)):
        names = " or ".join(t.__name__ for t in types)
        fail(f"{name} has the wrong type.", names, f"{type(got).__name__}: {short(got)}", hint=hint)


def check_scalar(got, expected, name, *, rtol=0.0, atol=0.0, hint=None, mistake=None):
    """A number equal to ``expected``; exact unless a tolerance is given. ``mistake``, when known, names
    what a wrong value suggests."""
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (numbers.Number, np.generic)) \
            or (isinstance(got, np.ndarray) and got.size != 1):
        fail(f"{name} should be a single number.", expected, f"{type(got).__name__}: {short(got)}", hint=hint)
    got_value = complex(got).real if isinstance(got, complex) else float(got)
    if not math.isfinite(got_value) or not math.isclose(got_value, float(expected), rel_tol=rtol, abs_tol=atol):
        tolerance_note = f" (tolerance: relative {rtol:g}, absolute {atol:g})" if (rtol or atol) else ""
        fail(f"{name} is not right{tolerance_note}.", expected, got, hint=None if mistake else hint, mistake=mistake)


def check_dtype(got, dtype, name, *, hint=None):
    """An array (or tensor) of exactly the element type ``dtype``; returns ``got``."""
    got_dtype = getattr(got, "dtype", None)
    if got_dtype is None or str(got_dtype).removeprefix("torch.") != np.dtype(dtype).name:
        fail(f"{name} has the wrong element type.", np.dtype(dtype).name, str(got_dtype), hint=hint)
    return got


def check_shape(got, expected, name, *, hint=None):
    """An array (or tensor) of exactly the shape ``expected``, naming the first wrong dimension."""
    shape = tuple(getattr(got, "shape", np.shape(got)))
    expected = tuple(expected)
    if shape == expected:
        return
    if len(shape) != len(expected):
        where = f"number of dimensions: expected {len(expected)}, got {len(shape)}"
    else:
        dim = next(d for d, (a, b) in enumerate(zip(shape, expected)) if a != b)
        where = f"dimension {dim}: expected {expected[dim]}, got {shape[dim]}"
    fail(f"{name} has the wrong shape.", expected, shape, where, hint)


def check_array(got, expected, name, *, atol=0.0, rtol=0.0, hint=None, index_names=None):
    """Element-wise comparison, naming the first wrong element and the largest error.

    ``atol`` may be an array (a bound per element) as well as a number.
    """
    got_array = to_numpy(got)
    expected = np.asarray(expected)
    check_shape(got_array, expected.shape, name, hint=hint)
    if got_array.dtype == object or not np.issubdtype(got_array.dtype, np.number) and got_array.dtype != bool:
        fail(f"{name} must hold numbers.", "numeric array", f"dtype {got_array.dtype}", hint=hint)
    difference = np.abs(got_array.astype(np.float64) - expected.astype(np.float64))
    try:
        bound = np.broadcast_to(np.asarray(atol, dtype=np.float64) + rtol * np.abs(expected), expected.shape)
    except ValueError:  # a bound per element of the right output: both compared results have another shape
        fail(f"{name}: the results compared have the wrong shape.", np.shape(atol), expected.shape, hint=hint)
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
    pattern = difference_pattern(got_array, expected, wrong)
    if pattern:
        where += f"\n  pattern:  {pattern}"
    fail(f"{name}: {int(wrong.sum())} of {wrong.size} elements are wrong.", short(expected[first].item()),
         short(got_array[first].item()), where, hint)


def difference_pattern(got, expected, wrong):
    """What the wrong elements (``wrong``, a mask) have in common, said plainly, or None: a sign, a factor, an
    offset, values moved by a row or column, a transpose, or only the last row or column, left at 0."""
    got, expected = got.astype(np.float64), expected.astype(np.float64)
    if not (np.all(np.isfinite(got)) and np.any(expected)):
        return None
    tol = 1e-6 * float(np.max(np.abs(expected)))

    def close(a, b):
        return a.shape == b.shape and a.size > 0 and bool(np.all(np.abs(a - b) <= tol + 1e-6 * np.abs(b)))
    if close(got, expected):  # wrong only by less than this pattern's own tolerance
        return None
    if close(got, -expected):
        return "every element has the opposite sign"
    factor = float(np.sum(got * expected) / np.sum(expected * expected))
    if not np.isclose(factor, 1) and close(got, factor * expected):
        return f"every element is {factor:.4g} times the right value"
    offset = float(np.mean(got - expected))
    if close(got, expected + offset):
        return f"every element is off by the same {offset:.4g}"
    if expected.ndim < 2 or min(expected.shape[-2:]) < 3:
        return None
    if expected.shape[-1] == expected.shape[-2] and close(got, np.swapaxes(expected, -1, -2)):
        return "the result is transposed: rows and columns are swapped"
    last = np.zeros(expected.shape[-2:], dtype=bool)
    last[-1, :] = last[:, -1] = True
    if not np.any(wrong & ~last) and np.all(got[wrong] == 0):
        return ("only the last row or column is wrong, and it is 0: "
                "do the loops stop one position early? (n - k + 1 positions: range(n - k + 1))")
    rows, cols = expected.shape[-2:]
    for dr, dc in ((dr, dc) for dr in range(-2, 3) for dc in range(-2, 3) if (dr, dc) != (0, 0)):
        # got[i, j] == expected[i + dr, j + dc] wherever both exist
        g = got[..., max(0, -dr):rows - max(0, dr), max(0, -dc):cols - max(0, dc)]
        e = expected[..., max(0, dr):rows - max(0, -dr), max(0, dc):cols - max(0, -dc)]
        unmoved = expected[..., max(0, -dr):rows - max(0, dr), max(0, -dc):cols - max(0, dc)]
        # the move must explain what staying put does not (a constant or repeating map matches both)
        if g.size * 2 >= got.size and np.any(e) and close(g, e) and not close(g, unmoved):
            moved = ", ".join(name + (f"{d:+d}" if d else "") for name, d in (("i", dr), ("j", dc)))
            return (f"the values are right but in the wrong place: element [i, j] holds the right value of "
                    f"[{moved}] (a window or padding offset)")
    return None


def _close(got, wrong, atol, rtol):
    try:
        got = to_numpy(got).astype(np.float64)
        wrong = np.asarray(to_numpy(wrong), dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if got.shape != wrong.shape:
        return False
    return bool(np.all(np.abs(got - wrong) <= np.max(atol) + rtol * np.abs(wrong)))


def check_array_with_mistakes(got, expected, name, *, mistakes=(), atol=0.0, rtol=0.0, hint=None, index_names=None):
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


def check_raises(func, exception, name, *, hint=None):
    """``func()`` must raise ``exception``; returns the exception so its message can be checked."""
    try:
        result = func()
    except exception as error:
        return error
    except NotImplementedError as unwritten:
        raise not_written(func, name, unwritten) from None
    except Exception as error:  # noqa: BLE001 - any other error is the student's bug to see
        fail(f"{name} raised the wrong kind of error.", exception.__name__,
             f"{type(error).__name__}: {error}", hint=hint)
    fail(f"{name} did not raise an error.", exception.__name__, f"returned {short(result)}", hint=hint)


def check_value_error(func, name, *, why, hint=None):
    """``func()`` must raise ValueError with a non-empty message; ``why`` says what is wrong with the call."""
    error = check_raises(func, ValueError, name, hint=hint or f"{why}: raise ValueError('...') saying so")
    check(str(error).strip() != "",
          f"{name} raised ValueError without a message. Say what is wrong ({why}), e.g. raise ValueError('...').")
    return error
