"""Rebuild a run from its folder: the model, its data and its training pieces.

A run folder written by ``train.py`` holds ``config.json``, ``history.json``,
``history.csv``, ``loss.png``, ``report.png``, ``checkpoint.npz`` and ``best.npz``; one
written by ``fit(..., out_dir=...)`` holds all but config.json and the pictures, so
``load_run`` needs the network for it (``load_run(folder, model=net)``). For example::

    from minicnn.training.runs import build_data, load_run
    model, config, history = load_run("runs/20240101-120000")   # best.npz, eval mode
    data = build_data(config)                                   # the same normalised splits
    scores = minicnn.training.predict(model, data.x_test)

``config.json`` keys (:data:`CONFIG_SCHEMA` gives each one's type and range): dataset
("cifar10", "fashion-mnist", "mnist" or "synthetic"), data_dir, model, model_args (the zoo
factory's arguments besides num_classes, seed and dtype, e.g. ``{"in_channels": 1,
"widths": [32, 64, 128]}``), epochs, batch_size, lr, optimizer, weight_decay, schedule,
augment, num_train, num_val, num_test, dtype, seed. All are required but model_args: a
config written before it was recorded gets the factory's defaults for the data set's
channels and image size. :func:`load_config` refuses a file that breaks the schema with one
line naming the field; :func:`check_sizes` checks the data sizes against the data set and
the memory available.
"""
import copy
import json
import os
from typing import List, NamedTuple

import numpy as np

from ..data import (
    SYNTHETIC_CLASSES,
    augment_crop_flip,
    fit_normalizer,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    normalize,
    random_crop,
    random_flip,
    synthetic_cifar,
    train_val_split,
)
from ..layers.summary import run_recorded
from ..models import MODELS, NEEDS_IMAGE_SIZE, build_model
from ..optim import SGD, Adam, AdamW, RMSprop
from ..serialization import atomic_path
from .checkpoint import BEST, CHECKPOINT, load_weights
from .history import History
from .schedules import make_schedule
from .schema import Rule, check_record, choice, integer, number, text

try:
    import resource
except ImportError:  # not on Windows
    resource = None

#: Optimizer name -> (class, default learning rate of train.py, tuned for vgg_small;
#: three_layer_convnet wants about a third of it).
OPTIMIZERS = {"sgd": (SGD, 0.05), "nesterov": (SGD, 0.05), "adam": (Adam, 3e-3),
              "adamw": (AdamW, 3e-3), "rmsprop": (RMSprop, 1e-3)}
SYNTHETIC_TEST_SIZE = 2000
SYNTHETIC_TRAIN_SIZE = 5000  # num_train when config.json says null
_SYNTHETIC_SEEDS = (0, 1)  # fixed, so every synthetic run sees the same images
MAX_LR = 10.0

def augment_crop(x, rng):
    """Digits are not mirror images of each other: :func:`random_crop` (padding 4) only."""
    return random_crop(x, 4, rng)


#: ``augment`` in config.json: true (the data set's own), false, or one of these names.
AUGMENTATIONS = {"none": False, "flip": random_flip, "crop": augment_crop,
                 "crop-flip": augment_crop_flip}


class Dataset(NamedTuple):
    """What a run needs to know of a data set besides its images."""
    name: str             # for messages
    load: object          # load(root) -> (x_train, y_train, x_test, y_test, classes); None: synthetic
    in_channels: int
    image_size: int
    sizes: object         # (training images, test images); None: as many as asked (synthetic)
    augment: object       # f(x_batch, rng) used when the config says augment

    @property
    def image_values(self):
        return self.in_channels * self.image_size ** 2


#: Data set name -> how to load it, its image shape, its size and its augmentation.
DATASETS = {
    "cifar10": Dataset("CIFAR-10", load_cifar10, 3, 32, (50_000, 10_000), augment_crop_flip),
    "fashion-mnist": Dataset("Fashion-MNIST", load_fashion_mnist, 1, 28, (60_000, 10_000),
                             augment_crop_flip),
    "mnist": Dataset("MNIST", load_mnist, 1, 28, (60_000, 10_000), augment_crop),
    "synthetic": Dataset("the synthetic set", None, 3, 32, None, augment_crop_flip),
}


