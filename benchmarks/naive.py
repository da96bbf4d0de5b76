"""Naive loop references (CS231n style) that the benchmark times minicnn against.

Plain Python loops over every output element, as in the CS231n assignments, with the
same semantics as minicnn: max pooling's backward splits a window's gradient evenly
among tied maxima, and overlapping windows accumulate. They are slow on purpose: the
benchmark runs them on a few images and scales the time to the full batch.
"""
import numpy as np


def max_pool_forward_naive(x, pool_param):
    """
    A naive implementation of the forward pass for a max-pooling layer.

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - pool_param: dictionary with the following keys:
      - 'pool_height': The height of each pooling region
      - 'pool_width': The width of each pooling region
      - 'stride': The distance between adjacent pooling regions

    Returns a tuple of:
    - out: Output data, of shape (N, C, H', W') where
      H' = 1 + (H - pool_height) // stride and W' = 1 + (W - pool_width) // stride
    - cache: (x, pool_param)
    """
    N, C, H, W = x.shape
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    out_h, out_w = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, out_h, out_w), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(out_h):
                for j in range(out_w):
                    out[n, c, i, j] = np.max(x[n, c, i * s:i * s + ph, j * s:j * s + pw])
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """
    A naive implementation of the backward pass for a max-pooling layer.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H', W')
    - cache: A tuple of (x, pool_param) as in the forward pass.

    Returns:
    - dx: Gradient with respect to x, of shape (N, C, H, W). Each window's upstream
      gradient is split evenly among the elements equal to its maximum; windows that
      overlap add their contributions.
    """
    x, pool_param = cache
    N, C, out_h, out_w = dout.shape
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(out_h):
                for j in range(out_w):
                    region = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    winners = region == np.max(region)
                    dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += (
                        winners * (dout[n, c, i, j] / np.sum(winners)))
    return dx


def conv_forward_naive(x, w, b, conv_param):
    """
    A naive implementation of the forward pass for a convolutional layer.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - w: Filter weights of shape (F, C, HH, WW)
    - b: Biases, of shape (F,)
    - conv_param: A dictionary with the following keys:
      - 'stride': The number of pixels between adjacent receptive fields
      - 'pad': The number of pixels that will be used to zero-pad the input

    Returns a tuple of:
    - out: Output data, of shape (N, F, H', W') where
      H' = 1 + (H + 2 * pad - HH) // stride and W' = 1 + (W + 2 * pad - WW) // stride
    - cache: (x, w, b, conv_param)
    """
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out_h, out_w = 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s
    out = np.zeros((N, F, out_h, out_w), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(out_h):
                for j in range(out_w):
                    out[n, f, i, j] = np.sum(xp[n, :, i * s:i * s + HH, j * s:j * s + WW] * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """
    A naive implementation of the backward pass for a convolutional layer.

    Inputs:
    - dout: Upstream derivatives, of shape (N, F, H', W')
    - cache: A tuple of (x, w, b, conv_param) as in conv_forward_naive

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dw: Gradient with respect to w, of shape (F, C, HH, WW)
    - db: Gradient with respect to b, of shape (F,)
    """
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    _, _, out_h, out_w = dout.shape
    for n in range(N):
        for f in range(F):
            for i in range(out_h):
                for j in range(out_w):
                    d = dout[n, f, i, j]
                    dw[f] += xp[n, :, i * s:i * s + HH, j * s:j * s + WW] * d
                    dxp[n, :, i * s:i * s + HH, j * s:j * s + WW] += w[f] * d
    return dxp[:, :, p:p + H, p:p + W], dw, db
