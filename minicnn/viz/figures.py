"""Pictures of a network: first-layer filters, feature maps (and the strongest ones for
an image), max-pool routing, confusion matrix and sample predictions.

Conventions: no text under ``MIN_FONT`` (9) points at the saved size; whole-number data
with few levels (counts, winners per window) gets a discrete colour bar, one colour and
one tick per value; filters share one colour scale symmetric about zero.

Every ``*_figure`` function returns a matplotlib ``Figure`` and, given ``path=``, also
writes it as a PNG atomically. Figures are made with ``matplotlib.figure.Figure``
directly, never through pyplot, so nothing needs a display (headless machines use
the Agg renderer) and no global figure list grows. In a notebook with the inline
backend (``%matplotlib inline``) a returned figure displays itself; in a script, pass
``path=``. Pass ``fig=`` (a Figure or SubFigure) to draw into part of a larger page,
as :mod:`minicnn.viz.report` does.
"""
import fractions

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from matplotlib.textpath import TextToPath
from matplotlib.ticker import MaxNLocator

from .. import functional as F
from ..layers import BatchNorm2D, Conv2D, LeakyReLU, Linear, MaxPool2D, ReLU
from ..layers.summary import run_recorded
from ..models import Sequential
from .png import save_png

DPI = 100
#: The smallest font on any figure, in points at the saved size (figure dpi = PNG dpi).
MIN_FONT = 9
#: Integer-valued data with at most this many distinct levels gets a discrete colour bar.
MAX_LEVELS = 16
_TEXT_PATH = TextToPath()
FILTER_CMAP = "RdBu_r"  # diverging: blue negative, white zero, red positive


def _finish(fig, path):
    if path is not None:
        save_png(fig, path)
    return fig


def _figure(fig, figsize):
    return fig if fig is not None else Figure(figsize=figsize, dpi=DPI, layout="constrained")


def _inches(fig):
    """Width and height of a Figure or SubFigure in inches."""
    return fig.bbox.width / fig.dpi, fig.bbox.height / fig.dpi


def text_width(text, fontsize=MIN_FONT):
    """Width in inches of one line of ``text`` in matplotlib's default font."""
    width, _, _ = _TEXT_PATH.get_text_width_height_descent(
        text, FontProperties(size=fontsize), ismath=False)
    return width / 72


def wrap(text, width_in, fontsize=MIN_FONT):
    """``text`` broken at spaces into lines at most ``width_in`` inches wide at
    ``fontsize`` (a single word wider than that stays whole)."""
    lines = []
    for word in text.split(" "):
        if lines and text_width(f"{lines[-1]} {word}", fontsize) <= width_in:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def integer_scale(values, cmap):
    """``(cmap, norm, ticks)`` giving each integer in ``values`` its own colour and a
    colour bar tick, when ``values`` are whole numbers with at most MAX_LEVELS levels;
    else None (use a continuous scale)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        return None
    lo, hi = int(values.min()), int(values.max())
    if hi - lo + 1 > MAX_LEVELS:
        return None
    ticks = np.arange(lo, hi + 1)
    cmap = matplotlib.colormaps[cmap].resampled(len(ticks))
    return cmap, BoundaryNorm(np.arange(lo - 0.5, hi + 1), cmap.N), ticks


def to_display(image):
    """One image (C, H, W) with C in {1, 3}, uint8 or float -> (H, W, 3) floats in [0, 1].

    uint8 images are divided by 255; float ones (e.g. normalised inputs) are stretched
    to their own min..max.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.dtype == np.uint8:
        image = image / 255.0
    else:
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image, dtype=float)
    return np.repeat(image, 3, axis=0).transpose(1, 2, 0) if image.shape[0] == 1 \
        else image[:3].transpose(1, 2, 0)


