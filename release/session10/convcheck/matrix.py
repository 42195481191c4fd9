"""Diagnoses of a wrong ``conv_as_matrix(kernel, H, W)``, the convolution as one matrix (notebook 05)."""
import numpy as np


def _slips(height, width, o_h, o_w):
    """Wrong index rules, each as (row of output (i, j), column of pixel (r, c), what the student is told)."""
    return (
        (lambda i, j: i * o_w + j, lambda r, c: r * o_w + c,
         f"each pixel's column uses the output width: kernel[m, n] went to column (i + m) * oW + (j + n) with "
         f"oW = {o_w}, but a row of the flattened image is the image's width W = {width} long: "
         "put it at column (i + m) * W + (j + n)"),
        (lambda i, j: i * o_w + j, lambda r, c: r * height + c,
         f"each pixel's column uses the image's height: kernel[m, n] went to column (i + m) * H + (j + n) with "
         f"H = {height}, but a row of the flattened image is the image's width W = {width} long: "
         "put it at column (i + m) * W + (j + n)"),
        (lambda i, j: i * o_h + j, lambda r, c: r * width + c,
         f"each output's row uses the output height: output (i, j) went to row i * oH + j with oH = {o_h}, but a "
         f"row of the flattened output is the output's width oW = {o_w} long: use row i * oW + j"),
    )


def conv_matrix_mistake(conv_as_matrix, kernel, height, width):
    """What to tell a student whose ``conv_as_matrix(kernel, H, W)`` follows one of the wrong index rules above
    (each tried only where it differs from the right one and stays inside the matrix); None for any other
    matrix. Where two weights land on one entry, a loop keeps the last one written (m before n, or n before m)
    or, with +=, their sum: the student's matrix must be one of those three."""
    kernel = np.asarray(kernel, dtype=float)
    k_h, k_w = kernel.shape
    o_h, o_w = height - k_h + 1, width - k_w + 1
    try:
        got = np.asarray(conv_as_matrix(kernel, height, width), dtype=float)
    except Exception:  # noqa: BLE001 - the check itself reports the error
        return None
    right = [(i * o_w + j, (i + m) * width + j + n) for i, j, m, n in np.ndindex(o_h, o_w, k_h, k_w)]
    for row_of, col_of, told in _slips(height, width, o_h, o_w):
        entries = [(row_of(i, j), col_of(i + m, j + n)) for i, j, m, n in np.ndindex(o_h, o_w, k_h, k_w)]
        if entries == right or not all(0 <= r < o_h * o_w and 0 <= c < height * width for r, c in entries):
            continue   # the same as the right rule here, or one the student's loops could not have run
        built = np.zeros((3, o_h * o_w, height * width))
        for i, j in np.ndindex(o_h, o_w):
            for m, n in np.ndindex(k_h, k_w):
                built[0, row_of(i, j), col_of(i + m, j + n)] = kernel[m, n]
                built[2, row_of(i, j), col_of(i + m, j + n)] += kernel[m, n]
            for n, m in np.ndindex(k_w, k_h):
                built[1, row_of(i, j), col_of(i + m, j + n)] = kernel[m, n]
        if got.shape == built[0].shape and any(np.allclose(got, b, rtol=1e-12, atol=1e-12) for b in built):
            return told
    return None
