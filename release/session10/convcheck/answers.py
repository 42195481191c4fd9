"""Checks of answers worked out by hand: numbers, grid entries, sizes, a choice, counts, a small function's values."""
import math
import numbers

import numpy as np

from .basic import check_scalar, to_numpy
from .failures import CheckFailure, fail, fail_returned_nothing, result_of, short


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


def check_hand_value(got, expected, name, *, atol=0.0, hint=None, mistakes=None):
    """A number typed in by hand, equal to ``expected`` within ``atol``.

    Fractions (``fractions.Fraction(10, 9)``) count as numbers. ``mistakes``
    maps known wrong values to what they suggest; when ``got`` is one of them
    (and is not right), its explanation is named as the likely mistake.
    """
    if hasattr(got, "shape") and np.size(to_numpy(got)) == 1 and np.ndim(to_numpy(got)) == 0:
        got = to_numpy(got).item()
    mistake = None
    if _is_number(got) and mistakes:
        tol = max(atol, 1e-9)
        try:
            right = math.isclose(float(got), float(expected), abs_tol=tol)
        except (TypeError, ValueError, OverflowError):
            right = False
        if not right:
            mistake = _known_mistake(got, mistakes, lambda g, w: math.isclose(float(g), float(w), abs_tol=tol))
    check_scalar(got, expected, name, atol=atol, hint=hint, mistake=mistake)


def _grid_mistake(grid, grid_mistakes, atol):
    """The explanation of the first wrong grid in ``grid_mistakes`` that the whole of ``grid`` equals, or None."""
    try:
        got = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    tol = max(atol, 1e-9)
    for wrong, explanation in grid_mistakes or ():
        wrong = np.asarray(wrong, dtype=np.float64)
        if got.shape == wrong.shape and bool(np.all(np.abs(got - wrong) <= tol)):
            return explanation
    return None


def check_entry(grid, expected, name, *, index, atol=0.0, hint=None, mistakes=None, grid_mistakes=None):
    """Element ``index`` (a tuple such as ``(0, 1)``) of a grid typed in by hand.

    The grid may be nested lists or tuples, or an array. A missing element is
    reported as such, not as an IndexError. With ``expected=None`` it only
    checks that the element exists and is a number (a self-check).

    ``mistakes`` maps a wrong value of this element alone to what it suggests. ``grid_mistakes`` holds
    ``(wrong_grid, explanation)`` pairs: a wrong element is explained by one of them only when the
    whole grid equals that wrong grid (one element that happens to agree names nothing); the
    explanation is then the failure's likely mistake.
    """
    index = tuple(index)
    label = name + "".join(f"[{i}]" for i in index)
    value = grid
    try:
        for i in index:
            value = value[i]
    except (IndexError, KeyError, TypeError):
        fail(f"{name} has no element {label}.", f"a grid of numbers with an element at {index}",
             f"{type(grid).__name__}: {short(grid)}",
             hint="write the grid as a list of rows, e.g. [[a, b], [c, d]], with one row per output row")
    if expected is None:
        if not _is_number(value):
            fail(f"{label} should be a single number.", "a number", f"{type(value).__name__}: {short(value)}",
                 hint="type the number itself, e.g. -2, without quotes")
        return
    if grid_mistakes:
        explanation = _grid_mistake(grid, grid_mistakes, atol)
        if explanation is not None:
            try:
                check_hand_value(value, expected, label, atol=atol)
            except CheckFailure as failure:
                raise CheckFailure(f"{failure}\n  likely mistake: {explanation}") from None
            return
    check_hand_value(value, expected, label, atol=atol, hint=hint, mistakes=mistakes)


def _as_tuple(value):
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        return tuple(to_numpy(value).tolist())
    return tuple(value)


def check_int_sequence(got, length, name, *, hint=None):
    """A tuple or list (or torch.Size) of ``length`` whole numbers; returns it as a tuple of ints."""
    if isinstance(got, (str, bytes, dict, set)) or not hasattr(got, "__len__"):
        fail(f"{name} should be a tuple or list of {length} whole numbers.", f"{length} ints",
             f"{type(got).__name__}: {short(got)}", hint=hint)
    values = _as_tuple(got)
    if len(values) != length:
        fail(f"{name} should hold {length} numbers.", f"{length} numbers", f"{len(values)}: {short(got)}", hint=hint)
    for position, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
            fail(f"{name}[{position}] should be a whole number (an int).", "an int such as 5",
                 f"{type(value).__name__}: {short(value)}",
                 hint="write whole numbers without a decimal point or quotes: 5, not 5.0 or '5'")
    return tuple(int(v) for v in values)


