"""Training: the loop (``fit``, ``evaluate``, ``predict``), checkpoints, history,
learning-rate schedules, a run's configuration (:class:`RunConfig`) and run folders."""
from .build import build_data
from .callbacks import EarlyStopping, StopTraining
from .checkpoint import (
                         BEST,
                         CHECKPOINT,
                         load_checkpoint,
                         load_weights,
                         read_checkpoint,
                         save_checkpoint,
)
from .config import RunConfig
from .history import History
from .loop import NonFiniteLossError, evaluate, fit, predict
from .lr_find import LRFindResult, lr_find
from .run_folder import load_run
from .schedules import ConstantLR, CosineLR, OneCycleLR, StepLR, WarmupCosineLR, make_schedule

__all__ = ["BEST", "CHECKPOINT", "ConstantLR", "CosineLR", "EarlyStopping", "History",
           "LRFindResult", "NonFiniteLossError", "OneCycleLR", "RunConfig",
           "StepLR", "StopTraining", "WarmupCosineLR", "build_data", "evaluate", "fit",
           "load_checkpoint", "load_run", "load_weights", "lr_find", "make_schedule", "predict",
           "read_checkpoint", "save_checkpoint"]
