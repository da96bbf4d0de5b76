"""The loop version of every kernel in :mod:`minicnn.functional`, written to be read.

Each function has the name, signature and cache type of its fast twin
(``minicnn.functional.<name>``) and computes the same numbers, one output at a time:
loops over samples, channels and output positions, one line of math per idea, as in
the CS231n assignments. Read these to see *what* a kernel computes; read the fast ones
to see how numpy makes it quick. Run any model on them, and compare::

    with minicnn.functional.use_reference():
        scores = model(x)          # every built-in layer now calls these loops
        dx = model.backward(dscores)

Pure Python loops are slow: use small inputs. Shapes: N samples, C channels, H x W input
maps, H' x W' output maps, F filters, D input and M output features.
"""
import numpy as np

from .caches import (
    AvgPoolCache,
    BatchNormCache,
    ConvCache,
    DropoutCache,
    FlattenCache,
    GlobalAvgPoolCache,
    LeakyReluCache,
    LinearCache,
    MaxPoolCache,
    ReluCache,
)
from .geometry import conv_output_size, pool_output_size

__all__ = ["conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
           "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d_forward",
           "global_avg_pool2d_backward", "linear_forward", "linear_backward", "flatten_forward",
           "flatten_backward", "relu_forward", "relu_backward", "leaky_relu_forward",
           "leaky_relu_backward", "dropout_forward", "dropout_backward", "batchnorm_forward",
           "batchnorm_backward", "softmax_cross_entropy", "mse"]


# -- convolution ----------------------------------------------------------------------
def conv2d_forward(x, w, b, stride=(1, 1), padding=(0, 0)):
    """
    Forward pass of a 2-D convolution (cross-correlation, as in PyTorch).

    Inputs:
    - x: (N, C, H, W) input; w: (F, C, kh, kw) filters; b: (F,) biases, or None
    - stride: (sh, sw); padding: (ph, pw) zeros added on each side

    Returns a tuple of:
    - out: (N, F, H', W') with H' = (H + 2ph - kh) // sh + 1, W' = (W + 2pw - kw) // sw + 1,
      out[n, f, i, j] = sum_{c, p, q} xpad[n, c, i*sh + p, j*sw + q] * w[f, c, p, q] + b[f]
    - cache: ConvCache(x, w, stride, padding)
    """
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    H_out, W_out = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # zeros around every map
    out = np.zeros((N, F, H_out, W_out), dtype=np.result_type(x, w))
    bias = np.zeros(F, dtype=out.dtype) if b is None else b
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * sh, j * sw  # top-left corner of the window in xpad
                    patch = xpad[n, :, h0:h0 + kh, w0:w0 + kw]  # (C, kh, kw)
                    out[n, f, i, j] = np.sum(patch * w[f]) + bias[f]
    return out, ConvCache(x, w, stride, padding)


