"""Batch normalisation over every axis but the channel axis 1, for all channels at once.

The statistics are numpy reductions over the non-channel axes and the normalisation is
a few broadcast passes written into the output arrays (``out=``), in whatever memory
layout x has (a conv's batch-last output stays batch-last). Channels are independent, so
blocks of channels run side by side on minicnn's threads (:mod:`minicnn.parallel`); each
channel's sums are computed the same way whatever the number of threads. The loop over
channels is in :mod:`minicnn.functional.reference`.
"""
from __future__ import annotations

import numpy as np

from .. import parallel
from .caches import BatchNormCache


def _bshape(x):
    """Shape that broadcasts a vector of channels against x: (1, c, 1, 1) or (1, c)."""
    return (1, -1) + (1,) * (x.ndim - 2)


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
    C = x.shape[1]
    if batch_stats:
        mean, var = np.empty(C, x.dtype), np.empty(C, x.dtype)
        inv_std = np.empty(C, x.dtype)
    else:
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat, out = np.empty_like(x), np.empty_like(x)

    def block(c):  # the channels c
        xh, o = xhat[:, c], out[:, c]
        if batch_stats:
            mean[c] = x[:, c].mean(axis=axes)
        np.subtract(x[:, c], per_channel(mean[c]), out=xh)
        if batch_stats:
            var[c] = np.multiply(xh, xh, out=o).mean(axis=axes)  # biased, like the loop's
            inv_std[c] = 1.0 / np.sqrt(var[c] + x.dtype.type(eps))
        xh *= per_channel(inv_std[c])
        np.multiply(xh, per_channel(gamma[c]), out=o)
        o += per_channel(beta[c])

    parallel.run(block, parallel.blocks(x, 1))
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
    C, m = dout.shape[1], dout.size // dout.shape[1]
    dtype = np.result_type(dout, xhat)
    scale = gamma * inv_std
    dx = np.empty_like(xhat, dtype=dtype)
    dgamma, dbeta = np.empty(C, dtype), np.empty(C, dtype)

    def block(c):  # the channels c
        d, dxc = dout[:, c], dx[:, c]
        dbeta[c] = d.sum(axis=axes)
        dgamma[c] = np.multiply(d, xhat[:, c], out=dxc).sum(axis=axes)
        if not batch_stats:
            np.multiply(d, per_channel(scale[c]), out=dxc)
            return
        np.multiply(xhat[:, c], per_channel(dgamma[c] / m), out=dxc)  # the two means of the
        dxc += per_channel(dbeta[c] / m)                               # formula, then dout
        np.subtract(d, dxc, out=dxc)                                   # minus them, times scale
        dxc *= per_channel(scale[c])

    parallel.run(block, parallel.blocks(dout, 1))
    return dx, dgamma, dbeta
