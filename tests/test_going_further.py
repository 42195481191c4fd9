"""The optional going-further part (10.4, the backward pass), without nbgrader: its checks on right and
wrong answers, a set-up function handed to a student's function at grading, and its points counted apart
from the core's (the graded class is in tests/test_corpus.py; the LMS column in tests/test_export.py)."""
import json

import numpy as np
import pytest

from coursetools.core.cells import going_further
from coursetools.core.spec import expected_code_score
from coursetools.grader import agent, judge
from coursetools.plain import runner as plainrun
from conftest import REPO

import convcheck

SOURCE = REPO / "source" / "session10"
pytest.importorskip("torch")


def backward(dout, x, weight, bias=None, stride=1, padding=0, mistake=None):
    """A right conv2d_backward, or one that makes the named mistake."""
    dout, x, weight = (np.asarray(a, dtype=float) for a in (dout, x, weight))
    height, width = x.shape[2:]
    k_h, k_w = weight.shape[2:]
    step = 1 if mistake == "stride left out" else stride
    sent_back = weight[:, :, ::-1, ::-1] if mistake == "kernel not turned" else weight
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dx_padded, dweight = np.zeros_like(padded), np.zeros_like(weight)
    images = 1 if mistake == "first image only" else x.shape[0]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * step, i * step + k_h), slice(j * step, j * step + k_w)
            dweight += np.einsum("no,nckl->ockl", dout[:images, :, i, j], padded[:images, :, rows, cols])
            dx_padded[:, :, rows, cols] += np.einsum("no,ockl->nckl", dout[:, :, i, j], sent_back)
    dx = dx_padded if mistake == "padding kept" else dx_padded[:, :, padding:padding + height,
                                                               padding:padding + width].copy()
    dbias = dout.mean(axis=(0, 2, 3)) if mistake == "mean" else dout.sum(axis=(0, 2, 3))
    return (-dx if mistake == "sign" else dx), dweight, dbias


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, 3, 3)), rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3))


def test_the_worked_example_by_hand_is_what_autograd_gives():
    from convcheck.backward import _backward_reference
    dx, dweight, dbias = _backward_reference(np.ones((1, 1, 2, 2)), np.arange(1.0, 10.0).reshape(1, 1, 3, 3),
                                             np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), device="cpu")
    assert dbias.tolist() == [4.0]
    assert dweight[0, 0].tolist() == [[12.0, 16.0], [24.0, 28.0]]
    assert dx[0, 0].tolist() == [[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]]


def test_a_right_backward_pass_passes_with_stride_and_padding():
    dout, x, weight = inputs()
    dx, dweight, dbias = convcheck.check_conv2d_backward(backward, dout, x, weight, stride=2, padding=1)
    assert dx.shape == x.shape and dweight.shape == weight.shape and dbias.shape == (3,)


@pytest.mark.parametrize("mistake, named", [
    ("kernel not turned", "without turning it"),
    ("stride left out", "the stride is left out"),
    ("first image only", "only the first image counts"),
    ("mean", "a mean where the gradient is a sum"),
    ("sign", "a sign"),
    ("padding kept", "drop the padding again"),
])
def test_each_wrong_backward_pass_is_told_its_mistake(mistake, named):
    dout, x, weight = inputs()
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_conv2d_backward(lambda *a, **k: backward(*a, **k, mistake=mistake), dout, x, weight,
                                        stride=2, padding=1)
    assert named in str(failure.value), str(failure.value)


def wavy(x):
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum(np.sin(x) + 0.5 * x ** 2))


def central(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        kept = x[index]
        x[index] = kept + h
        up = f(x)
        x[index] = kept - h
        gradient[index] = (up - f(x)) / (2 * h)
        x[index] = kept
    return gradient


def one_sided(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    base, gradient = f(x), np.zeros_like(x)
    for index in np.ndindex(x.shape):
        x[index] += h
        gradient[index] = (f(x) - base) / h
        x[index] -= h
    return gradient


@pytest.mark.parametrize("h", [1e-5, 0.5])
def test_central_differences_pass_at_small_and_large_steps(h):
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    got = convcheck.check_numerical_gradient(central, wavy, x, h=h)
    assert got.shape == x.shape


@pytest.mark.parametrize("func, h, named", [
    (one_sided, 1e-5, "a one-sided (forward) difference"),
    (lambda f, x, h: np.cos(x) + x, 0.5, "the derivative itself"),
    (lambda f, x, h: 2 * central(f, x, h), 0.5, "divided by h instead of 2h"),
])
def test_wrong_numerical_gradients_are_told_their_mistake(func, h, named):
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_numerical_gradient(func, wavy, np.linspace(-2.0, 2.0, 12).reshape(3, 4), h=h)
    assert named in str(failure.value), str(failure.value)


def test_a_numerical_gradient_that_leaves_x_changed_fails():
    def leaves_x_changed(f, x, h):
        for index in np.ndindex(x.shape):
            x[index] += h
        return central(f, x, h)

    with pytest.raises(convcheck.CheckFailure, match="changed its argument `x` in place"):
        convcheck.check_numerical_gradient(leaves_x_changed, wavy, np.linspace(-2.0, 2.0, 6), h=1e-5)


def test_a_set_up_function_reaches_the_students_function_as_the_kernels_own():
    """At grading, ``numerical_gradient(wavy, x)`` hands the kernel's ``wavy`` to the kernel's function (a
    function cannot cross as a value); the expected values stay the grader's own run of the set-up cell."""
    cells = [("readonly", "nb_setup", "import numpy as np\nimport convcheck\n"),
             ("readonly", "nb_wavy", "def wavy(x):\n    x = np.asarray(x, dtype=np.float64)\n"
                                     "    return float(np.sum(np.sin(x) + 0.5 * x ** 2))\n"),
             ("solution", "nb_answer", ""), ("tests", "nb_test", "")]
    calls = []

    def kernel_wavy(x):
        calls.append(np.array(x))
        return wavy(x)

    helper = agent.Agent({"wavy": kernel_wavy, "numerical_gradient": central})
    test = judge.Judge(lambda request: json.loads(helper.serve(json.dumps(request))), SOURCE,
                       [source for kind, _, source in cells if kind == "readonly"], [], code_cells=cells)
    helper.after_cell(True, ["numerical_gradient"])
    printed, error = test.run("convcheck.check_numerical_gradient(numerical_gradient, wavy, np.arange(3.0), "
                              "h=0.5)\n", "nb_test")
    assert error is None, error
    assert len(calls) == 6   # the kernel's wavy, at x + h and x - h for each of the three elements


def test_going_further_points_are_counted_apart_from_the_core():
    assert going_further("nb10_further_test_backward_basics") and not going_further("nb10_test_forward_basics")
    result = plainrun.run_notebook(SOURCE / "10_summary.ipynb")
    assert result["max_further_score"] == 6 and result["further_score"] == 6, plainrun.summary_lines(result)
    assert result["max_score"] == 14 and result["score"] == 14   # the core's points, as before the part
    spec = {"base": "solution", "expected": {}, "expected_further": {"10_summary": 2}, "blank": []}
    assert expected_code_score(spec, "10_summary", 14) == 14
    assert expected_code_score(spec, "10_summary", 6, further=True) == 2
    assert expected_code_score(dict(spec, base="release", expected_further={}), "10_summary", 6, further=True) == 0
