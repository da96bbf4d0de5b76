"""Augmentations of a batch of images, and pipelines of them named by a spec like
``"crop,flip,erase"``.

Images are ``(N, C, H, W)`` arrays. An augmentation is a function ``(x, rng) -> x`` that
returns a new array (the caller's is never written into) and takes every random choice
from ``rng``: a ``numpy.random.Generator``, or a seed that makes one, so the same seed
gives the same batches. Each image of a batch gets its own draw, and the draws are
vectorised over the batch (no Python loop over images).

Named augmentations (:data:`AUGMENTATIONS`):

- ``crop``: :func:`random_crop` with padding 4 (zero-pad, cut back at a random offset);
- ``flip``: :func:`random_flip` (mirror left-right with probability 1/2);
- ``erase``: :func:`random_erasing` (Zhong et al., 2017: blank a random rectangle, with
  torchvision's ``RandomErasing`` defaults).

:func:`build_augment` turns a spec into a :class:`Compose` pipeline; the older values
(``True``, ``False``, ``"none"``, ``"crop-flip"``) keep their meaning.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import numpy as np

#: What a ``seed``/``rng`` argument takes: an int, a SeedSequence, a Generator or None.
Seed = Union[int, np.random.SeedSequence, np.random.Generator, None]
#: An augmentation: ``f(x_batch, rng) -> x_batch``.
Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

ERASE_ATTEMPTS = 10  # rectangles drawn per image before giving up, as torchvision does


def as_images(x, name="x"):
    """``x`` as an array of shape ``(N, C, H, W)``, or a one-line ValueError."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be images of shape (N, C, H, W), got shape {x.shape}")
    return x


# ---------------------------------------------------------------- crop and flip

def random_crop(x: np.ndarray, padding: int = 4, rng: Seed = None) -> np.ndarray:
    """Zero-pad each image by ``padding`` pixels and cut it back to size at a random offset.

    ``x`` ``(N, C, H, W)`` -> same shape and dtype; each image gets its own offset.
    (Zero means zero in ``x``'s units: after normalisation that is the channel mean.)
    """
    x = as_images(x)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    rng = np.random.default_rng(rng)
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    dy, dx = rng.integers(0, 2 * padding + 1, (2, n))
    return windows[np.arange(n), :, dy, dx]  # (N, C, H, W): one window per image


def random_flip(x: np.ndarray, rng: Seed = None) -> np.ndarray:
    """Mirror each image left-right with probability 1/2: ``(N, C, H, W)`` -> same."""
    x = as_images(x)
    flip = np.random.default_rng(rng).random(len(x)) < 0.5
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def augment_crop(x: np.ndarray, rng: Seed) -> np.ndarray:
    """:func:`random_crop` with padding 4 only (digits are not mirror images of each other)."""
    return random_crop(x, 4, rng)


def augment_crop_flip(x: np.ndarray, rng: Seed) -> np.ndarray:
    """Standard CIFAR augmentation: :func:`random_crop` (padding 4), then :func:`random_flip`."""
    return random_flip(random_crop(x, 4, rng), rng)


# ---------------------------------------------------------------- random erasing

def _check_erasing(p, scale, ratio, value):
    """One-line errors for what torchvision's ``RandomErasing`` refuses (and what it lets
    through only to fail when drawing: a reversed range, a non-positive ratio)."""
    _check_value(value)
    for name, pair in (("scale", scale), ("ratio", ratio)):
        if not isinstance(pair, (tuple, list, np.ndarray)) or len(pair) != 2:
            raise TypeError(f"random_erasing: {name} must be a pair (min, max), got {pair!r}")
        if not pair[0] <= pair[1]:
            raise ValueError(f"random_erasing: {name} must be (min, max) with min <= max, "
                             f"got {tuple(pair)}")
    if not (0 <= scale[0] and scale[1] <= 1):
        raise ValueError(f"random_erasing: scale must lie between 0 and 1, got {tuple(scale)}")
    if not ratio[0] > 0:
        raise ValueError(f"random_erasing: ratio must be positive, got {tuple(ratio)}")
    if not 0 <= p <= 1:
        raise ValueError(f"random_erasing: p must be between 0 and 1, got {p}")


def _check_value(value):
    if isinstance(value, str):
        if value != "random":
            raise ValueError(f"random_erasing: value must be a number, a sequence of numbers "
                             f"(one per channel) or 'random', got {value!r}")
    elif not isinstance(value, (int, float, np.number, tuple, list, np.ndarray)):
        raise TypeError(f"random_erasing: value must be a number, a sequence of numbers or "
                        f"'random', got {type(value).__name__}")


