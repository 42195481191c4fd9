"""The conv2d_padded that notebooks 08 and 09 take from 07: checked there, and the flip charged in 07 only.

A student whose 07 convolution turns the kernel (the true convolution, not the cross-correlation
asked for) loses its points in 07. Notebooks 08 and 09 then grade their own new work as consistent
with the pasted function: ``check_pasted_conv2d`` tells the student and still checks the rest of the
contract, and ``carried_reference`` is what their answers computed with it are compared with.
"""
import numpy as np

from .calls import call_in_style, same
from .contract import check_contract
from .references import NUMPY, conv2d_reference
from .single_channel import check_conv2d

FLIP_NOTICE = ("Note: your conv2d_padded turns the kernel by 180 degrees (a true convolution), but notebook 07 "
               "asks for the cross-correlation that nn.Conv2d computes. That mistake costs points in 07 only: "
               "this notebook grades your answers as computed with your function. Fix it in 07 (exercise 7.1) "
               "and paste it here again.")

# Probes with kernels that no turn maps onto themselves, at both paddings a later notebook uses.
_PROBES = [((6, 7), (3, 3), 0), ((5, 6), (2, 3), 1), ((7, 5), (3, 2), 1)]


def flips_kernel(func):
    """Whether ``func(image, kernel, padding)`` computes the true convolution on every probe.

    False for a function that is right, raises, or is wrong in any other way: only the flip is
    carried forward, so that a function that returns nothing useful never makes answers easier."""
    rng = np.random.default_rng(7)
    for image_shape, kernel_shape, padding in _PROBES:
        image, kernel = rng.standard_normal(image_shape), rng.standard_normal(kernel_shape)
        try:
            got = call_in_style(func, "padded", image, kernel, padding, 1)
            flipped = same(got, conv2d_reference(image, kernel[::-1, ::-1], padding=padding, device=NUMPY))
        except Exception:  # noqa: BLE001 - a function that fails is not the flip; its own check says why
            return False
        if not flipped:
            return False
    return True


def _reference(flipped):
    def reference(image, kernel, **options):
        kernel = np.asarray(kernel)
        return conv2d_reference(image, kernel[::-1, ::-1] if flipped else kernel, **options)
    return reference


def carried_reference(func):
    """``conv2d_reference``, with the kernel turned when the student's pasted ``func`` turns it.

    What a later notebook compares the answers computed with the pasted function against."""
    return _reference(flips_kernel(func))


def check_pasted_conv2d(func, cases, *, device=None, contract_seed=None, name="conv2d_padded", tell=True,
                        passed=None):
    """Check the ``conv2d_padded`` pasted from 07 on ``cases`` ((image, kernel, padding) each), as
    ``check_conv2d`` does, and keep 07's contract when ``contract_seed`` is given.

    A function that turns the kernel is told so (``FLIP_NOTICE``) and checked against the turned
    kernel: its type, shape, inputs and contract are still this notebook's to grade. ``tell=False``
    where the cell has told it already (a hidden part after the visible one). ``passed`` is printed when
    the function is right (after the notice it would contradict it)."""
    flipped = flips_kernel(func)
    if flipped and tell:
        print(FLIP_NOTICE)
    for image, kernel, padding in cases:
        expected = _reference(True)(image, kernel, padding=padding, device=device) if flipped else None
        check_conv2d(func, image, kernel, expected=expected, name=name, padding=padding, style="padded",
                     device=device)
    if contract_seed is not None:
        check_contract(func, name=name, style="padded", seed=contract_seed, flipped=flipped)
    if passed and not flipped:
        print(passed)