def check_sizes(got, expected, name, *, labels=None, hint=None, mistakes=None):
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
    offsets = {a - b for a, b in zip(values, expected)}
    if hint is None and len(expected) > 1 and len(offsets) == 1:
        offset = offsets.pop()
        hint = (f"every number is {abs(offset)} {'more' if offset > 0 else 'less'} than expected: one constant "
                "slip in the formula, the same for every number")
    fail(f"{name}: {len(wrong)} of {len(expected)} numbers are wrong.", expected, values,
         where=f"{label}: expected {expected[position]}, got {values[position]}", hint=hint)


def check_choice(got, expected, name, *, choices, hint=None, mistakes=None):
    """``got`` must be one of the offered strings ``choices`` (case and surrounding spaces ignored).

    With ``expected`` (None: any offered answer), it must be that one; ``mistakes`` maps wrong choices
    to what they suggest.
    """
    def norm(text):
        return " ".join(text.split()).lower()
    offered = {norm(c): c for c in choices}
    if not isinstance(got, str) or norm(got) not in offered:
        fail(f"{name} must be one of the offered answers.", " | ".join(repr(c) for c in choices),
             f"{type(got).__name__}: {short(got)}", hint="copy one of the offered strings, quotes included")
    if expected is not None and norm(got) != norm(expected):
        chosen = offered[norm(got)]
        fail(f"{name} is not right.", repr(expected), repr(chosen), hint=(mistakes or {}).get(chosen, hint))


def _call_text(name, args, kwargs):
    return f"{name}(" + ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]) + ")"


def check_function_values(func, cases, name=None, *, hint=None, mistakes=None, probes=()):
    """Call ``func`` on each case and compare the number it returns.

    ``cases`` holds ``(args, kwargs, expected)`` triples. ``mistakes`` maps a
    description to a function with the same signature that makes that mistake.
    At the first wrong result, a description becomes the hint only when its
    function gives what ``func`` gives on every case (the later ones are called
    too, for this only): two mistakes that agree on one call are told apart.
    ``probes`` holds more ``(args, kwargs, anything)`` triples that are never
    graded: they are called too, only to tell the mistakes apart.
    """
    name = name or getattr(func, "__name__", "your function")
    seen = []
    for index, (args, kwargs, expected) in enumerate(cases):
        call = _call_text(name, args, kwargs)
        got = result_of(func, name, call, lambda: func(*args, **kwargs), expected=expected, hint=hint)
        if got is None:
            fail_returned_nothing(call, expected)
        seen.append((args, kwargs, got))
        mistake = None
        if not (_is_number(got) and got == expected) and mistakes:
            seen += _results_without_failing(func, list(cases[index + 1:]) + list(probes or ()))
            mistake = _mistake_explaining(seen, mistakes)
        check_scalar(got, expected, call, hint=hint, mistake=mistake)


def _results_without_failing(func, cases):
    """``(args, kwargs, result)`` for the cases that return a number; the others are left out."""
    results = []
    for args, kwargs, _ in cases:
        try:
            got = func(*args, **kwargs)
        except Exception:  # noqa: BLE001 - only used to tell mistakes apart; the failing case is reported
            continue
        if _is_number(got):
            results.append((args, kwargs, got))
    return results


def _mistake_explaining(seen, mistakes):
    """The description whose function returns what was seen on every call, or None."""
    for description, wrong in mistakes.items():
        try:
            if all(_is_number(got) and bool(wrong(*args, **kwargs) == got) for args, kwargs, got in seen):
                return description
        except Exception:  # noqa: BLE001 - a mistake function that cannot run explains nothing
            continue
    return None


def check_counts(got, expected, name, *, hint=None):
    """A dict {value: how many times it occurs}, compared with ``expected``; keys compared as numbers."""
    if not isinstance(got, dict):
        fail(f"{name} should be a dict {{value: count}}.", "dict", f"{type(got).__name__}: {short(got)}", hint=hint)
    try:
        counts = {float(k): v for k, v in got.items()}
    except (TypeError, ValueError):
        fail(f"{name}'s keys should be numbers (the values found).", "number keys", short(list(got)), hint=hint)
    want = {float(k): int(v) for k, v in expected.items()}
    missing = sorted(set(want) - set(counts))
    extra = sorted(set(counts) - set(want))
    if missing or extra:
        where = (f"missing keys: {short(missing)}" if missing else "") + \
                ("; " if missing and extra else "") + (f"unexpected keys: {short(extra)}" if extra else "")
        fail(f"{name} does not have the right keys.", short(sorted(want)), short(sorted(counts)), where,
             hint="count only the non-zero values" if 0.0 in extra else hint)
    for key in sorted(want):
        value = counts[key]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)) \
                or int(value) != want[key]:
            fail(f"{name}: the count for value {key:g} is not right.", want[key], short(value),
                 where=f"key {key:g}", hint=hint)
