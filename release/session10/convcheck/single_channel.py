"""Checks of a student's single-channel convolution: values against a reference, properties, true convolution."""
import numpy as np

from . import hooks
from .basic import check_array, to_numpy
from .calls import call_in_style, check_result, describe, same
from .diagnoses import GENERIC_SHAPE, diagnose_conv2d, fit_check_mistake
from .failures import CheckFailure, call_student, fail, fail_explained, fail_returned_nothing, result_of, short
from .references import NUMPY, compute_device, conv2d_reference, conv_atol, precision_of, reference_name


def _culprit_line(name, culprits):
    listed = " and ".join(f"`{c}`" for c in culprits)
    return (f"{listed} {'fails its' if len(culprits) == 1 else 'fail their'} own tests too; if {name} calls "
            f"{'it' if len(culprits) == 1 else 'them'}, fix {listed} first and run this test again")


def shape_line(got_shape, expected_shape, image_shape, kernel_shape, padding, stride):
    """The output-size rule, worked for the failing call itself."""
    (H, W), (kH, kW) = image_shape, kernel_shape
    return (f"output shape {tuple(got_shape)} for a {H}x{W} image, a {kH}x{kW} kernel, padding {padding} and "
            f"stride {stride}: rows (H + 2p - kH) // s + 1 = ({H} + {2 * padding} - {kH}) // {stride} + 1 = "
            f"{expected_shape[0]}, columns ({W} + {2 * padding} - {kW}) // {stride} + 1 = {expected_shape[1]}")


def _wrong_helpers(helpers):
    """The names in ``helpers`` ({name: function(image, kernel)}) whose function is wrong on a small probe."""
    image = np.random.default_rng(3).standard_normal((6, 7))
    kernel = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0]])
    wrong = []
    for helper_name, helper in (helpers or {}).items():
        try:
            ok = same(call_in_style(helper, "conv2d", image, kernel, 0, 1),
                      conv2d_reference(image, kernel, device=NUMPY))
        except Exception:  # noqa: BLE001 - a helper that raises is wrong too
            ok = False
        if not ok:
            wrong.append(helper_name)
    return wrong


def _explain_raised(func, style, explain):
    """(likely mistake, hint) for a call that raised: a wrong fit check when the probes show one, else ``explain()``."""
    fit = fit_check_mistake(func, style)
    return (fit, None) if fit else explain()


def check_conv2d(func, image, kernel, *, expected=None, name=None, padding=0, stride=1, style="full", device=None,
                 reference_dtype=np.float64, hint=None, diagnose=True, depends_on=None):
    """Compare ``func`` with torch's convolution (or with a hand-calculated ``expected``).

    The result must keep the contract (``calls.check_result``): a NumPy float array, float64 for
    float64 inputs, inputs unchanged. The reference is computed from copies of the inputs made
    before the call; the tolerance is ``conv_atol`` for the inputs' precision and the reference's device.
    On a mismatch the message names the first wrong element, gives both values, states the
    tolerance and the largest error, and adds the diagnosis from ``diagnose_conv2d`` (or ``hint``).
    ``depends_on`` ({name: function}) names the student's functions this one is meant to reuse
    (``conv2d_padded`` calls ``conv2d``): when one of them is wrong, the message points there instead.
    """
    device = device or compute_device()
    name = name or getattr(func, "__name__", "conv")
    shape = np.shape(image)
    call = f"{name}(image {shape[0]}x{shape[1]}, kernel {np.shape(kernel)[0]}x{np.shape(kernel)[1]}" + \
        (f", padding={padding}" if style != "conv2d" else "") + (f", stride={stride}" if style == "full" else "") + ")"
    image_before, kernel_before = np.array(image, copy=True), np.array(kernel, copy=True)

    def explain():  # (likely mistake, hint): a wrong helper first, else the probes' diagnosis
        culprits = _wrong_helpers(depends_on)
        if culprits:
            # the function's own name, not the test's label ("Exercise 4.1 with padding 0: conv2d_padded")
            return _culprit_line(name.rsplit(": ", 1)[-1], culprits), None
        return None, diagnose_conv2d(func, style=style, device=device) if diagnose else hint

    got = result_of(func, name, call, lambda: call_in_style(func, style, image, kernel, padding, stride, copy=False),
                    lambda: _explain_raised(func, style, explain))
    if expected is None:
        expected = conv2d_reference(image_before, kernel_before, padding=padding, stride=stride, device=device,
                                    dtype=reference_dtype)
    precision = precision_of(image_before, kernel_before, np.zeros(0, reference_dtype))
    check_result(got, call, {"image": (image, image_before), "kernel": (kernel, kernel_before)}, expected)
    atol = conv_atol(image_before, kernel_before, padding=padding, stride=stride, dtype=precision, device=device)
    try:
        check_array(got, expected, call, atol=atol)
    except CheckFailure as failure:
        culprit, diagnosis = explain()
        diagnosis = culprit or (diagnosis if diagnose else None)
        if got.shape != np.shape(expected) and (diagnosis is None or diagnosis.startswith(GENERIC_SHAPE)):
            diagnosis = shape_line(got.shape, np.shape(expected), np.shape(image_before), np.shape(kernel_before),
                                   padding, stride)
        bound = hooks.package.tolerance(precision, device, np.size(kernel_before))
        fail_explained(failure, diagnosis, hint, f"reference: {reference_name(device)}; tolerance "
                       f"{bound:g} x sum|patch*kernel| for {precision} inputs")
    return to_numpy(got)


