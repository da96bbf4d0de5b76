"""The data sets a run can name, and the augmentations a run can ask for by name.

:data:`DATASETS` maps the names that ``config.json`` and ``train.py --dataset`` use to what a
run needs to know of each set (how to load it, its image shape and size, its own
augmentation). :func:`load_splits` turns a name and the split sizes into normalised
train/validation/test arrays.

Augmentations are named as :mod:`minicnn.data.augment` reads them: steps ``"crop"``,
``"flip"``, ``"erase"``, or several joined by commas, ``"crop,flip,erase"`` (applied in that
order); ``"crop-flip"`` is the older name of ``"crop,flip"`` and ``"none"`` means no
augmentation. :func:`augmentation_from_spec` turns a spec into the ``augment`` argument of
``fit``.
"""
from typing import List, NamedTuple

import numpy as np

from .augment import AUGMENTATIONS as AUGMENT_STEPS
from .augment import augment_crop, augment_crop_flip, build_augment, parse_augment, random_flip
from .cifar10 import load_cifar10
from .mnist import load_fashion_mnist, load_mnist
from .preprocess import fit_normalizer, normalize, train_val_split
from .synthetic import SYNTHETIC_CLASSES, synthetic_cifar

SYNTHETIC_TEST_SIZE = 2000
SYNTHETIC_TRAIN_SIZE = 5000  # num_train when config.json says null
_SYNTHETIC_SEEDS = (0, 1)  # fixed, so every synthetic run sees the same images

#: Whole specs with a name of their own, as config.json has long written them (any spec
#: of :data:`AUGMENT_STEPS` joined by commas works too).
AUGMENTATIONS = {"none": False, "flip": random_flip, "crop": augment_crop,
                 "crop-flip": augment_crop_flip}

__all__ = ["AUGMENTATIONS", "AUGMENT_STEPS", "DATASETS", "Data", "Dataset",
           "SYNTHETIC_TEST_SIZE", "SYNTHETIC_TRAIN_SIZE", "augment_crop",
           "augment_spec_problem", "augmentation_from_spec", "load_splits"]


def augment_spec_problem(spec, what="augment"):
    """None if ``spec`` names an augmentation ("crop-flip", "crop,flip,erase", ...), else
    the one-line message of :func:`minicnn.data.augment.parse_augment` (naming ``what``)."""
    if not isinstance(spec, str):
        return f"{what}: expected a string, got {type(spec).__name__}"
    try:
        parse_augment(spec, what=what)
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def augmentation_from_spec(spec):
    """The ``augment`` function for a spec: ``"none"`` -> False, ``"flip"`` ->
    :func:`random_flip`, ``"crop,flip,erase"`` -> those steps in order, drawing from the
    same Generator (:func:`minicnn.data.augment.build_augment`)."""
    if spec in AUGMENTATIONS:
        return AUGMENTATIONS[spec]
    return build_augment(spec)


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


def load_splits(dataset, data_dir=None, num_train=None, num_val=1000, num_test=None,
                dtype="float32"):
    """The train/val/test splits of the data set named ``dataset``, normalised by the
    statistics of the training split.

    CIFAR-10, Fashion-MNIST, MNIST: ``num_val`` images of the training set are held out for
    validation (seed 0), the first ``num_train`` of the rest are trained on (all if None),
    the first ``num_test`` test images are used (all if None). Synthetic: the same sizes,
    drawn from fixed seeds. The sizes are not checked here (a run's config checks them).
    """
    info = DATASETS.get(dataset)
    if info is None:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if info.load is not None:
        x, y, x_test, y_test, classes = info.load(data_dir)
    else:
        x, y = synthetic_cifar((num_train or SYNTHETIC_TRAIN_SIZE) + num_val,
                               seed=_SYNTHETIC_SEEDS[0])
        x_test, y_test = synthetic_cifar(num_test or SYNTHETIC_TEST_SIZE, seed=_SYNTHETIC_SEEDS[1])
        classes = list(SYNTHETIC_CLASSES)
    x_train, y_train, x_val, y_val = train_val_split(x, y, num_val=num_val, seed=0)
    x_train, y_train = x_train[:num_train], y_train[:num_train]
    x_test, y_test = x_test[:num_test], y_test[:num_test]
    mean, std = fit_normalizer(x_train)
    x_train, x_val, x_test = (normalize(a, mean, std, np.dtype(dtype)) for a in (x_train, x_val, x_test))
    return Data(x_train, y_train, x_val, y_val, x_test, y_test, classes, mean, std)
