"""The training loop: ``fit`` a model, ``evaluate`` it, checkpoint every epoch, resume exactly.

A run folder written by ``fit(..., out_dir=...)`` holds

- ``history.json`` / ``history.csv``: see :class:`minicnn.training.History`;
- ``checkpoint.npz``: everything needed to continue (model state incl. batch-norm running
  statistics, optimizer state, the data Generator's state, the Generators of layers that
  own one such as Dropout's ``rng``, the history and the epoch/step counters), written
  atomically after every epoch and on Ctrl-C; RNG states are stored as JSON text in a
  0-d string array, so the file loads without pickle;
- ``best.npz``: the model with the best validation accuracy so far (``Layer.save``
  format, loadable with ``model.load``). Only a strictly better accuracy replaces it: on
  a tie the earlier epoch's model stays.

Finite or nothing: the loss of every step and every parameter and buffer after every
step are checked, the optimizer state before every checkpoint, and the validation loss
of every epoch. The first NaN or infinity stops training with
:class:`NonFiniteLossError` (or its subclass :class:`NonFiniteWeightsError`) naming the
epoch and step; nothing non-finite is ever written, so the last checkpoint and
``best.npz`` are the last good ones. Stale temp files that a killed write left in the
run folder are removed when ``fit`` starts.

The file format is in :mod:`minicnn.training.checkpoint`.

``fit(..., resume=True)`` continues from ``checkpoint.npz`` exactly as an uninterrupted
run would: same seed, bit-identical weights and history (on the same machine with the
same number of BLAS threads, which can change the rounding of matrix products).
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data import DataLoader, check_normalized
from ..serialization import NonFiniteError, non_finite_entries, remove_stale_temps
from .callbacks import StopTraining, in_notebook, live_plot
from .checkpoint import (
    BEST,
    CHECKPOINT,
    Position,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from .history import History
from .inference import evaluate, predict
from .run_folder import hold_run_folder

if TYPE_CHECKING:
    from ..layers import Layer
    from ..losses import Loss
    from ..optim import Optimizer

__all__ = ["Interrupted", "NonFiniteLossError", "NonFiniteWeightsError", "StopTraining",
           "epoch_line", "evaluate", "fit", "predict"]

#: The files of a run folder (their stale temp files are removed when ``fit`` starts).
RUN_FILES = ("config.json", "history.json", "history.csv", CHECKPOINT, BEST, "loss.png",
             "report.png")

#: The values ``fit(progress=...)`` takes.
PROGRESS = ("bar", "lines", "plot", True, False)


def epoch_line(record, epochs):
    """One line about a finished epoch, as ``fit(progress="lines")`` prints it::

        epoch 2/5: loss 1.234, accuracy 0.567, validation accuracy 0.612, 12.3 s

    (without validation data the validation part is left out).
    """
    validation = ("" if record["val_acc"] is None
                  else f", validation accuracy {record['val_acc']:.4f}")
    return (f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
            f"accuracy {record['train_acc']:.4f}{validation}, {record['seconds']:.1f} s")


class NonFiniteLossError(NonFiniteError):
    """The training or validation loss became NaN or infinite; training stopped."""


class NonFiniteWeightsError(NonFiniteLossError):
    """A parameter, buffer or optimizer state became NaN or infinite (after a step whose
    loss was finite); training stopped. A subclass of :class:`NonFiniteLossError`, so one
    ``except`` catches every non-finite stop."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``fit``; ``str(e)`` says exactly what was saved, ``e.resumable``
    whether the run folder holds a checkpoint to ``--resume`` from."""

    def __init__(self, message, resumable):
        super().__init__(message)
        self.resumable = resumable


def fit(model: Layer, loss_fn: Loss, optimizer: Optimizer,
        train_data: tuple[np.ndarray, np.ndarray], val_data: tuple[np.ndarray, np.ndarray] | None,
        epochs: int, batch_size: int, *, schedule: Any = None,
        augment: bool | Callable[[np.ndarray, np.random.Generator], np.ndarray] = False,
        seed: int | np.random.SeedSequence = 0, out_dir: str | os.PathLike | None = None,
        resume: bool = False, drop_last: bool = True, eval_batch_size: int = 500,
        progress: str | bool = "bar", config: dict | None = None,
        callbacks: Sequence[Any] = ()) -> History:
    """Train ``model`` with minibatches for ``epochs`` epochs and return a :class:`History`.

    Inputs:
    - model: a network (e.g. ``Sequential``) with forward, ``backward(dout, input_grad)``,
      train/eval, state_dict/load_state_dict and save
    - loss_fn: e.g. ``SoftmaxCrossEntropy()``; ``loss = loss_fn(scores, y)``, ``loss_fn.backward()``
    - optimizer: an optimizer over ``model.parameters()`` (``minicnn.optim``)
    - train_data, val_data: ``(x, y)`` with x of shape (N, C, H, W), y of shape (N,) ints;
      ``val_data=None`` trains without validation (the history's validation columns are
      None, and no ``best.npz`` is written)
    - epochs: total number of epochs; a resumed run continues up to it
    - batch_size: training minibatch size (``eval_batch_size`` for evaluation)
    - schedule: object with ``lr_at(t)`` (:mod:`minicnn.training.schedules`): applied at the
      start of every epoch (t = epoch from 0), or before every step when its ``per_step``
      is True (t = steps since the run began, resumes included); None keeps ``optimizer.lr``
    - augment: False, True (random crop + flip) or ``f(x_batch, rng) -> x_batch``
    - seed: int or ``SeedSequence`` for the shuffling and augmentation Generator
    - out_dir: run folder for history, ``checkpoint.npz`` and ``best.npz``; None writes nothing
      (a new or empty folder, or with ``resume`` the run's; locked against other writers
      for the call, see :mod:`minicnn.training.run_folder`)
    - resume: continue from ``out_dir/checkpoint.npz`` (ValueError if there is none)
    - drop_last: skip each epoch's last, smaller minibatch (the order is reshuffled every
      epoch, so no sample is left out for good); a batch of a few samples gives noisy
      batch-norm statistics and a spike in the loss curve
    - progress: "bar" (or True) a tqdm progress bar per epoch; "lines" one printed line
      per epoch (epoch, loss, accuracy, validation accuracy, seconds); "plot" the loss and
      accuracy curves redrawn in place in a Jupyter notebook (``minicnn.viz.LivePlot``,
      there once ``minicnn.viz`` is imported; until then lines and a note saying so),
      and "lines" anywhere else; False nothing
    - callbacks: objects with ``on_step_end(history, model)`` and/or
      ``on_epoch_end(history, model)`` (see :mod:`minicnn.training.callbacks`); one may
      raise :class:`StopTraining` to end the run early (a checkpoint is saved where it
      stopped and the history returned)

    Inputs should be normalised (``minicnn.data.fit_normalizer`` / ``normalize``): integer
    or far-from-normalised training (else validation) images give one
    :class:`minicnn.data.UnnormalizedInputWarning`.

    Per epoch the history records the mean training loss and accuracy over the epoch's
    minibatches (in train mode, as they were trained on), the validation loss and accuracy
    (eval mode), the learning rate (of the epoch's last step) and the seconds taken. A
    NaN/inf training loss raises :class:`NonFiniteLossError` before the bad step is
    applied; NaN/inf weights or buffers after a step, or optimizer state at a checkpoint,
    raise :class:`NonFiniteWeightsError`; a NaN/inf validation loss raises
    :class:`NonFiniteLossError`. Each names the epoch and step and leaves the last good
    checkpoint and ``best.npz`` (nothing non-finite is ever written). ``best.npz`` is
    replaced only by a strictly better validation accuracy. Ctrl-C finishes the current
    step, saves the history and a checkpoint that resumes exactly, then raises
    :class:`Interrupted` (a ``KeyboardInterrupt``); a second Ctrl-C stops at once, saving
    only the history, and the message says which checkpoint the folder still holds.

    - config: optional JSON-able dict describing the run (``train.py`` passes its
      ``config.json``); stored in every checkpoint, and on resume the stored one must
      equal it except for ``RESUMABLE_KEYS`` (epochs, data_dir).
    """
    _check_arguments(train_data, val_data, epochs, batch_size, drop_last, progress)
    _warn_if_unnormalized(train_data, val_data)
    _warn_if_optimizer_elsewhere(model, optimizer)
    with hold_run_folder(out_dir, resume):  # one writer; a new run needs a new or empty folder
        rng = np.random.default_rng(seed)
        loader = DataLoader(*train_data, batch_size, shuffle=True, augment=augment,
                            drop_last=drop_last, rng=rng, check_inputs=False)
        history, start = _open_run(model, optimizer, loader, out_dir, resume, config)
        _check_schedule(schedule, int(epochs), len(loader))
        hooks = _Hooks(callbacks, progress, val_data)
        folder = _RunFolder(model, optimizer, rng, history, out_dir, config)
        trainer = _Trainer(model, loss_fn, optimizer, loader, folder, schedule, hooks)
        model.train()
        trainer.run(start, int(epochs), val_data, eval_batch_size)
    return history


def _check_arguments(train_data, val_data, epochs, batch_size, drop_last, progress):
    """One-line ValueErrors for arguments ``fit`` cannot train with."""
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if drop_last and len(train_data[0]) < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(train_data[0])} "
                         f"training samples")
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {PROGRESS}, got {progress!r}")
    if val_data is not None and (len(val_data[0]) == 0 or len(val_data[0]) != len(val_data[1])):
        raise ValueError(f"fit: val_data must hold as many labels as images, at least one, "
                         f"got {len(val_data[0])} images and {len(val_data[1])} labels; "
                         f"pass val_data=None to train without validation")


def _warn_if_unnormalized(train_data, val_data):
    """One UnnormalizedInputWarning for raw training (else validation) images."""
    warned = check_normalized(train_data[0], "fit: the training inputs (train_data[0])",
                              stacklevel=3)
    if not warned and val_data is not None:
        check_normalized(val_data[0], "fit: the validation inputs (val_data[0])", stacklevel=3)


def _warn_if_optimizer_elsewhere(model, optimizer):
    """A UserWarning when the optimizer holds none of the model's parameters (it was
    built for another model): training would change nothing."""
    owned = {id(p) for p in model.parameters()}
    if owned and not any(id(p) in owned for p in getattr(optimizer, "params", ())):
        warnings.warn("fit: the optimizer holds none of the model's parameters, so training "
                      "changes nothing; build it with optimizer(model.parameters(), ...)",
                      stacklevel=3)


def _open_run(model, optimizer, loader, out_dir, resume, config):
    """``(history, start position)``: empty for a new run, from the checkpoint on resume
    (restoring model and optimizer; the data Generator is restored by ``train_epoch``)."""
    if out_dir is not None:
        remove_stale_temps(out_dir, RUN_FILES)
    if not resume:
        return History(), Position()
    if out_dir is None:
        raise ValueError("resume=True needs the out_dir that holds checkpoint.npz")
    path = os.path.join(out_dir, CHECKPOINT)
    history, start = load_checkpoint(path, model, optimizer, config=config)
    if start.step > len(loader):
        raise ValueError(f"checkpoint {path!r}: field 'position.step' is {start.step}, but "
                         f"an epoch of {len(loader.x)} samples in batches of "
                         f"{loader.batch_size} has {len(loader)} steps; it was written for "
                         f"other data")
    return history, start


def _check_schedule(schedule, epochs, steps_per_epoch):
    """A schedule that cannot give the run's last rate fails now, not mid-run."""
    if schedule is not None and epochs > 0:
        last = epochs * steps_per_epoch - 1 if _per_step(schedule) else epochs - 1
        schedule.lr_at(last)


