"""Callbacks: code of yours that ``fit(..., callbacks=[...])`` runs during training.

A callback is any object with one or both of these methods (a missing one is skipped):

- ``on_step_end(history, model)``: after every optimizer step; ``history.iteration_loss[-1]``
  is the step's loss and ``len(history.iteration_loss)`` the steps taken so far;
- ``on_epoch_end(history, model)``: after every epoch, once its record is in
  ``history.epochs`` and its checkpoint is written.

To end training early, raise :class:`StopTraining` from either: ``fit`` saves a checkpoint
where it stopped and returns the history (the message is printed unless
``progress=False``). Built in here: :class:`EarlyStopping` (validation accuracy stopped
improving). The ones that draw live with the pictures, in :mod:`minicnn.viz.live`:
``SamplePredictions`` (a picture of predictions after every epoch) and ``LivePlot`` (the
curves redrawn in a notebook while training). ``fit(progress="plot")`` adds a
``LivePlot`` in a notebook: training sits below the pictures and does not import them, so
``minicnn.viz`` tells it what to add when it is imported (:func:`set_live_plot`).

A callback that keeps no state of its own (as these, reading everything from the history)
behaves the same when a run is resumed.
"""
from __future__ import annotations

import numpy as np


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


def in_notebook():
    """True inside a Jupyter kernel (where display updates redraw an output in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


_live_plot = {"factory": None}


def set_live_plot(factory):
    """Make ``factory()`` the callback ``fit(progress="plot")`` adds in a notebook (a
    function of no arguments returning an object with the callback hooks); ``minicnn.viz``
    sets its ``LivePlot`` here when it is imported. None unsets it."""
    if factory is not None and not callable(factory):
        raise TypeError(f"set_live_plot: expected a function or None, got {factory!r}")
    _live_plot["factory"] = factory


def live_plot():
    """A new callback from the factory :func:`set_live_plot` set, or None when none is set."""
    factory = _live_plot["factory"]
    return None if factory is None else factory()
