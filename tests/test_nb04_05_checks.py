"""Notebooks 04 and 05 without nbgrader: the checks they use, and their test cells run in-process."""
from fractions import Fraction

import numpy as np
import pytest

from inprocess import check_spec, convcheck, failure, run_notebook, spec_names

NOTEBOOKS = ["04_hand_calculations", "05_convolution_as_a_layer"]


# ---------------------------------------------------------------- the checks added for 04-05

def test_check_entry_names_a_missing_element_and_a_known_mistake():
    assert "has no element grid[1][1]" in failure(convcheck.check_entry, [[1, 2]], 3, "grid", index=(1, 1))
    message = failure(convcheck.check_entry, [[3, 1], [1, 3]], -3, "grid", index=(0, 0), hint="patch ...",
                      mistakes={3: "flipped kernel"})
    assert "expected: -3" in message and "got:      3" in message and "flipped kernel" in message
    assert "patch ..." in failure(convcheck.check_entry, [[2]], -3, "grid", index=(0, 0), hint="patch ...",
                                  mistakes={3: "flipped kernel"})
    convcheck.check_entry([[-3.0, 1]], -3, "grid", index=(0, 0))
    convcheck.check_entry(np.array([[0, 7]]), None, "grid", index=(0, 1))
    assert "single number" in failure(convcheck.check_entry, [["-3"]], None, "grid", index=(0, 0))


def test_check_hand_value_accepts_fractions_and_rounded_decimals():
    for value in (Fraction(10, 9), 10 / 9, 1.11, 1.111):
        convcheck.check_hand_value(value, Fraction(10, 9), "blur", atol=0.005)
    assert "1/9" in failure(convcheck.check_hand_value, 10, Fraction(10, 9), "blur", atol=0.005,
                            mistakes={10: "forgot the 1/9"})
    assert "single number" in failure(convcheck.check_hand_value, "10/9", Fraction(10, 9), "blur")


def test_check_sizes_reports_position_and_mistakes_even_with_the_wrong_length():
    message = failure(convcheck.check_sizes, (16, 23, 23), (16, 24, 24), "shape",
                      labels=("channels", "height", "width"), mistakes={(16, 23, 23): "off by one"})
    assert "height: expected 24, got 23" in message and "off by one" in message
    message = failure(convcheck.check_sizes, (1, 16, 24, 24), (16, 24, 24), "shape",
                      mistakes={(1, 16, 24, 24): "no batch dimension"})
    assert "should hold 3 numbers" in message and "no batch dimension" in message
    convcheck.check_sizes([16, 24, 24], (16, 24, 24), "shape")
    convcheck.check_sizes(np.array([5, 24]), (5, 24), "sizes")


def test_check_sizes_says_when_every_number_is_off_by_the_same_amount():
    message = failure(convcheck.check_sizes, [6, 25, 31], [5, 24, 30], "sizes")
    assert "every number is 1 more than expected" in message
    assert "every number" not in failure(convcheck.check_sizes, [6, 24, 31], [5, 24, 30], "sizes")
    assert "off by one" in failure(convcheck.check_sizes, [6, 25, 31], [5, 24, 30], "sizes",
                                   mistakes={(6, 25, 31): "off by one"})


def test_check_array_with_a_bound_per_element_reports_results_of_another_shape():
    message = failure(convcheck.check_array, np.zeros((2, 3)), np.zeros((2, 3)), "property", atol=np.ones((3, 4)))
    assert "the results compared have the wrong shape" in message and "expected: (3, 4)" in message


def test_check_dtype_names_the_element_type():
    import torch
    convcheck.check_dtype(np.zeros(2, np.float32), np.float32, "x")
    convcheck.check_dtype(torch.zeros(2), np.float32, "t")
    message = failure(convcheck.check_dtype, np.zeros(2), np.float32, "x", hint="keep float32")
    assert "expected: float32" in message and "got:      float64" in message and "keep float32" in message
    assert "got:      None" in failure(convcheck.check_dtype, [1.0], np.float32, "x")


def _matrix_with(kernel, H, W, row_of, col_of):
    kernel = np.asarray(kernel, dtype=float)
    (k_h, k_w), (o_h, o_w) = kernel.shape, (H - kernel.shape[0] + 1, W - kernel.shape[1] + 1)
    M = np.zeros((o_h * o_w, H * W))
    for i, j, m, n in np.ndindex(o_h, o_w, k_h, k_w):
        M[row_of(i, j, o_h, o_w), col_of(i + m, j + n, H, W)] = kernel[m, n]
    return M


