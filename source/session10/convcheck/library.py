"""Rejecting a library convolution where the exercise is to write one."""
import ast
import contextlib
import inspect
import sys
import textwrap

import numpy as np

from . import hooks
from .failures import CheckFailure, fail

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
    """Fail when ``func`` calls a library convolution: named in its source, or called on ``probe_args``.

    The grader replaces it (``hooks``): it reads the submitted source instead."""
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
        fail(f"{name} must compute the convolution itself.", allowed, "a call to " + ", ".join(found), hint=hint)


def check_no_library_conv(func, name=None):
    """The exercise is to write the loops: reject a call to a library convolution."""
    hooks.package._reject_library_conv(
        func, name, (np.arange(16.0).reshape(4, 4), np.ones((2, 2))), "loops or NumPy slicing only",
        "write the sliding-window loops; a library convolution is what the exercise replaces")


def check_no_library_conv_batch(func, name=None):
    """``check_no_library_conv`` for a batched ``func(x, weight, bias=None, stride=1, padding=0)``."""
    hooks.package._reject_library_conv(
        func, name, (np.arange(50.0).reshape(1, 2, 5, 5), np.ones((3, 2, 2, 2))),
        "loops or NumPy (slicing, einsum, tensordot)",
        "build the output from patches and weights; a library convolution is what the exercise replaces")


def check_no_library_conv_backward(func, name=None):
    """``check_no_library_conv`` for ``func(dout, x, weight, bias=None, stride=1, padding=0)``: neither a library
    convolution nor autograd (which runs one) may compute the gradients."""
    hooks.package._reject_library_conv(
        func, name, (np.ones((1, 3, 4, 4)), np.arange(50.0).reshape(1, 2, 5, 5), np.ones((3, 2, 2, 2)), None),
        "loops or NumPy (slicing, einsum, tensordot)",
        "build each gradient from patches, dout and weights; a library convolution or autograd is what the "
        "exercise replaces")
