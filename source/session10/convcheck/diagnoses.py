"""Diagnoses of a wrong single-channel convolution: probe inputs name the likely mistake."""
import numpy as np

from .basic import difference_pattern, to_numpy
from .calls import call_in_style, same
from .references import compute_device, conv2d_reference

GENERIC_SHAPE = "output shape"  # how diagnose_conv2d's catch-all line starts


def _pad_one_side(image, padding):
    return np.pad(image, ((padding, 0), (padding, 0))), np.pad(image, ((0, padding), (0, padding)))


def diagnose_conv2d(func, *, style="full", device=None):
    """Run probe inputs through ``func`` and name the likely mistake, or return None.

    ``style`` says how the function is called: ``"conv2d"`` (image, kernel),
    ``"padded"`` (image, kernel, padding) or ``"full"`` (image, kernel, padding, stride).
    """
    device = device or compute_device()
    padding = 0 if style == "conv2d" else 2  # 2, so one-sided padding is not an off-by-one
    stride = 1
    rng = np.random.default_rng(10)
    image = rng.integers(-4, 5, size=(7, 9)).astype(np.float64)
    kernel = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0]])  # no symmetry: flips and transposes differ
    try:
        got = to_numpy(call_in_style(func, style, image, kernel, padding, stride)).astype(np.float64)
    except Exception as error:  # noqa: BLE001 - the diagnosis reports it
        square = _diagnose_square(func, style, image, padding, stride, device, report_right=True)
        if square:
            return f"{square} (on a 7x9 probe image it raised {type(error).__name__}: {str(error).strip()})"
        return _raised("on a 7x9 probe image it raised", error)

    def ref(img, ker, pad=padding, st=stride):
        return conv2d_reference(img, ker, padding=pad, stride=st, device=device)

    expected_shape = ref(image, kernel).shape

    if got.shape != expected_shape:
        if got.shape == expected_shape[::-1]:
            return "rows and columns swapped: the output's height and width are exchanged"
        if got.shape in {(expected_shape[0] - 1, expected_shape[1] - 1),
                         (expected_shape[0] + 1, expected_shape[1] + 1)}:
            return "off-by-one output size: the number of positions is (H + 2p - k) // s + 1"
        if got.shape == ref(image, kernel.T).shape:
            return "kernel transposed: kernel[m, n] multiplies image[row + m, col + n]; kH is kernel.shape[0]"
        if stride > 1 and got.shape == ref(image, kernel, padding, 1).shape:
            return "stride ignored when computing the output size"
        if padding and got.shape == ref(image, kernel, 0, stride).shape:
            padded_corner = ref(image, kernel)[:got.shape[0], :got.shape[1]]
            if same(got, padded_corner) and not same(got, ref(image, kernel, 0, stride)):
                return ("output size taken from the image before padding: the values are right, but the output "
                        "stops short; after np.pad the image is H + 2p high, so use its new shape for the sizes")
            return "padding ignored: the image was not padded before sliding the kernel"
        if padding and got.shape == ref(image, kernel, 2 * padding, stride).shape:
            return ("padded twice as much: np.pad(image, p) already adds p zeros on every side (2p in all), "
                    "so pad by p, not 2p")
        for one_side in _pad_one_side(image, padding):
            if got.shape == ref(one_side, kernel, 0, stride).shape:
                return "padding on one side only: pad p rows/columns on every side (top, bottom, left, right)"
        return (f"{GENERIC_SHAPE} {got.shape} on a 7x9 probe image with a 2x3 kernel (padding {padding}, "
                f"stride {stride}), where (H + 2p - kH) // s + 1 gives {expected_shape}")
    if same(got, ref(image, kernel)) and style == "full":
        strided = _diagnose_stride(func, image, kernel, device)
        if strided:
            return strided
    if same(got, ref(image, kernel)):
        # Right on a float image: try an integer image with a fractional kernel.
        int_image = np.arange(63).reshape(7, 9)
        blur = np.full((2, 3), 1.0 / 6.0)
        try:
            got_int = to_numpy(call_in_style(func, style, int_image, blur, padding, stride))
        except Exception as error:  # noqa: BLE001
            return f"on an integer image it raised {type(error).__name__}: {error}"
        if not same(got_int, ref(int_image, blur)):
            if not np.issubdtype(got_int.dtype, np.integer) and _rounded(got_int, ref(int_image, blur)):
                return "results rounded to whole numbers (round() of each sum): keep the fractions"
            if np.issubdtype(got_int.dtype, np.integer) or same(np.trunc(ref(int_image, blur)), got_int.astype(float)) \
                    or same(np.floor(ref(int_image, blur)), got_int.astype(float)):
                return ("integer truncation: on an integer image the output must still be a float array "
                        "(create it with dtype float, not zeros_like(image))")
            return "wrong on an integer image with a fractional kernel"
        return None
    if same(got, ref(image, kernel[::-1, ::-1])):
        return "flipped kernel: this is true convolution; deep learning's 'convolution' is cross-correlation, no flip"
    named = _value_mistake(got, image, kernel, ref)
    if named:
        return named
    square_diagnosis = _diagnose_square(func, style, image, padding, stride, device)
    if square_diagnosis:
        return square_diagnosis
    if padding and _right_without_padding(func, style, image, kernel, stride, device):
        # all 2p zero rows/columns on one side (e.g. padded[:H, :W] = image): right shape, shifted values
        for pads in ((2 * padding, 0), (0, 2 * padding)):
            if same(got, ref(np.pad(image, (pads, pads)), kernel, 0, stride)):
                return "padding on one side only: pad p rows/columns on every side"
        constant = np.ones((7, 9))
        try:
            got_const = to_numpy(call_in_style(func, style, constant, kernel, padding, stride)).astype(np.float64)
            want_const = ref(constant, kernel)
            inner = (slice(padding, padding + 7 - kernel.shape[0] + 1),
                     slice(padding, padding + 9 - kernel.shape[1] + 1))
            if got_const.shape == want_const.shape and np.allclose(got_const[inner], want_const[inner]) \
                    and not np.allclose(got_const, want_const):
                return "border bug: a constant image is right inside but wrong at the edges; pad with zeros"
        except Exception:  # noqa: BLE001
            pass
    if difference_pattern(got, ref(image, kernel), ~np.isclose(got, ref(image, kernel))) is None:
        impulse = np.zeros((7, 9))
        impulse[3, 4] = 1.0
        try:
            got_impulse = to_numpy(call_in_style(func, style, impulse, kernel, padding, stride))
            if same(got_impulse, ref(impulse, kernel)):
                return ("right on an image with a single 1 in its middle, wrong on a general one: "
                        "check how patch values are multiplied and summed")
        except Exception:  # noqa: BLE001
            pass
    return None


