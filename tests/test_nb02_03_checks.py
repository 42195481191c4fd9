"""Notebooks 02 and 03 without nbgrader: the checks they add, their helpers, and their test cells in-process."""
import numpy as np
import pytest

from inprocess import check_spec, convcheck, failure, run_notebook, spec_names

NOTEBOOKS = ["02_why_mlps_fail", "03_the_convolution_operation"]


# ---------------------------------------------------------------- the checks added for 02-03

def cross_correlation_at(image, kernel, i, j):
    k_rows, k_cols = np.shape(kernel)
    return float(np.sum(np.asarray(image)[i:i + k_rows, j:j + k_cols] * kernel))


def test_map_of_builds_the_valid_map_and_agrees_with_torch():
    rng = np.random.default_rng(1)
    image, kernel = rng.standard_normal((6, 9)), rng.standard_normal((2, 4))
    whole = convcheck.map_of(cross_correlation_at)
    assert whole.__name__ == "cross_correlation_at at every (i, j)"
    np.testing.assert_allclose(whole(image, kernel), convcheck.conv2d_reference(image, kernel), atol=1e-12)
    convcheck.check_conv2d(whole, image, kernel, style="conv2d")


def test_map_of_reports_a_missing_return_and_an_array_per_position():
    assert "returned nothing at (i=0, j=0)" in failure(convcheck.map_of(lambda im, k, i, j: None),
                                                       np.ones((3, 3)), np.ones((2, 2)))
    assert "one position must give one number" in failure(
        convcheck.map_of(lambda im, k, i, j: im[i:i + 2, j:j + 2] * k), np.ones((3, 3)), np.ones((2, 2)))


def test_check_conv2d_on_map_of_names_a_flipped_kernel():
    def flipped_at(image, kernel, i, j):
        return cross_correlation_at(image, np.asarray(kernel)[::-1, ::-1], i, j)

    rng = np.random.default_rng(2)
    message = failure(convcheck.check_conv2d, convcheck.map_of(flipped_at), rng.standard_normal((6, 8)),
                      rng.standard_normal((3, 3)), style="conv2d")
    assert "flipped kernel" in message


@pytest.mark.parametrize("orientation, expected", [
    (lambda k: k, "no flip"),
    (lambda k: k[::-1], "only the rows were flipped"),
    (lambda k: k[:, ::-1], "only the columns were flipped"),
    (lambda k: k.T, "kernel transposed"),
])
def test_check_true_convolution_names_the_orientation_used(orientation, expected):
    def wrong_at(image, kernel, i, j):
        return cross_correlation_at(image, orientation(np.asarray(kernel)), i, j)

    rng = np.random.default_rng(3)
    message = failure(convcheck.check_true_convolution, convcheck.map_of(wrong_at, "true_conv"),
                      rng.standard_normal((6, 7)), rng.standard_normal((3, 3)))
    assert expected in message and "true_conv(image 6x7, kernel 3x3)" in message


@pytest.mark.parametrize("rotate_kernel, expected", [
    (True, "the image was rotated as well as the kernel"),
    (False, "the image was rotated instead of the kernel"),
])
def test_check_true_convolution_names_a_rotated_image(rotate_kernel, expected):
    def rotated_image_at(image, kernel, i, j):
        kernel = np.flip(np.asarray(kernel)) if rotate_kernel else np.asarray(kernel)
        return cross_correlation_at(np.flip(np.asarray(image)), kernel, i, j)

    rng = np.random.default_rng(5)
    for kernel_shape in [(3, 3), (2, 3)]:
        message = failure(convcheck.check_true_convolution, convcheck.map_of(rotated_image_at),
                          rng.standard_normal((6, 7)), rng.standard_normal(kernel_shape))
        assert expected in message


