"""Notebooks 02 and 03 without nbgrader: the checks they add, their helpers, and their test cells in-process.

The real autograding of the specs in submissions/ is covered by the pipeline
tests; here the same specs run in one Python process (a few seconds), so a
broken hint or a wrong point count shows up quickly.
"""
import json
import os
import sys
import tomllib

import numpy as np
import pytest

from conftest import REPO

SESSION = REPO / "source" / "session10"
sys.path.insert(0, str(SESSION))

import convcheck  # noqa: E402
from convcheck import CheckFailure  # noqa: E402

NOTEBOOKS = ["02_why_mlps_fail", "03_the_convolution_operation"]


def failure(func, *args, **kwargs):
    with pytest.raises(CheckFailure) as info:
        func(*args, **kwargs)
    return str(info.value)


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


# ---------------------------------------------------------------- the notebooks' cells, in-process

def run_notebook(name, replacements=None):
    """Run a source notebook's code cells in one namespace.

    Returns ({grade_id: error or None} for the graded cells, [errors of the other cells],
    points per grade_id, the namespace).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = json.loads((SESSION / f"{name}.ipynb").read_text())["cells"]
    namespace = {"__name__": "__main__"}
    graded, other_errors, points = {}, [], {}
    cwd = os.getcwd()
    os.chdir(SESSION)
    try:
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            meta = cell["metadata"].get("nbgrader", {})
            grade_id = meta.get("grade_id")
            source = (replacements or {}).get(grade_id, "".join(cell["source"]))
            try:
                exec(compile(source, f"<{grade_id or 'cell'}>", "exec"), namespace)  # noqa: S102
                error = None
            except Exception as caught:  # noqa: BLE001 - recorded per cell, like the autograder
                error = caught
            if meta.get("grade"):
                graded[grade_id] = error
                points[grade_id] = meta["points"]
            elif error is not None:
                other_errors.append(error)
    finally:
        os.chdir(cwd)
        plt.close("all")
    return graded, other_errors, points, namespace


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_passes_every_test_cell(name):
    graded, other_errors, _, _ = run_notebook(name)
    assert graded and not any(graded.values()), {k: repr(v) for k, v in graded.items() if v}
    assert not other_errors, other_errors


def test_notebook_02_helper_and_worked_values():
    _, _, _, ns = run_notebook("02_why_mlps_fail")
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
    _, _, _, ns = run_notebook("03_the_convolution_operation")
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
    assert f"sum = {ns['_short_number'](want)}" in view.value


def test_notebook_03_hidden_expectations_follow_from_the_definitions():
    _, _, _, ns = run_notebook("03_the_convolution_operation")
    checker, x_kernel = ns["CHECKERBOARD"], ns["X_KERNEL"]
    np.testing.assert_array_equal(convcheck.conv2d_reference(checker, x_kernel), [[5, 0, 5], [0, 5, 0], [5, 0, 5]])
    for name, kernel in ns["KERNELS"].items():
        symmetric = np.array_equal(kernel, kernel[::-1, ::-1])
        same = np.allclose(convcheck.conv2d_reference(ns["crop"], kernel),
                           convcheck.conv2d_reference(ns["crop"], kernel[::-1, ::-1]))
        assert symmetric == same == (name in {"checkerboard X", "box blur", "Laplacian"}), name


def spec_paths():
    return sorted(p for n in ("02", "03") for p in (REPO / "submissions").glob(f"nb{n}_*.toml"))


@pytest.mark.parametrize("path", spec_paths(), ids=lambda p: p.stem)
def test_wrong_spec_scores_and_messages_in_process(path):
    spec = tomllib.loads(path.read_text())
    (notebook,) = spec["submit"]
    replacements = {c["grade_id"]: c["source"].strip("\n") for c in spec["cell"]}
    graded, _, points, _ = run_notebook(notebook, replacements)
    score = sum(p for grade_id, p in points.items() if graded[grade_id] is None)
    assert score == spec["expected"][notebook], {k: str(v) for k, v in graded.items() if v}
    for message in spec.get("message", []):
        error = graded[message["grade_id"]]
        assert error is not None and message["contains"] in str(error), (message, str(error))