def _value_mistake(got, image, kernel, ref):
    """A mistake in how one output is computed, named from the right shape and wrong values; or None."""
    right = ref(image, kernel)
    (kH, kW), whole = kernel.shape, np.ones_like(kernel)
    variants = [
        (ref(image, kernel[::-1]), "kernel flipped upside down (kernel[::-1]): use the kernel as it is, no flip"),
        (ref(image, kernel[:, ::-1]), "kernel flipped left to right (kernel[:, ::-1]): "
                                      "use the kernel as it is, no flip"),
        (np.abs(right), "absolute value taken: a convolution keeps the sign of the sum (no abs)"),
        (np.maximum(right, 0), "negative outputs set to 0 (a ReLU, max(0, ...) or clip inside the convolution): "
                               "the convolution itself is linear; an activation comes after it"),
        (np.clip(right, 0, 255), "outputs clipped to 0..255: the convolution itself does not clip"),
        (right / kernel.size, "divided by the number of kernel entries (np.mean instead of np.sum): "
                              "output[i, j] is the SUM of patch * kernel"),
        (ref(image, whole) * kernel.sum(), "sum of the patch times the sum of the kernel: multiply element by "
                                           "element first, then add: np.sum(patch * kernel)"),
        (ref(image, np.tile(kernel.sum(axis=0), (kH, 1))), "a matrix product (patch @ kernel.T, np.dot) instead of "
                                                           "the element-wise product: np.sum(patch * kernel)"),
        (ref(image, np.tile(kernel.sum(axis=1)[:, None], (1, kW))), "a matrix product (patch.T @ kernel, np.dot) "
                                                                    "instead of the element-wise product: "
                                                                    "np.sum(patch * kernel)"),
    ]
    if kH == kW:
        variants.append((ref(image, np.tile(kernel.sum(axis=1), (kH, 1))),
                         "a matrix product (patch @ kernel, np.dot) instead of the element-wise product: "
                         "np.sum(patch * kernel)"))
    for wrong, text in variants:
        if not same(wrong, right) and same(got, wrong):
            return text
    if _rounded(got, right):
        return "results rounded to whole numbers (round(), int() or an integer output array): keep the fractions"
    offset = got - right
    if got.shape == right.shape and np.allclose(offset, offset.flat[0]) and not np.isclose(offset.flat[0], 0):
        return (f"every output is off by the same {offset.flat[0]:g}: "
                "something is added outside the sum (a bias or a +1)")
    scale = np.sum(got * right) / max(np.sum(right * right), 1e-300)
    if got.shape == right.shape and not np.isclose(scale, 1) and same(got, scale * right):
        return f"every output is {scale:g} times the right value: a factor outside the sum (a normalisation?)"
    return None


