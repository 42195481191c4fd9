"""Diagnoses of a wrong batched convolution ``func(x, weight, bias=None, stride=1, padding=0)``."""
import numpy as np

from .basic import to_numpy
from .calls import same
from .diagnoses import GENERIC_SHAPE
from .references import _batch_reference, compute_device


def diagnose_conv2d_batch(func, *, device=None):
    """Probe a batched ``func(x, weight, bias=None, stride=1, padding=0)`` and name the likely mistake."""
    device = device or compute_device()
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)

    def ref(inputs, weight, bias):
        return _batch_reference(inputs, weight, bias, padding=1, device=device)
    want = ref(x, w, b)
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
        if same(got, ref(x, w.transpose(0, 1, 3, 2), b)):
            return ("kernel transposed: weight[o, c, m, n] multiplies x[n, c, row + m, col + n], with m along the "
                    "height (kH = weight.shape[2]) and n along the width (kW = weight.shape[3])")
        if got.shape == want.shape[:2] + tuple(n - 1 for n in want.shape[2:]):
            return ("output one row and one column short: H_out = (H + 2p - kH) // s + 1 (is the + 1 missing, or the "
                    "padding counted on one side only? The padded height is H + 2p)")
        if (got.shape[2:] == tuple(n + 1 for n in want.shape[2:])
                or got.shape[2:] == tuple(n - 2 for n in want.shape[2:])):
            return "off-by-one output size: H_out = (H + 2p - kH) // s + 1"
        if len(got.shape) == 4 and got.shape[:2] == want.shape[:2]:
            for axis, name, rule in ((3, "W_out", "(W + 2p - kW) // s + 1, with the width W = x.shape[3] and "
                                                  "kW = weight.shape[3] (not H or kH)"),
                                     (2, "H_out", "(H + 2p - kH) // s + 1, with the height H = x.shape[2] and "
                                                  "kH = weight.shape[2] (not W or kW)")):
                other = 5 - axis
                if got.shape[other] == want.shape[other] and got.shape[axis] != want.shape[axis]:
                    return (f"{name} is {got.shape[axis]} on a probe where it should be {want.shape[axis]}, while "
                            f"the other side is right: {name} = {rule}")
        return (f"{GENERIC_SHAPE} {got.shape} on a probe batch x {x.shape}, weight {w.shape}, padding 1, where "
                f"(N, C_out, H_out, W_out) is {want.shape}")
    if same(got, ref(x, w, None)):
        return "missing bias: add bias[c_out] to every element of output channel c_out"
    if same(got + 0.0, ref(x, w, b * 3)):
        return "bias added once per input channel: add it once, after summing over channels"
    swapped = np.transpose(w.reshape(3, 4, 3, 2), (1, 0, 2, 3))
    if same(got, ref(x, swapped, b)):
        return "weight axes mixed up: weight is (C_out, C_in, kH, kW), so weight[o, c] pairs output o with input c"
    if same(got, ref(x, w[:, :, ::-1, ::-1], b)):
        return "flipped kernel: cross-correlation does not flip the kernel"
    per_channel = np.stack([ref(x[:, c:c + 1], w[:, c:c + 1], None) for c in range(3)])
    if same(got, per_channel.max(axis=0) + b[None, :, None, None]) or \
            same(got, per_channel[-1] + b[None, :, None, None]) or \
            same(got, per_channel[0] + b[None, :, None, None]):
        return "channels not summed: output channel o is the SUM over input channels c of x[n, c] * weight[o, c]"
    return _batch_value_mistake(got, x, w, b, device) or _diagnose_batch_extra(func, x, w, b, device, got)


def _batch_value_mistake(got, x, w, b, device):
    """A mistake in how each output is computed, for the batched probe (stride 1, padding 1); or None."""
    def ref(weight, bias=None):
        return _batch_reference(x, weight, bias, padding=1, device=device)
    plain, bias = ref(w), b[None, :, None, None]
    right = plain + bias
    first_only = plain.copy()
    first_only[:, 0] += b[0]
    variants = [
        (ref(w[:, :, ::-1, :], b), "kernel flipped upside down (weight[..., ::-1, :]): "
                                   "use the weights as they are, no flip"),
        (ref(w[:, :, :, ::-1], b), "kernel flipped left to right (weight[..., ::-1]): "
                                   "use the weights as they are, no flip"),
        (plain / np.prod(w.shape[1:]) + bias, "divided by the number of weights (np.mean instead of np.sum): "
                                              "each output is the SUM over c, kH and kW of patch * weight[o]"),
        (np.abs(plain) + bias, "absolute value taken: a convolution keeps the sign of the sum (no abs)"),
        (np.abs(right), "absolute value taken: a convolution keeps the sign of the sum (no abs)"),
        (np.maximum(plain, 0) + bias, "negative sums set to 0 (a ReLU inside the layer): "
                                      "nn.Conv2d's forward is linear; the activation is a separate step"),
        (np.maximum(right, 0), "negative outputs set to 0 (a ReLU inside the layer): nn.Conv2d's forward is linear; "
                               "the activation is a separate step"),
        (plain + 2 * bias, "bias added twice: add bias[o] once to output channel o"),
        (plain - bias, "bias subtracted: add bias[o] to output channel o"),
        (first_only, "bias added to the first channel only: bias[o] goes to every element of output channel o"),
    ]
    for before, after, where in ((0, 2, "after the image (bottom and right)"),
                                 (2, 0, "before the image (top and left)")):
        one_sided = np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))
        variants.append((_batch_reference(one_sided, w, b, padding=0, device=device),
                         f"all 2p padding rows and columns put {where}: pad p on every side, "
                         "np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))"))
    for wrong, text in variants:
        if not same(wrong, right) and same(got, wrong):
            return text
    offset = got - right
    if got.shape == right.shape and np.allclose(offset, offset.flat[0]) and not np.isclose(offset.flat[0], 0):
        return f"every output is off by the same {offset.flat[0]:g}: something is added outside the sum"
    return None