def call_conv(func, *args, name=None, style=None, **kwargs):
    """Call a student's convolution and return its result as a float64 array.

    An error, a missing result or a result that is not numbers becomes a
    readable failure naming the call; with ``style`` (as in ``diagnose_conv2d``)
    the failure also carries the probes' diagnosis.
    """
    name = name or getattr(func, "__name__", "your function")
    arguments = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    call = f"{_call_of(name)}(" + ", ".join(arguments) + ")"
    got = result_of(func, name, call, lambda: func(*args, **kwargs),
                    (lambda: _explain_raised(func, style, lambda: (None, diagnose_conv2d(func, style=style))))
                    if style else None)
    if got is None:
        fail_returned_nothing(call, "an array")
    try:
        result = to_numpy(got).astype(np.float64)
    except (TypeError, ValueError):
        fail(f"{call} must return an array of numbers.", "a NumPy array", f"{type(got).__name__}: {short(got)}")
    return result


def check_conv_property(got, expected, name, *, atol, hint=None, func=None, style="full"):
    """Two results that a property of convolution says are equal (``check_array`` within ``atol``).

    With ``func``, a failure also carries ``diagnose_conv2d(func, style=style)`` as the likely mistake.
    """
    try:
        check_array(got, expected, name, atol=atol, hint=hint)
    except CheckFailure as failure:
        diagnosis = diagnose_conv2d(func, style=style) if func is not None else None
        raise CheckFailure(str(failure) + (f"\n  likely mistake: {diagnosis}" if diagnosis else "")) from None


def map_of(at_function, name=None):
    """A whole-map function ``(image, kernel) -> array`` from a one-position function.

    ``at_function(image, kernel, i, j)`` computes one output element; the map
    calls it at every valid position (no padding, stride 1). This lets
    ``check_conv2d(..., style="conv2d")`` and ``diagnose_conv2d`` test a
    function that works one element at a time.
    """
    label = name or f"{getattr(at_function, '__name__', 'your function')} at every (i, j)"

    def whole_map(image, kernel):
        rows = np.shape(image)[0] - np.shape(kernel)[0] + 1
        cols = np.shape(image)[1] - np.shape(kernel)[1] + 1
        out = np.empty((max(rows, 0), max(cols, 0)))
        for i in range(rows):
            for j in range(cols):
                value = at_valid_position(at_function, image, kernel, i, j, label=label)
                if value is None:
                    fail_returned_nothing(f"{label}: the function", "a number", where=f"(i={i}, j={j})")
                if np.size(value) != 1:
                    fail(f"{label}: one position must give one number.", "a single number",
                         f"{type(value).__name__} of shape {np.shape(value)} at (i={i}, j={j})",
                         hint="sum the element-wise products over the whole patch: np.sum(patch * kernel)")
                out[i, j] = float(np.asarray(value).reshape(-1)[0])
        return out

    whole_map.__name__ = label
    return whole_map


def at_valid_position(at_function, image, kernel, i, j, *, label=None):
    """``at_function(image, kernel, i, j)`` at a position that is valid: a ValueError there fails, naming the
    wrong position check when one explains where the function refuses; ``label`` names the function in that
    message (default: its own name)."""
    name = getattr(at_function, "__name__", "your function")
    try:
        return call_student(at_function, image, kernel, i, j, name=name)
    except ValueError as error:
        if any(text in str(error) for text in MATRIX_PRODUCT_ERRORS):
            (H, W), (kh, kw) = np.shape(image), np.shape(kernel)
            fail(f"{_call_of(label or name)}(image {H}x{W}, kernel {kh}x{kw}, {i}, {j}) raised an error.", "a number",
                 f"ValueError: {error}", mistake=MATRIX_PRODUCT)
        _fail_refused_position(at_function, label or name, image, kernel, (i, j), error)


