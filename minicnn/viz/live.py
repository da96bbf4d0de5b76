"""Callbacks that draw while ``fit`` trains: the curves redrawn live in a notebook, and a
picture of the model's predictions after every epoch.

They are ordinary ``fit`` callbacks (:mod:`minicnn.training.callbacks`): pass them in
``fit(..., callbacks=[...])``. ``fit(progress="plot")`` adds a :class:`LivePlot` by itself
when it runs in a notebook (importing :mod:`minicnn.viz` registers it). Both read
everything from the history, so a resumed run draws as the uninterrupted one would.
"""
from __future__ import annotations

import io
import os
import time

import numpy as np

from ..training.callbacks import in_notebook
from ..training.inference import predict
from .curves import draw_histories
from .figures import mistakes_first, predictions_figure

__all__ = ["LivePlot", "SamplePredictions", "in_notebook"]


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
