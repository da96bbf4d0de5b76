"""Training: the loop (``fit``, ``evaluate``, ``predict``), checkpoints, history,
learning-rate schedules and run folders."""
from .checkpoint import (
                         BEST,
                         CHECKPOINT,
                         load_checkpoint,
                         load_weights,
                         read_checkpoint,
                         save_checkpoint,
)
from .history import History
from .loop import NonFiniteLossError, evaluate, fit, predict
from .runs import build_data, load_run
from .schedules import ConstantLR, CosineLR, StepLR, make_schedule

__all__ = ["BEST", "CHECKPOINT", "ConstantLR", "CosineLR", "History", "NonFiniteLossError",
           "StepLR", "build_data", "evaluate", "fit", "load_checkpoint", "load_run",
           "load_weights", "make_schedule", "predict", "read_checkpoint", "save_checkpoint"]
