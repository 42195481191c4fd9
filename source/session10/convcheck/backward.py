"""Checks of the going-further backward pass: ``conv2d_backward`` and ``numerical_gradient``.

The reference gradients come from ``torch.autograd`` at check time (float64, on the GPU where there is
one); the package holds no answers.
"""
import numpy as np

from . import hooks
from .basic import check_array, check_shape, to_numpy
from .calls import check_result, describe, same
from .failures import CheckFailure, fail, fail_explained, result_of
from .references import compute_device, precision_of

PARTS = ("dx", "dweight", "dbias")
INDEX_NAMES = {"dx": ("n", "c", "i", "j"), "dweight": ("o", "c", "m", "q"), "dbias": ("o",)}


def _backward_reference(dout, x, weight, *, padding=0, stride=1, device=None):
    """(dx, dweight, dbias) of ``sum(conv2d(x, weight, bias) * dout)`` by torch.autograd, in float64.
    Private: a student's function that calls it runs a library convolution and earns nothing."""
    import torch
    import torch.nn.functional as F
    device = device or compute_device()
    tensors = [torch.tensor(np.array(a, dtype=np.float64), device=device, requires_grad=True)
               for a in (x, weight, np.zeros(np.shape(weight)[0]))]
    out = F.conv2d(*tensors, stride=stride, padding=padding)
    out.backward(torch.tensor(np.asarray(dout, dtype=np.float64), device=device))
    return tuple(t.grad.detach().cpu().numpy() for t in tensors)


def _backward_atol(dout, x, weight, padding, stride, device, precision):
    """Per-element bounds: the tolerance times the same gradients of the absolute values (+1)."""
    bounds = _backward_reference(np.abs(to_numpy(dout)), np.abs(to_numpy(x)), np.abs(to_numpy(weight)),
                                 padding=padding, stride=stride, device=device)
    n_images, c_out, out_h, out_w = np.shape(dout)
    k_h, k_w = np.shape(weight)[2:]
    terms = {"dx": c_out * k_h * k_w, "dweight": n_images * out_h * out_w, "dbias": n_images * out_h * out_w}   # sums
    return {part: hooks.package.tolerance(precision, device, terms[part]) * (bound + 1.0)
            for part, bound in zip(PARTS, bounds)}


def diagnose_conv2d_backward(got, dout, x, weight, padding, stride, device):
    """The likely mistake behind a wrong (dx, dweight, dbias), or None: each named only where its
    prediction matches what the student's function returned."""
    def reference(**changed):
        inputs = dict(dout=dout, x=x, weight=weight) | changed
        return _backward_reference(inputs["dout"], inputs["x"], inputs["weight"], padding=padding, stride=stride,
                                   device=device)

    right = reference()
    dx, dweight, dbias = got
    if same(dx, reference(weight=np.asarray(weight)[:, :, ::-1, ::-1])[0]) and not same(dx, right[0]):
        return ("dx slides the kernel without turning it: the gradient with respect to the input is a true "
                "convolution of dout with the kernel (turned by 180 degrees), not a cross-correlation")
    if same(dx, -right[0]) or same(dweight, -right[1]):
        return "a sign: the gradient of sum(out * dout) has the sign of dout itself (nothing is subtracted)"
    if np.shape(x)[0] > 1 and (same(dweight, reference(dout=np.asarray(dout)[:1], x=np.asarray(x)[:1])[1]) or
                               same(dbias, np.asarray(dout, dtype=np.float64)[:1].sum(axis=(0, 2, 3)))):
        return "only the first image counts: add the gradients of the weights and the bias over the whole batch"
    if stride > 1:   # each output at (i, j) instead of (i * stride, j * stride): stride-1 loops over the same dout
        rows, cols = (np.shape(x)[axis] + 2 * padding - np.shape(weight)[axis] + 1 for axis in (2, 3))
        spread = np.zeros(np.shape(dout)[:2] + (rows, cols))
        spread[:, :, :np.shape(dout)[2], :np.shape(dout)[3]] = dout
        unstrided = _backward_reference(spread, x, weight, padding=padding, stride=1, device=device)
        if same(dx, unstrided[0]) or same(dweight, unstrided[1]):
            return (f"the stride is left out: output (i, j) looked at the patch that starts at row i * {stride} and "
                    f"column j * {stride}, so that is where its share of the gradient goes")
    if any(same(dx, _assigned_dx(dout, weight, np.shape(x), padding, stride, last_only))
           for last_only in (False, True)) and not same(dx, right[0]):
        return ("dx is assigned (=) where it must be added (+=): windows overlap, so a pixel's gradient is the sum "
                "of the shares of every output that looked at it")
    count = np.prod(np.shape(dout)) / np.shape(dout)[1]
    if same(dbias, right[2] / count) or same(dweight, right[1] / count):
        return "a mean where the gradient is a sum: each output position adds its own share"
    return None


