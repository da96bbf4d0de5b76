"""Learning-rate schedules: ``schedule.lr_at(t)`` for t = 0, 1, 2, ...

A schedule is any object with ``lr_at(t) -> float`` and a ``per_step`` flag (missing means
False). ``fit`` reads it in one of two ways:

- per epoch (``per_step=False``): ``optimizer.lr = schedule.lr_at(epoch)`` at the start of
  every epoch, epoch counted from 0;
- per step (``per_step=True``): ``optimizer.lr = schedule.lr_at(step)`` before every
  optimizer step, step counted from 0 over the whole run (not restarting each epoch).
  A resumed run continues from the step count its checkpoint holds (the number of
  iterations in its history), so the rate of every step equals an uninterrupted run's.

Every ``lr_at`` is a formula of ``t`` alone (no state that ``step()`` calls advance), so a
schedule can be drawn, checked, or resumed at any point. The names and defaults follow
``torch.optim.lr_scheduler``: ``lr_at(t)`` is the rate PyTorch's scheduler gives after
``t`` calls of ``scheduler.step()``.

- :class:`ConstantLR`: the same rate throughout.
- :class:`StepLR`: multiply by ``gamma`` every ``step_size`` epochs (or steps).
- :class:`CosineLR` (PyTorch: ``CosineAnnealingLR``): half a cosine from ``base_lr`` down
  to ``min_lr``.
- :class:`WarmupCosineLR` (PyTorch: ``SequentialLR`` of ``LinearLR`` then
  ``CosineAnnealingLR``): a linear warm-up, then half a cosine.
- :class:`OneCycleLR`: Smith's one-cycle policy, per step: up from ``max_lr / div_factor``
  to ``max_lr`` over the first ``pct_start`` of the run, then down to a tiny rate.
"""
import math


def _cosine(start, end, pct):
    """From ``start`` (pct = 0) to ``end`` (pct = 1) along half a cosine."""
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def _linear(start, end, pct):
    return start + (end - start) * pct


def _positive_int(name, owner, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _unit(per_step):
    return "steps" if per_step else "epochs"


class ConstantLR:
    """lr_t = base_lr."""

    per_step = False

    def __init__(self, base_lr):
        self.base_lr = float(base_lr)

    def lr_at(self, t):
        return self.base_lr

    def __repr__(self):
        return f"{type(self).__name__}(base_lr={self.base_lr})"


class StepLR:
    """lr_t = base_lr * gamma ** (t // step_size): multiply by gamma every ``step_size``
    epochs, or every ``step_size`` steps with ``per_step=True``."""

    def __init__(self, base_lr, step_size, gamma=0.1, per_step=False):
        self.base_lr = float(base_lr)
        if isinstance(step_size, bool) or step_size < 1 or gamma <= 0:
            raise ValueError(f"StepLR: need step_size >= 1 and gamma > 0, "
                             f"got step_size={step_size}, gamma={gamma}")
        self.step_size, self.gamma, self.per_step = int(step_size), float(gamma), bool(per_step)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)

    def __repr__(self):
        return (f"StepLR(base_lr={self.base_lr}, step_size={self.step_size}, "
                f"gamma={self.gamma}, per_step={self.per_step})")


class CosineLR:
    """lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / total)) / 2 (PyTorch's
    ``CosineAnnealingLR`` with ``T_max=total``, ``eta_min=min_lr``).

    Starts at base_lr and decays along half a cosine; t = total reaches min_lr, and later
    t stay there. ``total`` counts epochs, or steps with ``per_step=True``.
    """

    def __init__(self, base_lr, total_epochs, min_lr=0.0, per_step=False):
        self.base_lr, self.per_step = float(base_lr), bool(per_step)
        self.total = _positive_int(f"the number of {_unit(per_step)}", "CosineLR", total_epochs)
        self.min_lr = float(min_lr)

    @property
    def total_epochs(self):
        return self.total

    def lr_at(self, t):
        return _cosine(self.base_lr, self.min_lr, min(t, self.total) / self.total)

    def __repr__(self):
        return (f"CosineLR(base_lr={self.base_lr}, total_epochs={self.total}, "
                f"min_lr={self.min_lr}, per_step={self.per_step})")


#: PyTorch's name for :class:`CosineLR`.
CosineAnnealingLR = CosineLR


