"""Checks of PyTorch layers: an ``nn.Conv2d``'s settings and weights, and the feature maps it gives."""
import numpy as np

from .basic import check_array, check_shape, check_type, to_numpy
from .failures import fail


def check_conv_layer(layer, name, *, in_channels, out_channels, kernel_size, padding=0, stride=1, bias=True):
    """``layer`` must be an ``nn.Conv2d`` with the settings given as keywords; names the first that differs."""
    import torch.nn as nn
    check_type(layer, nn.Conv2d, name, hint="create it with nn.Conv2d(in_channels, out_channels, kernel_size, ...)")

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    wanted = [("in_channels", in_channels, layer.in_channels), ("out_channels", out_channels, layer.out_channels),
              ("kernel_size", pair(kernel_size), tuple(layer.kernel_size)),
              ("stride", pair(stride), tuple(layer.stride)),
              ("padding", pair(padding), layer.padding if isinstance(layer.padding, str) else tuple(layer.padding))]
    for setting, want, have in wanted:
        if want != have:
            fail(f"{name}.{setting} is not right.", want, have,
                 hint=f"pass {setting}={want[0] if isinstance(want, tuple) else want} to nn.Conv2d")
    if bias != (layer.bias is not None):
        fail(f"{name} {'needs' if bias else 'must not have'} a bias.", f"bias={bias}",
             f"bias={layer.bias is not None}", hint=f"pass bias={bias} to nn.Conv2d")


def _looks_untouched(filter_weights, kernels):
    """Whether a filter still looks like nn.Conv2d's random start: no expected kernel (nor its transpose,
    flip or negative), every weight within the default initial range |w| <= 1/sqrt(fan_in), and no
    structure (no zero, no two weights equal), where the kernels this course loads have zeros or
    repeated weights."""
    flat = filter_weights.ravel()
    bound = 1.0 / np.sqrt(filter_weights.size)  # fan_in = in_channels * kH * kW, the weights of one filter
    if flat.size < 2 or not np.all(np.abs(flat) <= bound * (1 + 1e-6)):
        return False
    if np.any(np.abs(flat) <= 1e-7) or np.min(np.diff(np.sort(flat))) <= 1e-7:
        return False
    for kernel in kernels:
        for known in (kernel, np.swapaxes(kernel, -1, -2), kernel[..., ::-1, ::-1]):
            if np.allclose(filter_weights, known, rtol=1e-6, atol=1e-6) \
                    or np.allclose(filter_weights, -known, rtol=1e-6, atol=1e-6):
                return False
    return True


def _untouched_mistake(weight, kernels, o):
    """What to say when filter ``o`` still holds nn.Conv2d's random starting weights, or None."""
    if not _looks_untouched(weight[o], kernels):
        return None
    count = kernels.shape[0]
    untouched = [k for k in range(count) if _looks_untouched(weight[k], kernels)]
    if len(untouched) == count:
        return (("the weights are still" if count == 1 else "every filter still holds") + " nn.Conv2d's random "
                "starting weights: no kernel was copied into this layer; copy " + ("it" if count == 1 else "them")
                + " in inside torch.no_grad(), after creating the layer (and do not create it again afterwards)")
    right = [k for k in range(count) if np.allclose(weight[k], kernels[k], rtol=1e-6, atol=1e-6)]
    if len(right) + len(untouched) == count:
        which = (f"filter {o}" if len(untouched) == 1 else "filters " + ", ".join(map(str, untouched)))
        return (f"{which} still {'holds' if len(untouched) == 1 else 'hold'} nn.Conv2d's random starting "
                f"weights: the loop did not reach {'it' if len(untouched) == 1 else 'them'}; copy kernel o "
                f"into weight[o] for every o from 0 to {count - 1}")
    return f"filter {o} still holds nn.Conv2d's random starting weights: nothing was copied into it"


def check_conv_weight(layer, kernels, name):
    """``layer.weight`` (C_out, C_in, kH, kW) must hold ``kernels`` (same shape), naming the wrong filter.

    A filter that equals another expected filter (wrong order), its transpose
    or its flip is reported as such, and so is one that still looks like
    nn.Conv2d's random starting weights (see ``_looks_untouched``).
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
        else:
            mistake = _untouched_mistake(weight, kernels, o)
        check_array(got, want, f"{name}.weight[{o}]", atol=1e-6, rtol=1e-6,
                    hint=mistake or ("copy the kernel in with torch.no_grad(): "
                                     "layer.weight[o, 0] = torch.tensor(kernel)"),
                    index_names=("c", "m", "n"))


def check_channels(got, expected, name, *, atol=0.0, labels=None):
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
