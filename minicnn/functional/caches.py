"""What each kernel's forward pass keeps for its backward pass.

Every ``*_forward`` returns ``(out, cache)``; the cache is one of these named tuples,
the same type from the fast kernel and from its loop twin in :mod:`.reference`, so a
layer reads ``cache.mean`` rather than ``cache[3]``, and either backward accepts the
cache of either forward.
"""
from typing import NamedTuple, Optional, Tuple

import numpy as np

Pair = Tuple[int, int]


class ConvCache(NamedTuple):
    """conv2d_forward -> conv2d_backward."""
    x: np.ndarray          #: the input, (N, C, H, W) (the fast kernel's is batch-last in memory)
    w: np.ndarray          #: the filters, (F, C, kh, kw)
    stride: Pair           #: (sh, sw)
    padding: Pair          #: (ph, pw), zero padding


class MaxPoolCache(NamedTuple):
    """max_pool2d_forward -> max_pool2d_backward."""
    xp: np.ndarray         #: the input padded with -inf, (N, C, H + 2ph (+ ceil_mode's extra), ...)
    out: np.ndarray        #: the forward output, (N, C, H', W'): each window's maximum
    x_shape: tuple         #: the input's shape (N, C, H, W)
    kernel: Pair           #: (kh, kw)
    stride: Pair           #: (sh, sw)
    padding: Pair          #: (ph, pw)


class AvgPoolCache(NamedTuple):
    """avg_pool2d_forward -> avg_pool2d_backward."""
    x_shape: tuple         #: the input's shape (N, C, H, W)
    padded_shape: tuple    #: the zero-padded input's shape
    divisor: np.ndarray    #: (H', W'): how many positions each window's sum is divided by
    kernel: Pair
    stride: Pair
    padding: Pair


class GlobalAvgPoolCache(NamedTuple):
    """global_avg_pool2d_forward -> global_avg_pool2d_backward."""
    x_shape: tuple         #: the input's shape (N, C, H, W)


class LinearCache(NamedTuple):
    """linear_forward -> linear_backward."""
    x: np.ndarray          #: the input, (N, D)
    w: np.ndarray          #: the weights, (M, D)


class FlattenCache(NamedTuple):
    """flatten_forward -> flatten_backward."""
    x_shape: tuple         #: the input's shape (N, d1, d2, ...)


class ReluCache(NamedTuple):
    """relu_forward -> relu_backward."""
    out: np.ndarray        #: the output max(x, 0); positive exactly where x was


class LeakyReluCache(NamedTuple):
    """leaky_relu_forward -> leaky_relu_backward."""
    positive: np.ndarray   #: boolean, x > 0
    negative_slope: float


class DropoutCache(NamedTuple):
    """dropout_forward -> dropout_backward."""
    mask: Optional[np.ndarray]  #: keep / (1 - p) per element; None for the identity (eval, p = 0)


class BatchNormCache(NamedTuple):
    """batchnorm_forward -> batchnorm_backward."""
    xhat: np.ndarray       #: the normalised input (x - mean) / sqrt(var + eps), like x
    gamma: np.ndarray      #: the scale, (C,)
    inv_std: np.ndarray    #: 1 / sqrt(var + eps), (C,)
    mean: np.ndarray       #: the mean used, (C,): the batch's in training, the running one in eval
    var: np.ndarray        #: the variance used, (C,): the batch's (biased) or the running one
    batch_stats: bool      #: True when mean and var are the batch's (training)