@pytest.mark.parametrize("row_of, col_of, size, named", [
    (lambda i, j, oh, ow: i * ow + j, lambda r, c, H, W: r * (W - 2) + c, (7, 5), "uses the output width"),
    (lambda i, j, oh, ow: i * ow + j, lambda r, c, H, W: r * H + c, (4, 7), "uses the image's height"),
    (lambda i, j, oh, ow: i * oh + j, lambda r, c, H, W: r * W + c, (5, 7), "uses the output height"),
], ids=["column by oW", "column by H", "row by oH"])
def test_conv_matrix_mistake_names_each_wrong_index_rule(row_of, col_of, size, named):
    kernel = np.arange(1.0, 7.0).reshape(2, 3)
    student = lambda k, h, w: _matrix_with(k, h, w, row_of, col_of)   # noqa: E731
    assert named in convcheck.conv_matrix_mistake(student, kernel, *size)
    right = lambda k, h, w: _matrix_with(k, h, w, lambda i, j, oh, ow: i * ow + j,   # noqa: E731
                                         lambda r, c, h_, w_: r * w_ + c)
    assert convcheck.conv_matrix_mistake(right, kernel, *size) is None


@pytest.mark.parametrize("bad", [(5.0, 3), (True, 3), ("5", 3), "53", 5, {5: 3}])
def test_check_int_sequence_rejects_non_integers(bad):
    failure(convcheck.check_int_sequence, bad, 2, "sizes")


def test_check_choice_is_forgiving_about_case_but_not_about_the_choice():
    choices = ("vertical edges", "horizontal edges")
    convcheck.check_choice("  Vertical  edges ", "vertical edges", "feature", choices=choices)
    assert "offered answers" in failure(convcheck.check_choice, "edges", None, "feature", choices=choices)
    assert "K transposed" in failure(convcheck.check_choice, "horizontal edges", "vertical edges", "feature",
                                     choices=choices, mistakes={"horizontal edges": "K transposed"})


def test_check_function_values_names_the_call_and_the_mistake():
    def no_in_channels(c_in, c_out, k, bias=True):
        return c_out * (k * k + bias)

    def right(c_in, c_out, k, bias=True):
        return c_out * (c_in * k * k + bias)

    cases = [((1, 16, 5), {}, 416), ((4, 8, 3), {"bias": False}, 288)]
    convcheck.check_function_values(right, cases)
    message = failure(convcheck.check_function_values, no_in_channels, cases, name="conv_params",
                      hint="generic", mistakes={"in_channels forgotten": no_in_channels})
    assert "conv_params(4, 8, 3, bias=False)" in message and "in_channels forgotten" in message

    def broken(*args, **kwargs):
        raise TypeError("can't multiply sequence")

    assert "raised an error" in failure(convcheck.check_function_values, broken, cases, name="conv_params")



def test_check_function_values_names_only_a_mistake_that_explains_every_case():
    def rounds(H, k, padding=0, stride=1):
        return round((H + 2 * padding - k) / stride) + 1

    def pads_after_stride(H, k, padding=0, stride=1):
        return (H - k) // stride + 1 + 2 * padding

    # Both give 15 for (28, 3, padding 1, stride 2); only the last case tells them apart.
    cases = [((28, 3), {"padding": 1, "stride": 2}, 14), ((224, 7), {"padding": 3, "stride": 2}, 112)]
    mistakes = {"round() is not the floor": rounds, "the padding is added after the stride": pads_after_stride}
    for wrong, named, not_named in [(rounds, *mistakes), (pads_after_stride, *reversed(mistakes))]:
        message = failure(convcheck.check_function_values, wrong, cases, name="output_size", hint="generic",
                          mistakes=mistakes)
        assert "output_size(28, 3, padding=1, stride=2)" in message
        assert named in message and not_named not in message

    def neither(H, k, padding=0, stride=1):   # 15 on the first case, like both; 999 on the second
        return 15 if H == 28 else 999

    message = failure(convcheck.check_function_values, neither, cases, hint="generic", mistakes=mistakes)
    assert "generic" in message and not any(text in message for text in mistakes)


def test_one_type_policy_for_every_notebook():
    from fractions import Fraction
    for value, types in [(np.int64(3), int), (np.uint8(3), int), (np.float32(0.5), float), (Fraction(1, 3), float),
                         ((1, 2), list), ([1, 2], tuple), (np.int64(3), (int, np.integer)), (True, (bool, np.bool_)),
                         (np.bool_(False), (bool, np.bool_))]:
        convcheck.check_type(value, types, "answer")
    for value, types in [(10.0, int), (True, int), (np.bool_(True), (int, float, np.number)), ("3", int),
                         (np.float64(2.0), (int, np.integer)), ({1: 2}, list)]:
        assert "has the wrong type" in failure(convcheck.check_type, value, types, "answer")

def test_check_counts():
    convcheck.check_counts({np.float64(2.0): 3, 5: np.int64(1)}, {2: 3, 5: 1}, "counts")
    assert "non-zero" in failure(convcheck.check_counts, {0: 4, 2: 3, 5: 1}, {2: 3, 5: 1}, "counts")
    assert "count for value 5" in failure(convcheck.check_counts, {2: 3, 5: 2}, {2: 3, 5: 1}, "counts")
    assert "dict" in failure(convcheck.check_counts, [(2, 3)], {2: 3}, "counts")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_passes_every_test_cell(name):
    run = run_notebook(name)
    assert run.errors and not run.failed(), run.failed()
    assert not run.other_errors, run.other_errors


@pytest.mark.parametrize("name", spec_names("nb04", "nb05"))
def test_wrong_spec_scores_and_messages_in_process(name):
    check_spec(name)