def _assigned_dx(dout, weight, x_shape, padding, stride, last_only):
    """dx from loops over the output positions (i, j) that assign each window's share instead of adding it
    (``last_only``: an outer loop over the output channels, so the last channel's shares are what is left)."""
    dout, weight = np.asarray(dout, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    if last_only:
        dout, weight = dout[:, -1:], weight[-1:]
    (k_h, k_w), (height, width) = weight.shape[2:], x_shape[2:]
    padded = np.zeros(tuple(x_shape[:2]) + (height + 2 * padding, width + 2 * padding))
    for i, j in np.ndindex(*dout.shape[2:]):
        padded[:, :, i * stride:i * stride + k_h, j * stride:j * stride + k_w] = \
            np.einsum("no,ockl->nckl", dout[:, :, i, j], weight)
    return padded[:, :, padding:padding + height, padding:padding + width]


def check_conv2d_backward(func, dout, x, weight, bias=None, *, name=None, padding=0, stride=1, device=None):
    """Compare ``func(dout, x, weight, bias, stride=, padding=)`` -> (dx, dweight, dbias) with torch.autograd."""
    device = device or compute_device()
    name = name or getattr(func, "__name__", "conv2d_backward")
    call = (f"{name}(dout {describe(dout)}, x {describe(x)}, weight {describe(weight)}, "
            f"bias={'None' if bias is None else describe(bias)}, stride={stride}, padding={padding})")
    before = {label: (value, np.array(value, copy=True)) for label, value in
              (("dout", dout), ("x", x), ("weight", weight), ("bias", bias)) if value is not None}
    got = result_of(func, name, call, lambda: func(dout, x, weight, bias, stride=stride, padding=padding),
                    expected="(dx, dweight, dbias)")
    if not isinstance(got, tuple | list) or len(got) != 3:
        fail(f"{call} must return three arrays.", "a tuple (dx, dweight, dbias)", describe(got),
             hint="end with `return dx, dweight, dbias`")
    dout0, x0, w0 = before["dout"][1], before["x"][1], before["weight"][1]
    expected = _backward_reference(dout0, x0, w0, padding=padding, stride=stride, device=device)
    precision = precision_of(dout0, x0, w0)
    atol = _backward_atol(dout0, x0, w0, padding, stride, device, precision)
    shape_hints = {"dx": "dx has x's shape: where you padded x, drop the padding again (dx_padded[:, :, p:p + H, "
                         "p:p + W])",
                   "dweight": "dweight has weight's shape: add over the batch and the output positions",
                   "dbias": "dbias has one value per filter: dout.sum(axis=(0, 2, 3))"}
    if padding == 0 and np.size(got[0]) == 0:
        shape_hints["dx"] = ("with padding 0 a crop dx_padded[:, :, p:-p, p:-p] is empty (-0 is 0, so the slice "
                             "ends where it starts): crop with dx_padded[:, :, p:p + H, p:p + W], which works for "
                             "every p")
    for part, value, want in zip(PARTS, got, expected):
        check_result(value, f"{call}'s {part}", before, want)
        check_shape(value, want.shape, f"{call}'s {part}", hint=shape_hints[part])
    for part, value, want in zip(PARTS, got, expected):
        try:
            check_array(value, want, f"{call}'s {part}", atol=atol[part], index_names=INDEX_NAMES[part])
        except CheckFailure as failure:
            diagnosis = diagnose_conv2d_backward([to_numpy(v) for v in got], dout0, x0, w0, padding, stride, device)
            hint = {"dx": "dx[n, c] adds dout[n, o] times weight[o, c] placed back where each output looked: a full "
                          "true convolution of dout with the kernel (spread out by the stride), cropped by the padding",
                    "dweight": "dweight[o, c] is the cross-correlation of the padded x[n, c] with dout[n, o] (taken "
                               "every stride pixels), added over the batch",
                    "dbias": "dbias[o] is dout[:, o] added over the batch and every output position"}[part]
            fail_explained(failure, diagnosis, hint,
                           f"reference: torch.autograd on {device}; tolerance "
                           f"{hooks.package.tolerance(precision, device):g} x the same gradients of |dout|, |x|, "
                           f"|weight| for {precision} inputs")
    return tuple(to_numpy(v) for v in got)


def check_numerical_gradient(func, f, x, *, h, name=None, f_name=None):
    """``func(f, x, h=h)`` must return the central-difference gradient of the scalar function ``f`` at ``x``,
    ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every element i, as a float array shaped like ``x``.

    The expected values are those differences, computed here with the same ``h`` (at a large ``h`` they
    differ from the exact gradient, so only central differences pass)."""
    name = name or getattr(func, "__name__", "numerical_gradient")
    f_name = f_name or getattr(f, "__name__", "f")
    call = f"{name}({f_name}, x {describe(x)}, h={h:g})"
    x0 = np.array(x, copy=True)
    expected, forward, backward = _differences(f, x0, h)
    got = result_of(func, name, call, lambda: func(f, x, h=h), expected="an array shaped like x")
    check_result(got, call, {"x": (x, x0)}, expected)
    check_shape(got, np.shape(x0), call, hint="one partial derivative per element of x: np.zeros(x.shape)")
    try:
        names = ("i", "j")[:x0.ndim] if 0 < x0.ndim <= 2 else None
        check_array(got, expected, call, atol=1e-7, rtol=1e-7, index_names=names)
    except CheckFailure as failure:
        got = to_numpy(got).astype(np.float64)
        mistake = next((text for predicted, text in (
            (forward, "a one-sided (forward) difference (f(x + h) - f(x)) / h: its error shrinks only like h"),
            (backward, "a one-sided (backward) difference (f(x) - f(x - h)) / h"),
            (2 * expected, "the central difference divided by h instead of 2h"),
            (expected / 2, "divided by 4h: the step from x - h to x + h is 2h"),
            (_differences(f, x0, 1e-6)[0], "the derivative itself (worked out by hand, or at a step of your own), "
                                           "not the central difference at the step h the call gives"),
            *((_not_put_back(f, x0, h, left), f"each changed element was left at x {left} h, not put back: every "
                                               "later difference starts from a changed x; restore x[i] after its two "
                                               "calls to f") for left in ("-", "+")),
        ) if _close(got, predicted)), None)
        fail_explained(failure, mistake, "change one element at a time, by +h and by -h, from the same x",
                       f"reference: the central differences of {f_name} at h={h:g}, in float64")
    return to_numpy(got)


def _close(got, predicted):
    return got.shape == predicted.shape and np.allclose(got, predicted, rtol=1e-6, atol=1e-7)


def _not_put_back(f, x, h, left):
    """Central differences where each element stays where its second step (``left``: "-" or "+") left it."""
    flat = x.astype(np.float64).ravel()
    gradient = np.zeros_like(flat)
    for i, kept in enumerate(flat.copy()):
        steps = (kept + h, kept - h) if left == "-" else (kept - h, kept + h)
        values = []
        for value in steps:
            flat[i] = value
            values.append(float(f(flat.reshape(x.shape))))
        gradient[i] = (values[0] - values[1]) / (2 * h) * (1 if left == "-" else -1)
    return gradient.reshape(x.shape)


def _differences(f, x, h):
    """The central, forward and backward differences of ``f`` at ``x`` (float64), each shaped like ``x``."""
    flat = x.astype(np.float64).ravel()
    base = float(f(flat.reshape(x.shape)))
    central, forward, backward = (np.zeros_like(flat) for _ in range(3))
    for index in range(flat.size):
        step = np.zeros_like(flat)
        step[index] = h
        up, down = float(f((flat + step).reshape(x.shape))), float(f((flat - step).reshape(x.shape)))
        central[index], forward[index], backward[index] = (up - down) / (2 * h), (up - base) / h, (base - down) / h
    return tuple(d.reshape(x.shape) for d in (central, forward, backward))