def erasing_boxes(n: int, height: int, width: int, rng: Seed = None, p: float = 0.5,
                  scale: Sequence[float] = (0.02, 0.33), ratio: Sequence[float] = (0.3, 3.3),
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rectangles :func:`random_erasing` blanks: ``(top, left, h, w)``, four int ``(n,)``
    arrays; ``h = w = 0`` for an image left alone.

    Per image, as torchvision draws them: erase with probability ``p``; then up to 10 tries
    of an area ``A = U(scale) * height * width`` and an aspect ratio ``r = exp(U(log ratio))``,
    ``h = round(sqrt(A r))``, ``w = round(sqrt(A / r))``; the first try with ``h < height`` and
    ``w < width`` is placed at a uniform position; with none, the image is left alone.
    Here all tries of all images are drawn at once and the first fitting one picked.
    """
    _check_erasing(p, scale, ratio, 0)
    rng = np.random.default_rng(rng)
    erase = rng.random(n) < p
    area = height * width * rng.uniform(scale[0], scale[1], (n, ERASE_ATTEMPTS))
    aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), (n, ERASE_ATTEMPTS)))
    hs = np.rint(np.sqrt(area * aspect)).astype(np.int64)  # rint: round half to even, as round
    ws = np.rint(np.sqrt(area / aspect)).astype(np.int64)
    fits = (hs < height) & (ws < width)
    first = fits.argmax(axis=1)  # the first fitting try (0 when none fits: masked below)
    erase &= fits.any(axis=1)
    h = np.where(erase, hs[np.arange(n), first], 0)
    w = np.where(erase, ws[np.arange(n), first], 0)
    top = rng.integers(0, height - h + 1)
    left = rng.integers(0, width - w + 1)
    return top, left, h, w


def random_erasing(x: np.ndarray, rng: Seed = None, p: float = 0.5,
                   scale: Sequence[float] = (0.02, 0.33), ratio: Sequence[float] = (0.3, 3.3),
                   value: float | Sequence[float] | str = 0) -> np.ndarray:
    """Random erasing (Zhong et al., 2017): with probability ``p`` blank one random rectangle
    of each image. ``x`` ``(N, C, H, W)`` -> a new array of the same shape and dtype.

    The rectangle covers a fraction of the image drawn from ``scale`` and has an aspect
    ratio (height / width) drawn log-uniformly from ``ratio`` (:func:`erasing_boxes`); it is
    filled with ``value``: a number, one number per channel, or ``'random'`` (standard normal
    noise per pixel). The defaults are torchvision's ``RandomErasing``; 0 is the channel
    mean of normalised images.

    The idea of the fast path: draw all the rectangles at once, turn them into a boolean
    mask ``(N, H, W)`` by comparing row and column indices with each rectangle's bounds, and
    fill through the mask. :func:`random_erasing_reference` is the plain per-image loop.
    """
    x = as_images(x)
    _check_erasing(p, scale, ratio, value)
    fill = _fill_values(value, x)
    rng = np.random.default_rng(rng)
    n, _, height, width = x.shape
    top, left, h, w = erasing_boxes(n, height, width, rng, p, scale, ratio)
    rows = np.arange(height)[None, :]
    cols = np.arange(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (N, W)
    box = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (N, 1, H, W)
    if fill is None:  # 'random': noise drawn for the erased pixels only
        out = x.copy()
        mask = np.broadcast_to(box, x.shape)
        out[mask] = rng.standard_normal(int(mask.sum())).astype(x.dtype)
        return out
    return np.where(box, fill[None, :, None, None], x)  # a new array, x's dtype


def _fill_values(value, x):
    """``value`` as ``(C,)`` of ``x``'s dtype, or None for 'random' (float images only)."""
    channels = x.shape[1]
    if isinstance(value, str):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"random_erasing: value='random' needs float images, "
                             f"got {x.dtype}")
        return None
    fill = np.asarray(value, dtype=np.float64).ravel()
    if fill.size not in (1, channels):
        raise ValueError(f"random_erasing: value must be one number or one per channel "
                         f"({channels}), got {fill.size} numbers")
    return np.broadcast_to(fill, (channels,)).astype(x.dtype)


def random_erasing_reference(x: np.ndarray, rng: Seed = None, p: float = 0.5,
                             scale: Sequence[float] = (0.02, 0.33),
                             ratio: Sequence[float] = (0.3, 3.3),
                             value: float | Sequence[float] | str = 0) -> np.ndarray:
    """Plain version of :func:`random_erasing`: torchvision's ``RandomErasing`` one image at a
    time. Same distribution, but the draws come in another order, so another result."""
    x = as_images(x)
    _check_erasing(p, scale, ratio, value)
    fill = _fill_values(value, x)
    rng = np.random.default_rng(rng)
    out = x.copy()
    _, channels, height, width = x.shape
    for image in out:
        if not rng.random() < p:
            continue
        for _ in range(ERASE_ATTEMPTS):
            area = height * width * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if h < height and w < width:
                top = rng.integers(0, height - h + 1)
                left = rng.integers(0, width - w + 1)
                if fill is None:
                    image[:, top:top + h, left:left + w] = rng.standard_normal((channels, h, w))
                else:
                    image[:, top:top + h, left:left + w] = fill[:, None, None]
                break
    return out


