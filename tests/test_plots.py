"""plots.py, the figures module that ships with the notebooks: one picture per grid of maps, and
the parameter-count bars; clear errors for what it cannot draw."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import plots


@pytest.fixture
def shown(monkeypatch):
    """The figures that plots would show, instead of showing them."""
    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


def test_each_panel_is_coloured_on_its_own_scale():
    ramp = np.arange(12.0).reshape(3, 4)
    canvas, anchors = plots.mosaic([("a", ramp), ("b", ramp * 100 - 7)], columns=2)
    grey = plt.get_cmap("gray")
    left, top = anchors[1][1][:2]
    second = canvas[int(top + 0.5):int(top + 0.5) + 3, int(left + 0.5):int(left + 0.5) + 4]
    assert np.allclose(canvas[:3, :4], grey(ramp / 11)) and np.allclose(second, canvas[:3, :4])


def test_small_panels_are_enlarged_by_whole_factors_and_centred():
    big, small = np.zeros((10, 10)), np.array([[0.0, 1.0], [1.0, 0.0]])
    canvas, anchors = plots.mosaic([("big", big), ("small", small)], columns=2, caption_rows=3)
    left, top, width, height = anchors[1][1]
    assert (width, height) == (10, 10)                       # 2 x 2 enlarged 5 times
    assert anchors[0][1] == (-0.5, 2.5, 10, 10)                 # below its 3 caption rows
    gap = canvas.shape[1] - 20
    assert gap >= 1 and left == 10 + gap - 0.5
    block = canvas[3:13, 10 + gap:20 + gap, 0]
    assert np.allclose(block[:5, :5], 0) and np.allclose(block[:5, 5:], 1) and np.allclose(block[5:, :5], 1)
    assert np.all(canvas[:3, :, 3] == 0), "the caption rows are transparent"


def test_a_panel_style_sets_its_colours():
    signed = np.array([[-1.0, 0.0, 2.0]])
    canvas, _ = plots.mosaic([("s", signed, {"cmap": "RdBu_r", "vmin": -2, "vmax": 2})], columns=1)
    assert np.allclose(canvas[0, :, :], plt.get_cmap("RdBu_r")((signed[0] + 2) / 4))


@pytest.mark.parametrize("panels, message", [
    ([("batch", np.zeros((1, 4, 5, 5)))], r"shape \(1, 4, 5, 5\); each panel is one non-empty 2-D map"),
    ([("empty", np.zeros((0, 3)))], r"shape \(0, 3\); each panel is one non-empty 2-D map"),
    ([("odd", np.zeros((3, 3)), {"colour": "red"})], r"unknown style keys \['colour'\]"),
    ([np.zeros((3, 3))], "must be \\(caption, image\\)"),
    ([], "no panels"),
])
def test_what_cannot_be_drawn_gets_a_clear_error(panels, message):
    with pytest.raises(ValueError, match=message):
        plots.mosaic(panels, columns=2)


def test_show_maps_draws_one_axes_with_captions_frames_and_title(shown):
    maps = np.random.default_rng(0).random((5, 28, 28))
    plots.show_maps([(f"map {k}\nline two", m) for k, m in enumerate(maps)], columns=3, title="five maps")
    (figure,) = shown
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.texts] == [f"map {k}\nline two" for k in range(5)]
    assert len(ax.patches) == 5 and figure.get_suptitle() == "five maps"
    picture = ax.images[0].get_array()
    assert picture.shape[1] == 3 * 28 + 2 * 3 and picture.shape[2] == 4     # 3 columns, gaps of 3 pixels, RGBA


def test_show_maps_takes_torch_tensors(shown):
    torch = pytest.importorskip("torch")
    plots.show_maps([("tensor", torch.ones(4, 4, requires_grad=True) * 2)])
    assert len(shown) == 1


def test_long_captions_widen_the_panels(shown):
    plots.show_maps([("x", np.zeros((8, 8)))] * 2)
    plots.show_maps([("a caption much longer than one panel is wide", np.zeros((8, 8)))] * 2)
    narrow, wide = (figure.get_size_inches()[0] for figure in shown)
    assert wide > 1.5 * narrow


def test_compare_counts_draws_log_bars_with_plain_ticks(shown):
    plots.compare_counts({"conv": 10, "dense": 200_960}, "counts")
    (figure,) = shown
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim()[0] < 10 < 200_960 < ax.get_xlim()[1]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:4] == ["1", "10", "100", "1k"] and not any("$" in label for label in labels)
    assert [t.get_text() for t in ax.texts] == ["10", "200,960"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["conv", "dense"] and ax.yaxis_inverted()


@pytest.mark.parametrize("counts", [{"a": 0, "b": 5}, {"a": -3}, {"a": None}, {"a": True}, {}])
def test_compare_counts_refuses_what_a_log_scale_cannot_show(counts, shown):
    with pytest.raises(ValueError, match="every count must be a positive number"):
        plots.compare_counts(counts, "t")
    assert not shown


def test_kernel_editor_says_what_to_fill_in_before_the_convolution_exists(shown, capsys):
    """Outside a live notebook the editor prints into stdout: the not-ready message first, then the error."""
    import widgets

    def not_written(image, kernel):
        raise NameError("name 'conv2d_padded' is not defined")

    kernels, images = {"identity": np.eye(3)}, {"zeros": np.zeros((5, 5))}
    widgets.kernel_editor(not_written, kernels, images, not_ready="paste conv2d_padded into its cell first")
    printed = capsys.readouterr().out
    assert "paste conv2d_padded into its cell first\n(NameError: name " in printed
    widgets.kernel_editor(lambda image, kernel: image[:2], kernels, images)   # a working one draws
    assert shown
