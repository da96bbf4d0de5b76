"""Callbacks: code of yours that ``fit(..., callbacks=[...])`` runs during training.

A callback is any object with one or both of these methods (a missing one is skipped):

- ``on_step_end(history, model)``: after every optimizer step; ``history.iteration_loss[-1]``
  is the step's loss and ``len(history.iteration_loss)`` the steps taken so far;
- ``on_epoch_end(history, model)``: after every epoch, once its record is in
  ``history.epochs`` and its checkpoint is written.

To end training early, raise :class:`StopTraining` from either: ``fit`` saves a checkpoint
where it stopped and returns the history (the message is printed unless
``progress=False``). Built in: :class:`EarlyStopping` (validation accuracy stopped
improving), :class:`SamplePredictions` (a picture of predictions after every epoch) and
:class:`LivePlot` (the curves redrawn in a notebook while training; ``progress="plot"``).

A callback that keeps no state of its own (as these, reading everything from the history)
behaves the same when a run is resumed.
"""
from __future__ import annotations

import io
import os
import time

import numpy as np

from ..viz.curves import draw_histories
from ..viz.figures import mistakes_first, predictions_figure
from .inference import predict


class StopTraining(Exception):  # noqa: N818 (a signal, like StopIteration, not an error)
    """Raised by a callback to end ``fit`` early; ``str(e)`` says why."""


class EarlyStopping:
    """Stop when the validation accuracy has not improved for ``patience`` epochs.

    An epoch improves when its validation accuracy exceeds the best before it by more
    than ``min_delta`` (Keras' rule). The decision is read from the history alone, so a
    resumed run stops where the uninterrupted one would. ``best.npz`` in the run folder
    holds the model of the best epoch.
    """

    def __init__(self, patience=3, min_delta=0.0):
        if isinstance(patience, bool) or int(patience) != patience or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.patience, self.min_delta = int(patience), float(min_delta)

    needs_validation = True

    def on_epoch_end(self, history, model):
        best, best_epoch, waited = -np.inf, 0, 0
        for epoch, acc in zip(history["epoch"], history["val_acc"]):
            if acc - self.min_delta > best:
                best, best_epoch, waited = acc, epoch, 0
            else:
                waited += 1
        if waited >= self.patience:
            raise StopTraining(f"early stopping: validation accuracy has not improved for "
                               f"{waited} epochs (best {best:.4f} at epoch {best_epoch})")

    def __repr__(self):
        return f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta})"


class SamplePredictions:
    """After every ``every``-th epoch, write ``folder/predictions-epoch-NNN.png``: a grid of
    ``num`` images from ``(x, y)`` with the model's predictions, mistakes first (red).

    - x, y: images as the model takes them (N, C, H, W) and their labels
    - classes: class names (default "0", "1", ...); images: what to draw instead of x,
      e.g. the uint8 originals of normalised inputs
    """

    def __init__(self, x, y, folder, classes=None, images=None, num=16, every=1):
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"SamplePredictions: need as many labels as images (at least "
                             f"one), got {len(x)} images and {len(y)} labels")
        self.x, self.y, self.folder = x, np.asarray(y), os.fspath(folder)
        self.classes, self.images = classes, images
        self.num, self.every = int(num), int(every)

    def path(self, epoch):
        return os.path.join(self.folder, f"predictions-epoch-{epoch:03d}.png")

    def on_epoch_end(self, history, model):
        epoch = history.epochs[-1]["epoch"]
        if epoch % self.every:
            return
        pred = predict(model, self.x).argmax(axis=1)
        classes = self.classes or [str(k) for k in range(int(max(pred.max(), self.y.max())) + 1)]
        order = mistakes_first(self.y, pred, min(self.num, len(self.x)))
        shown = self.x if self.images is None else self.images
        os.makedirs(self.folder, exist_ok=True)
        fig = predictions_figure(shown[order], self.y[order], pred[order], classes,
                                 path=self.path(epoch), cols=min(8, len(order)))
        fig.suptitle(f"Epoch {epoch}: " + fig.get_suptitle(), fontsize=10)


def in_notebook():
    """True inside a Jupyter kernel (where display updates redraw an output in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LivePlot:
    """Redraw the loss and accuracy curves in one notebook output while ``fit`` runs.

    The picture is shown once with ``IPython.display.display(..., display_id=True)`` and
    then replaced in place through that id after every epoch and, during an epoch, at most
    every ``interval`` seconds. ``fit(progress="plot")`` adds one when it runs in a
    notebook. ``show``: optional ``f(png_bytes)`` used instead of IPython (for tests or
    other front ends).
    """

    def __init__(self, interval=2.0, label="run", show=None, figsize=(11, 4), dpi=80):
        self.interval, self.label, self.figsize, self.dpi = float(interval), label, figsize, dpi
        self.show, self.handle, self.last = show, None, -np.inf
        self.draws = 0

    def png(self, history):
        from matplotlib.figure import Figure
        fig = Figure(figsize=self.figsize, dpi=self.dpi, layout="constrained")
        draw_histories(fig, [history], [self.label])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def draw(self, history):
        data = self.png(history)
        self.draws += 1
        self.last = time.monotonic()
        if self.show is not None:
            self.show(data)
            return
        from IPython.display import Image, display
        if self.handle is None:
            self.handle = display(Image(data=data, format="png"), display_id=True)
        else:
            self.handle.update(Image(data=data, format="png"))

    def on_step_end(self, history, model):
        if time.monotonic() - self.last >= self.interval:
            self.draw(history)

    def on_epoch_end(self, history, model):
        self.draw(history)
