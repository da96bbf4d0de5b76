"""One page about a trained run: curves, confusion matrix, first layer, predictions.

    minicnn-report RUN_DIR            # writes RUN_DIR/report.png (the command is in minicnn.cli)

``write_report(run_dir)`` does the same from Python (``train.py`` calls it at the end of
a run). The model is the run's result (``best.npz``, or the last epoch's weights in
``checkpoint.npz`` when it was trained with ``--final-model last``), evaluated on the run's
test split, both rebuilt from its ``config.json``. A folder written by ``fit(out_dir=...)`` has no
config.json: pass the network and the test data, ``write_report(run_dir, model=net,
test_data=(x_test, y_test))``.

The page is laid out by matplotlib's constrained layout: every title, label and legend
lies inside the page, and no text is smaller than ``figures.MIN_FONT`` points at the
saved size.
"""
import copy
import os

import numpy as np
from matplotlib.figure import Figure

from ..training.build import build_data
from ..training.checkpoint import BEST, CHECKPOINT
from ..training.loop import predict
from ..training.run_folder import load_run, missing_config_message
from . import figures as viz
from .curves import draw_histories
from .png import save_png

REPORT = "report.png"
PAGE = (18, 13)  # inches at viz.DPI: 1800 x 1300 pixels
CURVES_HEIGHT = 4.2  # inches of the page's top strip


def raw_images(x, mean, std):
    """Undo per-channel normalisation: (N, C, H, W) floats -> uint8 images."""
    return np.clip(np.rint(x * std[:, None, None] + mean[:, None, None]), 0, 255).astype(np.uint8)


def report_figure(model, history, x_test, y_test, classes, images=None, title="",
                  num_samples=16, label="run"):
    """The report page as a Figure of ``PAGE`` inches.

    - model: trained network; scores for x_test (N, C, H, W) in eval mode
    - history: :class:`minicnn.training.History` of the run (curves on top)
    - classes: class names; images: (N, 3, H, W) uint8 to show (default: x_test stretched)
    - label: the run's name in the curve legends (write_report uses the folder name)

    Top: loss and accuracy curves. Below: the confusion matrix; the first Conv2D's filters
    and its strongest feature maps for the first test image (left out for a network
    without a top-level Conv2D); sample predictions, mistakes first.
    """
    pred = predict(model, x_test).argmax(axis=1)
    accuracy = float(np.mean(pred == y_test))
    page = Figure(figsize=PAGE, dpi=viz.DPI, layout="constrained")
    page.suptitle(f"{title}test accuracy {accuracy:.1%} on {len(y_test)} images", fontsize=14)
    top, bottom = page.subfigures(2, 1, height_ratios=[CURVES_HEIGHT, PAGE[1] - CURVES_HEIGHT])
    draw_histories(top, [history], [label])
    shown = images if images is not None else x_test
    has_conv = viz.first_conv(model) is not None
    if has_conv:
        left, middle, right = bottom.subfigures(1, 3, width_ratios=[7, 5, 6])
        if _has_conv(model):
            upper, lower = middle.subfigures(2, 1, height_ratios=[1, 1.15])
            viz.filters_figure(model, fig=upper)
            viz.strongest_maps_figure(model, x_test[0], shown=shown[0], fig=lower)
        else:  # the maps need the model's layers in order (a Sequential)
            viz.filters_figure(model, fig=middle)
    else:  # e.g. the linear baseline: no filters to draw
        left, right = bottom.subfigures(1, 2, width_ratios=[8, 10])
    viz.confusion_figure(y_test, pred, classes, fig=left)
    cols = 4 if has_conv else 6
    n = min(-(-num_samples // cols) * cols, len(x_test))  # whole rows
    order = viz.mistakes_first(y_test, pred, n)
    viz.predictions_figure(shown[order], y_test[order], pred[order], classes, fig=right,
                           cols=cols)
    return page


def _has_conv(model):
    try:
        viz.first_block_end(model)
        return True
    except (ValueError, TypeError):
        return False


def run_report(run_dir, *, model=None, test_data=None, classes=None, images=None):
    """The report page (a Figure) of the run in ``run_dir``.

    A folder written by ``train.py`` needs nothing else: the network and the test split
    are rebuilt from its config.json. A folder written by ``fit(out_dir=...)`` needs

    - model: a network of the run's architecture (a copy gets the folder's best.npz;
      ``model`` itself is not changed)
    - test_data: ``(x_test, y_test)``, normalised like the training data
    - classes: class names (default "0", "1", ...); images: uint8 (N, 3, H, W) originals
      of x_test to show (default: x_test, each image stretched to its own range)

    These override what config.json says when both are there.
    """
    has_config = os.path.exists(os.path.join(run_dir, "config.json"))
    if not has_config and (model is None or test_data is None):
        fit_folder = any(os.path.exists(os.path.join(run_dir, f)) for f in (BEST, CHECKPOINT))
        raise ValueError(missing_config_message(run_dir) + (
            f" Draw its report from Python, passing them: minicnn.viz.write_report("
            f"{run_dir!r}, model=network, test_data=(x_test, y_test))." if fit_folder else ""))
    model, config, history = load_run(run_dir, model=None if model is None else copy.deepcopy(model))
    if test_data is None:
        data = build_data(config)
        x_test, y_test = data.x_test, data.y_test
        images = raw_images(x_test, data.mean, data.std) if images is None else images
        classes = classes or data.classes
    else:
        x_test, y_test = test_data
    y_test = np.asarray(y_test)
    if classes is None:
        classes = [str(k) for k in range(predict(model, x_test[:1]).shape[1])]
    name = os.path.basename(os.path.normpath(run_dir))
    about = f"{config['model']} on {config['dataset']}, " if config else ""
    epochs = f"{len(history)} epoch{'' if len(history) == 1 else 's'}"
    best = history.best_val_acc
    title = (f"{name}: {about}{epochs}, best validation accuracy "
             f"{f'{best:.1%}' if np.isfinite(best) else 'none'}; ")
    return report_figure(model, history, x_test, y_test, classes, images, title, label=name)


def write_report(run_dir, path=None, **inputs):
    """Write ``report.png`` (or ``path``) for the run in ``run_dir``; returns the path.
    ``inputs`` (model, test_data, classes, images) are those of :func:`run_report`; a
    folder written by ``fit(out_dir=...)`` needs model and test_data."""
    page = run_report(run_dir, **inputs)
    path = path or os.path.join(run_dir, REPORT)
    save_png(page, path, viz.DPI)
    return path

