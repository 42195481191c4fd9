"""Notebooks 06 and 07 without nbgrader: fast checks of their graded cells and of convcheck's diagnoses.

* Every submission spec for 06 and 07 is replayed in-process: the setup, answer and
  test cells run (hidden tests included, plain lesson cells skipped) and the points
  and failure messages are compared with the spec, as the slow nbgrader test does.
* The wrong implementations in the nb07 specs go through ``convcheck.diagnose_conv2d``
  and ``check_conv2d`` directly, and each must be named by its diagnosis.
* Further wrong implementations exercise the probes that the specs do not reach
  (border bugs, one-sided padding with a changed shape, transposed kernel shapes ...),
  and the tolerance, library and error checks.
"""
import re

import numpy as np
import pytest

from inprocess import check_spec, convcheck, failure, load_spec, run_notebook, spec_names

NB06, NB07 = "06_padding_and_stride", "07_convolution_from_scratch"


@pytest.fixture(scope="module")
def reference07():
    run = run_notebook(NB07, graded_only=True)
    assert not run.failed(), run.failed()
    return run.namespace


# ---------------------------------------------------------------- every spec, replayed without nbgrader

@pytest.mark.parametrize("name", spec_names("nb06", "nb07"))
def test_spec_scores_and_messages(name):
    check_spec(name, graded_only=True)


def test_reference_solutions_score_full_marks():
    for notebook in (NB06, NB07):
        run = run_notebook(notebook, graded_only=True)
        assert run.errors and not run.failed(), run.failed()


# ---------------------------------------------------------------- the nb07 wrong implementations, diagnosed directly

WRONG_07 = [
    ("nb07_flipped_kernel", "conv2d", "conv2d", "flipped kernel"),
    ("nb07_flipped_kernel", "conv2d_padded", "padded", "flipped kernel"),
    ("nb07_off_by_one", "conv2d_full", "full", "off-by-one output size"),
    ("nb07_stride_ignored", "conv2d_full", "full", "stride ignored when slicing"),
    ("nb07_one_sided_padding", "conv2d_padded", "padded", "padding on one side only"),
    ("nb07_integer_truncation", "conv2d", "conv2d", "integer truncation"),
    ("nb07_rows_columns_swapped", "conv2d", "conv2d", "rows and columns swapped"),
    ("nb07_rows_columns_swapped", "conv2d_padded", "padded", "rows and columns swapped"),
    ("nb07_kernel_transposed", "conv2d_full", "full", "kernel transposed"),
]


@pytest.mark.parametrize("name, function, style, diagnosis", WRONG_07)
def test_wrong_implementation_is_diagnosed(name, function, style, diagnosis):
    namespace = run_notebook(NB07, load_spec(name), graded_only=True).namespace
    func = namespace[function]
    assert diagnosis in (convcheck.diagnose_conv2d(func, style=style) or "")
    # check_conv2d's message: the first wrong element, both values, the tolerance and the diagnosis
    rng = np.random.default_rng(1)
    image = rng.integers(0, 9, size=(7, 8))
    kernel = np.array([[0.5, 1.0, 0.0], [-1.0, 2.0, 0.25]])
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_conv2d(func, image, kernel, padding=0 if style == "conv2d" else 1,
                               stride=2 if style == "full" else 1, style=style)
    message = str(failure.value)
    assert diagnosis in message
    assert "expected:" in message and "got:" in message
    assert ("element i=" in message or "wrong shape" in message or "raised an error" in message
            or "returned an array of int" in message)


def test_library_call_is_named_and_values_are_right():
    namespace = run_notebook(NB07, load_spec("nb07_library_torch"), graded_only=True).namespace
    assert convcheck.diagnose_conv2d(namespace["conv2d"], style="conv2d") is None
    for function in ("conv2d", "conv2d_padded"):  # conv2d_padded reuses the student's conv2d
        with pytest.raises(convcheck.CheckFailure, match=r"a call to F\.conv2d"):
            convcheck.check_no_library_conv(namespace[function])
    convcheck.check_no_library_conv(namespace["conv2d_full"])


