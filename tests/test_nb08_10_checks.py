"""Notebooks 08-10 without nbgrader: the convcheck helpers they use, the batched-convolution
diagnosis on typical wrong implementations, and their real test cells run on right and wrong answers."""
import functools
import sys

import numpy as np
import pytest

import inprocess
from conftest import REPO

import convcheck

SOURCE = REPO / "source" / "session10"

torch = pytest.importorskip("torch")
nn = torch.nn


# ---------------------------------------------------------------- implementations of the capstone

def good_forward(x, weight, bias=None, stride=1, padding=0):
    x, weight = np.asarray(x), np.asarray(weight)
    kh, kw = weight.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwab,ocab->nohw", windows, weight)
    return out if bias is None else out + np.asarray(bias)[None, :, None, None]


def loop_forward(x, weight, bias=None, stride=1, padding=0, mistake=None):
    """A four-loop forward pass that makes one named mistake."""
    x, weight = np.asarray(x, dtype=float), np.asarray(weight, dtype=float)
    n_images, c_in, height, width = x.shape
    c_out, _, kh, kw = weight.shape
    pad = padding if mistake == "pad_all_axes" else ((0, 0), (0, 0), (padding, padding), (padding, padding))
    padded = np.pad(x, pad)
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - (kh if mistake == "out_w_uses_kh" else kw)) // stride + 1
    out = np.zeros((n_images, c_out, out_h, out_w))
    for n in range(n_images):
        for o in range(c_out):
            for i in range(out_h):
                for j in range(out_w):
                    r, c = (i, j) if mistake == "stride_not_in_slice" else (i * stride, j * stride)
                    patch = padded[n, :, r:r + kh, c:c + kw]
                    if mistake == "flipped":
                        value = np.sum(patch * weight[o, :, ::-1, ::-1])
                    elif mistake == "last_channel_only":
                        for ch in range(c_in):
                            value = np.sum(patch[ch] * weight[o, ch])
                    elif mistake == "summed_over_batch":
                        value = np.sum(padded[:, :, r:r + kh, c:c + kw] * weight[o])
                    elif mistake == "summed_over_outputs":
                        value = np.sum(patch[None] * weight)
                    elif mistake == "weight_axes_swapped":
                        value = np.sum(patch * weight[:, o])
                    else:
                        value = np.sum(patch * weight[o])
                    out[n, o, i, j] = value
    if bias is not None and mistake != "no_bias":
        out = out + (np.asarray(bias) if mistake == "bias_last_axis" else np.asarray(bias)[None, :, None, None])
    if mistake == "channels_last":
        out = out.transpose(0, 2, 3, 1)
    return out


DIAGNOSES = {
    "flipped": "flipped kernel",
    "last_channel_only": "channels not summed",
    "summed_over_batch": "summed over the batch",
    "summed_over_outputs": "summed over the output channels",
    "weight_axes_swapped": "weight axes mixed up",
    "no_bias": "missing bias",
    "bias_last_axis": "bias added along the wrong axis",
    "channels_last": "channels last",
    "pad_all_axes": "pad only the two spatial axes",
    "stride_not_in_slice": "stride ignored when slicing",
    "out_w_uses_kh": "W_out = (W + 2p - kW) // s + 1",
}


def wrong(mistake):
    func = functools.partial(loop_forward, mistake=mistake)
    func.__name__ = f"conv2d_forward_{mistake}"
    return func


@pytest.mark.parametrize("mistake", sorted(DIAGNOSES))
def test_batch_diagnosis_names_the_mistake(mistake):
    diagnosis = convcheck.diagnose_conv2d_batch(wrong(mistake))
    assert diagnosis and DIAGNOSES[mistake] in diagnosis, diagnosis


@pytest.mark.parametrize("func", [good_forward, wrong(None)], ids=["einsum", "loops"])
def test_right_implementations_have_no_diagnosis_and_pass(func):
    assert convcheck.diagnose_conv2d_batch(func) is None
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
        w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
        b = rng.standard_normal(4).astype(dtype)
        out = convcheck.check_conv2d_batch(func, x, w, b, stride=2, padding=1)
        assert out.shape == (2, 4, 5, 5)


def test_check_conv2d_batch_message_names_position_and_mistake():
    rng = np.random.default_rng(1)
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_conv2d_batch(wrong("no_bias"), rng.standard_normal((1, 2, 5, 5)),
                                     rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3))
    text = str(failure.value)
    assert "element n=0, c=0, i=0, j=0" in text and "missing bias" in text


