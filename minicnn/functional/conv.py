"""2-D convolution as one GEMM over an im2col buffer.

Internally the channel axis leads, (C, N, H, W): the GEMM output (F, N*H'*W') is then
already laid out as (F, N, H', W') and the returned (N, F, H', W') array is a free
transposed view; a following conv reads it back as (C, N, H, W) without a copy.
"""
import numpy as np


def conv_output_size(size, kernel, stride, padding, who="conv2d"):
    """floor((size + 2 * padding - kernel) / stride) + 1, or a clear ValueError."""
    if size + 2 * padding < kernel:
        raise ValueError(f"{who}: kernel size {kernel} is larger than the padded input "
                         f"size {size} + 2*{padding} = {size + 2 * padding}")
    return (size + 2 * padding - kernel) // stride + 1


def window(a, i, j, out_h, out_w, stride):
    """The view a[..., i + sh*oh, j + sw*ow] for all oh < out_h, ow < out_w."""
    sh, sw = stride
    return a[..., i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]


def pad_channels_first(x, padding, fill=0.0, extra=(0, 0)):
    """x: (N, C, H, W) -> xp: (C, N, H + 2ph + eh, W + 2pw + ew), filled with ``fill``.

    Returns the transposed view itself (no copy) when there is nothing to pad.
    """
    xc = x.transpose(1, 0, 2, 3)
    (ph, pw), (eh, ew) = padding, extra
    if ph == pw == eh == ew == 0:
        return xc
    C, N, H, W = xc.shape
    xp = np.full((C, N, H + 2 * ph + eh, W + 2 * pw + ew), fill, dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = xc
    return xp


def im2col(xp, kernel, stride, out_hw, out=None):
    """xp: (C, N, Hp, Wp) -> cols: (C, kh, kw, N, H', W'), one slice copy per offset."""
    C, N = xp.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_hw
    shape = (C, kh, kw, N, oh, ow)
    if out is None or out.shape != shape or out.dtype != xp.dtype:
        out = np.empty(shape, dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, i, j] = window(xp, i, j, oh, ow, stride)
    return out


def col2im(cols, padded_shape, stride):
    """Adjoint of im2col: cols (C, kh, kw, N, H', W') -> dxp (C, N, Hp, Wp), overlaps summed."""
    _, kh, kw, _, oh, ow = cols.shape
    dxp = np.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            window(dxp, i, j, oh, ow, stride)[...] += cols[:, i, j]
    return dxp


def conv2d_forward(x, w, b, stride=(1, 1), padding=(0, 0), cols=None):
    """Forward pass of a 2-D convolution (cross-correlation, as in PyTorch).

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, kh, kw) filters
    - b: (F,) biases, or None
    - stride, padding: (sh, sw), (ph, pw); zero padding
    - cols: optional buffer of shape (C, kh, kw, N, H', W') to reuse for im2col

    Returns (out, cache):
    - out: (N, F, H', W') with H' = (H + 2ph - kh) // sh + 1, W' likewise
    - cache: (cols, x.shape, w, stride, padding)
    """
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    oh = conv_output_size(H, kh, stride[0], padding[0])
    ow = conv_output_size(W, kw, stride[1], padding[1])
    xp = pad_channels_first(x, padding)
    cols = im2col(xp, (kh, kw), stride, (oh, ow), out=cols)
    out = w.reshape(F, -1) @ cols.reshape(C * kh * kw, -1)
    if b is not None:
        out += b[:, None]
    out = out.reshape(F, N, oh, ow).transpose(1, 0, 2, 3)
    return out, (cols, x.shape, w, stride, padding)


def conv2d_backward(dout, cache, input_grad=True):
    """Backward pass of :func:`conv2d_forward`.

    Inputs:
    - dout: (N, F, H', W') upstream gradient
    - cache: from the forward pass; its im2col buffer is reused for dL/dcols,
      so a cache serves one backward only
    - input_grad: False skips dx (the first layer of a network needs none)

    Returns (dx, dw, db): dx (N, C, H, W) or None, dw (F, C, kh, kw), db (F,).
    """
    cols, (N, C, H, W), w, stride, (ph, pw) = cache
    F = w.shape[0]
    cols2d = cols.reshape(-1, cols.shape[3] * cols.shape[4] * cols.shape[5])
    d = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    db = d.sum(axis=1)
    dw = (d @ cols2d.T).reshape(w.shape)
    if not input_grad:
        return None, dw, db
    np.matmul(w.reshape(F, -1).T, d, out=cols2d)  # dcols = W^T dout, written over cols
    dxp = col2im(cols, (C, N, H + 2 * ph, W + 2 * pw), stride)
    dx = dxp[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)
    return dx, dw, db
