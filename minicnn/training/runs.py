"""Rebuild a run from its folder: the model, its data and its training pieces.

A run folder (written by ``train.py``) holds ``config.json``, ``history.json``,
``history.csv``, ``loss.png``, ``checkpoint.npz`` and ``best.npz``. For example::

    from minicnn.training.runs import build_data, load_run
    model, config, history = load_run("runs/20240101-120000")   # best.npz, eval mode
    data = build_data(config)                                   # the same normalised splits
    scores = minicnn.training.predict(model, data.x_test)

``config.json`` keys: dataset ("cifar10", "fashion-mnist", "mnist" or "synthetic"),
data_dir, model, model_args (the zoo factory's arguments besides num_classes, seed and
dtype, e.g. ``{"in_channels": 1, "widths": [32, 64, 128]}``), epochs, batch_size, lr,
optimizer, weight_decay, schedule, augment, num_train, num_val, num_test, dtype, seed.
A config without model_args (written before they were recorded) gets the factory's
defaults for the data set's channels and image size.
"""
import json
import os
from typing import List, NamedTuple

import numpy as np

from ..data import (SYNTHETIC_CLASSES, augment_crop_flip, fit_normalizer, load_cifar10,
                    load_fashion_mnist, load_mnist, normalize, random_crop, synthetic_cifar,
                    train_val_split)
from ..models import NEEDS_IMAGE_SIZE, build_model
from ..optim import SGD, Adam, AdamW, RMSprop
from ..serialization import atomic_path
from .checkpoint import BEST, CHECKPOINT, load_weights
from .history import History
from .schedules import make_schedule

#: Optimizer name -> (class, default learning rate of train.py, tuned for vgg_small;
#: three_layer_convnet wants about a third of it).
OPTIMIZERS = {"sgd": (SGD, 0.05), "adam": (Adam, 3e-3), "adamw": (AdamW, 3e-3),
              "rmsprop": (RMSprop, 1e-3)}
SYNTHETIC_TEST_SIZE = 2000
_SYNTHETIC_SEEDS = (0, 1)  # fixed, so every synthetic run sees the same images


def augment_crop(x, rng):
    """Digits are not mirror images of each other: :func:`random_crop` (padding 4) only."""
    return random_crop(x, 4, rng)


class Dataset(NamedTuple):
    """What a run needs to know of a data set besides its images."""
    load: object          # load(root) -> (x_train, y_train, x_test, y_test, classes); None: synthetic
    in_channels: int
    image_size: int
    augment: object       # f(x_batch, rng) used when the config says augment


#: Data set name -> how to load it, its image shape and its augmentation.
DATASETS = {
    "cifar10": Dataset(load_cifar10, 3, 32, augment_crop_flip),
    "fashion-mnist": Dataset(load_fashion_mnist, 1, 28, augment_crop_flip),
    "mnist": Dataset(load_mnist, 1, 28, augment_crop),
    "synthetic": Dataset(None, 3, 32, augment_crop_flip),
}


class Data(NamedTuple):
    """Normalised float splits (x: (N, C, H, W), y: (N,) int64), the class names and the
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

    CIFAR-10, Fashion-MNIST, MNIST: ``num_val`` images of the training set are held out for
    validation (seed 0), the first ``num_train`` of the rest are trained on (all if None),
    the first ``num_test`` test images are used (all if None). Synthetic: the same sizes,
    drawn from fixed seeds.
    """
    num_train, num_val, num_test = config.get("num_train"), config["num_val"], config.get("num_test")
    dataset = DATASETS.get(config["dataset"])
    if dataset is None:
        raise ValueError(f"unknown dataset {config['dataset']!r}; expected one of "
                         f"{', '.join(DATASETS)}")
    if dataset.load is not None:
        x, y, x_test, y_test, classes = dataset.load(config.get("data_dir"))
    else:
        x, y = synthetic_cifar((num_train or 5000) + num_val, seed=_SYNTHETIC_SEEDS[0])
        x_test, y_test = synthetic_cifar(num_test or SYNTHETIC_TEST_SIZE, seed=_SYNTHETIC_SEEDS[1])
        classes = list(SYNTHETIC_CLASSES)
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


def model_args(config):
    """The zoo factory's arguments of a run: ``config["model_args"]`` if recorded, else the
    defaults for its data set (``in_channels``, and ``image_size`` where the model needs it)."""
    if config.get("model_args") is not None:
        return dict(config["model_args"])
    dataset = DATASETS.get(config["dataset"], DATASETS["synthetic"])
    args = {"in_channels": dataset.in_channels}
    if config["model"] in NEEDS_IMAGE_SIZE:
        args["image_size"] = dataset.image_size
    return args


def build_model_for(config, num_classes=10):
    """The run's network, freshly initialised from its seed."""
    return build_model(config["model"], num_classes, seeds(config)[0], np.dtype(config["dtype"]),
                       **model_args(config))


def augmentation(config):
    """The ``augment`` argument of ``fit`` for a run: the data set's augmentation or False."""
    return DATASETS[config["dataset"]].augment if config["augment"] else False


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


def load_run(run_dir, weights=BEST):
    """``(model, config, history)`` of a run folder: the model with ``weights`` (``best.npz``,
    or ``checkpoint.npz`` if there is no best yet) loaded, in eval mode."""
    config = load_config(run_dir)
    path = os.path.join(run_dir, weights)
    if not os.path.exists(path):
        path = os.path.join(run_dir, CHECKPOINT)
    model = load_weights(build_model_for(config), path).eval()
    history_path = os.path.join(run_dir, "history.json")
    history = History.load(history_path) if os.path.exists(history_path) else History()
    return model, config, history