def _rounded(got, right):
    """Whole numbers within half a unit of the right values, which are not all whole: rounded sums."""
    got = to_numpy(got).astype(np.float64)
    return (got.shape == right.shape and not np.allclose(right, np.round(right)) and np.allclose(got, np.round(got))
            and bool(np.all(np.abs(got - right) <= 0.5 + 1e-9)))


def _right_without_padding(func, style, image, kernel, stride, device):
    """Whether ``func`` is right on the probe with padding 0: only then can a wrong result be the border's."""
    try:
        got = to_numpy(call_in_style(func, style, image, kernel, 0, stride)).astype(np.float64)
    except Exception:  # noqa: BLE001 - a probe that fails tells nothing
        return False
    return same(got, conv2d_reference(image, kernel, padding=0, stride=stride, device=device))


def _refuses(func, style, image_shape, kernel_shape):
    """Whether ``func`` raises ValueError for an image and a kernel of these shapes (padding 0, stride 1)."""
    try:
        call_in_style(func, style, np.ones(image_shape), np.ones(kernel_shape), 0, 1)
    except ValueError:
        return True
    except Exception:  # noqa: BLE001 - another error is not a refusal
        return False
    return False


# Wrong checks of whether the kernel fits, each as (what it refuses, what it lets through, what it means): every
# probe pair fits, so a right check refuses none of them.
_FIT_CHECKS = (
    ((((3, 9), (2, 5)), ((9, 3), (5, 2))), (((5, 5), (2, 2)), ((6, 8), (3, 4))),
     "the fit check compares the kernel's height with the image's width (or its width with the height): "
     "a kernel fits when kH <= H and kW <= W, with H, W = image.shape and kH, kW = kernel.shape"),
    ((((4, 5), (4, 5)), ((3, 3), (3, 3))), (((5, 6), (4, 5)), ((4, 4), (3, 3))),
     "a kernel as large as the image fits (it has one position, one output); refuse only kH > H or kW > W "
     "(>, not >=)"),
)


def fit_check_mistake(func, style):
    """The wrong fit check that explains where ``func`` refuses kernels that fit, or None."""
    for refused, accepted, meaning in _FIT_CHECKS:
        if all(_refuses(func, style, *pair) for pair in refused) \
                and not any(_refuses(func, style, *pair) for pair in accepted):
            return meaning
    return None


def _raised(prefix, error):
    text = f"{prefix} {type(error).__name__}: {str(error).strip()}"
    if isinstance(error, ValueError) and "operands could not be broadcast" in str(error):
        text += (" -- a patch smaller than the kernel: the loops run past the edge; there are"
                 " (H + 2p - k) // s + 1 output rows, and the patch for row i starts at i * s")
    return text


