"""Fully connected (affine) layer and flattening, as matrix products and reshapes.

The loops over samples and output features are in :mod:`minicnn.functional.reference`.
"""
from __future__ import annotations

import numpy as np

from .. import parallel
from .caches import FlattenCache, LinearCache


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, LinearCache]:
    """x: (N, D), w: (M, D) as in PyTorch, b: (M,) or None -> out: (N, M) = x w^T + b.

    cache: :class:`LinearCache` (x, w). One matrix product, its rows in blocks on minicnn's
    threads (:mod:`minicnn.parallel`); loop version:
    :func:`minicnn.functional.reference.linear_forward`.
    """
    out = np.empty((x.shape[0], w.shape[0]), np.result_type(x, w))

    def rows(r):
        np.matmul(x[r], w.T, out=out[r])
        if b is not None:
            out[r] += b

    parallel.run(rows, parallel.blocks(x, 0))
    return out, LinearCache(x, w)


def linear_backward(dout: np.ndarray, cache: LinearCache, input_grad: bool = True,
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """dout: (N, M) -> (dx = dout w (N, D) or None, dw = dout^T x (M, D), db = sum_n dout (M,)).

    Two matrix products, on minicnn's threads: dx by blocks of rows (samples), dw by
    blocks of columns (input features), so no block sums over another's work. dx gets
    x's memory order: when x is the flattened batch-last map of a conv or pooling layer
    (column-major (N, D)), dx is computed as (w^T dout^T)^T, so Flatten hands the layer
    before a batch-last gradient without a copy. Loop version:
    :func:`minicnn.functional.reference.linear_backward`.
    """
    x, w = cache
    dtype = np.result_type(dout, x, w)
    dx = None
    if input_grad:
        if x.flags.f_contiguous and not x.flags.c_contiguous:  # column-major x
            dxt = np.empty(x.shape[::-1], dtype)
            parallel.run(lambda r: np.matmul(w.T, dout[r].T, out=dxt[:, r]), parallel.blocks(x, 0))
            dx = dxt.T
        else:
            dx = np.empty(x.shape, dtype)
            parallel.run(lambda r: np.matmul(dout[r], w, out=dx[r]), parallel.blocks(x, 0))
    dw = np.empty(w.shape, dtype)
    parallel.run(lambda c: np.matmul(dout.T, x[:, c], out=dw[:, c]), parallel.blocks(x, 1))
    return dx, dw, dout.sum(axis=0)


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, FlattenCache]:
    """x: (N, d1, d2, ...) -> out: (N, d1 * d2 * ...), row-major; cache: :class:`FlattenCache` (x_shape).

    A ``reshape`` (a view when it can be); loop version:
    :func:`minicnn.functional.reference.flatten_forward`.
    """
    return x.reshape(x.shape[0], -1), FlattenCache(x.shape)


def flatten_backward(dout: np.ndarray, cache: FlattenCache) -> np.ndarray:
    """dout: (N, d1 * d2 * ...) -> dx: the input's shape (N, d1, d2, ...), by ``reshape``.

    Loop version: :func:`minicnn.functional.reference.flatten_backward`.
    """
    return dout.reshape(cache.x_shape)
