"""The check of a student's batched, multi-channel convolution ``func(x, weight, bias=None, stride=1, padding=0)``."""
import numpy as np

from . import hooks
from .basic import check_array, to_numpy
from .batch_diagnoses import diagnose_conv2d_batch
from .calls import check_result
from .single_channel import shape_line
from .diagnoses import GENERIC_SHAPE
from .failures import CheckFailure, fail_explained, result_of
from .references import _batch_reference, compute_device, conv_atol, precision_of, reference_name


def check_conv2d_batch(func, x, weight, bias=None, *, name=None, padding=0, stride=1, device=None, hint=None,
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
    got = result_of(func, name, call, lambda: func(x, weight, bias, stride=stride, padding=padding),
                    lambda: (None, diagnose_conv2d_batch(func, device=device) if diagnose else hint))
    x0, w0 = before["x"][1], before["weight"][1]
    b0 = before["bias"][1] if "bias" in before else None
    expected = _batch_reference(x0, w0, b0, padding=padding, stride=stride, device=device)
    precision = precision_of(x0, w0, b0)
    check_result(got, call, before, expected)
    atol = conv_atol(x0, w0, b0, padding=padding, stride=stride, dtype=precision, device=device)
    try:
        check_array(got, expected, call, atol=atol, index_names=("n", "c", "i", "j"))
    except CheckFailure as failure:
        diagnosis = diagnose_conv2d_batch(func, device=device) if diagnose else None
        if (got.ndim == 4 and got.shape[2:] != expected.shape[2:]
                and (diagnosis is None or diagnosis.startswith(GENERIC_SHAPE))):
            diagnosis = "height and width: " + shape_line(got.shape[2:], expected.shape[2:], np.shape(x0)[2:],
                                                          np.shape(w0)[2:], padding, stride)
        bound = hooks.package.tolerance(precision, device, np.prod(np.shape(w0)[1:]))
        fail_explained(failure, diagnosis, hint,
                       f"reference: {reference_name(device)}; tolerance {bound:g} x sum|x*w| for {precision} inputs")
    return to_numpy(got)