def _diagnose_square(func, style, image, padding, stride, device, report_right=False):
    """Probe a 7x7 image with an asymmetric 3x3 kernel: transposed kernel, swapped rows and columns."""
    square = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0], [0.0, 1.0, -2.0]])
    img = image[:7, :7]
    try:
        got_square = to_numpy(call_in_style(func, style, img, square, padding, stride)).astype(np.float64)
    except Exception:  # noqa: BLE001
        return None

    def ref(i, k):
        return conv2d_reference(i, k, padding=padding, stride=stride, device=device)
    if same(got_square, ref(img, square.T)):
        return "kernel transposed: kernel[m, n] multiplies image[row + m, col + n], not kernel[n, m]"
    if same(got_square, ref(img, square).T) or same(got_square, ref(img.T, square)):
        return "rows and columns swapped: output[i, j] must come from the patch at row i, column j"
    named = _value_mistake(got_square, img, square, ref)
    if named:
        return named
    if report_right and same(got_square, ref(img, square)):
        return ("right for a square image and kernel, wrong for a 7x9 image with a 2x3 kernel: "
                "keep rows (H, kH = shape[0]) and columns (W, kW = shape[1]) apart")
    return None


def _stride_shape_mistake(got_shape, want_shape, image_shape, kernel_shape, padding, stride):
    """Which wrong output-size rule gives ``got_shape``."""
    spans = [n + 2 * padding - k for n, k in zip(image_shape, kernel_shape)]
    rules = [
        ([-(-d // stride) + 1 for d in spans], "rounded up: (H + 2p - k) / s + 1 takes the floor, //, not ceil"),
        ([int(round(d / stride)) + 1 for d in spans], "rounded: (H + 2p - k) / s + 1 takes the floor, //, not round()"),
        ([(d + 1) // stride for d in spans], "(H + 2p - k + 1) // s: the size is (H + 2p - k) // s + 1"),
        ([d // stride for d in spans], "off-by-one output size: the size is (H + 2p - k) // s + 1, the + 1 is missing"),
    ]
    for shape, text in rules:
        if tuple(shape) == tuple(got_shape) and tuple(shape) != tuple(want_shape):
            return (f"{text} (on a {_size(image_shape)} probe image with a {_size(kernel_shape)} kernel, padding "
                    f"{padding} and stride {stride}, the output is {_size(got_shape)}, where {_size(want_shape)} "
                    "is right)")
    return (f"on a {_size(image_shape)} probe image with a {_size(kernel_shape)} kernel, padding {padding} and stride "
            f"{stride}, the output is {_size(got_shape)}, where (H + 2p - k) // s + 1 gives {_size(want_shape)}")


def _size(shape):
    return " x ".join(map(str, shape))


def _diagnose_stride(func, image, kernel, device):
    """Probe stride 2 and 3 once stride 1 is right."""
    for stride in (2, 3):
        want = conv2d_reference(image, kernel, padding=1, stride=stride, device=device)
        try:
            got = to_numpy(func(image, kernel, padding=1, stride=stride)).astype(np.float64)
        except Exception as error:  # noqa: BLE001
            return _raised(f"with stride={stride} it raised", error)
        if same(got, want):
            continue
        dense = conv2d_reference(image, kernel, padding=1, stride=1, device=device)
        if got.shape == dense.shape:
            return "stride ignored when computing the output size: use (H + 2p - k) // stride + 1"
        if got.shape == want.shape and same(got, dense[: want.shape[0], : want.shape[1]]):
            return "stride ignored when slicing: the patch for output (i, j) starts at (i * stride, j * stride)"
        if got.shape != want.shape:
            return _stride_shape_mistake(got.shape, want.shape, image.shape, kernel.shape, 1, stride)
        if same(got, dense[::stride, : want.shape[1]]) or same(got, dense[: want.shape[0], ::stride]):
            return ("stride applied along one axis only: the patch for output (i, j) starts at row i * stride "
                    "AND column j * stride")
        return f"right with stride 1, wrong with stride={stride}: check the patch's top-left corner"
    return None
