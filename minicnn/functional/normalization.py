"""Batch normalisation over every axis but the channel axis 1, for all channels at once.

The statistics are numpy reductions over the non-channel axes and the normalisation is
one broadcast expression; the loop over channels is in :mod:`minicnn.functional.reference`.
"""
import numpy as np

from .caches import BatchNormCache


def _bshape(x):
    """Shape that broadcasts a per-channel vector against x: (1, C, 1, 1) or (1, C)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batchnorm_forward(x, gamma, beta, mean=None, var=None, eps=1e-5):
    """Batch normalisation for x: (N, C) or (N, C, H, W).

    With mean/var None (training) the statistics are the batch's, over all axes but 1;
    otherwise the given running statistics (eval). out = gamma * (x - mean) / sqrt(var + eps) + beta.

    Returns (out, cache): out like x; cache :class:`BatchNormCache` (xhat, gamma,
    inv_std, mean, var, batch_stats): the batch mean and biased variance feed the running
    averages. Loop version: :func:`minicnn.functional.reference.batchnorm_forward`.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    batch_stats = mean is None
    if batch_stats:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat = (x - mean.reshape(_bshape(x))) * inv_std.reshape(_bshape(x))
    out = xhat * gamma.reshape(_bshape(x)) + beta.reshape(_bshape(x))
    return out, BatchNormCache(xhat, gamma, inv_std, mean, var, batch_stats)


def batchnorm_backward(dout, cache):
    """dout like x -> (dx like x, dgamma (C,), dbeta (C,)).

    dbeta = sum dout, dgamma = sum dout * xhat (over all axes but 1); in training
    dx = gamma / sigma * (dout - mean(dout) - xhat * mean(dout * xhat)), in eval
    dx = gamma / sigma * dout. Loop version: :func:`minicnn.functional.reference.batchnorm_backward`.
    """
    xhat, gamma, inv_std, batch_stats = cache.xhat, cache.gamma, cache.inv_std, cache.batch_stats
    axes = (0,) + tuple(range(2, dout.ndim))
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    scale = (gamma * inv_std).reshape(_bshape(dout))
    if not batch_stats:
        return dout * scale, dgamma, dbeta
    m = dout.size // dout.shape[1]
    # dx = gamma/sigma * (dout - mean(dout) - xhat * mean(dout * xhat))
    dx = scale * (dout - (dbeta / m).reshape(_bshape(dout)) - xhat * (dgamma / m).reshape(_bshape(dout)))
    return dx, dgamma, dbeta
