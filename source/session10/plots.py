"""Pictures for the Session 10 notebooks.

``compare_counts`` draws parameter counts as bars on a log scale. Bars of different
colours also get different hatches, so that they can be told apart without colour.

``show_maps`` draws a grid of small images (digits, feature maps) as ONE picture on
one set of axes. Matplotlib spends most of a figure's time per axes, so ten maps
drawn this way appear about three times sooner than ten subplots would. Each panel
is still coloured on its own scale, from its own minimum to its own maximum, as a
separate ``imshow`` would do.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

__all__ = ["compare_counts", "show_maps", "mosaic"]

_LINE_INCHES = 1.5 / 72  # one line of caption, per point of font size, with room for descenders
_CHAR_INCHES = 0.55 / 72  # an average character's width, per point of font size
_HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")  # one per colour group: the first group is plain
_POWER_NAMES = {0: "1", 1: "10", 2: "100", 3: "1k", 4: "10k", 5: "100k", 6: "1M", 7: "10M", 8: "100M",
                9: "1B", 10: "10B", 11: "100B"}


def _hatches_for(colors, count):
    """One hatch per bar: bars of the same colour share one, bars of different colours differ."""
    if colors is None or isinstance(colors, str):
        return [""] * count
    colors = list(colors)
    groups = {}
    for color in colors:
        groups.setdefault(str(color), _HATCHES[len(groups) % len(_HATCHES)])
    return [groups[str(colors[n % len(colors)])] for n in range(count)] if colors else [""] * count


def compare_counts(counts, title, colors=None, xlabel="trainable parameters", hatches=None):
    """Horizontal bars for ``counts`` ({label: count}, first on top) on a log scale, each with its count.

    ``colors``: one colour for all bars, or one per bar. ``hatches``: one fill pattern per bar
    (such as ``""``, ``"//"``); by default bars of the same colour share a pattern and bars of
    different colours get different ones, so the groups stay apart in grey print too.
    """
    names, values = list(counts), list(counts.values())
    bad = [f"{name!r}: {value!r}" for name, value in zip(names, values)
           if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0]
    if not values or bad:
        raise ValueError("compare_counts: every count must be a positive number (a log scale cannot show 0, "
                         f"negative or missing values); got {', '.join(bad) or 'no counts'}")
    low = math.floor(math.log10(min(values) / 3))  # so that the shortest bar still shows
    high = min(max(_POWER_NAMES), math.ceil(math.log10(max(values) * 20)))  # room for the count after a bar
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.45 * len(names)))
    bars = ax.barh(names, values, color=colors, edgecolor="0.2", linewidth=0.6)
    for bar, hatch in zip(bars, _hatches_for(colors, len(names)) if hatches is None else list(hatches)):
        bar.set_hatch(hatch or None)
    ax.bar_label(bars, labels=[f"{value:,}" for value in values], padding=4)
    ax.set_xscale("log")
    # plain-text ticks: matplotlib's default 10^n labels are typeset as maths, which is slow
    powers = range(low, high + 1)
    ax.set_xticks([10.0 ** power for power in powers], [_POWER_NAMES.get(power, f"1e{power}") for power in powers])
    ax.minorticks_off()
    ax.set_xlim(10.0 ** low, 10.0 ** high)
    ax.invert_yaxis()
    ax.set_xlabel(f"{xlabel} (log scale; k = thousand, M = million, B = billion)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.show()


def _panel(number, panel):
    """(caption, 2-D float array, style) from ``(caption, image)`` or ``(caption, image, style)``."""
    if not isinstance(panel, (tuple, list)) or len(panel) not in (2, 3):
        raise ValueError(f"show_maps: panel {number} must be (caption, image) or (caption, image, style), "
                         f"not {type(panel).__name__}")
    caption, image, style = (*panel, {}) if len(panel) == 2 else panel
    if hasattr(image, "detach"):  # a torch tensor, possibly on the GPU
        image = image.detach().cpu().numpy()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"show_maps: panel {number} ({caption!r}) has shape {image.shape}; each panel is one "
                         f"non-empty 2-D map (for a batch, pass out[0, c] for each channel c)")
    unknown = set(style) - {"cmap", "vmin", "vmax"}
    if unknown:
        raise ValueError(f"show_maps: panel {number} ({caption!r}) has unknown style keys {sorted(unknown)}; "
                         f"use cmap, vmin, vmax")
    return str(caption), image, style


def mosaic(panels, columns, cmap="gray", caption_rows=0):
    """One RGBA picture of all panels, and each panel's caption and box (left, top, width, height).

    Cells are as large as the largest panel. A smaller panel is enlarged by a whole
    factor (each pixel becomes a square block) as far as it fits, and sits in the middle
    of its cell. Between cells there is a transparent gap, plus ``caption_rows`` pixels
    above every row for the captions.
    """
    return _mosaic([_panel(number, panel) for number, panel in enumerate(panels)], columns, cmap, caption_rows)


def _mosaic(parsed, columns, cmap, caption_rows):
    if not parsed:
        raise ValueError("show_maps: no panels to show")
    height = max(image.shape[0] for _, image, _ in parsed)
    width = max(image.shape[1] for _, image, _ in parsed)
    gap = max(1, round(0.12 * width))
    rows = math.ceil(len(parsed) / columns)
    cell_h, cell_w = caption_rows + height + gap, width + gap
    canvas = np.zeros((rows * cell_h - gap, columns * cell_w - gap, 4))
    anchors = []
    for number, (caption, image, style) in enumerate(parsed):
        factor = max(1, min(height // image.shape[0], width // image.shape[1]))
        image = np.kron(image, np.ones((factor, factor)))
        top = (number // columns) * cell_h + caption_rows + (height - image.shape[0]) // 2
        left = (number % columns) * cell_w + (width - image.shape[1]) // 2
        finite = image[np.isfinite(image)]
        low = style.get("vmin", finite.min() if finite.size else 0.0)
        high = style.get("vmax", finite.max() if finite.size else 1.0)
        colours = plt.get_cmap(style.get("cmap", cmap))(Normalize(low, high)(image))
        canvas[top:top + image.shape[0], left:left + image.shape[1]] = colours
        anchors.append((caption, (left - 0.5, top - 0.5, image.shape[1], image.shape[0])))
    return canvas, anchors


def show_maps(panels, columns=None, title=None, cmap="gray", panel_inches=1.6, fontsize=9):
    """Show ``panels`` in a grid of ``columns`` (default: all in one row, at most 5).

    Each panel is ``(caption, image)`` or ``(caption, image, style)`` where style may set
    ``cmap``, ``vmin`` and ``vmax`` for that panel (for example a red-blue map with limits
    symmetric around 0). Captions may hold several lines and $math$. Panels are
    ``panel_inches`` wide, or wider where a caption needs it.
    """
    panels = [_panel(number, panel) for number, panel in enumerate(panels)]
    columns = columns or min(len(panels), 5)
    widest = max((image.shape[1] for _, image, _ in panels), default=1)
    captions = [caption.split("\n") for caption, _, _ in panels]
    longest = max((len(line) for caption in captions for line in caption), default=0)
    panel_inches = max(panel_inches, longest * fontsize * _CHAR_INCHES)
    inches_per_pixel = panel_inches / widest
    lines = max((len(caption) for caption in captions), default=1)
    caption_rows = math.ceil(lines * fontsize * _LINE_INCHES / inches_per_pixel) + 1
    canvas, anchors = _mosaic(panels, columns, cmap, caption_rows)
    title_inches = 0.45 if title else 0.0
    size = (canvas.shape[1] * inches_per_pixel, canvas.shape[0] * inches_per_pixel + title_inches)
    fig = plt.figure(figsize=size)
    ax = fig.add_axes((0, 0, 1, 1 - title_inches / size[1]))
    ax.imshow(canvas, interpolation="nearest")
    for caption, (left, top, width, height) in anchors:
        # a thin frame, so that white parts of a panel do not merge into the page
        ax.add_patch(Rectangle((left, top), width, height, fill=False, edgecolor="0.75", linewidth=0.6))
        ax.text(left + width / 2, top - 0.3, caption, ha="center", va="bottom", fontsize=fontsize)
    ax.axis("off")
    if title:
        fig.suptitle(title, y=1 - 0.1 / size[1], va="top")
    plt.show()