def _per_step(schedule):
    return bool(getattr(schedule, "per_step", False))


class _Hooks:
    """The callbacks of a run, the live plot that ``progress="plot"`` adds in a notebook,
    and how progress is shown (``bar``, ``lines``, ``quiet``)."""

    def __init__(self, callbacks, progress, val_data):
        self.callbacks = list(callbacks)
        plot = live_plot() if progress == "plot" and in_notebook() else None
        if plot is not None:
            self.callbacks.append(plot)
        elif progress == "plot" and in_notebook():
            print('fit: progress="plot" draws with minicnn.viz; import it first '
                  '(from minicnn import viz). Printing a line per epoch instead.', flush=True)
        self.bar = progress in ("bar", True)
        self.lines = progress == "lines" or (progress == "plot" and plot is None)
        self.quiet = progress is False
        needy = [c for c in self.callbacks if getattr(c, "needs_validation", False)]
        if needy and val_data is None:
            raise ValueError(f"fit: {needy[0]!r} needs validation data, but val_data is None")

    def call(self, hook, history, model):
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(history, model)


class _Trainer:
    """A run's training: the model, loss, optimizer, data, run folder, schedule, callbacks
    and the Ctrl-C flag; :meth:`run` is the loop over epochs."""

    def __init__(self, model, loss_fn, optimizer, loader, folder, schedule, hooks):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.loader, self.folder, self.interrupt = loader, folder, None
        self.schedule, self.hooks = schedule, hooks
        self.history = folder.history

    def run(self, start, epochs, val_data, eval_batch_size):
        """Train epochs ``start.epoch + 1 .. epochs``, stopping early on StopTraining."""
        with _DeferredInterrupt() as self.interrupt:
            try:
                for epoch in range(start.epoch, epochs):
                    part = start if epoch == start.epoch else Position(epoch)
                    self.epoch(part, epochs, val_data, eval_batch_size)
            except StopTraining as stop:
                if not self.hooks.quiet:
                    print(stop, flush=True)
            except Interrupted:
                raise
            except KeyboardInterrupt:
                # mid-step: a second Ctrl-C (or one outside the main thread, or raised by the
                # code): history only; the checkpoint on disk is the last one written completely
                self.folder.save_history()
                raise self.folder.interrupted(mid_step=True,
                                              again=self.interrupt.requested) from None

    def epoch(self, part, epochs, val_data, eval_batch_size):
        """One epoch from ``part`` on: train, validate, record, checkpoint, call the hooks."""
        if self.schedule is not None and not _per_step(self.schedule):
            self.optimizer.lr = self.schedule.lr_at(part.epoch)
        began = time.perf_counter() - part.seconds
        with tqdm(total=len(self.loader), initial=part.step, disable=not self.hooks.bar,
                  desc=f"epoch {part.epoch + 1}/{epochs}", dynamic_ncols=True) as bar:
            train_loss, train_acc = self.train_epoch(part, bar, began)
            val_loss, val_acc = self.validate(part, val_data, eval_batch_size)
            bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}",
                            **({} if val_acc is None else {"val_acc": f"{val_acc:.3f}"}))
        self.history.add_epoch(epoch=part.epoch + 1, train_loss=train_loss, train_acc=train_acc,
                               val_loss=val_loss, val_acc=val_acc, lr=self.optimizer.lr,
                               seconds=time.perf_counter() - began,
                               iterations=len(self.history.iteration_loss))
        if self.hooks.lines:
            print(epoch_line(self.history.epochs[-1], epochs), flush=True)
        self.folder.end_epoch(val_acc)
        self.hooks.call("on_epoch_end", self.history, self.model)
        if self.interrupt.requested:
            raise self.folder.interrupted()

    def validate(self, part, val_data, eval_batch_size):
        """``(loss, accuracy)`` on the validation data, ``(None, None)`` without any."""
        if val_data is None:
            return None, None
        val_loss, val_acc = evaluate(self.model, self.loss_fn, *val_data, eval_batch_size)
        if not math.isfinite(val_loss):
            self.folder.save_history()
            raise NonFiniteLossError(
                f"the validation loss is {val_loss} after epoch {part.epoch + 1} "
                f"(iteration {part.step}), although every weight is finite; "
                f"training stopped. {self.folder.last_good()}")
        return val_loss, val_acc

    def train_epoch(self, part, bar, began):
        """Train on the minibatches of one epoch from ``part`` (a :class:`Position`) on;
        returns the epoch's mean training loss and accuracy."""
        rng = self.loader.rng
        if part.rng_state is None:
            part.rng_state = rng.bit_generator.state
        rng.bit_generator.state = part.rng_state  # the epoch's shuffle and augmentation
        for step, (xb, yb) in enumerate(self.loader):
            if step < part.step:
                continue  # resuming mid-epoch: these batches were trained on already
            if self.interrupt.requested:
                self.save_mid_epoch(part, began)
                raise self.folder.interrupted()
            self.train_step(xb, yb, part, step)
            bar.update(1)
            bar.set_postfix(loss=f"{part.loss_sum / part.seen:.3f}",
                            acc=f"{part.correct / part.seen:.3f}", refresh=False)
            try:
                self.hooks.call("on_step_end", self.history, self.model)
            except StopTraining:
                self.save_mid_epoch(part, began)
                raise
        return part.loss_sum / part.seen, part.correct / part.seen

    def save_mid_epoch(self, part, began):
        part.seconds = time.perf_counter() - began
        self.folder.save(part)

    def train_step(self, xb, yb, part, step):
        """One forward, backward and update on a minibatch, counted into ``part``.

        The loss is checked before anything changes the model or the optimizer: a
        NaN/inf loss raises :class:`NonFiniteLossError` with the weights as they were
        before the step. Weights or buffers made non-finite by the update raise
        :class:`NonFiniteWeightsError`.
        """
        if self.schedule is not None and _per_step(self.schedule):
            self.optimizer.lr = self.schedule.lr_at(len(self.history.iteration_loss))
        scores = self.model(xb)
        loss = self.loss_fn(scores, yb)
        if not math.isfinite(loss):
            self.folder.save_history()
            raise NonFiniteLossError(
                f"the training loss is {loss} at epoch {part.epoch + 1}, iteration "
                f"{step + 1}; training stopped. {self.folder.last_good()} "
                "Try a smaller learning rate.")
        self.optimizer.zero_grad()
        self.model.backward(self.loss_fn.backward(), input_grad=False)
        self.optimizer.step()
        bad = _non_finite_state(self.model)
        if bad:
            self.folder.save_history()
            raise NonFiniteWeightsError(
                f"{_names(bad)} of the model became NaN or infinite in the update of "
                f"epoch {part.epoch + 1}, iteration {step + 1} (its loss was {loss:.4g}); "
                f"training stopped. {self.folder.last_good()} Try a smaller learning rate.")
        self.history.iteration_loss.append(loss)
        part.step, part.seen = step + 1, part.seen + len(yb)
        part.loss_sum += loss * len(yb)
        part.correct += int(np.sum(scores.argmax(axis=1) == yb))