@pytest.mark.parametrize("name", ["reference"] + [n for n in spec_names("nb07") if n.startswith("nb07_ok_")])
def test_correct_variants_pass_every_probe(name):
    namespace = run_notebook(NB07, load_spec(name) if name != "reference" else None, graded_only=True).namespace
    rng = np.random.default_rng(2)
    for function, style in (("conv2d", "conv2d"), ("conv2d_padded", "padded"), ("conv2d_full", "full")):
        func = namespace[function]
        assert convcheck.diagnose_conv2d(func, style=style) is None
        convcheck.check_no_library_conv(func)
        for dtype in (np.float32, np.float64):
            image = rng.standard_normal((9, 11)).astype(dtype)
            kernel = rng.standard_normal((3, 4)).astype(dtype)
            convcheck.check_conv2d(func, image, kernel, padding=0 if style == "conv2d" else 2,
                                   stride=3 if style == "full" else 1, style=style)
        convcheck.check_conv2d(func, rng.integers(0, 256, size=(6, 7)), np.full((3, 3), 1 / 9), style=style,
                               padding=0 if style == "conv2d" else 1)


# ---------------------------------------------------------------- more wrong implementations, for the probes

def _padded(image, padding):
    return np.pad(np.asarray(image, dtype=float), padding)


def _loops(image, kernel, stride=1, rows=lambda n, k, s: (n - k) // s + 1, start=lambda i, s: i * s):
    image, kernel = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    (H, W), (kH, kW) = image.shape, kernel.shape
    out = np.zeros((rows(H, kH, stride), rows(W, kW, stride)))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            r, c = start(i, stride), start(j, stride)
            out[i, j] = np.sum(image[r:r + kH, c:c + kW] * kernel)
    return out


def edge_padding(image, kernel, padding=0, stride=1):
    return _loops(np.pad(np.asarray(image, dtype=float), padding, mode="edge"), kernel, stride)


def pad_top_left_only(image, kernel, padding=0, stride=1):
    return _loops(np.pad(np.asarray(image, dtype=float), ((padding, 0), (padding, 0))), kernel, stride)


def kernel_dot_T(image, kernel, padding=0, stride=1):
    return _loops(_padded(image, padding), np.asarray(kernel).T, stride)


def kh_kw_swapped(image, kernel, padding=0, stride=1):
    image, kernel = _padded(image, padding), np.asarray(kernel, dtype=float)
    kW, kH = kernel.shape
    out = np.zeros(((image.shape[0] - kH) // stride + 1, (image.shape[1] - kW) // stride + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i * stride:i * stride + kH, j * stride:j * stride + kW] * kernel)
    return out


def one_too_many(image, kernel, padding=0, stride=1):
    return _loops(_padded(image, padding), kernel, stride, rows=lambda n, k, s: (n - k) // s + 2)


def output_transposed(image, kernel, padding=0, stride=1):
    return _loops(_padded(image, padding), kernel, stride).T.copy()


def stride_in_size_only(image, kernel, padding=0, stride=1):
    return _loops(_padded(image, padding), kernel, stride, start=lambda i, s: i)


def right(image, kernel, padding=0, stride=1):
    return _loops(_padded(image, padding), kernel, stride)


@pytest.mark.parametrize("func, style, diagnosis", [
    (edge_padding, "padded", "border bug"),
    (edge_padding, "full", "border bug"),
    (pad_top_left_only, "padded", "padding on one side only"),
    (kernel_dot_T, "conv2d", "kernel transposed"),
    (kernel_dot_T, "full", "kernel transposed"),
    (kh_kw_swapped, "conv2d", "keep rows (H, kH = shape[0]) and columns (W, kW = shape[1]) apart"),
    (one_too_many, "conv2d", "a patch smaller than the kernel"),
    (output_transposed, "padded", "height and width are exchanged"),
    (stride_in_size_only, "full", "stride ignored when slicing"),
    (right, "full", None),
])
def test_probe_diagnoses(func, style, diagnosis):
    got = convcheck.diagnose_conv2d(func, style=style)
    if diagnosis is None:
        assert got is None
    else:
        assert got is not None and diagnosis in got


# ---------------------------------------------------------------- tolerances

def test_float32_inputs_get_float32_tolerance_even_with_a_float64_output():
    def float32_sums(image, kernel, padding=0, stride=1):
        image, kernel = np.pad(np.asarray(image), padding), np.asarray(kernel)
        out = np.zeros(((image.shape[0] - kernel.shape[0]) // stride + 1,
                        (image.shape[1] - kernel.shape[1]) // stride + 1))
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = np.sum(image[i * stride:i * stride + kernel.shape[0],
                                         j * stride:j * stride + kernel.shape[1]]
                                   * kernel)  # float32 arithmetic, stored in float64
        return out
    rng = np.random.default_rng(3)
    image = rng.standard_normal((20, 23)).astype(np.float32)
    kernel = rng.standard_normal((3, 4)).astype(np.float32)
    convcheck.check_conv2d(float32_sums, image, kernel, padding=1, stride=2)
    # a float32 reference is compared with float32 tolerance too
    convcheck.check_conv2d(right, image.astype(float), kernel.astype(float), padding=1, stride=2,
                           reference_dtype=np.float32)
    # float64 keeps the tight bound: an error of 1e-6 relative is caught
    with pytest.raises(convcheck.CheckFailure, match="tolerance"):
        convcheck.check_conv2d(lambda i, k, padding=0, stride=1: right(i, k, padding, stride) * (1 + 1e-6),
                               image.astype(float), kernel.astype(float), padding=1, stride=2)
    # and float32 still catches a real mistake
    with pytest.raises(convcheck.CheckFailure, match="flipped kernel"):
        convcheck.check_conv2d(lambda i, k, padding=0, stride=1: float32_sums(i, k[::-1, ::-1], padding, stride),
                               image, kernel, padding=1, stride=2)


def test_tolerance_depends_on_dtype_and_device():
    assert convcheck.tolerance(np.float64) < convcheck.tolerance(np.float32) < convcheck.tolerance(np.float32, "cuda")
    import torch
    assert convcheck.tolerance(torch.float32, torch.device("cpu")) == convcheck.tolerance(np.float32)
    assert convcheck.tolerance(torch.float64, torch.device("cuda")) == convcheck.tolerance(np.float64)


# ---------------------------------------------------------------- library calls

def test_library_calls_are_rejected_and_slicing_is_not():
    import torch
    import torch.nn.functional as F
    from numpy.lib.stride_tricks import sliding_window_view

    def with_scipy(image, kernel):
        import scipy.signal  # never reached in the source check
        return scipy.signal.correlate2d(image, kernel, mode="valid")

    def with_np_convolve(image, kernel):
        return np.array([np.convolve(row, kernel[0], "valid") for row in image])

    def with_module(image, kernel):
        layer = torch.nn.Conv2d(1, 1, kernel.shape, bias=False)
        return layer(torch.tensor(image, dtype=torch.float32)[None, None])[0, 0].detach().numpy()

    def hidden_call(image, kernel):
        func = getattr(F, "con" + "v2d")
        return func(torch.tensor(image)[None, None], torch.tensor(kernel)[None, None])[0, 0].numpy()

    def vectorised(image, kernel):
        return np.einsum("ijmn,mn->ij", sliding_window_view(image, kernel.shape), kernel)

    for func, named in ((with_scipy, "correlate2d"), (with_np_convolve, "np.convolve"),
                        (with_module, "torch.nn.Conv2d"), (hidden_call, "torch.nn.functional.conv2d")):
        with pytest.raises(convcheck.CheckFailure, match=re.escape(named)):
            convcheck.check_no_library_conv(func)
    convcheck.check_no_library_conv(vectorised)


# ---------------------------------------------------------------- helpers added for notebooks 06-07

def test_check_value_error():
    def no_message():
        raise ValueError()
    with pytest.raises(convcheck.CheckFailure, match="without a message"):
        convcheck.check_value_error(no_message, "f()", why="a bad stride")
    with pytest.raises(convcheck.CheckFailure, match="wrong kind of error"):
        convcheck.check_value_error(lambda: 1 // 0, "f()", why="a bad stride")
    with pytest.raises(convcheck.CheckFailure, match="did not raise"):
        convcheck.check_value_error(lambda: 3, "f()", why="a bad stride")
    error = convcheck.check_value_error(lambda: int("x"), "int('x')", why="not a number")
    assert isinstance(error, ValueError)


def test_call_conv_and_check_conv_property():
    assert convcheck.call_conv(right, np.ones((3, 3), dtype=int), np.ones((2, 2))).dtype == np.float64
    with pytest.raises(convcheck.CheckFailure, match="returned nothing"):
        convcheck.call_conv(lambda image, kernel: None, np.ones((3, 3)), np.ones((2, 2)))
    with pytest.raises(convcheck.CheckFailure, match="flipped kernel"):
        convcheck.call_conv(lambda image, kernel: 1 / 0 if image.shape == (3, 3) else right(image, kernel[::-1, ::-1]),
                            np.ones((3, 3)), np.ones((2, 2)), style="conv2d")
    x = np.arange(12.0).reshape(3, 4)
    convcheck.check_conv_property(x, x + 1e-12, "same", atol=1e-9)
    with pytest.raises(convcheck.CheckFailure, match="stride ignored when slicing"):
        convcheck.check_conv_property(x, x + 1, "different", atol=1e-9, func=stride_in_size_only)


# ---------------------------------------------------------------- what a wrong array has in common

def _shifted(array, rows, cols):
    """``out[i, j] = array[i + rows, j + cols]`` where that exists, else 0."""
    out = np.zeros_like(array)
    h, w = array.shape
    out[max(0, -rows):h - max(0, rows), max(0, -cols):w - max(0, cols)] = \
        array[max(0, rows):h - max(0, -rows), max(0, cols):w - max(0, -cols)]
    return out


def _loops_stop_early(array):
    out = array.copy()
    out[-1, :] = out[:, -1] = 0
    return out


@pytest.mark.parametrize("make_wrong, pattern", [
    (lambda e: -e, "every element has the opposite sign"),
    (lambda e: 0.25 * e, "every element is 0.25 times the right value"),
    (lambda e: e + 3, "every element is off by the same 3"),
    (_loops_stop_early, "only the last row or column is wrong, and it is 0"),
    (lambda e: _shifted(e, 1, 1), "holds the right value of [i+1, j+1]"),
    (lambda e: _shifted(e, 0, -2), "holds the right value of [i, j-2]"),
    (lambda e: e.T, "the result is transposed"),
])
def test_a_wrong_array_says_what_differs(make_wrong, pattern):
    expected = np.random.default_rng(3).standard_normal((6, 6))
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_array(make_wrong(expected), expected, "out", atol=1e-9)
    line = next(line for line in str(failure.value).splitlines() if line.startswith("  pattern:  "))
    assert pattern in line, str(failure.value)


@pytest.mark.parametrize("make_wrong", [
    lambda e: e + np.eye(6),                         # a few wrong elements with nothing in common
    lambda e: e * (1 + 1e-7),                        # wrong only by less than the pattern's own tolerance
    lambda e: np.where(e > 0, e, np.nan),            # not finite
])
def test_no_pattern_is_claimed_where_there_is_none(make_wrong):
    expected = np.random.default_rng(4).standard_normal((6, 6))
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_array(make_wrong(expected), expected, "out", atol=1e-12)
    assert "pattern:" not in str(failure.value), str(failure.value)


def test_a_constant_map_wrong_in_its_first_row_is_not_called_moved():
    expected = np.ones((5, 5))
    got = expected.copy()
    got[0] = 0
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_array(got, expected, "out")
    assert "wrong place" not in str(failure.value), str(failure.value)


def _with_fit_check(refuses):
    def conv2d(image, kernel):
        image, kernel = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
        (H, W), (kH, kW) = image.shape, kernel.shape
        if refuses(H, W, kH, kW):
            raise ValueError("the kernel does not fit")
        windows = np.lib.stride_tricks.sliding_window_view(image, (kH, kW))
        return np.einsum("ijmn,mn->ij", windows, kernel)
    return conv2d


@pytest.mark.parametrize("refuses, named", [
    (lambda H, W, kH, kW: kH > W or kW > H, "compares the kernel's height with the image's width"),
    (lambda H, W, kH, kW: kH >= H or kW >= W, "a kernel as large as the image fits"),
], ids=["sides swapped", "strict"])
def test_a_wrong_fit_check_is_named_where_a_fitting_kernel_is_refused(refuses, named):
    func = _with_fit_check(refuses)
    mistake = convcheck.fit_check_mistake(func, "conv2d")
    assert named in mistake
    image, kernel = ((3, 9), (2, 5)) if "height" in named else ((4, 5), (4, 5))
    message = failure(convcheck.call_conv, func, np.ones(image), np.ones(kernel), style="conv2d")
    assert f"likely mistake: {mistake}" in message
    assert convcheck.fit_check_mistake(_with_fit_check(lambda H, W, kH, kW: kH > H or kW > W), "conv2d") is None
