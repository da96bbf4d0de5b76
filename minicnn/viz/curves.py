"""Loss and accuracy curves of one or more runs.

    minicnn-plot runs/a runs/b -o curves.png     # or: python -m minicnn.viz.curves ...

Left: the loss of every iteration, raw (faint) and smoothed with a bias-corrected
exponential moving average (no lag from a start at zero or at the first value), with
dotted lines at epoch boundaries (named in the legend), on a log axis when the loss spans
more than a power of ten. Right: train
(dashed) and validation (solid) accuracy per epoch. Runs are overlaid, labelled by their
folder name; each run has its own colour, marker and line width (earlier runs wider), so
two identical runs still show both lines.
Figures are built with ``matplotlib.figure.Figure`` (the Agg renderer), never pyplot, so
this works headless and keeps no global state.
"""
import argparse
import os
import sys

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..serialization import error_message
from .png import save_png


def ema(values, beta=0.9):
    """Bias-corrected exponential moving average, as in Adam:
    s_t = beta * s_{t-1} + (1 - beta) * v_t, reported as s_t / (1 - beta^t). (T,) -> (T,)."""
    values = np.asarray(values, dtype=np.float64)
    out, s = np.empty_like(values), 0.0
    for t, v in enumerate(values, start=1):  # a scan over iterations, not samples
        s = beta * s + (1 - beta) * v
        out[t - 1] = s / (1 - beta ** t)
    return out


def spans_decades(curves, decades=1.0):
    """True when the positive values of ``curves`` (a list of arrays) span more than
    ``decades`` powers of ten, and none is zero or negative: then a log axis shows the
    late, slow part of a loss curve as clearly as the early drop."""
    values = np.concatenate([np.asarray(c, dtype=np.float64) for c in curves]) if curves \
        else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(np.log10(values.max() / values.min()) > decades)


#: The smallest font on the curves, in points at the saved size (figure dpi = PNG dpi).
MIN_FONT = 9
_MARKERS = "osD^vPX*"
_BOUNDARY = dict(color="0.35", linestyle=":", linewidth=1.0)


def run_style(i, n):
    """Line width, marker and marker size of run ``i`` of ``n``: earlier runs are drawn
    wider with bigger markers, so a later run on top of an identical one leaves it
    visible as an outline; markers differ in shape too."""
    wider = (n - 1 - i) * (min(1.2, 2.4 / (n - 1)) if n > 1 else 0)
    return dict(linewidth=1.5 + wider, marker=_MARKERS[i % len(_MARKERS)],
                markersize=4.5 + 1.5 * wider)


def draw_histories(fig, histories, labels, smoothing=0.9, title=None):
    """Draw the loss (left) and accuracy (right) of ``histories`` into ``fig`` (a Figure or
    SubFigure); returns the two Axes. :func:`plot_histories` and the run report both draw
    with it, so epoch boundaries and run styles look the same everywhere.

    Epoch boundaries are dotted vertical lines, explained in the loss legend: grey when
    every run has the same boundaries, else in each run's colour.
    """
    ax_loss, ax_acc = fig.subplots(1, 2)
    if title:
        fig.suptitle(title, fontsize=12)
    n = len(histories)
    bounds = [tuple(h["iterations"][:-1]) for h in histories]
    shared = all(b == bounds[0] for b in bounds)
    smoothed = []
    for i, (h, label) in enumerate(zip(histories, labels)):
        colour, style = f"C{i}", run_style(i, n)
        steps = np.arange(1, len(h.iteration_loss) + 1)
        if len(steps):
            ax_loss.plot(steps, h.iteration_loss, color=colour, alpha=0.25, linewidth=0.8)
            smooth = ema(h.iteration_loss, smoothing) if smoothing else h.iteration_loss
            smoothed.append(smooth)
            every = max(1, len(steps) // 8)
            ax_loss.plot(steps, smooth, color=colour, label=label,
                         markevery=(i * every // n, every), **style)
        if not shared or i == 0:
            line = _BOUNDARY if shared else dict(_BOUNDARY, color=colour)
            for boundary in bounds[i]:
                ax_loss.axvline(boundary + 0.5, **line)
        ax_acc.plot(h["epoch"], h["train_acc"], color=colour, linestyle="--",
                    label=f"{label} train", **style)
        if any(v is not None for v in h["val_acc"]):  # None: trained without validation
            val = [np.nan if v is None else v for v in h["val_acc"]]
            ax_acc.plot(h["epoch"], val, color=colour, label=f"{label} validation", **style)
    log = spans_decades(smoothed)
    if log:  # else everything after the first drop is squeezed into the bottom of the plot
        ax_loss.set_yscale("log")
    if any(bounds):
        ax_loss.plot([], [], **_BOUNDARY,
                     label="epoch boundary" if shared else "epoch boundary (run's colour)")
    ax_loss.set_title("Training loss per iteration (faint: raw, bold: smoothed)",
                      fontsize=11)
    ax_loss.set(xlabel="iteration", ylabel="loss (log scale)" if log else "loss")
    ax_acc.set_title("Accuracy per epoch (dashed: train, solid: validation)", fontsize=11)
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    last = max((max(h["epoch"]) for h in histories if len(h)), default=1)
    ax_acc.set_xlim(0.7, last + 0.3)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=MIN_FONT)
    return ax_loss, ax_acc


def plot_histories(histories, labels=None, path=None, smoothing=0.9, figsize=(11, 4), dpi=100,
                   title=None):
    """Draw histories side by side; returns the Figure and, given ``path``, writes a PNG of
    ``figsize * dpi`` pixels atomically.

    - histories: list of :class:`minicnn.training.History` (or a single one; anything
      with ``iteration_loss`` and columns ``h["epoch"]``, ... draws)
    - labels: legend names, one per history (default "run 1", "run 2", ...)
    - smoothing: EMA factor for the loss curve, 0 for none
    - title: optional heading over both plots
    """
    if hasattr(histories, "iteration_loss"):
        histories = [histories]
    labels = labels or [f"run {i + 1}" for i in range(len(histories))]
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    draw_histories(fig, histories, labels, smoothing, title)
    if path is not None:
        save_png(fig, path, dpi)
    return fig


def plot_runs(run_dirs, path=None, **kwargs):
    """:func:`plot_histories` of the ``history.json`` in each run folder, labelled by folder name."""
    from ..training.history import History  # the command line's part; viz draws, not reads
    histories = [History.load(os.path.join(d, "history.json")) for d in run_dirs]
    labels = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    return plot_histories(histories, labels, path=path, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minicnn-plot",
                                     description="Plot the loss and accuracy curves of runs.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folder(s) holding history.json")
    parser.add_argument("-o", "--output", default="curves.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--title", default=None, help="heading over the plots")
    parser.add_argument("--smoothing", type=float, default=0.9,
                        help="EMA factor for the loss, 0 to 1 (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.smoothing < 1:
        parser.error(f"--smoothing must be in [0, 1), got {args.smoothing}")
    try:
        plot_runs(args.run_dirs, path=args.output, smoothing=args.smoothing, title=args.title)
    except (ValueError, OSError) as e:  # a broken history; a read-only or full disk
        parser.exit(1, f"minicnn-plot: error: {error_message(e)}\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