def _non_finite_state(model):
    """Names of the model's parameters and float buffers holding NaN or inf."""
    if hasattr(model, "named_parameters") and hasattr(model, "named_buffers"):
        bad = [n for n, p in model.named_parameters() if not np.isfinite(p.data).all()]
        return bad + non_finite_entries(dict(model.named_buffers()))
    return non_finite_entries(model.state_dict())


def _names(names):
    shown = ", ".join(repr(n) for n in names[:3])
    return ("entry " if len(names) == 1 else "entries ") + shown + \
        (f" and {len(names) - 3} more" if len(names) > 3 else "")


class _RunFolder:
    """The files of a run folder; ``out_dir=None`` makes every method do nothing."""

    def __init__(self, model, optimizer, rng, history, out_dir, config=None):
        self.model, self.optimizer, self.rng, self.history = model, optimizer, rng, history
        self.out_dir, self.config = out_dir, config
        self.best_acc = history.best_val_acc

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def save_history(self):
        if self.out_dir is not None:
            self.history.save(self.path("history.json"))
            self.history.save_csv(self.path("history.csv"))

    def check_finite(self, position):
        """Raise NonFiniteWeightsError if the model or optimizer state is not all finite."""
        bad = _non_finite_state(self.model)
        bad += [f"optimizer.{k}" for k in non_finite_entries(self.optimizer.state_dict())]
        if bad:
            self.save_history()
            raise NonFiniteWeightsError(
                f"{_names(bad)} hold NaN or infinite values at {position.describe()}; "
                f"training stopped before writing them. {self.last_good()}")

    def save(self, position, checked=False):
        """Write the checkpoint at ``position`` and the history, after checking that every
        array is finite (unless the caller just did)."""
        if self.out_dir is not None:
            if not checked:
                self.check_finite(position)
            save_checkpoint(self.path(CHECKPOINT), self.model, self.optimizer, self.history,
                            position, self.config)
            self.save_history()

    def end_epoch(self, val_acc):
        """Write best.npz (only if ``val_acc`` beats every earlier epoch; never without
        validation, ``val_acc=None``) and the checkpoint."""
        position = Position(len(self.history), rng_state=self.rng.bit_generator.state)
        better = val_acc is not None and val_acc > self.best_acc
        if self.out_dir is not None:
            self.check_finite(position)
            if better:
                self.model.save(self.path(BEST))
        if better:
            self.best_acc = val_acc
        self.save(position, checked=True)

    def last_good(self):
        if self.out_dir is None or not os.path.exists(self.path(CHECKPOINT)):
            return "No checkpoint was saved."
        try:
            position = Position(**read_checkpoint_meta(self.path(CHECKPOINT))["position"])
        except ValueError:
            return f"The checkpoint {self.path(CHECKPOINT)} is unreadable."
        return (f"The last good checkpoint ({position.describe()}) is "
                f"{self.path(CHECKPOINT)}.")

    def interrupted(self, mid_step=False, again=False):
        """An :class:`Interrupted` saying exactly what the run folder now holds."""
        if self.out_dir is None:
            return Interrupted("interrupted; nothing was saved (fit has no out_dir)", False)
        path = self.path(CHECKPOINT)
        try:
            position = Position(**read_checkpoint_meta(path)["position"])
        except ValueError:
            position = None
        if not mid_step and position is not None:
            return Interrupted(f"checkpoint.npz ({position.describe()}) and the history "
                               f"were saved in {self.out_dir}", True)
        held = (f"checkpoint.npz still holds {position.describe()}" if position is not None
                else "there is no checkpoint yet")
        how = "again before a checkpoint could be written" if again else "in the middle of a step"
        return Interrupted(f"interrupted {how}: only the history was saved in {self.out_dir}, "
                           f"and {held}", position is not None)


class _DeferredInterrupt:
    """Within the block, a first Ctrl-C only sets ``requested`` (checked between steps, so a
    checkpoint is never taken mid-update); a second one raises KeyboardInterrupt at once.
    Outside the main thread signals cannot be caught and Ctrl-C behaves as usual."""

    def __enter__(self):
        self.requested, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