def _diagnose_batch_extra(func, x, w, b, device, got=None):
    """More probes for ``diagnose_conv2d_batch``: called when the probe raised (``got`` None)
    or when its result matched no earlier diagnosis."""
    def attempt(*args, **kwargs):
        try:
            return to_numpy(func(*args, **kwargs)).astype(np.float64)
        except Exception:  # noqa: BLE001 - a probe that fails tells nothing
            return None

    def ref(weight, bias, padding=1):
        return _batch_reference(x, weight, bias, padding=padding, device=device)

    square_k = np.random.default_rng(21).standard_normal((4, 3, 3, 3))  # kH == kW: a transposed kernel runs
    got_square = attempt(x, square_k, b, stride=1, padding=1)
    if got_square is not None and not same(got_square, ref(square_k, b)) \
            and same(got_square, ref(square_k.transpose(0, 1, 3, 2), b)):
        return ("kernel transposed: weight[o, c, m, n] multiplies x[n, c, row + m, col + n], with m along the "
                "height (kH = weight.shape[2]) and n along the width (kW = weight.shape[3])")
    square_w = w[:3]  # C_out == C_in == 3: a (C_in, C_out) mix-up no longer fails on the shapes
    if got is None:
        no_bias = attempt(x, w, None, stride=1, padding=1)
        if no_bias is not None and same(no_bias, ref(w, None)):
            return ("bias added along the wrong axis: reshape it to (1, C_out, 1, 1), e.g. "
                    "bias[None, :, None, None], so that it lines up with the channel axis")
        unpadded = attempt(x, w, b, stride=1, padding=0)
        if unpadded is not None and same(unpadded, ref(w, b, padding=0)):
            return ("padding breaks it: pad only the two spatial axes, np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))); "
                    "np.pad(x, p) also pads the batch and channel axes")
    else:
        ref_no_bias = ref(w, None)
        if got.shape == ref_no_bias.shape and len(b) == got.shape[-1] and same(got, ref_no_bias + b):
            return "bias added along the wrong axis: use bias[None, :, None, None] so it follows the channel axis"
        if same(got, np.broadcast_to(ref_no_bias.sum(axis=0, keepdims=True), ref_no_bias.shape)
                + b[None, :, None, None]):
            return "summed over the batch too: each image n has its own output; sum only over c, kH and kW"
        if same(got, np.broadcast_to(ref_no_bias.sum(axis=1, keepdims=True), ref_no_bias.shape)
                + b[None, :, None, None]):
            return ("summed over the output channels too: output channel o uses only its own filter weight[o]; "
                    "sum over c, kH and kW")
        if same(got, ref(w, b)):
            return _diagnose_batch_stride(func, x, w, b, device)
    swapped = attempt(x, square_w, b[:3], stride=1, padding=1)
    if swapped is not None and not same(swapped, ref(square_w, b[:3])) \
            and same(swapped, ref(np.transpose(square_w, (1, 0, 2, 3)), b[:3])):
        return ("weight axes mixed up: weight is (C_out, C_in, kH, kW), so weight[o, c] pairs output channel o "
                "with input channel c (not weight[c, o])")
    return None


def _diagnose_batch_stride(func, x, w, b, device):
    """Probe stride 2 and 3 once stride 1 is right."""
    for stride in (2, 3):
        want = _batch_reference(x, w, b, padding=1, stride=stride, device=device)
        try:
            got = to_numpy(func(x, w, b, stride=stride, padding=1)).astype(np.float64)
        except Exception as error:  # noqa: BLE001
            return f"with stride={stride} it raised {type(error).__name__}: {error}"
        if same(got, want):
            continue
        dense = _batch_reference(x, w, b, padding=1, device=device)
        if got.shape == dense.shape:
            return "stride ignored when computing the output size: use (H + 2p - kH) // stride + 1"
        if got.shape == want.shape and same(got, dense[:, :, : want.shape[2], : want.shape[3]]):
            return "stride ignored when slicing: the patch for output (i, j) starts at (i * stride, j * stride)"
        if same(got, dense[:, :, ::stride, : want.shape[3]]) or same(got, dense[:, :, : want.shape[2], ::stride]):
            return ("stride applied along one axis only: the patch for output (i, j) starts at row i * stride "
                    "AND column j * stride")
        if got.shape != want.shape:
            return f"with stride={stride} the output shape is {got.shape}, expected {want.shape}"
        return f"right with stride 1, wrong with stride={stride}: check where each patch starts"
    return None