def _call_of(label):
    """``label`` ready to take its arguments: a function's name directly, a description after a space."""
    return label if label.isidentifier() else f"{label} "


# what NumPy says when a matrix product meets shapes it cannot multiply, and what it means here
MATRIX_PRODUCT_ERRORS = ("not aligned", "matmul: Input operand")
MATRIX_PRODUCT = ("a matrix product (np.dot or @) of the patch and the kernel: a convolution multiplies them element "
                  "by element (patch * kernel) and then sums all the products")


def at_value_mistake(at_function):
    """What a one-position function's wrong value suggests, tried on a probe, or None: a matrix product."""
    patch = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    kernel = np.array([[0.0, 1.0, 2.0], [1.0, -1.0, 0.0], [3.0, 1.0, 1.0]])
    try:
        got = float(np.asarray(call_student(at_function, patch, kernel, 0, 0, name="probe")).reshape(-1)[0])
    except ValueError as error:
        return MATRIX_PRODUCT if any(text in str(error) for text in MATRIX_PRODUCT_ERRORS) else None
    except Exception:  # noqa: BLE001 - a probe that cannot run names nothing
        return None
    return MATRIX_PRODUCT if np.isclose(got, np.sum(patch @ kernel)) else None


def _refused_positions(at_function, image, kernel):
    """The valid positions (i, j) at which ``at_function`` raises ValueError, with the number of rows and
    columns of positions; None when it raises anything else at a valid position."""
    rows = np.shape(image)[0] - np.shape(kernel)[0] + 1
    cols = np.shape(image)[1] - np.shape(kernel)[1] + 1
    refused = set()
    for i in range(rows):
        for j in range(cols):
            try:
                at_function(np.array(image, copy=True), np.array(kernel, copy=True), i, j)
            except ValueError:
                refused.add((i, j))
            except Exception:  # noqa: BLE001 - another error is another mistake: nothing is named
                return None
    return refused, rows, cols


# Position checks that refuse some valid positions, each as (which valid (i, j) it refuses, given the image's
# H, W and the kernel's kh, kw; what the student is told). On the probes no two refuse the same positions.
_POSITION_CHECKS = (
    (lambda i, j, H, W, kh, kw: i == H - kh or j == W - kw,
     "off by one in the position check: i = H - kh and j = W - kw are valid (the kernel's last row then lands on "
     "the image's last row, its last column on the image's last column) but are refused; allow "
     "0 <= i <= H - kh and 0 <= j <= W - kw (<=, not <)"),
    (lambda i, j, H, W, kh, kw: i == H - kh,
     "off by one in the row check: i = H - kh is valid (the kernel's last row then lands on the image's last row) "
     "but is refused; allow 0 <= i <= H - kh (<=, not <)"),
    (lambda i, j, H, W, kh, kw: j == W - kw,
     "off by one in the column check: j = W - kw is valid (the kernel's last column then lands on the image's last "
     "column) but is refused; allow 0 <= j <= W - kw (<=, not <)"),
    (lambda i, j, H, W, kh, kw: i > W - kh or j > H - kw,
     "the image's sides are swapped in the position check: a row i is limited by the image's height "
     "(i <= H - kh, H = image.shape[0]) and a column j by its width (j <= W - kw, W = image.shape[1])"),
    (lambda i, j, H, W, kh, kw: i > H - kw or j > W - kh,
     "the kernel's sides are swapped in the position check: a row i is limited by the kernel's height "
     "(i <= H - kh, kh = kernel.shape[0]) and a column j by its width (j <= W - kw, kw = kernel.shape[1])"),
)


def _position_check_mistake(at_function, image, kernel):
    """The wrong position check whose prediction is exactly where ``at_function`` refuses valid positions, on
    ``image`` and on a 7x9 probe with a 2x3 and with a 3x2 kernel; else None."""
    probe = np.random.default_rng(10).integers(-4, 5, size=(7, 9)).astype(np.float64)
    wide = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0]])
    cases = [(image, kernel), (probe, wide), (probe, np.ascontiguousarray(wide.T))]
    found = [_refused_positions(at_function, img, ker) for img, ker in cases]
    if any(f is None for f in found):
        return None
    for refuses, text in _POSITION_CHECKS:
        if all(refused == {(i, j) for i in range(rows) for j in range(cols)
                           if refuses(i, j, *np.shape(img), *np.shape(ker))}
               for (refused, rows, cols), (img, ker) in zip(found, cases)):
            return text
    return None