def test_check_true_convolution_accepts_the_rotated_kernel_and_reports_errors():
    def right_at(image, kernel, i, j):
        return cross_correlation_at(image, np.asarray(kernel)[::-1, ::-1], i, j)

    rng = np.random.default_rng(4)
    for kernel_shape in [(3, 3), (2, 3), (1, 4)]:
        convcheck.check_true_convolution(convcheck.map_of(right_at), rng.standard_normal((5, 6)),
                                         rng.standard_normal(kernel_shape))

    def broken(image, kernel):
        raise IndexError("index 6 is out of bounds")

    assert "raised an error" in failure(convcheck.check_true_convolution, broken, np.ones((4, 4)), np.ones((2, 2)))
    assert "returned nothing" in failure(convcheck.check_true_convolution, lambda im, k: None,
                                         np.ones((4, 4)), np.ones((2, 2)))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_passes_every_test_cell(name):
    run = run_notebook(name)
    assert run.errors and not run.failed(), run.failed()
    assert not run.other_errors, run.other_errors


def test_notebook_02_helper_and_worked_values():
    ns = run_notebook("02_why_mlps_fail").namespace
    rng = np.random.default_rng(5)
    for image_shape, kernel_shape in [((28, 28), (3, 3)), ((7, 9), (2, 4)), ((5, 5), (5, 1))]:
        image, kernel = rng.standard_normal(image_shape), rng.standard_normal(kernel_shape)
        np.testing.assert_allclose(ns["correlate_valid"](image, kernel), convcheck.conv2d_reference(image, kernel),
                                   atol=1e-12)
    # The hidden tests' constants, recomputed here from the data.
    digit = ns["digit"]
    shifted = np.zeros_like(digit)
    shifted[:, 3:] = digit[:, :-3]
    on, on_shifted = digit > 0.5, shifted > 0.5
    assert (on & on_shifted).sum() == 25 and on.sum() == 83
    assert not digit[:, -3:].any(), "the digit's right edge is blank, so np.roll and the zero-fill shift agree"
    import coursedata
    assert coursedata.load_digits()[1][9] == 7, "the lesson says the digit is a 7"
    assert ns["dense_params"](784, 256) == 784 * 256 + 256


def test_notebook_03_explorer_updates_patch_and_sum():
    ns = run_notebook("03_the_convolution_operation").namespace
    explorer = ns["explorer"]
    choice, sliders, view = explorer.children
    row, col = sliders.children
    assert (row.description, col.description) == ("row i", "column j")
    assert (row.max, col.max) == (2, 2)
    assert "sum = 5" in view.value
    col.value = 1
    assert "sum = 0" in view.value and "patch = image[0:3, 1:4]" in view.value
    row.value = 1
    assert "sum = 5" in view.value and "patch = image[1:4, 1:4]" in view.value
    choice.value = choice.options[1]  # the 8 x 8 digit crop: six positions per direction
    assert (row.max, col.max) == (5, 5)
    crop, kernel = np.round(ns["coursedata"].digit(9)[9:17, 14:22], 2), ns["VERTICAL_EDGE"]
    want = float(np.sum(crop[1:4, 1:4] * kernel)) + 0.0
    assert f"sum = {ns['widgets']._short_number(want)}" in view.value


def test_notebook_03_hidden_expectations_follow_from_the_definitions():
    ns = run_notebook("03_the_convolution_operation").namespace
    checker, x_kernel = ns["CHECKERBOARD"], ns["X_KERNEL"]
    np.testing.assert_array_equal(convcheck.conv2d_reference(checker, x_kernel), [[5, 0, 5], [0, 5, 0], [5, 0, 5]])
    for name, kernel in ns["KERNELS"].items():
        symmetric = np.array_equal(kernel, kernel[::-1, ::-1])
        same = np.allclose(convcheck.conv2d_reference(ns["crop"], kernel),
                           convcheck.conv2d_reference(ns["crop"], kernel[::-1, ::-1]))
        assert symmetric == same == (name in {"checkerboard X", "box blur", "Laplacian"}), name


@pytest.mark.parametrize("name", spec_names("nb02", "nb03"))
def test_wrong_spec_scores_and_messages_in_process(name):
    check_spec(name)
