"""A run's pieces from its config: the data splits, the network, the loss, the optimizer,
the learning-rate schedule, the augmentation and the seeds.

Each function takes a run's config (a :class:`minicnn.training.config.RunConfig`, or a
dict with the keys of ``config.json`` it needs) and builds one thing, the same way every
time: ``train.py``, ``--resume``, ``--evaluate``, ``load_run`` and the report all rebuild a
run through these.
"""
import numpy as np

from ..data.registry import DATASETS, augmentation_from_spec, load_splits
from ..losses import SoftmaxCrossEntropy
from ..models import NEEDS_IMAGE_SIZE, build_model
from ..optim import SGD
from .config import OPTIMIZERS, check_sizes
from .schedules import make_schedule


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


def build_data(config):
    """The train/val/test splits a run's ``config`` describes, normalised by training
    statistics (see :func:`minicnn.data.registry.load_splits`), after checking the sizes
    against the data set."""
    check_sizes(config, memory=False)
    return load_splits(config["dataset"], config.get("data_dir"), config.get("num_train"),
                       config["num_val"], config.get("num_test"), config.get("dtype", "float32"))


def augmentation(config):
    """The ``augment`` argument of ``fit`` for a run: ``true`` is the data set's own (crops
    and flips; crops only for MNIST digits), a name or spec such as ``"crop,flip"`` picks
    those steps (:func:`minicnn.data.registry.augmentation_from_spec`)."""
    augment = config["augment"]
    if isinstance(augment, str):
        return augmentation_from_spec(augment)
    return DATASETS[config["dataset"]].augment if augment else False


def build_optimizer(model, config):
    """The run's optimizer over ``model.parameters()`` (SGD gets momentum 0.9, Nesterov's
    for "nesterov")."""
    cls, _ = OPTIMIZERS[config["optimizer"]]
    extra = {"momentum": 0.9, "nesterov": config["optimizer"] == "nesterov"} if cls is SGD else {}
    return cls(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"], **extra)


def build_loss(config):
    """The run's loss: softmax cross-entropy with ``config["label_smoothing"]`` (none in a
    config written before it was recorded)."""
    return SoftmaxCrossEntropy(label_smoothing=config.get("label_smoothing", 0.0))


def steps_per_epoch(config, num_train):
    """Optimizer steps in an epoch of ``num_train`` images (``fit`` drops the last,
    smaller batch)."""
    return num_train // config["batch_size"]


def build_schedule(config, num_train=None):
    """The run's learning-rate schedule over ``config["epochs"]`` epochs: per epoch
    ("none", "step", "cosine") or per step ("warmup-cosine", "onecycle", which need the
    ``num_train`` training images to count the steps), see
    :func:`minicnn.training.schedules.make_schedule`."""
    steps = None if num_train is None else steps_per_epoch(config, num_train)
    return make_schedule(config["schedule"], config["lr"], config["epochs"], steps)