def mosaic(tiles, cols, gap=1):
    """Tiles (n, h, w) or (n, h, w, 3) -> one image with ``gap`` NaN pixels between tiles."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap) + tiles.shape[3:], np.nan)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return out


# -- filters and feature maps ----------------------------------------------------------

def first_conv(model):
    """The first Conv2D of a model (nested Sequentials included), or None."""
    return next((m for m in model.modules() if isinstance(m, Conv2D)), None)


def filter_strips(weight, max_channels=4, scale=1):
    """Filters (F, C, kh, kw) -> strips (F, kh*s, C*kw*s + C - 1) with s = ``scale``: each
    filter's input channels side by side, every weight an s x s block, one NaN column
    between channels. More than ``max_channels`` channels are averaged into one.
    Returns (strips, what the channels are)."""
    w = np.asarray(weight, dtype=np.float64)
    c = w.shape[1]
    if c > max_channels:
        w, about = w.mean(axis=1, keepdims=True), f"mean over its {c} input channels"
    else:
        about = {1: "one input channel", 3: "input channels R | G | B"}.get(
            c, f"input channels {' | '.join(map(str, range(c)))}")
    w = w.repeat(scale, axis=2).repeat(scale, axis=3)
    f, c, kh, kw = w.shape
    strips = np.full((f, kh, c * (kw + 1) - 1), np.nan)
    for k in range(c):
        strips[:, :, k * (kw + 1):k * (kw + 1) + kw] = w[:, k]
    return strips, about


def best_columns(n, tile_shape, box, gap=1):
    """How many columns of ``n`` tiles (h, w) make each pixel largest in ``box``
    (width, height in inches), tiles ``gap`` pixels apart."""
    h, w = tile_shape

    def pixel(cols):
        rows = -(-n // cols)
        return min(box[0] / (cols * (w + gap) - gap), box[1] / (rows * (h + gap) - gap))
    return max(range(1, n + 1), key=pixel)


def filters_figure(model, path=None, fig=None):
    """The first Conv2D's filters, upscaled, on one shared, symmetric colour scale.

    Each filter is a strip of its input-channel weights side by side (R | G | B for
    images, split by grey lines; filters are set apart by white space); red is positive,
    blue negative, white zero, on one scale from -max|w| to +max|w| for all filters, so
    the colour bar reads off any weight and filters compare with each other. More than
    4 input channels are averaged into one.
    """
    conv = first_conv(model)
    if conv is None:
        raise ValueError(f"filters_figure: no Conv2D layer in {type(model).__name__}")
    scale = max(1, round(12 / max(conv.weight.shape[2:])))  # a filter about 12 pixels high
    strips, about = filter_strips(conv.weight.data, scale=scale)
    fig = _figure(fig, (6, 6))
    width, height = _inches(fig)
    gap = scale + 1
    cols = best_columns(len(strips), strips.shape[1:], (width * 0.8, height * 0.75), gap)
    vmax = float(np.nanmax(np.abs(strips))) or 1.0
    norm = Normalize(-vmax, vmax)
    cmap = matplotlib.colormaps[FILTER_CMAP]
    rgba = cmap(norm(strips))
    rgba[np.isnan(strips)] = (0.55, 0.55, 0.55, 1)  # grey between a filter's channels
    image = mosaic(rgba, cols, gap)
    image[np.isnan(image)] = 1  # white between filters
    ax = fig.add_subplot()
    ax.imshow(image, interpolation="nearest")
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.8,
                 label="weight (one scale for all filters)")
    ax.set_title(wrap(f"First-layer filters ({about}):", width * 0.8, 10) + "\n"
                 + wrap(repr(conv), width * 0.8, 10), fontsize=10)
    ax.axis("off")
    return _finish(fig, path)


def _named_layer(model, layer):
    """(dotted name, layer) for an index into a Sequential model or a dotted name."""
    if isinstance(layer, str):
        return layer, model.get_submodule(layer)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) \
            and isinstance(model, Sequential):
        i = range(len(model))[layer]
        return str(i), model[i]
    raise TypeError(f"expected a layer index into a Sequential or a dotted layer name "
                    f"such as '3.body.0', got {layer!r}")


def layer_title(model, name):
    """How a learner names layer ``name`` (a dotted name) of ``model``.

    Convolutions and linear layers are numbered in the order the model lists them:
    ``conv1``, ``conv2``, ..., ``fc1``, ...; any other layer is named by the chain from
    the nearest of those before it in the same Sequential, e.g. ``conv1 → BatchNorm2D →
    ReLU``; with none before it, by its type and dotted name, ``MaxPool2D (3.pool)``.
    """
    numbered, counts = {}, {"conv": 0, "fc": 0}
    for n, m in model.named_modules():
        kind = "conv" if isinstance(m, Conv2D) else "fc" if isinstance(m, Linear) else None
        if kind:
            counts[kind] += 1
            numbered[n] = f"{kind}{counts[kind]}"
    if name in numbered:
        return numbered[name]
    target = model.get_submodule(name)
    parent_name, _, local = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    chain = [type(target).__name__]
    if isinstance(parent, Sequential) and local.isdigit():
        for i in range(int(local) - 1, -1, -1):
            before = f"{parent_name}.{i}" if parent_name else str(i)
            if before in numbered:
                return " → ".join([numbered[before]] + chain[::-1])
            chain.append(type(parent[i]).__name__)
    return f"{type(target).__name__} ({name})"


def layer_output(model, image, layer):
    """Output of one layer inside ``model`` (eval mode) for one input ``image`` (C, H, W):
    an array (1, ...). ``layer`` is an index into a Sequential (may be negative) or a
    dotted name from ``model.named_modules()`` ("3.body.0"). The model's modes and caches
    are left exactly as they were, so a pending backward still works."""
    name, target = _named_layer(model, layer)
    calls, error = run_recorded(model, np.asarray(image)[None])
    if error is not None:
        raise error
    outs = [out for called, _, out in calls if called is target]
    if not outs:
        raise ValueError(f"layer ({name}) {target._describe()} is not called in a forward "
                         f"of {type(model).__name__}")
    return outs[0]


def feature_maps_figure(model, image, index, path=None, fig=None, max_maps=64):
    """The input image beside the output of one layer for it (eval mode); ``index`` is an
    index into a Sequential or a dotted layer name (see :func:`layer_output`).

    - image: (C, H, W), as the model takes it
    - (1, C', H', W') outputs are drawn as a grid of maps, each stretched to its own range
      (at most ``max_maps``); (1, D) outputs as a bar chart.
    """
    out = layer_output(model, image, index)[0]
    fig = _figure(fig, (10, 5))
    left, right = fig.subfigures(1, 2, width_ratios=[1, 2.2])
    ax = left.add_subplot()
    ax.imshow(to_display(image), interpolation="nearest")
    ax.set_title("input", fontsize=9)
    ax.axis("off")
    ax = right.add_subplot()
    name = layer_title(model, _named_layer(model, index)[0])
    if out.ndim == 3:
        maps = out[:max_maps].astype(np.float64)
        lo = maps.min(axis=(1, 2), keepdims=True)
        span = maps.max(axis=(1, 2), keepdims=True) - lo
        maps = (maps - lo) / np.where(span > 0, span, 1)
        ax.imshow(mosaic(maps, int(np.ceil(np.sqrt(len(maps))))), cmap="viridis",
                  interpolation="nearest")
        ax.set_title(f"{name}: {len(maps)} of {len(out)} maps, {out.shape[1]}x{out.shape[2]}",
                     fontsize=9)
        ax.axis("off")
    else:
        ax.bar(np.arange(out.size), out.ravel())
        ax.set_title(f"{name}: {out.size} outputs", fontsize=9)
        ax.set_xlabel("unit")
    return _finish(fig, path)


def first_block_end(model):
    """Dotted name of the end of the model's first conv block: the first Conv2D found
    anywhere in it and the batch-norm and activation layers right after it in the same
    Sequential. ValueError if the model has no Conv2D."""
    name = next((n for n, m in model.named_modules() if isinstance(m, Conv2D)), None)
    if name is None:
        raise ValueError(f"no Conv2D layer in {type(model).__name__}")
    parent_name, _, local = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    if not isinstance(parent, Sequential):
        return name
    end = int(local)
    while end + 1 < len(parent) and isinstance(parent[end + 1], (BatchNorm2D, ReLU, LeakyReLU)):
        end += 1
    return f"{parent_name}.{end}" if parent_name else str(end)


def strongest_maps_figure(model, image, index=None, k=8, shown=None, path=None, fig=None):
    """The input beside the ``k`` feature maps with the largest mean |activation| that
    layer ``index`` (default: the end of the first conv block, e.g. its ReLU) makes from
    it, on one shared colour scale.

    - image: (C, H, W), as the model takes it; ``shown``: the image to draw instead
      (e.g. the uint8 original of a normalised input)
    """
    index = first_block_end(model) if index is None else index
    label, _ = _named_layer(model, index)
    out = layer_output(model, image, index)[0]
    if out.ndim != 3:
        raise ValueError(f"strongest_maps_figure: layer {index} gives {out.shape}, not maps")
    strength = np.abs(out).mean(axis=(1, 2))
    order = np.argsort(-strength, kind="stable")[:k]
    maps = out[order].astype(np.float64)
    fig = _figure(fig, (6, 6.5))
    cols = int(np.ceil(np.sqrt(len(order) + 1)))
    rows = -(-(len(order) + 1) // cols)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].imshow(to_display(image if shown is None else shown), interpolation="nearest")
    axes[0].set_title("input", fontsize=MIN_FONT)
    lo, hi = float(maps.min()), float(maps.max())
    for ax, j, m in zip(axes[1:], order, maps):
        im = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1,
                       interpolation="nearest")
        ax.set_title(f"map {j}", fontsize=MIN_FONT)
    for ax in axes[len(order) + 1:]:
        ax.axis("off")
    if len(order):
        fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="activation")
    width, _ = _inches(fig)
    fig.suptitle(wrap(f"The {len(order)} strongest of {len(out)} feature maps (largest mean "
                      f"|activation|) after {layer_title(model, label)}", width * 0.9, 10),
                 fontsize=10)
    return _finish(fig, path)


# -- max-pool routing ------------------------------------------------------------------

def _as_max_pool(layer_or_params):
    if isinstance(layer_or_params, MaxPool2D):
        return layer_or_params
    if isinstance(layer_or_params, dict):
        return MaxPool2D(**layer_or_params)
    raise TypeError("pool_routing: expected a MaxPool2D or a dict of its arguments "
                    f"(kernel_size, stride, padding, ceil_mode, ties), got {layer_or_params!r}")


def pool_routing(layer_or_params, x):
    """How each max-pool window hands its gradient to the input positions.

    - layer_or_params: a MaxPool2D, or a dict of MaxPool2D arguments
    - x: input maps (..., H, W), e.g. one feature map (H, W) or one image (C, H, W)

    Returns ``shares`` (..., H', W', H, W) float64: ``shares[..., i, j, h, w]`` is the
    fraction of window (i, j)'s upstream gradient that reaches input (h, w) under the
    layer's tie rule. Each window's shares sum to 1; its winners are where they are > 0;
    ``shares.sum(axis=(-4, -3))`` is what the input receives when every window gets
    gradient 1, i.e. ``layer.backward(ones)``. Computed with the public kernels only:
    one backward pass per window with a one-hot upstream gradient.
    """
    pool = _as_max_pool(layer_or_params)
    x = np.asarray(x, dtype=np.float64)
    lead, (H, W) = x.shape[:-2], x.shape[-2:]
    maps = x.reshape(-1, 1, H, W)
    oh, ow = (F.pool_output_size(size, k, s, p, pool.ceil_mode) for size, k, s, p in
              zip((H, W), pool.kernel_size, pool.stride, pool.padding))
    windows = oh * ow
    repeated = np.repeat(maps, windows, axis=0)  # (B * windows, 1, H, W)
    _, cache = F.max_pool2d_forward(repeated, pool.kernel_size, pool.stride, pool.padding,
                                    pool.ceil_mode)
    one_hot = np.tile(np.eye(windows).reshape(windows, 1, oh, ow), (len(maps), 1, 1, 1))
    dx = F.max_pool2d_backward(one_hot, cache, pool.ties)
    return dx.reshape(lead + (oh, ow, H, W))


def _share_text(v):
    f = fractions.Fraction(float(v)).limit_denominator(64)
    return "0" if v == 0 else str(f) if abs(float(f) - v) < 1e-9 else f"{v:.2f}"


def _window_lines(ax, pool, shape):
    """Outline the pooling windows (clipped to the input) on an image axis.

    Overlapping windows would cover everything in lines: then only the first window
    (solid) and its neighbours to the right and below (dashed) are drawn.
    """
    H, W = shape
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel_size, pool.stride, pool.padding
    oh = F.pool_output_size(H, kh, sh, ph, pool.ceil_mode)
    ow = F.pool_output_size(W, kw, sw, pw, pool.ceil_mode)
    overlap = sh < kh or sw < kw
    chosen = [(0, 0), (0, 1), (1, 0)] if overlap else np.ndindex(oh, ow)
    for i, j in chosen:
        if i >= oh or j >= ow:
            continue
        top, left = max(i * sh - ph, 0), max(j * sw - pw, 0)
        bottom, right = min(i * sh - ph + kh, H), min(j * sw - pw + kw, W)
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                               edgecolor="white", linewidth=1.5 if overlap else 1.2,
                               linestyle="--" if overlap and (i, j) != (0, 0) else "-"))
    return overlap


def _annotate(ax, values, text, small=100):
    if values.size <= small:
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, text(v), ha="center", va="center", fontsize=MIN_FONT, color="black",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.6, lw=0))


def pool_routing_figure(layer_or_params, x, path=None, fig=None, channel=0):
    """Three panels for one map: the input with its windows and winners circled; the
    gradient share each position receives when every window passes back 1 (the numbers
    of :func:`pool_routing` summed over windows); and how many winners each window has.

    - x: (H, W), or (C, H, W) with ``channel`` choosing the map
    """
    pool = _as_max_pool(layer_or_params)
    x = np.asarray(x, dtype=np.float64)
    x = x[channel] if x.ndim == 3 else x
    shares = pool_routing(pool, x)  # (H', W', H, W)
    received = shares.sum(axis=(0, 1))
    winners = (shares > 0).sum(axis=(2, 3))
    fig = _figure(fig, (12, 4.4))
    axes = fig.subplots(1, 3)
    panels = [(x, "input; winners marked", "gray", lambda v: f"{v:.3g}", None),
              (received, f"gradient share received (ones upstream), ties='{pool.ties}'",
               "magma", _share_text, 0),
              (winners, "winners (tied maxima) per window", "viridis", lambda v: str(int(v)), 0)]
    for ax, (values, title, cmap, text, vmin) in zip(axes, panels):
        discrete = integer_scale(values, cmap)
        if discrete is not None:  # whole numbers: one colour and one tick per value
            cmap, norm, ticks = discrete
            im = ax.imshow(values, cmap=cmap, norm=norm, interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8, ticks=ticks)
        else:
            im = ax.imshow(values, cmap=cmap, interpolation="nearest", vmin=vmin)
            fig.colorbar(im, ax=ax, shrink=0.8)
        _annotate(ax, values, text)
        ax.set_title(title, fontsize=MIN_FONT)
        ax.set_xticks([])
        ax.set_yticks([])
    if _window_lines(axes[0], pool, x.shape):
        axes[0].set_title("input; winners marked; first windows outlined", fontsize=MIN_FONT)
    _window_lines(axes[1], pool, x.shape)
    rows, cols = np.nonzero(received)
    small = x.size <= 100
    axes[0].scatter(cols, rows, s=260 if small else 12, facecolors="none" if small else "red",
                    edgecolors="red", linewidths=1.5 if small else 0)
    fig.suptitle(repr(pool), fontsize=10)
    return _finish(fig, path)


# -- classification --------------------------------------------------------------------

def confusion_matrix(y_true, y_pred, num_classes):
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def confusion_figure(y_true, y_pred, class_names, path=None, fig=None):
    """Confusion matrix with class names: rows are true classes, columns predictions;
    cells show the number of images and are coloured by it, on the colour bar's scale
    (0 to the largest class size, so a class predicted perfectly is darkest)."""
    k = len(class_names)
    counts = confusion_matrix(y_true, y_pred, k)
    top = max(int(counts.sum(axis=1).max()), 1)
    fig = _figure(fig, (7, 6))
    ax = fig.add_subplot()
    im = ax.imshow(counts, cmap="Blues", vmin=0, vmax=top, aspect="auto",
                   interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, shrink=0.8, label="images")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    for (r, c), n in np.ndenumerate(counts):
        ax.text(c, r, str(n), ha="center", va="center", fontsize=MIN_FONT,
                color="white" if n > 0.55 * top else "black")
    ax.set_xticks(range(k), class_names, rotation=40, ha="right", rotation_mode="anchor",
                  fontsize=MIN_FONT)
    ax.set_yticks(range(k), class_names, fontsize=MIN_FONT)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"Confusion matrix: images per (true, predicted) class\n"
                 f"{counts.sum()} images, accuracy {accuracy:.1%}", fontsize=10)
    return _finish(fig, path)


def mistakes_first(y_true, y_pred, n):
    """Indices of ``n`` samples to show: the wrong predictions first (in data order), then
    right ones, so a panel of a good model's predictions still shows what it gets wrong."""
    wrong = np.asarray(y_true) != np.asarray(y_pred)
    return np.argsort(~wrong, kind="stable")[:n]


def predictions_figure(images, y_true, y_pred, class_names, path=None, fig=None, cols=8):
    """A grid of images (N, C, H, W) titled with the predicted class; wrong predictions in
    red with a red frame and the true class in brackets. Captions are wrapped to the
    width of an image."""
    n = len(images)
    rows = -(-n // cols)
    fig = _figure(fig, (cols * 1.5, rows * 1.9 + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    tile = _inches(fig)[0] / cols * 0.85  # caption width, inches: a gap to the next one
    for k, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(to_display(images[k]), interpolation="nearest")
        right = y_true[k] == y_pred[k]
        colour = "green" if right else "red"
        mark = "" if right else "✗ "
        caption = wrap(f"{mark}{class_names[y_pred[k]]}", tile)
        if not right:
            caption += "\n" + wrap(f"(true: {class_names[y_true[k]]})", tile)
        ax.set_title(caption, fontsize=MIN_FONT, color=colour)
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(1 if right else 3)
    wrong = int(np.sum(np.asarray(y_true[:n]) != np.asarray(y_pred[:n])))
    fig.suptitle(f"Predictions on test images: {wrong} of {n} wrong (red, true class in "
                 f"brackets)", fontsize=10)
    return _finish(fig, path)
