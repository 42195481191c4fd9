"""Diagnoses of a wrong ``conv_as_matrix(kernel, H, W)``, the convolution as one matrix (notebook 05)."""
import numpy as np


def conv_matrix_mistake(conv_as_matrix, kernel, height, width):
    """What to tell a student whose ``conv_as_matrix(kernel, H, W)`` puts kernel[m, n] at column
    (i + m) * oW + (j + n), flattening the pixel with the output width oW instead of the image width W; None for
    any other matrix. Where two weights land on one column, a loop keeps the last one written (m before n, or n
    before m) or, with +=, their sum: the student's matrix must be one of those three."""
    kernel = np.asarray(kernel, dtype=float)
    k_h, k_w = kernel.shape
    o_h, o_w = height - k_h + 1, width - k_w + 1
    built = np.zeros((3, o_h * o_w, height * width))
    for i, j in np.ndindex(o_h, o_w):
        for m, n in np.ndindex(k_h, k_w):
            built[0, i * o_w + j, (i + m) * o_w + (j + n)] = kernel[m, n]
            built[2, i * o_w + j, (i + m) * o_w + (j + n)] += kernel[m, n]
        for n, m in np.ndindex(k_w, k_h):
            built[1, i * o_w + j, (i + m) * o_w + (j + n)] = kernel[m, n]
    try:
        got = np.asarray(conv_as_matrix(kernel, height, width), dtype=float)
    except Exception:  # noqa: BLE001 - the check itself reports the error
        return None
    if o_w == width or got.shape != built[0].shape \
            or not any(np.allclose(got, b, rtol=1e-12, atol=1e-12) for b in built):
        return None
    return (f"each pixel's column uses the output width: kernel[m, n] went to column (i + m) * oW + (j + n) with "
            f"oW = {o_w}, but a row of the flattened image is the image's width W = {width} long: "
            "put it at column (i + m) * W + (j + n)")
