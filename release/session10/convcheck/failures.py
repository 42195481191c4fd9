"""How a check fails: ``CheckFailure``, the one layout of its message, and a student's call that fails.

Every failure has up to four parts after its first line: what was expected, what was got, where (which
element or dimension) and a hint at the likely mistake.
"""
import numpy as np

PACKAGE = __name__.partition(".")[0]
NOT_WRITTEN = "`{name}` is not written yet: replace `raise NotImplementedError(...)` with your code, then run its cell."
FORGOT_RETURN = "did you forget `return`?"  # the hint of every "returned nothing" failure


class CheckFailure(AssertionError):
    """A test failed; the message is meant for the student."""

    def _render_traceback_(self):
        # IPython (and so the Validate dialog) shows these lines instead of a traceback: the
        # diagnosis comes first, and none of this package's frames are shown.
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {first}", *rest]


def fail(what, expected, got, where=None, hint=None, mistake=None):
    lines = [what, f"  expected: {expected}", f"  got:      {got}"]
    if where:
        lines.append(f"  where:    {where}")
    if mistake:
        lines.append(f"  likely mistake: {mistake}")
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailure("\n".join(lines))


def fail_returned_nothing(call, expected, where=None):
    """``call`` gave None where ``expected`` was wanted (``where``: at which position)."""
    fail(f"{call} returned nothing" + (f" at {where}" if where else "") + ".", expected, None, hint=FORGOT_RETURN)


def fail_explained(failure, diagnosis, hint, note):
    """Re-raise a value check's ``failure`` with the likely mistake (else the hint) and a closing note."""
    message = str(failure)
    if diagnosis:
        message += f"\n  likely mistake: {diagnosis}"
    elif hint:
        message += f"\n  hint:     {hint}"
    raise CheckFailure(f"{message}\n  ({note})") from None


def check(condition, message):
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(message)


def check_true(got, name, *, hint=None):
    """``got`` must be ``True`` itself (``name`` says what it is)."""
    if got is not True and got is not np.True_:
        fail(name, True, repr(got), hint=hint)


def short(value, limit=300):
    text = repr(value) if not isinstance(value, np.ndarray) else np.array2string(value, precision=4, threshold=40)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_written(func, fallback, error=None):
    """The one-line failure for a function still holding the release's stub: the function that raised
    (``conv2d`` when ``conv2d_padded`` calls an unwritten ``conv2d``), else ``func`` or the call's name."""
    name, tb = None, getattr(error, "__traceback__", None)
    while tb is not None:  # the innermost named function outside this package
        code = tb.tb_frame.f_code
        if str(tb.tb_frame.f_globals.get("__name__")).partition(".")[0] != PACKAGE \
                and not code.co_name.startswith("<"):
            name = code.co_name
        tb = tb.tb_next
    name = name or getattr(func, "__name__", None)
    if not name or name.startswith("<"):  # a lambda around the call: "conv2d(1-D image, ...)" names it
        name = str(fallback).split("(")[0].strip() or "this function"
    return CheckFailure(NOT_WRITTEN.format(name=name))


def call_student(func, *args, name=None, **kwargs):
    """``func(*args, **kwargs)``; the release's unwritten stub (NotImplementedError) fails with one short line."""
    try:
        return func(*args, **kwargs)
    except NotImplementedError as unwritten:
        raise not_written(func, name or "this function", unwritten) from None


def result_of(func, name, call, invoke, explain=None, expected="an array", hint=None):
    """``invoke()``, which calls the student's ``func``: an unwritten function fails with one line, any
    other error with what it raised (``explain``, called only then, gives the (likely mistake, hint)
    to add, else ``hint`` is given); a CheckFailure from inside (a probe's) passes through."""
    try:
        return invoke()
    except CheckFailure:
        raise
    except NotImplementedError as unwritten:
        raise not_written(func, name, unwritten) from None
    except Exception as error:  # noqa: BLE001 - turned into a readable failure
        mistake, hint = explain() if explain else (None, hint)
        fail(f"{call} raised an error.", expected, f"{type(error).__name__}: {error}", hint=hint, mistake=mistake)
