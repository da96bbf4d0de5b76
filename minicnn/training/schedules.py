"""Per-epoch learning-rate schedules: ``schedule.lr_at(epoch)`` for epoch = 0, 1, 2, ...

A schedule is any object with ``lr_at(epoch) -> float``; the three here share nothing else.

``fit`` sets ``optimizer.lr = schedule.lr_at(epoch)`` at the start of every epoch.
"""
import math


class ConstantLR:
    """lr_t = base_lr."""

    def __init__(self, base_lr):
        self.base_lr = float(base_lr)

    def lr_at(self, epoch):
        return self.base_lr

    def __repr__(self):
        return f"{type(self).__name__}(base_lr={self.base_lr})"


class StepLR:
    """lr_t = base_lr * gamma ** (t // step_size): multiply by gamma every step_size epochs."""

    def __init__(self, base_lr, step_size, gamma=0.1):
        self.base_lr = float(base_lr)
        if step_size < 1 or gamma <= 0:
            raise ValueError(f"StepLR: need step_size >= 1 and gamma > 0, "
                             f"got step_size={step_size}, gamma={gamma}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def __repr__(self):
        return (f"StepLR(base_lr={self.base_lr}, step_size={self.step_size}, "
                f"gamma={self.gamma})")


class CosineLR:
    """lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / total_epochs)) / 2.

    Starts at base_lr and decays along half a cosine; epoch total_epochs would reach min_lr.
    """

    def __init__(self, base_lr, total_epochs, min_lr=0.0):
        self.base_lr = float(base_lr)
        if total_epochs < 1:
            raise ValueError(f"CosineLR: total_epochs must be >= 1, got {total_epochs}")
        self.total_epochs, self.min_lr = int(total_epochs), float(min_lr)

    def lr_at(self, epoch):
        t = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t)) / 2

    def __repr__(self):
        return (f"CosineLR(base_lr={self.base_lr}, total_epochs={self.total_epochs}, "
                f"min_lr={self.min_lr})")


def make_schedule(name, base_lr, epochs):
    """The CLI's schedules for a run of ``epochs`` epochs: "none" (constant), "step"
    (x0.1 every ceil(epochs / 3) epochs) or "cosine" (down to 0 over the run)."""
    if name in (None, "none"):
        return ConstantLR(base_lr)
    if name == "step":
        return StepLR(base_lr, step_size=max(1, math.ceil(epochs / 3)), gamma=0.1)
    if name == "cosine":
        return CosineLR(base_lr, total_epochs=max(1, epochs))
    raise ValueError(f"unknown schedule {name!r}; choose none, step or cosine")