def _fail_refused_position(at_function, label, image, kernel, position, error):
    """Fail: ``at_function`` raised ``error`` (a ValueError) at the valid ``position``; naming the wrong
    position check when one explains where it refuses."""
    try:
        mistake = _position_check_mistake(at_function, image, kernel)
    except Exception:  # noqa: BLE001 - a probe that cannot run names nothing
        mistake = None
    (H, W), (kh, kw), (i, j) = np.shape(image), np.shape(kernel), position
    fail(f"{_call_of(label)}(image {H}x{W}, kernel {kh}x{kw}) raised an error at a valid position.", "a number",
         f"{type(error).__name__}: {error}",
         where=f"(i={i}, j={j}); the valid positions are i in 0..{H - kh}, j in 0..{W - kw}", mistake=mistake,
         hint=None if mistake else "refuse only positions where the kernel sticks out: i > H - kh or j > W - kw "
                                   "(or a negative i or j)")


def _orientation_mistake(got, image, kernel, device):
    """Which wrong orientation of the kernel, or of the image, explains a true-convolution map ``got``."""
    def cross(k):
        return conv2d_reference(image, np.ascontiguousarray(k), device=device)

    variants = [
        (lambda: cross(kernel), "no flip: this is cross-correlation; true convolution rotates the kernel by "
                                "180 degrees (kernel[::-1, ::-1]) before sliding it"),
        (lambda: cross(kernel[::-1, :]), "only the rows were flipped (kernel[::-1]); flip both axes: "
                                         "kernel[::-1, ::-1] or np.flip(kernel)"),
        (lambda: cross(kernel[:, ::-1]), "only the columns were flipped (kernel[:, ::-1]); flip both axes: "
                                         "kernel[::-1, ::-1] or np.flip(kernel)"),
        # Rotating the image turns every output map by 180 degrees as well.
        (lambda: cross(kernel)[::-1, ::-1], "the image was rotated as well as the kernel: rotate only the "
                                            "kernel and slide it over the image as it is"),
        (lambda: cross(kernel[::-1, ::-1])[::-1, ::-1], "the image was rotated instead of the kernel: rotate "
                                                        "the kernel (kernel[::-1, ::-1]); the image stays as it is"),
    ]
    if kernel.shape[0] == kernel.shape[1]:
        variants.insert(3, (lambda: cross(kernel.T), "kernel transposed: a 180-degree rotation is "
                                                      "kernel[::-1, ::-1], not kernel.T"))
    for wrong_map, text in variants:
        if same(got, wrong_map()):
            return text
    return None


def check_true_convolution(func, image, kernel, *, name=None, device=None):
    """Compare a whole-map ``func(image, kernel)`` with TRUE convolution (kernel rotated by 180 degrees).

    The reference is torch's cross-correlation with ``kernel[::-1, ::-1]``. On a
    mismatch the message names the first wrong element and, where it can, the
    orientation the function used instead (no flip, one axis, transpose).
    """
    device = device or compute_device()
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    name = name or getattr(func, "__name__", "true convolution")
    call = f"{name}(image {image.shape[0]}x{image.shape[1]}, kernel {kernel.shape[0]}x{kernel.shape[1]})"
    before = {"image": (image, image.copy()), "kernel": (kernel, kernel.copy())}
    got = result_of(func, name, call, lambda: func(image, kernel))
    image, kernel = before["image"][1], before["kernel"][1]
    rotated = np.ascontiguousarray(kernel[::-1, ::-1])
    expected = conv2d_reference(image, rotated, device=device)
    check_result(got, call, before, expected)
    try:
        check_array(got, expected, call, atol=conv_atol(image, rotated, dtype=np.float64, device=device))
    except CheckFailure as failure:
        try:
            mistake = _orientation_mistake(to_numpy(got).astype(np.float64), image, kernel, device)
        except (TypeError, ValueError):
            mistake = None
        fail_explained(failure, mistake, None,
                       f"reference: {reference_name(device)} with the kernel rotated by 180 degrees")
    return to_numpy(got)