def _int_or_ints(v):
    ints = v if isinstance(v, list) and v else [v]
    return all(isinstance(i, int) and not isinstance(i, bool) for i in ints)


#: What each config.json field must hold (also checks the flags of train.py).
CONFIG_SCHEMA = {
    "dataset": choice(*DATASETS),
    "data_dir": text(nullable=True),
    "model": choice(*sorted(MODELS)),
    "model_args": Rule("an object of zoo arguments, each an integer or a list of integers",
                       lambda v, _: isinstance(v, dict) and all(
                           isinstance(k, str) and _int_or_ints(a) for k, a in v.items()),
                       nullable=True),
    "epochs": integer(1),
    "batch_size": integer(1),
    "lr": number(0, MAX_LR, lo_open=True),
    "optimizer": choice(*sorted(OPTIMIZERS)),
    "weight_decay": number(0, 1),
    "schedule": choice("none", "step", "cosine"),
    "augment": Rule("true, false or one of " + ", ".join(repr(a) for a in AUGMENTATIONS),
                    lambda v, _: isinstance(v, bool) or (isinstance(v, str) and v in AUGMENTATIONS)),
    "num_train": integer(1, nullable=True),
    "num_val": integer(1),
    "num_test": integer(1, nullable=True),
    "dtype": choice("float32", "float64"),
    "seed": integer(0),
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
    check_sizes(config)
    num_train, num_val, num_test = config.get("num_train"), config["num_val"], config.get("num_test")
    dataset = DATASETS.get(config["dataset"])
    if dataset is None:
        raise ValueError(f"unknown dataset {config['dataset']!r}; expected one of "
                         f"{', '.join(DATASETS)}")
    if dataset.load is not None:
        x, y, x_test, y_test, classes = dataset.load(config.get("data_dir"))
    else:
        x, y = synthetic_cifar((num_train or SYNTHETIC_TRAIN_SIZE) + num_val,
                               seed=_SYNTHETIC_SEEDS[0])
        x_test, y_test = synthetic_cifar(num_test or SYNTHETIC_TEST_SIZE, seed=_SYNTHETIC_SEEDS[1])
        classes = list(SYNTHETIC_CLASSES)
    x_train, y_train, x_val, y_val = train_val_split(x, y, num_val=num_val, seed=0)
    x_train, y_train = x_train[:num_train], y_train[:num_train]
    x_test, y_test = x_test[:num_test], y_test[:num_test]
    mean, std = fit_normalizer(x_train)
    dtype = np.dtype(config.get("dtype", "float32"))
    x_train, x_val, x_test = (normalize(a, mean, std, dtype) for a in (x_train, x_val, x_test))
    return Data(x_train, y_train, x_val, y_val, x_test, y_test, classes, mean, std)


def available_memory():
    """Bytes this process may still allocate (MemAvailable, capped by RLIMIT_AS), or None."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    return min(found) if found else None


def activation_bytes(model, dtype, dataset="synthetic"):
    """Bytes of the outputs of every leaf layer for one image of the data set, measured in
    eval mode without a trace: a training step keeps about three times this per sample."""
    info = DATASETS[dataset]
    x = np.zeros((1, info.in_channels, info.image_size, info.image_size), dtype)
    calls, error = run_recorded(model, x)
    if error is not None:
        raise error
    return sum(out.nbytes for layer, _, out in calls
               if out is not None and next(layer.children(), None) is None)


def _bytes(n):
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def check_sizes(config, label=str, where="", memory=True, model=None):
    """Check num_train, num_val, num_test and batch_size against the data set and memory.

    Returns ``(train, val, test)``, the image counts of the splits. Raises ValueError
    ``"<where><label(field)> <value>: <why>"`` (``label`` names a field: ``--num-train``
    on the command line) when a split asks for more images than the data set has, the
    batch is larger than the training split (an epoch would have no step), or, with
    ``memory``, the images (and, given the ``model``, a training batch's activations)
    would not fit in the memory available.
    """
    num_train, num_val, num_test = config.get("num_train"), config["num_val"], config.get("num_test")
    batch = config["batch_size"]

    def fail(key, why):
        raise ValueError(f"{where}{label(key)} {config[key]}: {why}")

    info = DATASETS[config["dataset"]]
    if info.sizes is not None:
        pool, test_pool = info.sizes
        if num_val >= pool:
            fail("num_val", f"{info.name} has {pool:,} training images and at least one must "
                            f"be left for training")
        if num_train is not None and num_train > pool - num_val:
            fail("num_train", f"{info.name} has {pool - num_val:,} training images left after "
                              f"holding out {num_val:,} for validation")
        if num_test is not None and num_test > test_pool:
            fail("num_test", f"{info.name} has {test_pool:,} test images")
        train, test, raw = num_train or pool - num_val, num_test or test_pool, 2 * pool + test_pool
    else:
        train, test = num_train or SYNTHETIC_TRAIN_SIZE, num_test or SYNTHETIC_TEST_SIZE
        raw = 2 * (train + num_val) + test
    if batch > train:
        fail("batch_size", f"larger than the {train:,} training images (each epoch drops its "
                           f"last, smaller batch, so there would be no step)")
    if memory:
        free = available_memory()
        itemsize = np.dtype(config["dtype"]).itemsize
        need = info.image_values * (raw + (train + num_val + test) * itemsize)
        if free is not None and need > free:
            sizes = ", ".join(f"{label(k)} {config[k]}" for k in ("num_train", "num_val", "num_test")
                              if config.get(k) is not None)
            raise ValueError(f"{where}{sizes}: the {config['dataset']} images would need about "
                             f"{_bytes(need)} of memory, but only {_bytes(free)} is available; "
                             f"ask for fewer images")
        if free is not None and model is not None:
            step = 3 * activation_bytes(model, config["dtype"], config["dataset"]) * batch
            if need + step > free:
                fail("batch_size", f"a training step would need about {_bytes(step)} for the "
                                   f"activations besides {_bytes(need)} for the images, but only "
                                   f"{_bytes(free)} is available; use a smaller batch")
    return train, num_val, test


def check_config(config, where, label=None):
    """Raise a one-line ValueError unless ``config`` passes :data:`CONFIG_SCHEMA`."""
    kw = {} if label is None else {"label": label}
    return check_record(config, CONFIG_SCHEMA, where, "a JSON object of run settings",
                        optional=("model_args",), **kw)


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
    """The ``augment`` argument of ``fit`` for a run: ``true`` is the data set's own (crops
    and flips; crops only for MNIST digits), a name picks one of :data:`AUGMENTATIONS`."""
    augment = config["augment"]
    if isinstance(augment, str):
        return AUGMENTATIONS[augment]
    return DATASETS[config["dataset"]].augment if augment else False


def build_optimizer(model, config):
    """The run's optimizer over ``model.parameters()`` (SGD gets momentum 0.9, Nesterov's
    for "nesterov")."""
    cls, _ = OPTIMIZERS[config["optimizer"]]
    extra = {"momentum": 0.9, "nesterov": config["optimizer"] == "nesterov"} if cls is SGD else {}
    return cls(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"], **extra)


def build_schedule(config):
    return make_schedule(config["schedule"], config["lr"], config["epochs"])


def save_config(run_dir, config):
    with atomic_path(os.path.join(run_dir, "config.json")) as tmp, open(tmp, "w") as f:
        json.dump(config, f, indent=2)


def load_config(run_dir):
    """The checked ``config.json`` of a run folder (ValueError naming the file and field)."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            config = json.load(f, parse_constant=lambda c: float("nan"))
    except OSError as e:
        raise ValueError(f"cannot read {path!r} ({e.strerror}); is {run_dir!r} a run folder?") from None
    except ValueError as e:
        raise ValueError(f"{path!r} is not valid JSON ({e})") from None
    check_config(config, path)
    check_sizes(config, where=f"{path}: ", memory=False)
    return config


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