def test_no_library_conv_batch():
    import torch.nn.functional as F

    def with_torch(x, weight, bias=None, stride=1, padding=0):
        return F.conv2d(torch.as_tensor(x), torch.as_tensor(weight), None, stride, padding).numpy()

    def hidden_call(x, weight, bias=None, stride=1, padding=0):
        return getattr(F, "conv" + "2d")(torch.as_tensor(x), torch.as_tensor(weight)).numpy()

    for func in (with_torch, hidden_call):
        with pytest.raises(convcheck.CheckFailure, match="must compute the convolution itself"):
            convcheck.check_no_library_conv_batch(func)
    convcheck.check_no_library_conv_batch(good_forward)
    assert F.conv2d.__name__ == "conv2d"  # the runtime block was undone


# ---------------------------------------------------------------- helpers for torch layers and arrays

def test_check_conv_layer_names_the_wrong_setting():
    layer = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    convcheck.check_conv_layer(layer, "conv", in_channels=1, out_channels=4, kernel_size=3, padding=1, stride=1,
                               bias=False)
    with pytest.raises(convcheck.CheckFailure, match="conv.padding is not right"):
        convcheck.check_conv_layer(nn.Conv2d(1, 4, 3, bias=False), "conv", in_channels=1, out_channels=4, kernel_size=3,
                                   padding=1, bias=False)
    with pytest.raises(convcheck.CheckFailure, match="must not have a bias"):
        convcheck.check_conv_layer(nn.Conv2d(1, 4, 3, padding=1), "conv", in_channels=1, out_channels=4, kernel_size=3,
                                   padding=1, bias=False)
    with pytest.raises(convcheck.CheckFailure, match="wrong type"):
        convcheck.check_conv_layer(nn.Linear(3, 4), "conv", in_channels=1, out_channels=4, kernel_size=3)


def test_check_conv_weight_reports_order_transpose_and_flip():
    kernels = np.stack([np.arange(9.0).reshape(3, 3), -np.arange(9.0).reshape(3, 3) ** 2])[:, None]
    layer = nn.Conv2d(1, 2, 3, bias=False)
    cases = {"holds the kernel meant for filter 1": kernels[::-1],
             "transposed": np.swapaxes(kernels, -1, -2),
             "flipped": kernels[..., ::-1, ::-1]}
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(kernels))
    convcheck.check_conv_weight(layer, kernels, "conv")
    for text, loaded in cases.items():
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(loaded)))
        with pytest.raises(convcheck.CheckFailure, match=text):
            convcheck.check_conv_weight(layer, kernels, "conv")


def test_check_channels_spots_a_wrong_order():
    expected = np.random.default_rng(2).standard_normal((3, 4, 4))
    convcheck.check_channels(torch.from_numpy(expected[None]), expected, "maps")
    with pytest.raises(convcheck.CheckFailure, match="channel 0 shows what channel 2 should show"):
        convcheck.check_channels(expected[[2, 1, 0]][None], expected, "maps", atol=1e-9)


def test_check_array_with_mistakes_adds_the_likely_mistake():
    want = np.arange(6.0).reshape(2, 3)
    convcheck.check_array_with_mistakes(want + 1e-9, want, "a", mistakes=[(want ** 2, "squared")], atol=1e-6)
    with pytest.raises(convcheck.CheckFailure, match="likely mistake: squared"):
        convcheck.check_array_with_mistakes(want ** 2, want, "a", mistakes=[(want ** 2, "squared")], atol=1e-6)
    with pytest.raises(convcheck.CheckFailure) as failure:
        convcheck.check_array_with_mistakes(want * 3, want, "a", mistakes=[(want ** 2, "squared")], atol=1e-6)
    assert "likely mistake" not in str(failure.value)


def test_conv_atol_scales_with_magnitude_dtype_and_device():
    image = np.full((4, 4), -2.0)
    kernel = np.ones((3, 3))
    cpu32 = convcheck.conv_atol(image, kernel, padding=1, dtype=np.float32)
    assert cpu32.shape == (4, 4)
    assert np.isclose(cpu32[1, 1], 1e-5 * (18 + 1)) and np.isclose(cpu32[0, 0], 1e-5 * (8 + 1))
    assert np.allclose(convcheck.conv_atol(image, kernel, padding=1, dtype=np.float32, device="cuda"), cpu32 * 400)
    batch = convcheck.conv_atol(np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)), bias=np.ones(4), dtype=np.float64)
    assert batch.shape == (2, 4, 3, 3) and np.allclose(batch, 1e-10 * (27 + 1 + 1))


