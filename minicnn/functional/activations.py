"""Element-wise activations and dropout."""
import numpy as np


def relu_forward(x):
    """x: any shape -> out = max(x, 0), same shape; cache: out."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    """dx = dout where the input was positive, else 0."""
    return dout * (cache > 0)


def leaky_relu_forward(x, negative_slope=0.01):
    """out = x if x > 0 else negative_slope * x; cache: (x > 0, negative_slope)."""
    positive = x > 0
    return np.where(positive, x, x * x.dtype.type(negative_slope)), (positive, negative_slope)


def leaky_relu_backward(dout, cache):
    positive, negative_slope = cache
    return np.where(positive, dout, dout * dout.dtype.type(negative_slope))


def dropout_forward(x, p, rng=None, training=True, mask=None):
    """Inverted dropout: in training, zero each element with probability p, scale by 1/(1-p).

    Inputs: x any shape; p in [0, 1); rng a numpy Generator; mask (optional) a given
    scaled mask of x's shape instead of a random one. In eval mode (or p == 0) out = x.
    Returns (out, cache) with cache the scaled mask (None for the identity).
    """
    if not training or p == 0:
        return x, None
    if mask is None:
        keep = rng.random(x.shape, dtype=np.float32) >= p
        mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout if cache is None else dout * cache
