"""The training loop: ``fit`` a model, ``evaluate`` it, checkpoint every epoch, resume exactly.

A run folder written by ``fit(..., out_dir=...)`` holds

- ``history.json`` / ``history.csv``: see :class:`minicnn.training.History`;
- ``checkpoint.npz``: everything needed to continue (model state incl. batch-norm running
  statistics, optimizer state, the data Generator's state, the Generators of layers that
  own one such as Dropout's ``rng``, the history and the epoch/step counters), written
  atomically after every epoch and on Ctrl-C; RNG states are stored as JSON text in a
  0-d string array, so the file loads without pickle;
- ``best.npz``: the model with the best validation accuracy so far (``Layer.save``
  format, loadable with ``model.load``).

The file format is in :mod:`minicnn.training.checkpoint`.

``fit(..., resume=True)`` continues from ``checkpoint.npz`` exactly as an uninterrupted
run would: same seed, bit-identical weights and history (on the same machine with the
same number of BLAS threads, which can change the rounding of matrix products).
"""
import math
import os
import signal
import threading
import time

import numpy as np
from tqdm.auto import tqdm

from ..data import DataLoader, check_normalized
from .checkpoint import BEST, CHECKPOINT, Position, load_checkpoint, save_checkpoint
from .history import History


#: The values ``fit(progress=...)`` takes.
PROGRESS = ("bar", "lines", True, False)