def conv2d_backward(dout, cache, input_grad=True):
    """
    Backward pass of a 2-D convolution.

    Inputs:
    - dout: (N, F, H', W') upstream gradient
    - cache: ConvCache(x, w, stride, padding) from conv2d_forward
    - input_grad: False skips dx (the first layer of a network needs none)

    Returns a tuple of:
    - dx: (N, C, H, W) or None; every output sends dout[n, f, i, j] * w[f] back onto its window
    - dw: (F, C, kh, kw); dw[f] = sum_{n, i, j} dout[n, f, i, j] * (window of xpad at i, j)
    - db: (F,); db[f] = sum_{n, i, j} dout[n, f, i, j]
    """
    x, w, (sh, sw), (ph, pw) = cache
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    _, _, H_out, W_out = dout.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxpad = np.zeros(xpad.shape, dtype=dout.dtype)
    dw, db = np.zeros(w.shape, dtype=dout.dtype), np.zeros(F, dtype=dout.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * sh, j * sw
                    db[f] += dout[n, f, i, j]
                    dw[f] += xpad[n, :, h0:h0 + kh, w0:w0 + kw] * dout[n, f, i, j]
                    if input_grad:  # windows overlap when stride < kernel: add, never assign
                        dxpad[n, :, h0:h0 + kh, w0:w0 + kw] += w[f] * dout[n, f, i, j]
    dx = dxpad[:, :, ph:ph + H, pw:pw + W] if input_grad else None  # drop the padding's share
    return dx, dw, db


# -- pooling --------------------------------------------------------------------------
def _padded(x, kernel, stride, padding, out_hw, fill):
    """x: (N, C, H, W) -> xpad: x surrounded by ``fill``, (ph, pw) on each side and, with
    ceil_mode, as much more at the bottom/right as the last window reaches past that."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (H_out, W_out) = kernel, stride, padding, out_hw
    Hp = max(H + 2 * ph, (H_out - 1) * sh + kh)
    Wp = max(W + 2 * pw, (W_out - 1) * sw + kw)
    xpad = np.full((N, C, Hp, Wp), fill, dtype=x.dtype)
    xpad[:, :, ph:ph + H, pw:pw + W] = x
    return xpad


def max_pool2d_forward(x, kernel, stride, padding=(0, 0), ceil_mode=False):
    """
    Forward pass of 2-D max pooling: the note's ``max_pool_forward_naive`` with padding
    (which counts as -inf, so it never wins) and ceil_mode.

    Inputs:
    - x: (N, C, H, W), floating point
    - kernel, stride, padding: (kh, kw), (sh, sw), (ph, pw) with 2p <= k
    - ceil_mode: round H' up, keeping a last window that runs past the input

    Returns a tuple of:
    - out: (N, C, H', W'), out[n, c, i, j] = max of xpad[n, c, i*sh:i*sh + kh, j*sw:j*sw + kw],
      H' = floor((H + 2ph - kh) / sh) + 1 (ceil with ceil_mode, as in PyTorch), W' likewise
    - cache: MaxPoolCache(xp, out, x_shape, kernel, stride, padding), xp the padded input
    """
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    H_out = pool_output_size(H, kh, sh, ph, ceil_mode, who="max_pool2d")
    W_out = pool_output_size(W, kw, sw, pw, ceil_mode, who="max_pool2d")
    xpad = _padded(x, kernel, stride, padding, (H_out, W_out), -np.inf)
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * sh, j * sw
                    out[n, c, i, j] = np.max(xpad[n, c, h0:h0 + kh, w0:w0 + kw])
    return out, MaxPoolCache(xpad, out, x.shape, kernel, stride, padding)


def max_pool2d_backward(dout, cache, ties="split"):
    """
    Backward pass of 2-D max pooling: the note's ``max_pool_backward_naive`` (mask and
    np.sum), with its overlap bug fixed and a choice of tie rule.

    Inputs:
    - dout: (N, C, H', W') upstream gradient
    - cache: MaxPoolCache from max_pool2d_forward
    - ties: "split": the k elements tied for a window's maximum get dout / k each;
      "first": the first maximum in row-major order gets all of dout (PyTorch's rule)

    Returns:
    - dx: (N, C, H, W); dx = sum over windows of mask(window) * dout[n, c, i, j]
    """
    if ties not in ("split", "first"):
        raise ValueError(f"max_pool2d: ties must be 'split' or 'first', got {ties!r}")
    xpad, _, (N, C, H, W), (kh, kw), (sh, sw), (ph, pw) = cache
    _, _, H_out, W_out = dout.shape
    dxpad = np.zeros(xpad.shape, dtype=dout.dtype)
    real = np.zeros(xpad.shape[2:], dtype=bool)  # the positions of x inside xpad
    real[ph:ph + H, pw:pw + W] = True
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * sh, j * sw
                    window = xpad[n, c, h0:h0 + kh, w0:w0 + kw]
                    inside = real[h0:h0 + kh, w0:w0 + kw]
                    nan = np.isnan(window)  # a NaN is the maximum, as in PyTorch
                    # the candidates: x's elements equal to the maximum. Padding is never
                    # one, even when the window's real maximum is -inf and ties with it.
                    won = nan if nan.any() else inside & (window == np.max(window))
                    mask = np.zeros(window.shape, dtype=dout.dtype)
                    if ties == "split":
                        mask[won] = 1
                        mask /= np.sum(mask)  # k tied maxima: 1/k each
                    else:
                        mask[np.unravel_index(np.argmax(won), window.shape)] = 1  # the first
                    # The note assigned: dx[window] = mask * dout. Where windows overlap
                    # (stride < kernel) that overwrites the share an earlier window gave
                    # to the same input, which may be the maximum of both. Add instead.
                    dxpad[n, c, h0:h0 + kh, w0:w0 + kw] += mask * dout[n, c, i, j]
    return dxpad[:, :, ph:ph + H, pw:pw + W]  # the padding never won: nothing is lost


def _counted(start, kernel, size, pad, count_include_pad):
    """How many of the positions start .. start + kernel - 1 of one axis an average counts:
    those inside the padded input [-pad, size + pad) with count_include_pad (never
    ceil_mode's extra), else those inside the input [0, size)."""
    lo, hi = (-pad, size + pad) if count_include_pad else (0, size)
    return min(start + kernel, hi) - max(start, lo)


def avg_pool2d_forward(x, kernel, stride, padding=(0, 0), ceil_mode=False,
                       count_include_pad=True):
    """
    Forward pass of 2-D average pooling with zero padding, divisors as in PyTorch.

    Inputs:
    - x: (N, C, H, W); kernel, stride, padding, ceil_mode as for max pooling
    - count_include_pad: whether the padded zeros count in a window's divisor

    Returns a tuple of:
    - out: (N, C, H', W'), out[n, c, i, j] = sum of xpad's window (i, j) / divisor[i, j]
    - cache: AvgPoolCache(x_shape, padded_shape, divisor, kernel, stride, padding)
    """
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    H_out = pool_output_size(H, kh, sh, ph, ceil_mode, who="avg_pool2d")
    W_out = pool_output_size(W, kw, sw, pw, ceil_mode, who="avg_pool2d")
    xpad = _padded(x, kernel, stride, padding, (H_out, W_out), 0.0)
    divisor = np.zeros((H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            divisor[i, j] = (_counted(i * sh - ph, kh, H, ph, count_include_pad)
                             * _counted(j * sw - pw, kw, W, pw, count_include_pad))
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * sh, j * sw
                    out[n, c, i, j] = np.sum(xpad[n, c, h0:h0 + kh, w0:w0 + kw]) / divisor[i, j]
    return out, AvgPoolCache(x.shape, xpad.shape, divisor, kernel, stride, padding)


def avg_pool2d_backward(dout, cache):
    """
    Backward pass of 2-D average pooling.

    Inputs: dout (N, C, H', W'); cache: AvgPoolCache from avg_pool2d_forward.
    Returns dx: (N, C, H, W); every position of window (i, j) receives
    dout[n, c, i, j] / divisor[i, j], and overlapping windows add up.
    """
    (N, C, H, W), padded_shape, divisor, (kh, kw), (sh, sw), (ph, pw) = cache
    _, _, H_out, W_out = dout.shape
    dxpad = np.zeros(padded_shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * sh, j * sw
                    dxpad[n, c, h0:h0 + kh, w0:w0 + kw] += dout[n, c, i, j] / divisor[i, j]
    return dxpad[:, :, ph:ph + H, pw:pw + W]


def global_avg_pool2d_forward(x):
    """
    x: (N, C, H, W) -> out: (N, C), out[n, c] = (1 / (H W)) sum_{h, w} x[n, c, h, w].
    cache: GlobalAvgPoolCache(x_shape).
    """
    N, C, H, W = x.shape
    out = np.zeros((N, C), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            out[n, c] = np.sum(x[n, c]) / (H * W)
    return out, GlobalAvgPoolCache(x.shape)


def global_avg_pool2d_backward(dout, cache):
    """dout: (N, C) -> dx: (N, C, H, W), every position of map (n, c) gets dout[n, c] / (H W)."""
    N, C, H, W = cache.x_shape
    dx = np.zeros(cache.x_shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            dx[n, c, :, :] = dout[n, c] / (H * W)
    return dx


# -- fully connected --------------------------------------------------------------------
def linear_forward(x, w, b):
    """
    x: (N, D), w: (M, D) as in PyTorch, b: (M,) or None
    -> out: (N, M), out[n, m] = sum_d x[n, d] * w[m, d] + b[m]; cache: LinearCache(x, w).
    """
    N, M = x.shape[0], w.shape[0]
    out = np.zeros((N, M), dtype=np.result_type(x, w))
    for n in range(N):
        for m in range(M):
            out[n, m] = np.sum(x[n] * w[m]) + (0 if b is None else b[m])
    return out, LinearCache(x, w)


def linear_backward(dout, cache, input_grad=True):
    """
    dout: (N, M) -> (dx (N, D) or None, dw (M, D), db (M,)):
    dx[n] = sum_m dout[n, m] w[m], dw[m] = sum_n dout[n, m] x[n], db[m] = sum_n dout[n, m].
    """
    x, w = cache
    (N, M), dtype = dout.shape, np.result_type(dout, x, w)
    dx = np.zeros(x.shape, dtype=dtype) if input_grad else None
    dw, db = np.zeros(w.shape, dtype=dtype), np.zeros(M, dtype=dtype)
    for n in range(N):
        for m in range(M):
            db[m] += dout[n, m]
            dw[m] += dout[n, m] * x[n]
            if input_grad:
                dx[n] += dout[n, m] * w[m]
    return dx, dw, db


def flatten_forward(x):
    """
    x: (N, d1, d2, ...) -> out: (N, d1 * d2 * ...), each sample's values in row-major
    order (last axis fastest), as ``reshape`` reads them. cache: FlattenCache(x_shape).
    """
    N = x.shape[0]
    out = np.zeros((N, x[0].size), dtype=x.dtype)
    for n in range(N):
        for k, index in enumerate(np.ndindex(x.shape[1:])):
            out[n, k] = x[(n,) + index]
    return out, FlattenCache(x.shape)


def flatten_backward(dout, cache):
    """dout: (N, d1 * d2 * ...) -> dx: (N, d1, d2, ...), every value back in its place."""
    N = cache.x_shape[0]
    dx = np.zeros(cache.x_shape, dtype=dout.dtype)
    for n in range(N):
        for k, index in enumerate(np.ndindex(cache.x_shape[1:])):
            dx[(n,) + index] = dout[n, k]
    return dx


# -- activations and dropout -------------------------------------------------------------
def relu_forward(x):
    """x: any shape -> out = max(x, 0) element by element; cache: ReluCache(out)."""
    out = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] if x[index] > 0 else 0
    return out, ReluCache(out)


def relu_backward(dout, cache):
    """dx = dout where the input was positive (out > 0), 0 elsewhere."""
    dx = np.zeros_like(dout)
    for index in np.ndindex(dout.shape):
        dx[index] = dout[index] if cache.out[index] > 0 else 0
    return dx


def leaky_relu_forward(x, negative_slope=0.01):
    """out = x where x > 0, negative_slope * x elsewhere;
    cache: LeakyReluCache(positive = x > 0, negative_slope)."""
    slope = x.dtype.type(negative_slope)
    out, positive = np.zeros_like(x), np.zeros(x.shape, dtype=bool)
    for index in np.ndindex(x.shape):
        positive[index] = x[index] > 0
        out[index] = x[index] if positive[index] else slope * x[index]
    return out, LeakyReluCache(positive, negative_slope)


def leaky_relu_backward(dout, cache):
    """dx = dout where x > 0, negative_slope * dout elsewhere."""
    slope = dout.dtype.type(cache.negative_slope)
    dx = np.zeros_like(dout)
    for index in np.ndindex(dout.shape):
        dx[index] = dout[index] if cache.positive[index] else slope * dout[index]
    return dx


def dropout_forward(x, p, rng=None, training=True, mask=None):
    """
    Inverted dropout. In training each element is kept with probability 1 - p and
    scaled by 1 / (1 - p), so E[out] = x; in eval mode (or p == 0) out = x.

    Inputs: x any shape; p in [0, 1); rng a numpy Generator; mask (optional) a given
    scaled mask of x's shape instead of a random one.
    Returns (out, cache): out[k] = x[k] * mask[k]; cache DropoutCache(mask), None for
    the identity.
    """
    if not training or p == 0:
        return x, DropoutCache(None)
    if mask is None:
        # One uniform number per element, drawn in one call exactly as the fast kernel
        # draws them: the same seed gives the same mask on either path.
        u = rng.random(x.shape, dtype=np.float32)
        scale = x.dtype.type(1) / x.dtype.type(1 - p)
        mask = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            mask[index] = scale if u[index] >= p else 0  # kept with probability 1 - p
    out = np.zeros(x.shape, dtype=np.result_type(x, mask))
    for index in np.ndindex(x.shape):
        out[index] = x[index] * mask[index]
    return out, DropoutCache(mask)


def dropout_backward(dout, cache):
    """dx = dout * mask element by element (dout itself for the identity)."""
    if cache.mask is None:
        return dout
    dx = np.zeros(dout.shape, dtype=np.result_type(dout, cache.mask))
    for index in np.ndindex(dout.shape):
        dx[index] = dout[index] * cache.mask[index]
    return dx


# -- batch normalisation ------------------------------------------------------------------
def batchnorm_forward(x, gamma, beta, mean=None, var=None, eps=1e-5):
    """
    Batch normalisation of x: (N, C) or (N, C, H, W), channel by channel.

    Inputs: gamma, beta (C,); mean, var (C,) running statistics for eval, or None in
    training, where each channel's statistics are those of all its values in the batch.

    Returns a tuple of:
    - out: like x, out = gamma * xhat + beta with xhat = (x - mean) / sqrt(var + eps)
    - cache: BatchNormCache(xhat, gamma, inv_std, mean, var, batch_stats), with the
      batch's mean and biased variance (divided by m, not m - 1) in training
    """
    C = x.shape[1]
    batch_stats = mean is None
    if batch_stats:
        mean, var = np.zeros(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    inv_std = np.zeros(C, dtype=x.dtype)
    xhat, out = np.zeros_like(x), np.zeros_like(x)
    for c in range(C):
        values = x[:, c]  # every value of channel c: (N,) or (N, H, W)
        if batch_stats:
            mean[c] = np.mean(values)
            var[c] = np.mean((values - mean[c]) ** 2)
        inv_std[c] = 1 / np.sqrt(var[c] + eps)
        xhat[:, c] = (values - mean[c]) * inv_std[c]
        out[:, c] = gamma[c] * xhat[:, c] + beta[c]
    return out, BatchNormCache(xhat, gamma, inv_std, mean, var, batch_stats)


def batchnorm_backward(dout, cache):
    """
    dout: like x -> (dx like x, dgamma (C,), dbeta (C,)), channel by channel:
    dbeta = sum dout, dgamma = sum dout * xhat, and with m values per channel
    - training: dx = gamma / sigma * (dout - mean(dout) - xhat * mean(dout * xhat)), the
      two means because every x moves the batch's mean and variance
    - eval: dx = gamma / sigma * dout (the running statistics are constants)
    """
    C = dout.shape[1]
    dx = np.zeros_like(dout)
    dgamma, dbeta = np.zeros(C, dtype=dout.dtype), np.zeros(C, dtype=dout.dtype)
    for c in range(C):
        d, xhat = dout[:, c], cache.xhat[:, c]
        dbeta[c] = np.sum(d)
        dgamma[c] = np.sum(d * xhat)
        scale = cache.gamma[c] * cache.inv_std[c]
        if cache.batch_stats:
            dx[:, c] = scale * (d - np.mean(d) - xhat * np.mean(d * xhat))
        else:
            dx[:, c] = scale * d
    return dx, dgamma, dbeta


# -- losses -------------------------------------------------------------------------------
def softmax_cross_entropy(scores, y, label_smoothing=0.0):
    """
    Softmax cross-entropy, averaged over the batch.

    Inputs: scores (N, C), scores[i, c] the score of class c for example i; y (N,) labels;
    label_smoothing eps: the target q_i = (1 - eps) * one_hot(y[i]) + eps / C.
    Returns a tuple of:
    - loss: float, L = (1/N) sum_i sum_c -q_i[c] log(exp(scores[i, c]) / sum_k exp(scores[i, k]))
    - dscores: (N, C), dscores[i] = (softmax(scores[i]) - q_i) / N
    """
    N, C = scores.shape
    loss, dscores = 0.0, np.zeros_like(scores)
    for i in range(N):
        shifted = scores[i] - np.max(scores[i])  # same softmax; exp never overflows
        log_probs = shifted - np.log(np.sum(np.exp(shifted)))
        target = np.full(C, label_smoothing / C)
        target[y[i]] += 1 - label_smoothing
        loss += -np.sum(target * log_probs) / N
        dscores[i] = (np.exp(log_probs) - target) / N
    return float(loss), dscores


def mse(pred, target):
    """
    Mean squared error over all M = pred.size elements.

    Returns a tuple of:
    - loss: float, L = (1/M) sum_k (pred[k] - target[k])^2
    - dpred: like pred, dpred[k] = 2 (pred[k] - target[k]) / M
    """
    M = pred.size
    loss, dpred = 0.0, np.zeros_like(pred)
    for index in np.ndindex(pred.shape):
        diff = pred[index] - target[index]
        loss += diff * diff / M
        dpred[index] = (2 / M) * diff
    return float(loss), dpred
