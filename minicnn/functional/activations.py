"""Element-wise activations and dropout, as whole-array numpy expressions.

Each is one or two vectorised passes over the array; the element-by-element loops are
in :mod:`minicnn.functional.reference`.
"""
from __future__ import annotations

import numpy as np

from .. import parallel
from .caches import DropoutCache, LeakyReluCache, ReluCache


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, ReluCache]:
    """x: any shape -> out = max(x, 0), same shape; cache: :class:`ReluCache` (out).

    One ``np.maximum`` into an array laid out like x, in chunks on minicnn's threads
    (:mod:`minicnn.parallel`); loop version: :func:`minicnn.functional.reference.relu_forward`.
    """
    out = np.empty_like(x)
    parallel.run(lambda s: np.maximum(x[s], 0, out=out[s]), parallel.outer_blocks(out))
    return out, ReluCache(out)


def relu_backward(dout: np.ndarray, cache: ReluCache) -> np.ndarray:
    """dx = dout where the input was positive (out > 0), else 0; shape of dout.

    One multiply by a boolean mask, into an array laid out like dout, in chunks on
    minicnn's threads; loop version: :func:`minicnn.functional.reference.relu_backward`.
    """
    dx = np.empty_like(dout)
    parallel.run(lambda s: np.multiply(dout[s], cache.out[s] > 0, out=dx[s]),
                 parallel.outer_blocks(dx))
    return dx


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01) -> tuple[np.ndarray, LeakyReluCache]:
    """out = x if x > 0 else negative_slope * x, same shape;
    cache: :class:`LeakyReluCache` (positive = x > 0, negative_slope).

    One ``np.where``; loop version: :func:`minicnn.functional.reference.leaky_relu_forward`.
    """
    positive = x > 0
    out = np.where(positive, x, x * x.dtype.type(negative_slope))
    return out, LeakyReluCache(positive, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache: LeakyReluCache) -> np.ndarray:
    """dx = dout where x > 0, negative_slope * dout elsewhere; shape of dout.

    One ``np.where``; loop version: :func:`minicnn.functional.reference.leaky_relu_backward`.
    """
    return np.where(cache.positive, dout, dout * dout.dtype.type(cache.negative_slope))


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator | None = None,
                    training: bool = True, mask: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, DropoutCache]:
    """Inverted dropout: in training, zero each element with probability p, scale by 1/(1-p).

    Inputs: x any shape; p in [0, 1); rng a numpy Generator; mask (optional) a given
    scaled mask of x's shape instead of a random one. In eval mode (or p == 0) out = x.
    Returns (out, cache): out = x * mask, cache :class:`DropoutCache` (mask; None for
    the identity). The whole mask comes from one ``rng.random`` call; loop version:
    :func:`minicnn.functional.reference.dropout_forward`.
    """
    if not training or p == 0:
        return x, DropoutCache(None)
    if mask is None:
        keep = rng.random(x.shape, dtype=np.float32) >= p
        mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask, DropoutCache(mask)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """dx = dout * mask, shape of dout (dout itself for the identity).

    Loop version: :func:`minicnn.functional.reference.dropout_backward`.
    """
    return dout if cache.mask is None else dout * cache.mask