@pytest.mark.parametrize("padding, stride", [(0, 1), (1, 1), (2, 3), (1, 2)])
def test_numpy_reference_agrees_with_torch(padding, stride):
    rng = np.random.default_rng(padding * 10 + stride)
    x, w, b = rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    by_numpy = convcheck._batch_reference(x, w, b, padding=padding, stride=stride, device=convcheck.NUMPY)
    by_torch = convcheck._batch_reference(x, w, b, padding=padding, stride=stride, device="cpu")
    assert by_numpy.shape == by_torch.shape and np.allclose(by_numpy, by_torch, rtol=0, atol=1e-12)
    image, kernel = x[0, 0], w[0, 0]
    assert np.allclose(convcheck.conv2d_reference(image, kernel, padding=padding, stride=stride,
                                                  device=convcheck.NUMPY),
                       convcheck.conv2d_reference(image, kernel, padding=padding, stride=stride, device="cpu"),
                       rtol=0, atol=1e-12)


def test_a_numpy_check_names_its_reference_and_never_loads_torch():
    """Notebook 08's public check uses the NumPy reference so that the notebook starts without torch."""
    import subprocess
    code = """
import sys, numpy as np, convcheck
def flipped(image, kernel, padding=0):
    return convcheck.conv2d_reference(image, np.asarray(kernel)[::-1, ::-1], padding=padding, device=convcheck.NUMPY)
rng = np.random.default_rng(0)
convcheck.check_conv2d(flipped, rng.standard_normal((5, 6)), np.ones((3, 3)), padding=1, style="padded",
                       device=convcheck.NUMPY)
try:
    convcheck.check_conv2d(flipped, rng.standard_normal((5, 6)), rng.standard_normal((3, 3)), padding=1,
                           style="padded", device=convcheck.NUMPY)
except convcheck.CheckFailure as failure:
    print(failure)
print("torch loaded:", "torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=SOURCE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "likely mistake: flipped kernel" in result.stdout
    assert "(reference: NumPy, float64; tolerance 1e-10" in result.stdout
    assert result.stdout.strip().endswith("torch loaded: False")


# ---------------------------------------------------------------- the notebooks' own test cells

# one source cell (hidden tests included) run in a namespace with NumPy, convcheck and the given names
run_cell = functools.partial(inprocess.run_cell, np=np, convcheck=convcheck)


def padded_loops(image, kernel, padding=0, flip=False):
    image = np.pad(np.asarray(image, dtype=float), padding)
    kernel = np.asarray(kernel, dtype=float)[::-1, ::-1] if flip else np.asarray(kernel, dtype=float)
    rows, cols = image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1
    return np.array([[np.sum(image[r:r + kernel.shape[0], c:c + kernel.shape[1]] * kernel) for c in range(cols)]
                     for r in range(rows)])


def test_nb08_conv2d_padded_cell_public_numpy_part_and_hidden_torch_part(capsys):
    digit = np.random.default_rng(1).random((28, 28))
    namespace = run_cell("08_feature_detection", "nb08_test_conv2d_padded", conv2d_padded=padded_loops,
                         digit_image=digit)
    assert [case[2] for case in namespace["_cases"]] == [0, 1, 3], "the hidden part ran"
    assert convcheck.FLIP_NOTICE not in capsys.readouterr().out

    def flipped_with_a_wrong_border(image, kernel, padding=0):
        return padded_loops(image, kernel, padding, flip=True)[:, :-1] if padding else \
            padded_loops(image, kernel, padding, flip=True)
    with pytest.raises(convcheck.CheckFailure, match=r"(?s)reference: NumPy, float64"):
        run_cell("08_feature_detection", "nb08_test_conv2d_padded", digit_image=digit,
                 conv2d_padded=flipped_with_a_wrong_border)

    def right_until_padding_3(image, kernel, padding=0):  # only the hidden cases use padding 3
        return padded_loops(image, kernel, padding, flip=padding == 3)
    with pytest.raises(convcheck.CheckFailure, match=r"reference: torch on cpu"):
        run_cell("08_feature_detection", "nb08_test_conv2d_padded", digit_image=digit,
                 conv2d_padded=right_until_padding_3)


def test_a_flip_pasted_from_07_is_told_and_charged_in_07_only(capsys):
    """08 and 09 grade their own work: the pasted conv2d_padded that turns the kernel passes their check
    with a notice, their answers are compared with what it computes, and the rest of 07's contract holds."""
    digit = np.random.default_rng(1).random((28, 28))
    flipped = functools.partial(padded_loops, flip=True)
    assert convcheck.flips_kernel(flipped) and not convcheck.flips_kernel(padded_loops)
    assert not convcheck.flips_kernel(lambda image, kernel, padding=0: np.zeros((1, 1)))
    run_cell("08_feature_detection", "nb08_test_conv2d_padded", conv2d_padded=flipped, digit_image=digit)
    assert capsys.readouterr().out.count(convcheck.FLIP_NOTICE) == 1
    kernel = np.arange(9.0).reshape(3, 3)
    assert np.allclose(convcheck.carried_reference(flipped)(digit, kernel, padding=1, device=convcheck.NUMPY),
                       padded_loops(digit, kernel, 1, flip=True))
    assert np.allclose(convcheck.carried_reference(padded_loops)(digit, kernel, padding=1, device=convcheck.NUMPY),
                       padded_loops(digit, kernel, 1))

    def flipped_in_place(image, kernel, padding=0):   # the flip, and the caller's kernel changed
        kernel = np.asarray(kernel)
        result = padded_loops(image, kernel, padding, flip=True)
        if kernel.dtype == float:
            kernel *= 2
        return result
    with pytest.raises(convcheck.CheckFailure, match="changed"):
        run_cell("08_feature_detection", "nb08_test_conv2d_padded", conv2d_padded=flipped_in_place, digit_image=digit)