def epoch_line(record, epochs):
    """One line about a finished epoch, as ``fit(progress="lines")`` prints it::

        epoch 2/5: loss 1.234, accuracy 0.567, validation accuracy 0.612, 12.3 s
    """
    return (f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
            f"accuracy {record['train_acc']:.4f}, validation accuracy {record['val_acc']:.4f}, "
            f"{record['seconds']:.1f} s")


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite; training stopped."""


def predict(model, x, batch_size=500):
    """Class scores (N, C) for inputs x (N, ...), computed in eval mode, batch by batch.

    The model's previous mode (train or eval) is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model, loss_fn, x, y, batch_size=500):
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode: ``(loss, acc)`` floats."""
    scores = predict(model, x, batch_size)
    return loss_fn(scores, y), float(np.mean(scores.argmax(axis=1) == y))


def fit(model, loss_fn, optimizer, train_data, val_data, epochs, batch_size, *,
        schedule=None, augment=False, seed=0, out_dir=None, resume=False, drop_last=True,
        eval_batch_size=500, progress="bar"):
    """Train ``model`` with minibatches for ``epochs`` epochs and return a :class:`History`.

    Inputs:
    - model: a network (e.g. ``Sequential``) with forward, ``backward(dout, input_grad)``,
      train/eval, state_dict/load_state_dict and save
    - loss_fn: e.g. ``SoftmaxCrossEntropy()``; ``loss = loss_fn(scores, y)``, ``loss_fn.backward()``
    - optimizer: an optimizer over ``model.parameters()`` (``minicnn.optim``)
    - train_data, val_data: ``(x, y)`` with x of shape (N, C, H, W), y of shape (N,) ints
    - epochs: total number of epochs; a resumed run continues up to it
    - batch_size: training minibatch size (``eval_batch_size`` for evaluation)
    - schedule: object with ``lr_at(epoch)`` (epoch counted from 0), applied at the start
      of every epoch; None keeps ``optimizer.lr``
    - augment: False, True (random crop + flip) or ``f(x_batch, rng) -> x_batch``
    - seed: int or ``SeedSequence`` for the shuffling and augmentation Generator
    - out_dir: run folder for history, ``checkpoint.npz`` and ``best.npz``; None writes nothing
    - resume: continue from ``out_dir/checkpoint.npz`` (ValueError if there is none)
    - drop_last: skip each epoch's last, smaller minibatch (the order is reshuffled every
      epoch, so no sample is left out for good); a batch of a few samples gives noisy
      batch-norm statistics and a spike in the loss curve
    - progress: "bar" (or True) a tqdm progress bar per epoch; "lines" one printed line
      per epoch (epoch, loss, accuracy, validation accuracy, seconds); False nothing

    Inputs should be normalised (``minicnn.data.fit_normalizer`` / ``normalize``): integer
    or far-from-normalised training (else validation) images give one
    :class:`minicnn.data.UnnormalizedInputWarning`.

    Per epoch the history records the mean training loss and accuracy over the epoch's
    minibatches (in train mode, as they were trained on), the validation loss and accuracy
    (eval mode), the learning rate and the seconds taken. A NaN/inf loss raises
    :class:`NonFiniteLossError` before the bad step is applied, leaving the last good
    checkpoint. Ctrl-C finishes the current step, saves the history and a checkpoint that
    resumes exactly, then raises ``KeyboardInterrupt``.
    """
    x_train, y_train = train_data
    x_val, y_val = val_data
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if drop_last and len(x_train) < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(x_train)} "
                         f"training samples")
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {PROGRESS}, got {progress!r}")
    bar_on, lines_on = progress in ("bar", True), progress == "lines"
    if not check_normalized(x_train, "fit: the training inputs (train_data[0])", stacklevel=2):
        check_normalized(x_val, "fit: the validation inputs (val_data[0])", stacklevel=2)
    rng = np.random.default_rng(seed)
    loader = DataLoader(x_train, y_train, batch_size, shuffle=True, augment=augment,
                        drop_last=drop_last, rng=rng, check_inputs=False)
    history, start = History(), Position()
    if resume:
        if out_dir is None:
            raise ValueError("resume=True needs the out_dir that holds checkpoint.npz")
        history, start = load_checkpoint(os.path.join(out_dir, CHECKPOINT), model, optimizer, rng)
    folder = _RunFolder(model, optimizer, rng, history, out_dir)
    trainer = _Trainer(model, loss_fn, optimizer, loader, folder)
    model.train()
    with _DeferredInterrupt() as trainer.interrupt:
        try:
            for epoch in range(start.epoch, int(epochs)):
                if schedule is not None:
                    optimizer.lr = schedule.lr_at(epoch)
                part = start if epoch == start.epoch else Position(epoch)
                began = time.perf_counter() - part.seconds
                with tqdm(total=len(loader), initial=part.step, desc=f"epoch {epoch + 1}/{epochs}",
                          disable=not bar_on, dynamic_ncols=True) as bar:
                    train_loss, train_acc = trainer.train_epoch(part, bar, began)
                    val_loss, val_acc = evaluate(model, loss_fn, x_val, y_val, eval_batch_size)
                    bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}",
                                    val_acc=f"{val_acc:.3f}")
                history.add_epoch(epoch=epoch + 1, train_loss=train_loss, train_acc=train_acc,
                                  val_loss=val_loss, val_acc=val_acc, lr=optimizer.lr,
                                  seconds=time.perf_counter() - began,
                                  iterations=len(history.iteration_loss))
                if lines_on:
                    print(epoch_line(history.epochs[-1], epochs), flush=True)
                folder.end_epoch(val_acc)
                if trainer.interrupt.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            folder.save_history()  # a second Ctrl-C mid-step: history only, checkpoint as it was
            raise
    return history


class _Trainer:
    """What one epoch of training needs: the model, loss, optimizer, data, run folder and
    the Ctrl-C flag."""

    def __init__(self, model, loss_fn, optimizer, loader, folder):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.loader, self.folder, self.interrupt = loader, folder, None

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
                part.seconds = time.perf_counter() - began
                self.folder.save(part)
                raise KeyboardInterrupt
            loss, correct = self.train_step(xb, yb)
            if not math.isfinite(loss):
                self.folder.save_history()
                raise NonFiniteLossError(
                    f"the training loss is {loss} at epoch {part.epoch + 1}, iteration "
                    f"{step + 1}; training stopped. {self.folder.last_good()} "
                    "Try a smaller learning rate.")
            self.folder.history.iteration_loss.append(loss)
            part.step, part.seen = step + 1, part.seen + len(yb)
            part.loss_sum += loss * len(yb)
            part.correct += correct
            bar.update(1)
            bar.set_postfix(loss=f"{part.loss_sum / part.seen:.3f}",
                            acc=f"{part.correct / part.seen:.3f}", refresh=False)
        return part.loss_sum / part.seen, part.correct / part.seen

    def train_step(self, xb, yb):
        """One forward/backward/update on a minibatch; returns (loss, number correct).

        The update is skipped when the loss is not finite.
        """
        scores = self.model(xb)
        loss = self.loss_fn(scores, yb)
        if math.isfinite(loss):
            self.optimizer.zero_grad()
            self.model.backward(self.loss_fn.backward(), input_grad=False)
            self.optimizer.step()
        return loss, int(np.sum(scores.argmax(axis=1) == yb))


class _RunFolder:
    """The files of a run folder; ``out_dir=None`` makes every method do nothing."""

    def __init__(self, model, optimizer, rng, history, out_dir):
        self.model, self.optimizer, self.rng, self.history = model, optimizer, rng, history
        self.out_dir = out_dir
        self.best_acc = history.best_val_acc

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def save_history(self):
        if self.out_dir is not None:
            self.history.save(self.path("history.json"))
            self.history.save_csv(self.path("history.csv"))

    def save(self, position):
        if self.out_dir is not None:
            save_checkpoint(self.path(CHECKPOINT), self.model, self.optimizer, self.history,
                            position)
            self.save_history()

    def end_epoch(self, val_acc):
        if self.out_dir is not None and val_acc > self.best_acc:
            self.model.save(self.path(BEST))
        self.best_acc = max(self.best_acc, val_acc)
        self.save(Position(len(self.history), rng_state=self.rng.bit_generator.state))

    def last_good(self):
        if self.out_dir is None or not os.path.exists(self.path(CHECKPOINT)):
            return "No checkpoint was saved."
        return f"The last good checkpoint ({len(self.history)} epochs) is {self.path(CHECKPOINT)}."


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
