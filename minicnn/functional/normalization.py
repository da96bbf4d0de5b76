"""Batch normalisation over every axis but the channel axis 1, for all channels at once.

The statistics are numpy reductions over the non-channel axes and the normalisation is
a few broadcast passes written into the output arrays (``out=``), in whatever memory
layout x has (a conv's batch-last output stays batch-last); the loop over channels is in
:mod:`minicnn.functional.reference`.
"""
from __future__ import annotations

import numpy as np

from . import buffers
from .caches import BatchNormCache


def _bshape(x):
    """Shape that broadcasts a per-channel vector against x: (1, C, 1, 1) or (1, C)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray | None = None,
                      var: np.ndarray | None = None, eps: float = 1e-5) -> tuple[np.ndarray, BatchNormCache]:
    """Batch normalisation for x: (N, C) or (N, C, H, W).

    With mean/var None (training) the statistics are the batch's, over all axes but 1;
    otherwise the given running statistics (eval). out = gamma * (x - mean) / sqrt(var + eps) + beta.

    Returns (out, cache): out like x (same memory layout); cache :class:`BatchNormCache`
    (xhat, gamma, inv_std, mean, var, batch_stats): the batch mean and biased variance
    feed the running averages.

    Two arrays are written, xhat and out, and nothing else is allocated: x - mean goes
    into xhat, its square into out (whose mean is the variance: two passes, as exact as
    the loop's), then xhat is scaled in place and out = xhat * gamma + beta overwrites
    the squares. Loop version: :func:`minicnn.functional.reference.batchnorm_forward`.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = lambda v: v.reshape(_bshape(x))
    batch_stats = mean is None
    if batch_stats:
        mean = x.mean(axis=axes)
    xhat, out = buffers.empty_like(x), buffers.empty_like(x)
    np.subtract(x, per_channel(mean), out=xhat)
    if batch_stats:
        var = np.multiply(xhat, xhat, out=out).mean(axis=axes)  # biased, like the loop's
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat *= per_channel(inv_std)
    np.multiply(xhat, per_channel(gamma), out=out)
    out += per_channel(beta)
    return out, BatchNormCache(xhat, gamma, inv_std, mean, var, batch_stats)


def batchnorm_backward(dout: np.ndarray, cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout like x -> (dx like x, dgamma (C,), dbeta (C,)).

    dbeta = sum dout, dgamma = sum dout * xhat (over all axes but 1); in training
    dx = gamma / sigma * (dout - mean(dout) - xhat * mean(dout * xhat)), in eval
    dx = gamma / sigma * dout.

    One array is written, dx: it first holds dout * xhat for dgamma, then the two mean
    terms, then the result, each pass with ``out=``. Loop version:
    :func:`minicnn.functional.reference.batchnorm_backward`.
    """
    xhat, gamma, inv_std, batch_stats = cache.xhat, cache.gamma, cache.inv_std, cache.batch_stats
    axes = (0,) + tuple(range(2, dout.ndim))
    per_channel = lambda v: v.reshape(_bshape(dout))
    scale = per_channel(gamma * inv_std)
    dbeta = dout.sum(axis=axes)
    dx = buffers.empty_like(xhat, dtype=np.result_type(dout, xhat))
    dgamma = np.multiply(dout, xhat, out=dx).sum(axis=axes)
    if not batch_stats:
        return np.multiply(dout, scale, out=dx), dgamma, dbeta
    m = dout.size // dout.shape[1]
    np.multiply(xhat, per_channel(dgamma / m), out=dx)  # the two means of the formula,
    dx += per_channel(dbeta / m)                        # then dout minus them, times scale
    np.subtract(dout, dx, out=dx)
    dx *= scale
    return dx, dgamma, dbeta