DIAGONAL_KERNELS = {
    "lecture's answer": ([[0, 1, 2], [-1, 0, 1], [-2, -1, 0]], True),
    "reference": ([[0, 1, 1], [-1, 0, 1], [-1, -1, 0]], True),
    "opposite sign": ([[0, -1, -1], [1, 0, -1], [1, 1, 0]], True),
    "scaled by 1/2": ([[0, 0.5, 1], [-0.5, 0, 0.5], [-1, -0.5, 0]], True),
    "corner difference (no orientation)": ([[0, 0, 1], [0, 0, 0], [-1, 0, 0]], False),
    "'/' diagonal": ([[1, 1, 0], [1, 0, -1], [0, -1, -1]], False),
    "Sobel G_x": ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], False),
    "Laplacian (no orientation)": ([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], False),
    "zeros": ([[0, 0, 0], [0, 0, 0], [0, 0, 0]], False),
}


@pytest.mark.parametrize("name", sorted(DIAGONAL_KERNELS))
def test_diagonal_kernel_grading_accepts_designs_not_values(name):
    kernel, passes = DIAGONAL_KERNELS[name]
    run = functools.partial(run_cell, "08_feature_detection", "nb08_test_diag_kernel_behaviour",
                            K_diag=np.array(kernel, dtype=float))
    if passes:
        run()
    else:
        with pytest.raises(convcheck.CheckFailure, match="1.2 times"):
            run()


def size_after_right(n_layers, H, k=3):
    side = H - n_layers * (k - 1)
    if side < 1:
        raise ValueError("the kernel no longer fits")
    return side


def test_size_after_cells_pass_the_right_function_and_catch_wrong_ones():
    for grade_id in ("nb10_test_size_after_ten", "nb10_test_size_after_general"):
        run_cell("10_summary", grade_id, size_after=size_after_right)

    def no_error(n_layers, H, k=3):
        return H - n_layers * (k - 1)

    with pytest.raises(convcheck.CheckFailure, match="did not raise"):
        run_cell("10_summary", "nb10_test_size_after_general", size_after=no_error)

    def off_by_k(n_layers, H, k=3):
        if H - n_layers * k < 1:
            raise ValueError("the kernel no longer fits")
        return H - n_layers * k

    with pytest.raises(convcheck.CheckFailure, match="not k"):
        run_cell("10_summary", "nb10_test_size_after_ten", size_after=off_by_k)


FORWARD_CELLS = ["nb10_test_forward_basics", "nb10_test_forward_channels", "nb10_test_forward_stride_padding",
                 "nb10_test_forward_nn_conv2d"]


def checked_forward(x, weight, bias=None, stride=1, padding=0):
    x, weight = np.asarray(x), np.asarray(weight)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError("x and weight must be 4-D")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels, weight expects {weight.shape[1]} channels")
    if bias is not None and np.shape(bias) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},)")
    return good_forward(x, weight, bias, stride, padding)


def test_capstone_cells_pass_a_right_forward():
    import coursedata
    for grade_id in FORWARD_CELLS + ["nb10_test_forward_errors"]:
        run_cell("10_summary", grade_id, conv2d_forward=checked_forward, coursedata=coursedata)


@pytest.mark.parametrize("mistake", ["no_bias", "flipped", "weight_axes_swapped", "last_channel_only"])
def test_capstone_cells_fail_wrong_forwards(mistake):
    import coursedata
    failed = []
    for grade_id in FORWARD_CELLS:
        try:
            run_cell("10_summary", grade_id, conv2d_forward=wrong(mistake), coursedata=coursedata)
        except convcheck.CheckFailure as failure:
            failed.append(grade_id)
            if grade_id != "nb10_test_forward_basics" or mistake != "no_bias":
                assert DIAGNOSES[mistake] in str(failure), str(failure)
    assert len(failed) >= 3, failed


def test_capstone_error_cell_wants_own_value_errors():
    with pytest.raises(convcheck.CheckFailure, match="must say 'channel'"):
        run_cell("10_summary", "nb10_test_forward_errors", conv2d_forward=wrong(None))
