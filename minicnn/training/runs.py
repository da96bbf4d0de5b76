"""Former home of the run-folder helpers, kept so that old imports keep working for one
release; it split by job:

- :mod:`minicnn.training.config`: :class:`RunConfig` (defaults, checks, JSON, the resume
  rule), ``CONFIG_SCHEMA``, ``OPTIMIZERS``, ``check_config``, ``check_sizes``;
- :mod:`minicnn.training.build`: ``build_data``, ``build_model_for``, ``build_optimizer``,
  ``build_schedule``, ``augmentation``, ``seeds``, ``model_args``;
- :mod:`minicnn.training.run_folder`: ``load_run``, ``load_config``, ``save_config``,
  ``missing_config_message`` and the one-writer lock;
- :mod:`minicnn.training.memory`: ``available_memory``, ``activation_bytes``;
- :mod:`minicnn.data.registry`: ``DATASETS``, ``Dataset``, ``Data``, ``AUGMENTATIONS``,
  ``augment_crop``.

For example::

    from minicnn.training import build_data, load_run
    model, config, history = load_run("runs/20240101-120000")   # its result, eval mode
    data = build_data(config)                                   # the same normalised splits
"""
from ..data.registry import (
    AUGMENTATIONS,
    DATASETS,
    SYNTHETIC_TEST_SIZE,
    SYNTHETIC_TRAIN_SIZE,
    Data,
    Dataset,
    augment_crop,
)
from .build import (
    augmentation,
    build_data,
    build_model_for,
    build_optimizer,
    build_schedule,
    model_args,
    seeds,
)
from .config import CONFIG_SCHEMA, MAX_LR, OPTIMIZERS, check_config, check_sizes
from .memory import activation_bytes, available_memory
from .run_folder import load_config, load_run, missing_config_message, save_config

__all__ = ["AUGMENTATIONS", "CONFIG_SCHEMA", "DATASETS", "Data", "Dataset", "MAX_LR",
           "OPTIMIZERS", "SYNTHETIC_TEST_SIZE", "SYNTHETIC_TRAIN_SIZE", "activation_bytes",
           "augment_crop", "augmentation", "available_memory", "build_data", "build_model_for",
           "build_optimizer", "build_schedule", "check_config", "check_sizes", "load_config",
           "load_run", "missing_config_message", "model_args", "save_config", "seeds"]