# ---------------------------------------------------------------- pipelines from a spec

#: Name -> augmentation ``f(x, rng)``, as :func:`build_augment` reads a spec.
AUGMENTATIONS: dict[str, Augmentation] = {
    "crop": augment_crop, "flip": random_flip, "erase": random_erasing}
#: Older names that still work: "none" is no augmentation, "crop-flip" is "crop,flip".
ALIASES = {"none": (), "crop-flip": ("crop", "flip")}


class Compose:
    """Augmentations applied one after the other, all drawing from the same ``rng``:
    ``Compose(["crop", "flip"])(x, rng)`` is ``random_flip(augment_crop(x, rng), rng)``.

    Steps are names (or specs, "crop-flip") of :data:`AUGMENTATIONS` or functions
    ``f(x, rng) -> x``. A pipeline of no steps is false (``DataLoader`` and ``fit`` then
    skip augmentation) and returns ``x`` itself. ``spec`` gives the steps back as a spec,
    e.g. ``"crop,flip,erase"``.
    """

    def __init__(self, steps: Sequence[str | Augmentation] = ()) -> None:
        named = []  # (name, function)
        for step in steps:
            if isinstance(step, str):
                named += [(n, AUGMENTATIONS[n]) for n in parse_augment(step, what="Compose")]
            elif callable(step):
                named.append((getattr(step, "__name__", repr(step)), step))
            else:
                raise TypeError(f"Compose: a step must be a name ({_allowed()}) or a function "
                                f"f(x, rng), got {step!r}")
        self.names = tuple(name for name, _ in named)
        self.steps = tuple(f for _, f in named)

    def __call__(self, x: np.ndarray, rng: Seed = None) -> np.ndarray:
        rng = np.random.default_rng(rng)
        for step in self.steps:
            x = step(x, rng)
        return x

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def spec(self) -> str:
        return ",".join(self.names) or "none"

    def __repr__(self) -> str:
        return f"Compose({self.spec!r})"


def _allowed():
    return ", ".join(AUGMENTATIONS) + " (comma-separated, applied in that order), or none"


def _spec_items(spec, what):
    if isinstance(spec, str):
        return spec.split(",")
    if isinstance(spec, (list, tuple)) and all(isinstance(s, str) for s in spec):
        return list(spec)
    raise TypeError(f"{what}: expected true, false, a name or comma-separated names "
                    f"({_allowed()}), got {spec!r}")


def parse_augment(spec: bool | str | Sequence[str] | None, default: str = "crop,flip",
                  what: str = "augment") -> tuple[str, ...]:
    """The augmentation names a spec asks for, in order: ``"crop,flip,erase"`` ->
    ``("crop", "flip", "erase")``.

    ``True`` means ``default`` (a data set's own augmentation); ``False``, ``None`` and
    ``"none"`` mean none, ``()``; ``"crop-flip"`` is ``"crop,flip"``; a list of names works
    as the comma-separated string does. An unknown or empty name is a one-line ValueError
    naming ``what`` (e.g. ``"--augment"``), the name and the allowed ones.
    """
    if spec is True:
        spec = default
    if spec is None or spec is False:
        return ()
    items = [s.strip() for s in _spec_items(spec, what)]
    if items == ["none"]:
        return ()
    names = []
    for item in items:
        if item == "none":
            raise ValueError(f"{what}: 'none' cannot be combined with other augmentations, "
                             f"got {spec!r}")
        if item not in AUGMENTATIONS and item not in ALIASES:
            where = f" in {spec!r}" if len(items) > 1 else ""
            raise ValueError(f"{what}: unknown augmentation {item!r}{where}; "
                             f"allowed: {_allowed()}")
        names.extend(ALIASES.get(item, (item,)))
    return tuple(names)


def build_augment(spec: bool | str | Sequence[str] | Augmentation | None,
                  default: str = "crop,flip", what: str = "augment") -> Compose:
    """The augmentation pipeline a spec names (:func:`parse_augment`), as a :class:`Compose`:
    ``build_augment("crop,flip,erase")(x_batch, rng)``. A function ``f(x, rng)`` is wrapped
    as a one-step pipeline; no augmentation gives an empty (false) pipeline.
    """
    if callable(spec) and not isinstance(spec, Compose):
        return Compose([spec])
    if isinstance(spec, Compose):
        return spec
    return Compose(parse_augment(spec, default, what))
