"""convcheck's contract, precision and message rules, in-process (no nbgrader, a few seconds).

* The tolerance follows the inputs and the reference, never the dtype a student chose for the output;
  a float64 input must still give a float64 result.
* ``check_contract`` finds each breach (list, integer output, uint8 overflow, memory layout, cache,
  a float32 step, inputs changed in place) and passes right implementations of every style.
* The reference is computed from copies made before the call; an unwritten function gets one line;
  a failure renders as its message in IPython; a wrong helper is named instead of its caller.
"""
import functools
import pathlib
import sys

import numpy as np
import pytest

from inprocess import convcheck, failure


def loops(image, kernel, padding=0, stride=1, *, cast=True, out_dtype=float):
    if cast:
        image, kernel = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    image = np.pad(image, padding)
    (H, W), (kH, kW) = image.shape, kernel.shape
    out = np.zeros(((H - kH) // stride + 1, (W - kW) // stride + 1), dtype=out_dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i * stride:i * stride + kH, j * stride:j * stride + kW] * kernel)
    return out


def batch_loops(x, weight, bias=None, stride=1, padding=0):
    x, weight = np.asarray(x, dtype=float), np.asarray(weight, dtype=float)
    out = np.stack([np.stack([sum(loops(x[n, c], weight[o, c], padding, stride) for c in range(x.shape[1]))
                              for o in range(weight.shape[0])]) for n in range(x.shape[0])])
    return out if bias is None else out + np.asarray(bias)[None, :, None, None]


def named(func, name="conv2d_full"):
    func.__name__ = name
    return func


_cache = {}


def cached(image, kernel, padding=0, stride=1):
    key = (id(image), id(kernel), padding, stride)
    if key not in _cache:  # the arrays are kept with the result, so their ids cannot be reused meanwhile
        _cache[key] = (image, kernel, loops(image, kernel, padding, stride))
    return _cache[key][2]


def strided_from_shape(image, kernel, padding=0, stride=1):
    image, kernel = np.pad(np.asarray(image, dtype=float), padding), np.asarray(kernel, dtype=float)
    (H, W), (kH, kW) = image.shape, kernel.shape
    windows = np.lib.stride_tricks.as_strided(image, ((H - kH) // stride + 1, (W - kW) // stride + 1, kH, kW),
                                              (W * 8 * stride, 8 * stride, W * 8, 8))
    return np.einsum("ijmn,mn->ij", windows, kernel)


def flips_in_place(image, kernel, padding=0, stride=1):
    kernel[...] = kernel[::-1, ::-1].copy()
    return loops(image, kernel, padding, stride)


@pytest.mark.parametrize("style", ["conv2d", "padded", "full"])
def test_right_implementations_keep_the_contract(style):
    convcheck.check_contract(named(lambda *a, **k: loops(*a, **k)), style=style)
    convcheck.check_contract(named(lambda *a, **k: strided_from_shape(np.ascontiguousarray(a[0], dtype=float),
                                                                      *a[1:], **k)), style=style)


def test_a_right_batched_function_keeps_the_contract():
    convcheck.check_contract(named(batch_loops, "conv2d_forward"), style="batch")


@pytest.mark.parametrize("func, words", [
    (lambda i, k, padding=0, stride=1: loops(i, k, padding, stride).tolist(), "must return a NumPy array"),
    (lambda i, k, padding=0, stride=1: loops(i, k, padding, stride, cast=False, out_dtype=np.asarray(i).dtype),
     "returned an array of int64"),
    (lambda i, k, padding=0, stride=1: loops(i, k, padding, stride, cast=False), "uint8 products wrap around"),
    (lambda i, k, padding=0, stride=1: loops(np.asarray(i, np.float32), np.asarray(k, np.float32), padding, stride),
     "no float32 step"),
    (lambda i, k, padding=0, stride=1: loops(i, k, padding, stride).astype(np.float32), "precision dropped"),
    (cached, "second call, after the caller changed both arrays in place"),
    (strided_from_shape, "a transposed (non-contiguous) image"),
    (flips_in_place, "changed its argument `kernel` in place"),
    (lambda i, k, padding=0, stride=1: np.zeros(((np.shape(i)[0] + 2 * padding - np.shape(k)[0]) // stride + 1,
                                                 (np.shape(i)[1] + 2 * padding - np.shape(k)[1]) // stride + 1)),
     "fix the value tests first"),
])
def test_each_breach_of_the_contract_is_named(func, words):
    assert words in failure(convcheck.check_contract, named(func), style="full")


def test_the_tolerance_follows_the_inputs_not_the_output_dtype():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 9, 8)).astype(np.float32), rng.standard_normal((3, 4, 3, 2)).astype(np.float32)

    def float64_output(x, weight, bias=None, stride=1, padding=0):  # float32 products, float64 sums
        x, weight = np.asarray(x), np.asarray(weight)
        out = np.zeros((x.shape[0], weight.shape[0], x.shape[2] - 2, x.shape[3] - 1))
        for n in range(x.shape[0]):
            for o in range(weight.shape[0]):
                for i in range(out.shape[2]):
                    for j in range(out.shape[3]):
                        out[n, o, i, j] = np.sum(x[n, :, i:i + 3, j:j + 2] * weight[o])
        return out
    convcheck.check_conv2d_batch(float64_output, x, w, device=convcheck.NUMPY)
    assert convcheck.precision_of(x, w) == np.float32
    assert convcheck.precision_of(x.astype(float), w.astype(float)) == np.float64
    assert convcheck.precision_of(np.arange(4), np.arange(4.0)) == np.float64
    assert (convcheck.tolerance(np.float32, terms=10_000) > convcheck.tolerance(np.float32)
            > convcheck.tolerance(np.float64))
    # a float32 result for float64 inputs is refused even when its values are close
    message = failure(convcheck.check_conv2d_batch, lambda *a, **k: float64_output(*a, **k).astype(np.float32),
                      x.astype(float), w.astype(float), device=convcheck.NUMPY)
    assert "returned float32 for float64 inputs" in message and "precision dropped" in message


def test_the_reference_comes_from_copies_taken_before_the_call():
    message = failure(convcheck.check_conv2d, named(flips_in_place, "conv2d"), np.arange(20.0).reshape(4, 5),
                      np.array([[1.0, 2.0], [0.0, -1.0]]), style="conv2d", device=convcheck.NUMPY)
    assert "changed its argument `kernel` in place" in message and "flipped kernel" not in message


def test_a_shape_failure_works_the_rule_for_the_failing_call():
    def one_row_short(image, kernel, padding=0, stride=1):
        return loops(image, kernel, padding, stride)[:-1]
    message = failure(convcheck.check_conv2d, named(one_row_short), np.ones((9, 11)), np.ones((2, 3)),
                      padding=1, stride=2, device=convcheck.NUMPY)
    assert "for a 9x11 image, a 2x3 kernel, padding 1 and stride 2" in message
    assert "(9 + 2 - 2) // 2 + 1 = 5" in message


def test_an_unwritten_function_gets_one_line_naming_the_function_that_raised():
    def conv2d(image, kernel):
        raise NotImplementedError("not written yet: replace this line with your code")

    def conv2d_padded(image, kernel, padding=0):
        return conv2d(np.pad(image, padding), kernel)
    for call in (lambda: convcheck.check_conv2d(conv2d_padded, np.ones((4, 4)), np.ones((2, 2)), padding=1,
                                                style="padded", device=convcheck.NUMPY),
                 lambda: convcheck.check_value_error(lambda: conv2d_padded(np.ones(3), np.ones((2, 2))),
                                                     "conv2d_padded(1-D image)", why="not 2-D"),
                 lambda: convcheck.check_contract(conv2d_padded, style="padded")):
        message = failure(call)
        assert message == convcheck.NOT_WRITTEN.format(name="conv2d"), message


def test_a_failure_renders_as_its_message_without_the_modules_frames():
    error = convcheck.CheckFailure("conv2d(image 4x4, kernel 3x3): 4 of 4 elements are wrong.\n  expected: 1")
    lines = error._render_traceback_()
    assert "CheckFailure" in lines[0] and lines[0].endswith("4 of 4 elements are wrong.")
    assert lines[1:] == ["  expected: 1"]


def test_a_wrong_helper_is_named_instead_of_its_caller():
    def conv2d(image, kernel):
        return loops(image, np.asarray(kernel)[::-1, ::-1])

    def conv2d_padded(image, kernel, padding=0):
        return conv2d(np.pad(image, padding), kernel)
    message = failure(convcheck.check_conv2d, conv2d_padded, np.arange(30.0).reshape(5, 6),
                      np.array([[1.0, 2.0], [0.0, -1.0]]), padding=1, style="padded", device=convcheck.NUMPY,
                      depends_on={"conv2d": conv2d})
    assert "likely mistake: `conv2d` fails its own tests too" in message
    labelled = failure(convcheck.check_conv2d, conv2d_padded, np.arange(30.0).reshape(5, 6),
                       np.array([[1.0, 2.0], [0.0, -1.0]]), padding=0, style="padded", device=convcheck.NUMPY,
                       name="Exercise 4.1 with padding 0: conv2d_padded", depends_on={"conv2d": conv2d})
    assert "if conv2d_padded calls it, fix `conv2d` first" in labelled   # the function, not the test's label
    convcheck.check_conv2d(functools.partial(loops), np.ones((4, 4)), np.ones((2, 2)), padding=1, style="padded",
                           device=convcheck.NUMPY, depends_on={"conv2d": conv2d})  # a right function passes anyway


# ---------------------------------------------------------------- value mistakes named by the probes

def per_position(combine, out_size=None):
    """A conv2d_full whose output (i, j) is ``combine(patch, kernel)``; ``out_size(span, stride)`` may change
    the size."""
    def conv2d_full(image, kernel, padding=0, stride=1):
        image, kernel = np.pad(np.asarray(image, dtype=float), padding), np.asarray(kernel, dtype=float)
        (H, W), (kH, kW) = image.shape, kernel.shape
        size = out_size or (lambda span, s: span // s + 1)
        out = np.zeros((size(H - kH, stride), size(W - kW, stride)))
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = combine(image[i * stride:i * stride + kH, j * stride:j * stride + kW], kernel)
        return out
    return conv2d_full


@pytest.mark.parametrize("func, words", [
    (per_position(lambda p, k: np.sum(p * k[::-1])), "kernel flipped upside down"),
    (per_position(lambda p, k: np.sum(p * k[:, ::-1])), "kernel flipped left to right"),
    (per_position(lambda p, k: abs(np.sum(p * k))), "absolute value taken"),
    (per_position(lambda p, k: max(np.sum(p * k), 0.0)), "negative outputs set to 0"),
    (per_position(lambda p, k: np.mean(p * k)), "np.mean instead of np.sum"),
    (per_position(lambda p, k: np.sum(p) * np.sum(k)), "sum of the patch times the sum of the kernel"),
    (per_position(lambda p, k: np.sum(p @ k.T)), "a matrix product"),
    (per_position(lambda p, k: np.sum(p @ k)), "a matrix product"),
    (per_position(lambda p, k: round(np.sum(p * k))), "rounded to whole numbers"),
    (per_position(lambda p, k: np.sum(p * k) + 1), "off by the same 1"),
    (per_position(lambda p, k: np.sum(p * k), lambda span, s: -(-span // s) + 1), "not ceil"),
    (per_position(lambda p, k: np.sum(p * k), lambda span, s: (span + 1) // s), "(H + 2p - k + 1) // s"),
])
def test_a_wrong_way_of_computing_each_output_is_named(func, words):
    image, kernel = np.random.default_rng(8).standard_normal((7, 9)), np.random.default_rng(9).standard_normal((3, 3))
    messages = []
    for padding, stride in ((1, 2), (0, 1), (2, 3)):
        try:
            convcheck.check_conv2d(named(func), image, kernel, padding=padding, stride=stride, device=convcheck.NUMPY)
        except convcheck.CheckFailure as error:
            messages.append(str(error))
    assert messages and words in messages[0], messages[:1]


def batch_variant(change_sum=None, change_out=None):
    def conv2d_forward(x, weight, bias=None, stride=1, padding=0):
        out = batch_loops(x, weight, None, stride, padding)
        out = change_sum(out, x, weight) if change_sum else out
        out = out + np.asarray(bias)[None, :, None, None] if bias is not None else out
        return change_out(out, bias) if change_out else out
    return conv2d_forward


@pytest.mark.parametrize("func, words", [
    (lambda x, w, b=None, stride=1, padding=0: batch_loops(x, np.asarray(w)[:, :, ::-1, :], b, stride, padding),
     "flipped upside down"),
    (batch_variant(lambda out, x, w: out / np.prod(np.shape(w)[1:])), "np.mean instead of np.sum"),
    (batch_variant(lambda out, x, w: np.abs(out)), "absolute value taken"),
    (batch_variant(change_out=lambda out, b: np.maximum(out, 0)), "negative outputs set to 0"),
    (batch_variant(change_out=lambda out, b: out + np.asarray(b)[None, :, None, None]), "bias added twice"),
    (batch_variant(change_out=lambda out, b: out - 2 * np.asarray(b)[None, :, None, None]), "bias subtracted"),
    (batch_variant(change_out=lambda out, b: out + 1), "off by the same 1"),
])
def test_a_wrong_batched_forward_is_named(func, words):
    rng = np.random.default_rng(10)
    message = failure(convcheck.check_conv2d_batch, named(func, "conv2d_forward"), rng.standard_normal((2, 3, 7, 9)),
                      rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), device=convcheck.NUMPY)
    assert "likely mistake:" in message and words in message, message


# ---------------------------------------------------------------- the package: hooks, fresh copies, guard

def test_hooks_set_on_a_fresh_package_reach_every_submodule():
    """What the grader (GRADING_SEED, _reject_library_conv) and the GPU check (_torch_conv, tolerance)
    set on the package is read by the checks in every submodule; other copies are left alone."""
    from coursetools.grader import judge
    source = pathlib.Path(convcheck.__file__).parent
    fresh = judge.load_module("convcheck", source)
    assert fresh is not convcheck and fresh.references is not convcheck.references
    assert sys.modules["convcheck"] is convcheck and sys.modules["convcheck.references"] is convcheck.references
    calls = []
    fresh._torch_conv = lambda *args: calls.append("reference") or convcheck.references._torch_conv(*args)
    fresh.tolerance = lambda *args: calls.append("tolerance") or convcheck.tolerance(*args)
    fresh.check_conv2d(loops, np.ones((4, 5)), np.ones((2, 2)), style="conv2d", device="cpu")
    assert "reference" in calls and "tolerance" in calls
    fresh.GRADING_SEED = 7
    assert not np.array_equal(fresh.rng(1).standard_normal(3), convcheck.rng(1).standard_normal(3))
    fresh._reject_library_conv = lambda *args: calls.append("library")
    fresh.check_no_library_conv(loops)
    fresh.check_no_library_conv_batch(batch_loops)
    assert calls.count("library") == 2


def test_the_runtime_guard_watches_every_submodule():
    from coursetools.grader import tamper
    submodules = {f"convcheck.{p.stem}" for p in pathlib.Path(convcheck.__file__).parent.glob("*.py")
                  if p.stem != "__init__"}
    assert submodules <= set(tamper.GUARDED_MODULES), sorted(submodules - set(tamper.GUARDED_MODULES))


def test_every_name_a_notebook_uses_is_public():
    """Every name of convcheck that a notebook, a shipped module or a test of the checks uses is in ``__all__``."""
    import re
    repo = pathlib.Path(convcheck.__file__).parents[3]
    texts = [p.read_text() for p in (repo / "source" / "session10").glob("*.ipynb")]
    texts += [p.read_text() for p in (repo / "source" / "session10").glob("*.py")]
    texts += [p.read_text() for p in (repo / "tests").glob("test_nb*.py")]
    used = {m for text in texts for m in re.findall(r"\bconvcheck\.(\w+)", text)}
    hooks = {"GRADING_SEED", "_torch_conv", "_reject_library_conv", "py"}  # and convcheck.py in text
    assert used - hooks <= set(convcheck.__all__), sorted(used - hooks - set(convcheck.__all__))
