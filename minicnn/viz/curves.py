"""Loss and accuracy curves of one or more runs.

    minicnn-plot runs/a runs/b -o curves.png     # or: python -m minicnn.viz.curves ...

Left: the loss of every iteration, raw (faint) and smoothed with an exponential moving
average, with dotted lines at epoch boundaries. Right: train (dashed) and validation
(solid) accuracy per epoch. Runs are overlaid, labelled by their folder name.
Figures are built with ``matplotlib.figure.Figure`` (the Agg renderer), never pyplot, so
this works headless and keeps no global state.
"""
import argparse
import os
import sys

import numpy as np
from matplotlib.figure import Figure

from ..serialization import error_message
from ..training.history import History
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


def plot_histories(histories, labels=None, path=None, smoothing=0.9, figsize=(11, 4), dpi=100,
                   title=None):
    """Draw histories side by side; returns the Figure and, given ``path``, writes a PNG of
    ``figsize * dpi`` pixels atomically.

    - histories: list of :class:`History` (or a single one)
    - labels: legend names, one per history (default "run 1", "run 2", ...)
    - smoothing: EMA factor for the loss curve, 0 for none
    - title: optional heading over both plots
    """
    if isinstance(histories, History):
        histories = [histories]
    labels = labels or [f"run {i + 1}" for i in range(len(histories))]
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    if title:
        fig.suptitle(title)
    for i, (h, label) in enumerate(zip(histories, labels)):
        colour = f"C{i}"
        steps = np.arange(1, len(h.iteration_loss) + 1)
        if len(steps):
            ax_loss.plot(steps, h.iteration_loss, color=colour, alpha=0.25, linewidth=0.8)
            smooth = ema(h.iteration_loss, smoothing) if smoothing else h.iteration_loss
            ax_loss.plot(steps, smooth, color=colour, linewidth=1.6, label=label)
        for boundary in h["iterations"][:-1]:
            ax_loss.axvline(boundary + 0.5, color=colour, linestyle=":", linewidth=0.8, alpha=0.6)
        ax_acc.plot(h["epoch"], h["train_acc"], color=colour, linestyle="--", marker=".",
                    label=f"{label} train")
        ax_acc.plot(h["epoch"], h["val_acc"], color=colour, marker="o", label=f"{label} val")
    ax_loss.set(title="Training loss per iteration (faint: raw, bold: smoothed)",
                xlabel="iteration", ylabel="loss")
    ax_acc.set(title="Accuracy per epoch (dashed: train, solid: validation)",
               xlabel="epoch", ylabel="accuracy")
    ax_acc.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    if path is not None:
        save_png(fig, path, dpi)
    return fig


def plot_runs(run_dirs, path=None, **kwargs):
    """:func:`plot_histories` of the ``history.json`` in each run folder, labelled by folder name."""
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
