"""One page about a trained run: curves, confusion matrix, first-layer filters, predictions.

    minicnn-report RUN_DIR            # or: python -m minicnn.viz.report RUN_DIR; writes RUN_DIR/report.png

``write_report(run_dir)`` does the same from Python (``train.py`` calls it at the end of
a run). The model is the run's ``best.npz``, evaluated on the run's test split.
"""
import argparse
import os
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..serialization import error_message
from ..training.loop import predict
from ..training.runs import build_data, load_run
from . import figures as viz
from .curves import plot_histories
from .png import save_png

REPORT = "report.png"
PAGE = (16, 13)  # inches at viz.DPI: 1600 x 1300 pixels
CURVES_HEIGHT = 4.5


def rendered(fig):
    """A Figure drawn to an RGBA uint8 array (H, W, 4) of figsize * dpi pixels."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def raw_images(x, mean, std):
    """Undo per-channel normalisation: (N, C, H, W) floats -> uint8 images."""
    return np.clip(np.rint(x * std[:, None, None] + mean[:, None, None]), 0, 255).astype(np.uint8)


def report_figure(model, history, x_test, y_test, classes, images=None, title="",
                  num_samples=16):
    """The report page as a Figure of ``PAGE`` inches.

    - model: trained network; scores for x_test (N, C, H, W) in eval mode
    - history: :class:`minicnn.history.History` of the run (curves on top)
    - classes: class names; images: (N, 3, H, W) uint8 to show (default: x_test stretched)
    """
    pred = predict(model, x_test).argmax(axis=1)
    accuracy = float(np.mean(pred == y_test))
    page = Figure(figsize=PAGE, dpi=viz.DPI, layout="constrained")
    top, bottom = page.subfigures(2, 1, height_ratios=[CURVES_HEIGHT, PAGE[1] - CURVES_HEIGHT])
    # The curves come from minicnn.plot as their own Figure: drawn at the very pixel size
    # of the top strip and pasted 1:1.
    curves = plot_histories(history, ["run"], figsize=(PAGE[0], CURVES_HEIGHT), dpi=viz.DPI)
    ax = top.add_axes([0, 0, 1, 1])
    ax.imshow(rendered(curves), interpolation="nearest")
    ax.axis("off")
    left, middle, right = bottom.subfigures(1, 3, width_ratios=[6.5, 4, 5.5])
    viz.confusion_figure(y_test, pred, classes, fig=left)
    if viz.first_conv(model) is not None:
        viz.filters_figure(model, fig=middle)
    else:  # e.g. the linear baseline: nothing to draw
        middle.text(0.5, 0.5, "no Conv2D layer:\nno filters to show", ha="center", va="center")
    n = min(num_samples, len(x_test))
    shown = images[:n] if images is not None else x_test[:n]
    viz.predictions_figure(shown, y_test[:n], pred[:n], classes, fig=right, cols=4)
    page.suptitle(f"{title}test accuracy {accuracy:.1%} on {len(y_test)} images", fontsize=13)
    return page


def write_report(run_dir, path=None):
    """Write ``report.png`` (or ``path``) for the run in ``run_dir``; returns the path."""
    model, config, history = load_run(run_dir)
    data = build_data(config)
    images = raw_images(data.x_test, data.mean, data.std)
    title = (f"{os.path.basename(os.path.normpath(run_dir))}: {config['model']} on "
             f"{config['dataset']}, {len(history)} epochs, best val accuracy "
             f"{max(history['val_acc'], default=float('nan')):.1%}; ")
    page = report_figure(model, history, data.x_test, data.y_test, data.classes, images, title)
    path = path or os.path.join(run_dir, REPORT)
    save_png(page, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minicnn-report",
                                     description="Write a one-page report.png for a run folder.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by train.py")
    parser.add_argument("-o", "--output", default=None,
                        help="PNG to write (default: RUN_DIR/report.png)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run_dir):
        parser.exit(1, f"error: {args.run_dir!r} is not a folder\n")
    try:
        path = write_report(args.run_dir, args.output)
    except (ValueError, OSError) as e:  # a broken run folder; a read-only or full disk
        parser.exit(1, f"minicnn-report: error: {error_message(e)}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
