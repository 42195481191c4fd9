"""What a test compares with: its random inputs, the device, the tolerance and the reference convolutions.

References are computed by PyTorch at check time, on ``cuda`` when it is available and on the CPU
otherwise. torch is imported only when a check needs it: a check given ``device=NUMPY`` computes its
reference with NumPy in float64 and never loads torch.

Every convolution in this package takes ``padding`` before ``stride``; past the arrays, options are
keywords.
"""
import numpy as np

from . import hooks
from .basic import to_numpy

NUMPY = "numpy"  # as a check's device: the reference convolution by NumPy in float64, without torch


def rng(seed):
    """The random generator of a test's inputs: ``np.random.default_rng(seed)``; at grading, one seeded
    from the grader's own secret too, so the inputs cannot be known in advance (a regrade repeats them)."""
    grading_seed = hooks.package.GRADING_SEED
    return np.random.default_rng(seed if grading_seed is None else [grading_seed, seed])


def compute_device():
    """``torch.device('cuda')`` when a GPU is available, else the CPU."""
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tolerance(dtype, device=None, terms=1):
    """Relative error allowed per unit of ``sum(|image patch| * |kernel|)``.

    ``dtype`` is the precision of the computation: that of the inputs and the reference,
    never the dtype a student happened to give the output. float64 sums agree to about
    1e-15 of that magnitude; the 1e-10 allowed here only absorbs summation order. float32
    keeps about 7 digits on the CPU, and a sum of ``terms`` products loses up to about
    ``terms`` units of rounding. On a GPU, float32 convolutions may run in TF32 (10-bit
    mantissa), which costs up to about 1e-3 of the magnitude, so the bound there is wider.
    """
    dtype = (np.dtype(str(dtype).replace("torch.", "")) if type(dtype).__module__.startswith("torch")
             else np.dtype(dtype))
    if dtype == np.float64:
        return 1e-10
    on_gpu = device is not None and str(device).startswith("cuda")
    summed = 2 * max(int(terms), 1) * float(np.finfo(np.float32).eps)
    return max(4e-3 if on_gpu else 1e-5, summed)


def conv_atol(x, weight, bias=None, *, padding=0, stride=1, dtype=np.float32, device="cpu"):
    """The element-wise error bound for a convolution computed in ``dtype`` on ``device``: every check's.

    ``x`` and ``weight`` are a 2-D image and kernel, or a batch (N, C_in, H, W) and a weight
    (C_out, C_in, kH, kW), as arrays or tensors. The bound is ``tolerance(dtype, device, terms)``
    (``terms``: the products summed per output) times (sum |patch * weight| + |bias| + 1).
    ``device`` is where the result under test was computed: "cpu" for NumPy code, the module's device
    for a torch layer, ``NUMPY`` when the sums themselves must be computed without torch.
    """
    x = np.abs(to_numpy(x).astype(np.float64))
    weight = np.abs(to_numpy(weight).astype(np.float64))
    sums_device = NUMPY if str(device) == NUMPY else None
    if x.ndim == 2:
        magnitude = conv2d_reference(x, weight, padding=padding, stride=stride, device=sums_device)
        terms = weight.size
    else:
        magnitude = _batch_reference(x, weight, None if bias is None else np.abs(to_numpy(bias)),
                                     padding=padding, stride=stride, device=sums_device)
        terms = np.prod(weight.shape[1:])
    return hooks.package.tolerance(dtype, device, terms) * (magnitude + 1.0)


def precision_of(*values):
    """The precision a convolution of ``values`` is computed and judged in: float32 when any float
    input is float32 (or narrower), float64 otherwise (integers are exact)."""
    floats = [to_numpy(v).dtype for v in values if v is not None]
    narrow = any(np.issubdtype(d, np.floating) and d.itemsize < 8 for d in floats)
    return np.dtype(np.float32) if narrow else np.dtype(np.float64)


def _torch_conv(x, w, b, padding, stride, device, dtype):
    import torch
    import torch.nn.functional as F
    tx = torch.as_tensor(np.ascontiguousarray(x, dtype=dtype), device=device)
    tw = torch.as_tensor(np.ascontiguousarray(w, dtype=dtype), device=device)
    tb = None if b is None else torch.as_tensor(np.asarray(b, dtype=dtype), device=device)
    with torch.no_grad():
        return F.conv2d(tx, tw, tb, stride=stride, padding=padding).cpu().numpy()


def _numpy_conv(x, w, b, padding, stride, dtype):
    x = np.pad(np.asarray(x, dtype=dtype), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, np.shape(w)[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,ocij->nohw", windows, np.asarray(w, dtype=dtype))
    return out if b is None else out + np.asarray(b, dtype=dtype)[None, :, None, None]


def _reference_conv(x, w, b, padding, stride, device, dtype):
    if str(device) == NUMPY:
        return _numpy_conv(x, w, b, padding, stride, dtype)
    return hooks.package._torch_conv(x, w, b, padding, stride, device, dtype)


def reference_name(device):
    return "NumPy, float64" if str(device) == NUMPY else f"torch on {device}"


def _batch_reference(x, weight, bias=None, *, padding=0, stride=1, device=None, dtype=np.float64):
    """``nn.Conv2d``'s forward for x (N, C_in, H, W) and weight (C_out, C_in, kH, kW): the capstone's
    self-check compares with it. Private: a student's function that calls it earns nothing."""
    device = device or compute_device()
    return _reference_conv(x, weight, bias, padding, stride, device, dtype).astype(np.float64)


def conv2d_reference(image, kernel, *, padding=0, stride=1, device=None, dtype=np.float64):
    """Cross-correlation of a 2-D image with a 2-D kernel by ``torch.nn.functional.conv2d`` (or NumPy)."""
    device = device or compute_device()
    image, kernel = np.asarray(image), np.asarray(kernel)
    out = _reference_conv(image[None, None], kernel[None, None], None, padding, stride, device, dtype)
    return out[0, 0].astype(np.float64)
