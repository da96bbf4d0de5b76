"""The learning-rate range test (Smith, "Cyclical learning rates", 2017; as fastai's
``lr_find`` popularised it): which learning rate to train with, found in a minute.

Train a *copy* of the model for ``num_iter`` minibatches while the learning rate grows
exponentially from ``start_lr`` to ``end_lr``, and record the loss of each step. At first
the rate is too small to change anything and the loss stays flat; then it falls, fastest
at a rate that learns well; then it turns and shoots up (the rate is too large). The run
stops early once the smoothed loss exceeds ``diverge`` times its lowest value, or is not
finite. A good rate lies on the steep downward part, before the bottom:

- ``"valley"`` (fastai's default): the longest stretch over which the loss keeps
  falling, and the rate about half way down it;
- ``"steepest"``: where the smoothed loss falls fastest against log(rate) (measured over
  a tenth of the sweep, so that one noisy step does not decide).

The loss is smoothed with a bias-corrected exponential moving average (``beta=0.98`` as in
fastai). The model and the optimizer you pass are not touched: the sweep runs on deep
copies, so they are bit-identical afterwards (weights, gradients, running statistics,
random generators, train/eval mode, momentum and Adam's moments, the optimizer's rate);
so is the loss object (its cached gradient).

    result = lr_find(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1,
                     momentum=0.9), (x_train, y_train))
    print(result)                                 # the sweep and the suggested rate
    lrs, losses, suggestion = result              # it unpacks as three values
    minicnn.viz.plot_lr_find(*result, path="lr_find.png")
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..data import DataLoader

SUGGESTIONS = ("valley", "steepest")


@dataclass
class LRFindResult:
    """What :func:`lr_find` measured: ``lrs`` and ``losses`` (T,), the rate and loss of
    every step taken; ``suggestion``, the rate to train with, ``lrs[index]``, chosen by
    ``method``; ``smoothed`` (T,), the bias-corrected moving average of the loss;
    ``diverged``, whether the sweep stopped because the loss blew up.
    Unpacks as ``lrs, losses, suggestion`` (so ``plot_lr_find(*result)`` draws it)."""

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float
    smoothed: np.ndarray
    index: int
    method: str
    diverged: bool

    def __iter__(self):
        return iter((self.lrs, self.losses, self.suggestion))

    def __str__(self):
        end = "the loss diverged" if self.diverged else "the sweep ended"
        return (f"learning-rate finder: {len(self.lrs)} steps from {self.lrs[0]:.3g} to "
                f"{self.lrs[-1]:.3g} ({end}); suggested rate {self.suggestion:.3g} "
                f"({self.method})")


def lr_find(model, loss_fn, optimizer, data, *, start_lr=1e-7, end_lr=10.0, num_iter=200,
            batch_size=64, beta=0.98, diverge=4.0, suggest="valley", seed=0):
    """Smith's learning-rate range test on a copy of ``model``; returns an :class:`LRFindResult`.

    - model, loss_fn: as for ``fit``; optimizer: an optimizer over ``model.parameters()``
      (its type, hyper-parameters and state are copied; its rate is swept)
    - data: ``(x, y)`` training images and labels, batches drawn in shuffled order
      (``seed``, no augmentation) and reused as often as ``num_iter`` needs
    - start_lr, end_lr, num_iter: the sweep, lr_i = start_lr * (end_lr / start_lr) **
      (i / (num_iter - 1)) for step i = 0 .. num_iter - 1 (fastai's range; twice its
      100 steps, so that the suggestion moves less from one run to the next)
    - beta: smoothing of the loss; diverge: stop when the smoothed loss passes this
      multiple of its lowest value (or any loss is NaN/inf)
    - suggest: "valley" or "steepest" (see the module's docstring)
    """
    _check(start_lr, end_lr, num_iter, suggest, data, batch_size)
    if not 0 <= beta < 1:
        raise ValueError(f"lr_find: beta must be in [0, 1), got {beta!r}")
    if not diverge > 1:
        raise ValueError(f"lr_find: diverge must be > 1 (a multiple of the lowest loss), "
                         f"got {diverge!r}")
    trial, trial_opt = _copies(model, optimizer)
    loss_fn = copy.deepcopy(loss_fn)  # its cached gradient stays the caller's too
    x, y = data
    loader = DataLoader(x, y, batch_size, shuffle=True, drop_last=True, rng=seed,
                        check_inputs=False)
    rates = start_lr * (end_lr / start_lr) ** (np.arange(num_iter) / max(num_iter - 1, 1))
    with np.errstate(over="ignore", invalid="ignore"):  # the end of a sweep is meant to blow up
        lrs, losses, smoothed, diverged = _sweep(trial, loss_fn, trial_opt, loader, rates,
                                                 beta, diverge)
    index = _suggest(lrs, smoothed, suggest)
    return LRFindResult(np.array(lrs), np.array(losses), float(lrs[index]), np.array(smoothed),
                        index, suggest, diverged)


def _check(start_lr, end_lr, num_iter, suggest, data, batch_size):
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_find: need 0 < start_lr < end_lr, got start_lr={start_lr!r}, "
                         f"end_lr={end_lr!r}")
    if isinstance(num_iter, bool) or int(num_iter) != num_iter or num_iter < 5:
        raise ValueError(f"lr_find: num_iter must be an integer >= 5, got {num_iter!r}")
    if suggest not in SUGGESTIONS:
        raise ValueError(f"lr_find: suggest must be one of {SUGGESTIONS}, got {suggest!r}")
    if len(data[0]) < batch_size:
        raise ValueError(f"lr_find: batch_size {batch_size} is larger than the "
                         f"{len(data[0])} samples in data")


def _copies(model, optimizer):
    """A deep copy of the model and an optimizer of the same kind over the copy's
    parameters, with the same hyper-parameters and state (momentum, Adam's moments)."""
    index = {id(p): i for i, p in enumerate(model.parameters())}
    missing = [i for i, p in enumerate(optimizer.params) if id(p) not in index]
    if missing:
        raise ValueError(f"lr_find: the optimizer's params[{missing[0]}] is not a parameter "
                         f"of the model; make the optimizer with model.parameters()")
    trial = copy.deepcopy(model)
    params = list(trial.parameters())
    trial_opt = type(optimizer)([params[index[id(p)]] for p in optimizer.params],
                                **optimizer.hypers())
    trial_opt.load_state_dict(optimizer.state_dict())
    return trial, trial_opt


def _sweep(model, loss_fn, optimizer, loader, rates, beta, diverge):
    """Train with rate ``rates[i]`` at step i until the rates run out or the loss diverges
    (checked from the end of the first tenth of the sweep on, against the lowest smoothed
    loss since then); returns (rates used, losses, smoothed losses, whether it diverged).
    The smoothing is a bias-corrected moving average: s_t = beta s_{t-1} + (1 - beta) loss_t,
    smoothed_t = s_t / (1 - beta^t)."""
    model.train()
    settle = len(rates) // 10  # the average of the first few losses is still settling
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    batches = iter(())
    for step, lr in enumerate(rates, start=1):
        batch = next(batches, None)
        if batch is None:  # another pass over the data
            batches = iter(loader)
            batch = next(batches)
        optimizer.lr = float(lr)
        loss = loss_fn(model(batch[0]), batch[1])
        average = beta * average + (1 - beta) * loss
        smooth = average / (1 - beta ** step)
        lrs.append(float(lr))
        losses.append(float(loss))
        smoothed.append(smooth)
        if not math.isfinite(smooth) or (step > settle and smooth > diverge * best):
            return lrs, losses, smoothed, True
        best = min(best, smooth) if step >= settle else best
        optimizer.zero_grad()
        model.backward(loss_fn.backward(), input_grad=False)
        optimizer.step()
    return lrs, losses, smoothed, False


def _suggest(lrs, smoothed, method):
    """The step whose rate to suggest. Like fastai, the first tenth of the sweep (where
    the average is still settling) and the last steps (where it diverges) are left out."""
    n = len(lrs)
    lo, hi = n // 10, max(n // 10 + 2, n - 5)
    losses = np.nan_to_num(np.asarray(smoothed[lo:hi], dtype=np.float64), nan=np.inf)
    if len(losses) < 2:  # diverged at once: the first rate is all there is
        return lo
    if method == "steepest":  # slopes over a tenth of the sweep, not single noisy steps
        w = max(1, min(n // 10, len(losses) - 1))
        log_lrs = np.log(lrs[lo:hi])
        slopes = (losses[w:] - losses[:-w]) / (log_lrs[w:] - log_lrs[:-w])
        slopes = np.nan_to_num(slopes, nan=np.inf)  # inf - inf where the loss blew up
        return lo + int(np.argmin(slopes)) + w // 2
    return lo + _valley(losses)


def _valley(losses):
    """fastai's valley: the longest run of steps over which the loss keeps decreasing
    (a longest decreasing subsequence from ``start`` to ``end``), and the step about half
    way down it: start + int(length / 3) + int(length / 6)."""
    n = len(losses)
    lengths = [1] * n
    start = end = 0
    for i in range(1, n):  # O(n^2) over the steps of the sweep (about a hundred)
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[end] < lengths[i]:
                end, start = i, max(0, i - lengths[i])
    sections = (end - start) / 3
    return start + int(sections) + int(sections / 2)
