"""Interactive widgets for the Session 10 notebooks.

``convolution_explorer`` moves a kernel over an image with two sliders and shows the
patch under it, the element-wise products and their sum. The widgets need a running
notebook to be used, but this module imports anywhere (ipywidgets is only imported
when a widget is built), so headless test runs can import it.
"""
import numpy as np

__all__ = ["convolution_explorer"]


def _short_number(value):
    """Whole numbers without decimals, other numbers with three significant digits."""
    value = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:.0f}" if value == round(value) else f"{value:.3g}"


def _html_table(values, caption, window=None):
    """A small 2-D array as HTML, its caption on one line above it; ``window`` = (top, left, rows, cols) is shaded."""
    rows = []
    for r, line in enumerate(np.asarray(values)):
        cells = []
        for c, value in enumerate(line):
            inside = (window is not None and window[0] <= r < window[0] + window[2]
                      and window[1] <= c < window[1] + window[3])
            shade = "background:#ffd27f;" if inside else ""
            cells.append(f"<td style='border:1px solid #bbb;padding:2px 6px;text-align:right;{shade}'>"
                         f"{_short_number(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    # The caption is a block of its own, not a <caption>: a table caption is only as wide as
    # the table and wraps ("patch = / image[0:3, / 0:3]"); this block widens its column instead.
    return ("<div style='display:flex;flex-direction:column;align-items:center'>"
            f"<div style='white-space:nowrap;margin-bottom:3px'>{caption}</div>"
            f"<table style='border-collapse:collapse;font-family:monospace'>{''.join(rows)}</table></div>")


def convolution_explorer(examples):
    """Sliders "row i" and "column j" that move a kernel over an image, with the patch, products and sum.

    ``examples`` maps a name to an ``(image, kernel)`` pair of 2-D arrays; a menu switches
    between them. Returns the widget (a VBox of the menu, the sliders and the view);
    display it, or make it the last line of a cell, to use it.
    """
    import ipywidgets

    names = list(examples)
    choice = ipywidgets.Dropdown(options=names, value=names[0], description="example",
                                 layout=ipywidgets.Layout(width="420px"))
    row = ipywidgets.IntSlider(value=0, min=0, max=0, description="row i", continuous_update=True)
    col = ipywidgets.IntSlider(value=0, min=0, max=0, description="column j", continuous_update=True)
    view = ipywidgets.HTML()

    def redraw(_change=None):
        image, kernel = (np.asarray(a, dtype=float) for a in examples[choice.value])
        tall, wide = np.shape(kernel)
        row.max = image.shape[0] - tall   # shrinking max also moves the value back into range
        col.max = image.shape[1] - wide
        i, j = row.value, col.value
        window = image[i:i + tall, j:j + wide]
        products = window * kernel
        parts = [
            _html_table(image, f"image, kernel at (i={i}, j={j})", window=(i, j, tall, wide)),
            _html_table(window, f"patch = image[{i}:{i + tall}, {j}:{j + wide}]"),
            "<span style='font-size:1.4em'>&#8857;</span>",
            _html_table(kernel, "kernel"),
            "<span style='font-size:1.4em'>=</span>",
            _html_table(products, "products"),
        ]
        view.value = ("<div style='display:flex;gap:14px;align-items:center;flex-wrap:wrap'>"
                      + "".join(parts) + "</div>"
                      f"<p style='font-size:1.15em'><b>sum = {_short_number(products.sum())}</b>"
                      f" &nbsp;(the output at row {i}, column {j})</p>")

    for control in (choice, row, col):
        control.observe(redraw, names="value")
    redraw()
    return ipywidgets.VBox([choice, ipywidgets.HBox([row, col]), view])


def kernel_editor(convolve, kernels, images, start=None, image=None, not_ready=None):
    """A 3 x 3 kernel editor: nine number boxes, a menu of kernels to start from, a menu of images, and the map.

    ``convolve(image, kernel)`` returns the feature map to show (notebook 08 passes its own
    ``conv2d_padded`` with padding 1). ``kernels`` maps a name to a 3 x 3 array for the
    "start from" menu; ``images`` maps a label to a 2-D image for the "image" menu; ``start``
    and ``image`` choose the entries shown first (default: the first of each). Every change
    redraws the image and its feature map; an error in ``convolve`` is printed in the editor.
    ``not_ready`` says what to do when ``convolve`` is not written yet (a ``NameError`` or the
    stub's ``NotImplementedError``); it comes first, and the error after it.
    Returns the widget (a VBox); display it, or make it the last line of a cell. ipywidgets
    and matplotlib are imported only when the editor is built.
    """
    import ipywidgets
    import matplotlib.pyplot as plt

    entries = [ipywidgets.BoundedFloatText(value=0.0, min=-20, max=20, step=0.5, description=f"k[{r},{c}]",
                                           style={"description_width": "42px"},
                                           layout=ipywidgets.Layout(width="130px"))
               for r in range(3) for c in range(3)]
    menu_style, menu_layout = {"description_width": "70px"}, ipywidgets.Layout(width="360px")
    start_menu = ipywidgets.Dropdown(options=list(kernels), value=start if start is not None else next(iter(kernels)),
                                     description="start from", style=menu_style, layout=menu_layout)
    image_menu = ipywidgets.Dropdown(options=list(images), value=image if image is not None else next(iter(images)),
                                     description="image", style=menu_style, layout=menu_layout)
    plot = ipywidgets.Output()
    loading = {"now": False}   # while the nine boxes are being filled, do not redraw nine times

    def redraw(_change=None):
        if loading["now"]:
            return
        with plot:
            plot.clear_output(wait=True)
            picture = np.asarray(images[image_menu.value], dtype=float)
            kernel = np.array([entry.value for entry in entries], dtype=float).reshape(3, 3)
            try:
                feature_map = np.asarray(convolve(picture, kernel), dtype=float)
            except (NameError, NotImplementedError) as error:
                # the cause stays visible: a NameError may also come from inside a written function
                print((f"{not_ready}\n" if not_ready else "") + f"({type(error).__name__}: {error})")
                return
            except Exception as error:  # noqa: BLE001 - show the problem in the editor, keep the notebook going
                print(f"the convolution failed: {type(error).__name__}: {error}")
                return
            fig, axes = plt.subplots(1, 2, figsize=(6.8, 3.4))
            axes[0].imshow(picture, cmap="gray")
            axes[0].set_title("image", fontsize=10)
            shown = axes[1].imshow(feature_map, cmap="gray")
            axes[1].set_title("feature map", fontsize=10)
            axes[1].set_xlabel(f"min {feature_map.min():.2f}   max {feature_map.max():.2f}", fontsize=9)
            fig.colorbar(shown, ax=axes[1], fraction=0.046)
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
            fig.suptitle("Your kernel on the image (black: lowest value, white: highest)", fontsize=10)
            plt.show()

    def load(_change=None):
        loading["now"] = True
        for entry, value in zip(entries, np.asarray(kernels[start_menu.value], dtype=float).ravel()):
            entry.value = round(float(value), 4)
        loading["now"] = False
        redraw()

    for control in entries + [image_menu]:
        control.observe(redraw, names="value")
    start_menu.observe(load, names="value")
    load()
    return ipywidgets.VBox([ipywidgets.HBox([start_menu, image_menu]),
                            ipywidgets.GridBox(entries,
                                               layout=ipywidgets.Layout(grid_template_columns="repeat(3, 140px)")),
                            plot])


__all__ += ["kernel_editor"]
