"""Rebuild a run from its folder: the model, its data and its training pieces.

A run folder written by ``train.py`` holds ``config.json``, ``history.json``,
``history.csv``, ``loss.png``, ``report.png``, ``checkpoint.npz`` and ``best.npz``; one
written by ``fit(..., out_dir=...)`` holds all but config.json and the pictures, so
``load_run`` needs the network for it (``load_run(folder, model=net)``). For example::

    from minicnn.training.runs import build_data, load_run
    model, config, history = load_run("runs/20240101-120000")   # best.npz, eval mode
    data = build_data(config)                                   # the same normalised splits
    scores = minicnn.training.predict(model, data.x_test)

``config.json`` keys: dataset ("cifar10" or "synthetic"), data_dir, model, epochs,
batch_size, lr, optimizer, weight_decay, schedule, augment, num_train, num_val,
num_test, dtype, seed.
"""
import copy
import json
import os
from typing import List, NamedTuple

import numpy as np

from ..data import (SYNTHETIC_CLASSES, fit_normalizer, load_cifar10, normalize,
                   synthetic_cifar, train_val_split)
from .history import History
from ..models import build_model
from ..optim import SGD, Adam, AdamW, RMSprop
from .schedules import make_schedule
from ..serialization import atomic_path
from .checkpoint import BEST, CHECKPOINT, load_weights

#: Optimizer name -> (class, default learning rate of train.py, tuned for vgg_small;
#: three_layer_convnet wants about a third of it).
OPTIMIZERS = {"sgd": (SGD, 0.05), "adam": (Adam, 3e-3), "adamw": (AdamW, 3e-3),
              "rmsprop": (RMSprop, 1e-3)}
SYNTHETIC_TEST_SIZE = 2000
_SYNTHETIC_SEEDS = (0, 1)  # fixed, so every synthetic run sees the same images


class Data(NamedTuple):
    """Normalised float splits (x: (N, 3, 32, 32), y: (N,) int64), the class names and the
    per-channel ``mean``/``std`` (fitted on x_train only) that undo the normalisation."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: List[str]
    mean: np.ndarray
    std: np.ndarray


def build_data(config):
    """The train/val/test splits a run's ``config`` describes, normalised by training statistics.

    CIFAR-10: ``num_val`` images of the 50,000 are held out for validation (seed 0), the
    first ``num_train`` of the rest are trained on (all if None), the first ``num_test``
    test images are used (all if None). Synthetic: the same sizes, drawn from fixed seeds.
    """
    num_train, num_val, num_test = config.get("num_train"), config["num_val"], config.get("num_test")
    if config["dataset"] == "cifar10":
        cifar = load_cifar10(config.get("data_dir"))
        x, y, x_test, y_test, classes = cifar
    elif config["dataset"] == "synthetic":
        x, y = synthetic_cifar((num_train or 5000) + num_val, seed=_SYNTHETIC_SEEDS[0])
        x_test, y_test = synthetic_cifar(num_test or SYNTHETIC_TEST_SIZE, seed=_SYNTHETIC_SEEDS[1])
        classes = list(SYNTHETIC_CLASSES)
    else:
        raise ValueError(f"unknown dataset {config['dataset']!r}; expected cifar10 or synthetic")
    x_train, y_train, x_val, y_val = train_val_split(x, y, num_val=num_val, seed=0)
    x_train, y_train = x_train[:num_train], y_train[:num_train]
    x_test, y_test = x_test[:num_test], y_test[:num_test]
    mean, std = fit_normalizer(x_train)
    dtype = np.dtype(config.get("dtype", "float32"))
    x_train, x_val, x_test = (normalize(a, mean, std, dtype) for a in (x_train, x_val, x_test))
    return Data(x_train, y_train, x_val, y_val, x_test, y_test, classes, mean, std)


def seeds(config):
    """Two independent seeds from ``config["seed"]``: (model initialisation, data order)."""
    return tuple(np.random.SeedSequence(config["seed"]).spawn(2))


def build_model_for(config, num_classes=10):
    """The run's network, freshly initialised from its seed."""
    return build_model(config["model"], num_classes, seeds(config)[0], np.dtype(config["dtype"]))


def build_optimizer(model, config):
    """The run's optimizer over ``model.parameters()`` (SGD gets momentum 0.9)."""
    cls, _ = OPTIMIZERS[config["optimizer"]]
    extra = {"momentum": 0.9} if cls is SGD else {}
    return cls(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"], **extra)


def build_schedule(config):
    return make_schedule(config["schedule"], config["lr"], config["epochs"])


def save_config(run_dir, config):
    with atomic_path(os.path.join(run_dir, "config.json")) as tmp, open(tmp, "w") as f:
        json.dump(config, f, indent=2)


def load_config(run_dir):
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ValueError(f"cannot read {path!r} ({e.strerror}); is {run_dir!r} a run folder?") from None
    except ValueError as e:
        raise ValueError(f"{path!r} is not valid JSON ({e})") from None


def missing_config_message(run_dir):
    """Why a run folder without config.json cannot be rebuilt, and what to do instead."""
    here = sorted(f for f in ("history.json", BEST, CHECKPOINT)
                  if os.path.exists(os.path.join(run_dir, f)))
    if not here:
        return (f"{run_dir!r} holds none of config.json, history.json, {BEST}, {CHECKPOINT}: "
                f"is it a run folder (written by train.py or fit(out_dir=...))?")
    return (f"{run_dir!r} has {', '.join(here)} but no config.json, so the network's "
            f"architecture and its data are unknown: a folder written by fit(out_dir=...) has "
            f"no config.json (train.py / minicnn-train write one).")


def load_run(run_dir, weights=BEST, model=None):
    """``(model, config, history)`` of a run folder: the model with ``weights`` (``best.npz``,
    or ``checkpoint.npz`` if there is no best yet) loaded, in eval mode.

    A folder written by ``train.py`` is rebuilt from its ``config.json``. A folder written
    by ``fit(out_dir=...)`` has no config.json: pass ``model``, a network of the same
    architecture; a copy of it receives the weights (``model`` itself is left as it is)
    and ``config`` is None.
    """
    has_config = os.path.exists(os.path.join(run_dir, "config.json"))
    if model is None and not has_config:
        raise ValueError(f"{missing_config_message(run_dir)} Pass the network to load the "
                         f"weights into: load_run({run_dir!r}, model=my_network).")
    config = load_config(run_dir) if has_config else None
    path = os.path.join(run_dir, weights)
    if not os.path.exists(path):
        path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.exists(path):
        raise ValueError(f"{run_dir!r} has neither {weights} nor {CHECKPOINT}: no trained "
                         f"weights to load")
    model = copy.deepcopy(model) if model is not None else build_model_for(config)
    model = load_weights(model, path).eval()
    history_path = os.path.join(run_dir, "history.json")
    history = History.load(history_path) if os.path.exists(history_path) else History()
    return model, config, history
