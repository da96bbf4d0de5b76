"""Normalisation, train/validation split and a shuffling batch loader (the augmentations
live in :mod:`minicnn.data.augment`).

Images are ``(N, C, H, W)`` arrays throughout. Every random choice comes from a
``numpy.random.Generator`` (or a seed that makes one), so a run is reproducible.
"""
from __future__ import annotations

import warnings
from typing import Iterator, Sequence

import numpy as np
from numpy.typing import DTypeLike

from minicnn.data.augment import Augmentation, Seed, build_augment
from minicnn.data.augment import as_images as _images

# their old home: still importable from here
from minicnn.data.augment import augment_crop_flip as augment_crop_flip
from minicnn.data.augment import random_crop as random_crop
from minicnn.data.augment import random_flip as random_flip

#: Inputs whose overall |mean| or standard deviation exceed these look un-normalised.
MAX_ABS_MEAN, MAX_STD = 5.0, 20.0
_CHECK_SAMPLES = 512  # images looked at by check_normalized (evenly spaced), to stay cheap


class UnnormalizedInputWarning(UserWarning):
    """Training inputs are integers (e.g. raw uint8 pixels) or far from mean 0, std 1.

    Silence it with ``warnings.simplefilter("ignore", UnnormalizedInputWarning)``.
    """


def _same_length(x, y):
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")


def fit_normalizer(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)``, each float32 ``(C,)``, of images ``x`` ``(N, C, H, W)``.

    Fit on the training split only. Computed in float64, ``chunk`` images at a time, so a
    uint8 CIFAR training set needs no full float copy.
    """
    x = _images(x)
    if len(x) == 0:
        raise ValueError("cannot fit a normalizer on an empty array")
    count = x.size // x.shape[1]
    mean = sum(x[i:i + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
               for i in range(0, len(x), chunk)) / count
    centred = (x[i:i + chunk] - mean[:, None, None] for i in range(0, len(x), chunk))
    var = sum((c ** 2).sum(axis=(0, 2, 3)) for c in centred) / count
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray,
              dtype: DTypeLike = np.float32) -> np.ndarray:
    """``(x - mean) / std`` per channel: ``(N, C, H, W)`` -> same shape, ``dtype``.

    A channel with zero spread is only centred, not divided by zero.
    """
    x = _images(x)
    mean, std = np.asarray(mean, dtype), np.asarray(std, dtype)
    if mean.shape != (x.shape[1],) or std.shape != (x.shape[1],):
        raise ValueError(f"mean and std must have shape ({x.shape[1]},), "
                         f"got {mean.shape} and {std.shape}")
    out = x.astype(dtype)  # always a copy
    out -= mean[:, None, None]
    out /= np.where(std > 0, std, 1)[:, None, None]
    return out


def check_normalized(x, what="x", stacklevel=2):
    """Warn (:class:`UnnormalizedInputWarning`) if ``x`` is integer-typed or far from
    normalised: overall ``|mean| > MAX_ABS_MEAN`` or ``std > MAX_STD``.

    Looks at up to 512 evenly spaced samples, so it costs little on a large set. Returns
    True if it warned. ``what`` names the array in the message, e.g. "DataLoader: x".
    """
    x = np.asarray(x)
    if x.size == 0 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        return False
    sample = x[::max(1, -(-len(x) // _CHECK_SAMPLES))] if x.ndim else x
    integer = not np.issubdtype(x.dtype, np.inexact)
    mean = float(np.mean(sample, dtype=np.float64))
    std = float(np.std(sample, dtype=np.float64))
    if not (integer or abs(mean) > MAX_ABS_MEAN or std > MAX_STD):
        return False
    kind = f"{x.dtype} integers" if integer else f"{x.dtype} values"
    warnings.warn(
        f"{what} are {kind} with mean {mean:.3g} and std {std:.3g}, not normalised: training "
        f"will be slow or stall (normalised inputs have mean near 0, std near 1). Normalise with "
        f"the training set's per-channel statistics first: "
        f"mean, std = fit_normalizer(x_train); x_train = normalize(x_train, mean, std), and "
        f"the same mean, std for the validation and test images (both in minicnn.data).",
        UnnormalizedInputWarning, stacklevel=stacklevel + 1)
    return True


def train_val_split(x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1,
                    num_val: int | None = None, seed: int = 0,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Randomly hold out a validation set: ``(x_train, y_train, x_val, y_val)``.

    ``num_val`` (a count) takes precedence over ``val_fraction``; both sides must be
    non-empty. The split depends only on ``len(x)``, the size asked for and ``seed``.
    """
    _same_length(x, y)
    n = len(x)
    if num_val is None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        num_val = int(round(n * val_fraction))
    if not 0 < num_val < n:
        raise ValueError(f"the validation set must hold between 1 and {n - 1} of the "
                         f"{n} samples, got {num_val}")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:num_val], order[num_val:]
    return x[train], y[train], x[val], y[val]


class DataLoader:
    """Iterate over ``(x_batch, y_batch)`` minibatches, one epoch per ``iter()``.

    ``x`` ``(N, ...)`` and ``y`` ``(N, ...)`` are indexed together. With ``shuffle`` each
    epoch visits the samples in a fresh random order; every sample appears exactly once
    per epoch (the last batch is smaller unless ``drop_last``). ``augment`` is ``False``,
    ``True`` (random crop and flip), a spec such as ``"crop,flip,erase"``
    (:func:`~minicnn.data.augment.build_augment`) or a function ``(x_batch, rng) -> x_batch``.
    ``rng`` is a ``numpy.random.Generator`` or a seed; the same seed gives the same batches.
    An integer or far-from-normalised ``x`` gives one :class:`UnnormalizedInputWarning`
    when the loader is made (``check_inputs=False`` skips the check).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
                 augment: bool | str | Sequence[str] | Augmentation = False,
                 drop_last: bool = False, rng: Seed = None, check_inputs: bool = True) -> None:
        _same_length(x, y)
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.augment = augment if callable(augment) else build_augment(
            augment, what="DataLoader: augment")
        self.rng = np.random.default_rng(rng)
        if check_inputs:
            check_normalized(x, "DataLoader: the inputs x", stacklevel=2)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            xb, yb = self.x[index], self.y[index]
            yield (self.augment(xb, self.rng) if self.augment else xb), yb
