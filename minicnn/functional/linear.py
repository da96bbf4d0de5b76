"""Fully connected (affine) layer and flattening."""


def linear_forward(x, w, b):
    """x: (N, D), w: (M, D) as in PyTorch, b: (M,) or None -> out: (N, M) = x w^T + b.

    cache: (x, w).
    """
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w)


def linear_backward(dout, cache, input_grad=True):
    """dout: (N, M) -> (dx (N, D) or None, dw (M, D), db (M,))."""
    x, w = cache
    dx = dout @ w if input_grad else None
    return dx, dout.T @ x, dout.sum(axis=0)


def flatten_forward(x):
    """x: (N, d1, d2, ...) -> out: (N, d1 * d2 * ...); cache: x.shape."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    return dout.reshape(cache)