class WarmupCosineLR:
    """A linear warm-up, then half a cosine: per step by default.

    - t < warmup: lr_t = base_lr * (start_factor + (1 - start_factor) * t / warmup)
    - t >= warmup: lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - warmup) /
      (total - warmup))) / 2, reaching min_lr at t = total.

    The same rates as PyTorch's ``SequentialLR([LinearLR(start_factor, total_iters=warmup),
    CosineAnnealingLR(T_max=total - warmup, eta_min=min_lr)], milestones=[warmup])``;
    ``start_factor`` defaults to LinearLR's 1/3. Warm-up lets the early, large gradients
    of a freshly initialised network (and the adaptive optimisers' first steps) pass at
    a small rate before the full one.
    """

    def __init__(self, base_lr, warmup, total, min_lr=0.0, start_factor=1 / 3, per_step=True):
        name = "WarmupCosineLR"
        self.base_lr, self.min_lr, self.per_step = float(base_lr), float(min_lr), bool(per_step)
        self.total = _positive_int(f"total ({_unit(per_step)})", name, total)
        if isinstance(warmup, bool) or int(warmup) != warmup or not 0 <= warmup < self.total:
            raise ValueError(f"{name}: warmup must be an integer in [0, total) = "
                             f"[0, {self.total}), got {warmup!r}")
        if not 0 < start_factor <= 1:
            raise ValueError(f"{name}: start_factor must be in (0, 1], got {start_factor!r}")
        self.warmup, self.start_factor = int(warmup), float(start_factor)

    def lr_at(self, t):
        if t < self.warmup:
            return self.base_lr * _linear(self.start_factor, 1.0, t / self.warmup)
        pct = min(t - self.warmup, self.total - self.warmup) / (self.total - self.warmup)
        return _cosine(self.base_lr, self.min_lr, pct)

    def __repr__(self):
        return (f"WarmupCosineLR(base_lr={self.base_lr}, warmup={self.warmup}, "
                f"total={self.total}, min_lr={self.min_lr}, "
                f"start_factor={self.start_factor:.4g}, per_step={self.per_step})")


class OneCycleLR:
    """Smith's one-cycle policy, per step, with PyTorch's names and defaults.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start * total_steps`` steps, then anneals to ``max_lr / div_factor /
    final_div_factor`` at step ``total_steps - 1``; ``anneal_strategy`` is "cos" or
    "linear"; ``three_phase=True`` comes back down to the start rate symmetrically before
    the final anneal. Give ``total_steps``, or ``epochs`` and ``steps_per_epoch``.
    ``lr_at(t)`` equals ``torch.optim.lr_scheduler.OneCycleLR`` after t calls of
    ``step()`` (momentum is not cycled here), for t up to total_steps; later steps are
    an error, as in PyTorch.
    """

    per_step = True

    def __init__(self, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
                 three_phase=False):
        name = "OneCycleLR"
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{name}: give total_steps, or epochs and steps_per_epoch")
            total_steps = (_positive_int("epochs", name, epochs)
                           * _positive_int("steps_per_epoch", name, steps_per_epoch))
        self.total_steps = _positive_int("total_steps", name, total_steps)
        if not 0 <= pct_start <= 1:
            raise ValueError(f"{name}: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        self.max_lr, self.pct_start, self.anneal_strategy = float(max_lr), float(pct_start), \
            anneal_strategy
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        self.three_phase = bool(three_phase)
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        rise_end = self.pct_start * self.total_steps - 1
        if self.three_phase:  # (last step of the phase, rate at its start, rate at its end)
            self.phases = [(rise_end, initial, self.max_lr),
                           (2 * self.pct_start * self.total_steps - 2, self.max_lr, initial),
                           (self.total_steps - 1, initial, low)]
        else:
            self.phases = [(rise_end, initial, self.max_lr), (self.total_steps - 1, self.max_lr, low)]

    def lr_at(self, t):
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: step {t} is past the schedule's total_steps "
                             f"({self.total_steps}); make a schedule for the longer run")
        anneal = _cosine if self.anneal_strategy == "cos" else _linear
        start_step = 0.0
        for i, (end_step, start_lr, end_lr) in enumerate(self.phases):
            if t <= end_step or i == len(self.phases) - 1:
                return anneal(start_lr, end_lr, (t - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable: the last phase always answers")

    def __repr__(self):
        return (f"OneCycleLR(max_lr={self.max_lr}, total_steps={self.total_steps}, "
                f"pct_start={self.pct_start}, anneal_strategy={self.anneal_strategy!r}, "
                f"div_factor={self.div_factor}, final_div_factor={self.final_div_factor}, "
                f"three_phase={self.three_phase})")


#: The names ``make_schedule`` (and the command line's ``--schedule``) take.
SCHEDULES = ("none", "step", "cosine", "warmup-cosine", "onecycle")


def make_schedule(name, base_lr, epochs, steps_per_epoch=None):
    """The CLI's schedules for a run of ``epochs`` epochs.

    Per epoch: "none" (constant), "step" (x0.1 every ceil(epochs / 3) epochs) or "cosine"
    (down to 0 over the run). Per step (need ``steps_per_epoch``): "warmup-cosine" (linear
    warm-up over the first epoch, or 5 % of the run if shorter, then cosine to 0) and
    "onecycle" (PyTorch's defaults with ``max_lr=base_lr``).
    """
    if name in (None, "none"):
        return ConstantLR(base_lr)
    if name == "step":
        return StepLR(base_lr, step_size=max(1, math.ceil(epochs / 3)), gamma=0.1)
    if name == "cosine":
        return CosineLR(base_lr, total_epochs=max(1, epochs))
    if name in ("warmup-cosine", "onecycle"):
        if steps_per_epoch is None:
            raise ValueError(f"schedule {name!r} is per step: give steps_per_epoch")
        total = max(1, epochs) * _positive_int("steps_per_epoch", "make_schedule", steps_per_epoch)
        if name == "onecycle":
            return OneCycleLR(base_lr, total_steps=total)
        warmup = min(int(steps_per_epoch), max(1, total // 20)) if total > 1 else 0
        return WarmupCosineLR(base_lr, warmup=warmup, total=total)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
