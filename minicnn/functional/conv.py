"""2-D convolution as matrix products over im2col columns, one band of output rows at a time.

The plain version, four loops and one ``np.sum`` per output, is
:func:`minicnn.functional.reference.conv2d_forward`; this one computes the same numbers.
Three ideas make it fast:

- **im2col + GEMM.** Every window of the input becomes a column of a matrix, so the
  whole convolution is one matrix product with the (F, C*kh*kw) filter matrix, which
  BLAS runs at full speed. To bound memory the matrix is built for a band of output
  rows at a time (about ``BAND_BYTES``).
- **Bands on threads.** The bands are independent, so they run side by side on
  minicnn's threads (:mod:`minicnn.parallel`), each product on a one-thread BLAS.
- **Batch last.** Inside, images are (C, H, W, N) in memory; the arrays handed in and
  out are ordinary (N, C, H, W) arrays whose strides show that layout. Each slice that
  im2col moves is then a run of W' * N contiguous numbers, and the next conv or pooling
  layer reads the output without a copy.

The backward pass rebuilds the columns band by band (keeping them all would cost 9x the
input's memory for a 3x3 conv) and takes one of two routes to dL/dx: a scatter (col2im
adds each column back onto the input positions it came from) or, for stride-1 convs where
it measured faster, a gather (dL/dx is itself a convolution of dout, so im2col of dout and
one GEMM write every element of dx once); see :func:`conv2d_backward`.

Padding is never materialised: im2col writes zeros where a window reads padding, and
col2im drops what falls there. Measurements: docs/performance.md.
"""
from __future__ import annotations

import numpy as np

from .. import parallel
from .caches import ConvCache
from .geometry import conv_output_size

#: Largest im2col band, in bytes (a band holds at least one output row).
BAND_BYTES = 2 << 20


def _inside(offset, stride, padding, size, lo, hi):
    """The outputs o in [lo, hi) whose input index offset + stride * o - padding lies in
    [0, size), as (first, stop), and the slice of input indices they read."""
    first = max(lo, -((offset - padding) // stride))  # ceil((padding - offset) / stride)
    stop = max(first, min(hi, (size - 1 + padding - offset) // stride + 1))
    if stop == first:
        return first, stop, slice(0, 0)
    start = offset + stride * first - padding
    return first, stop, slice(start, start + stride * (stop - first - 1) + 1, stride)


def _spans(kernel, stride, padding, in_hw, out_w, rows):
    """What the band of output rows ``rows`` = (b0, b1) reads inside the input:
    for each kernel row i, (r0, r1, src_rows): band rows r0..r1-1 (counted from b0)
    read input rows src_rows; for each kernel column j, (c0, c1, src_cols) likewise."""
    b0, b1 = rows
    row_spans = []
    for i in range(kernel[0]):
        r0, r1, src = _inside(i, stride[0], padding[0], in_hw[0], b0, b1)
        row_spans.append((r0 - b0, r1 - b0, src))
    col_spans = [_inside(j, stride[1], padding[1], in_hw[1], 0, out_w) for j in range(kernel[1])]
    return row_spans, col_spans


def im2col(xc, kernel, stride, padding, out_hw, rows=None):
    """Gather the windows of the output rows ``rows`` = (b0, b1) (default: all) into columns.

    Inputs:
    - xc: (C, H, W, N) input, batch last
    - kernel, stride, padding: (kh, kw), (sh, sw), (ph, pw); zero padding
    - out_hw: (H', W') output size

    Returns cols: (C, kh, kw, b1 - b0, W', N) with
    cols[c, i, j, r, q, n] = x[n, c, sh * (b0 + r) + i - ph, sw * q + j - pw] (0 in the padding);
    reshaped to (C * kh * kw, (b1 - b0) * W' * N) it is the band's GEMM operand.

    The idea: one strided slice copy per kernel offset (i, j) moves that offset's element
    of every window at once, instead of one window at a time as the loops of
    :func:`minicnn.functional.reference.conv2d_forward` read them.
    """
    C, H, W, N = xc.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    b0, b1 = rows or (0, oh)
    cols = np.empty((C, kh, kw, b1 - b0, ow, N), dtype=xc.dtype)
    row_spans, col_spans = _spans(kernel, stride, padding, (H, W), ow, (b0, b1))
    for i, (r0, r1, src_r) in enumerate(row_spans):
        for j, (c0, c1, src_c) in enumerate(col_spans):
            if r0 < r1 and c0 < c1:
                cols[:, i, j, r0:r1, c0:c1] = xc[:, src_r, src_c]
    # zeros where a window reads the padding: whole strips of rows, then of columns
    for i, (r0, r1, _) in enumerate(row_spans):
        cols[:, i, :, :r0] = 0
        cols[:, i, :, r1:] = 0
    for j, (c0, c1, _) in enumerate(col_spans):
        cols[:, :, j, :, :c0] = 0
        cols[:, :, j, :, c1:] = 0
    return cols


def col2im(cols, dx, stride, padding, first_row=0):
    """Adjoint of im2col: add the columns of a band back onto the input positions they came from.

    Inputs:
    - cols: (C, kh, kw, R, W', N), e.g. dL/dcols of the output rows first_row .. first_row + R
    - dx: (C, H, W, N) array to add into, in place; overlapping windows accumulate and
      what im2col read from the padding is dropped
    - stride, padding: (sh, sw), (ph, pw) as in the forward pass

    Returns dx.

    One strided ``+=`` per kernel offset, as in :func:`im2col`; the loops of
    :func:`minicnn.functional.reference.conv2d_backward` add window by window instead.
    """
    _, kh, kw, R, ow, _ = cols.shape
    row_spans, col_spans = _spans((kh, kw), stride, padding, dx.shape[1:3], ow,
                                  (first_row, first_row + R))
    for i, (r0, r1, dst_r) in enumerate(row_spans):
        for j, (c0, c1, dst_c) in enumerate(col_spans):
            if r0 < r1 and c0 < c1:
                dx[:, dst_r, dst_c] += cols[:, i, j, r0:r1, c0:c1]
    return dx


def _bands(k, rows, row_cols, itemsize, min_rows=1):
    """Output rows 0..rows-1 cut into bands of about BAND_BYTES of im2col columns (``k``
    rows of ``row_cols`` columns per output row), each at least ``min_rows`` rows (or all
    of them): [(b0, b1), ...]. The bands depend on the shapes only, never on the number
    of threads, so sums over bands come out the same for any thread count."""
    per = max(1, min_rows, BAND_BYTES // (k * row_cols * itemsize))
    return parallel.split(rows, rows // per)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                   stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                   ) -> tuple[np.ndarray, ConvCache]:
    """Forward pass of a 2-D convolution (cross-correlation, as in PyTorch), by im2col + GEMM.

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, c, sh*i + p, sw*j + q]

    Inputs:
    - x: (N, C, H, W); w: (F, C, kh, kw) filters; b: (F,) biases, or None
    - stride, padding: (sh, sw), (ph, pw); zero padding

    Returns (out, cache):
    - out: (N, F, H', W') with H' = (H + 2ph - kh) // sh + 1, W' likewise; a view of
      an (F, H', W', N) array
    - cache: :class:`ConvCache` (x, w, stride, padding); x is kept batch-last

    Each band of output rows is one product (F, C*kh*kw) @ (C*kh*kw, rows*W'*N) of the
    filters with the band's windows laid out as columns; the bands run on minicnn's
    threads (:mod:`minicnn.parallel`). Loop version:
    :func:`minicnn.functional.reference.conv2d_forward`.
    """
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    oh = conv_output_size(H, kh, stride[0], padding[0])
    ow = conv_output_size(W, kw, stride[1], padding[1])
    xc = np.ascontiguousarray(x.transpose(1, 2, 3, 0))  # no copy for a minicnn layer's output
    out = np.empty((F, oh * ow * N), np.result_type(x, w))
    w2 = w.reshape(F, -1)

    def band(rows):  # out[:, rows] = w2 @ im2col(x)[:, rows] (+ b), while in cache
        cols = im2col(xc, (kh, kw), stride, padding, (oh, ow), rows)
        dst = out[:, rows[0] * ow * N:rows[1] * ow * N]
        np.matmul(w2, cols.reshape(w2.shape[1], -1), out=dst)
        if b is not None:
            dst += b[:, None]

    parallel.run(band, _bands(w2.shape[1], oh, ow * N, out.itemsize))
    out = out.reshape(F, oh, ow, N).transpose(3, 0, 1, 2)
    return out, ConvCache(xc.transpose(3, 0, 1, 2), w, stride, padding)


def dx_by_gather(kernel, stride, padding, channels, input_grad=True):
    """Whether :func:`conv2d_backward` takes the gather route (im2col of dout) rather than
    the scatter route (im2col of x, then :func:`col2im`): for dx of a stride-1 conv with
    padding at most kernel - 1 and no more filters than input channels (F <= C), where it
    measured faster (docs/performance.md)."""
    (kh, kw), (ph, pw), (C, F) = kernel, padding, channels
    return input_grad and stride == (1, 1) and ph < kh and pw < kw and F <= C


def conv2d_backward(dout: np.ndarray, cache: ConvCache, input_grad: bool = True,
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv2d_forward`.

    Inputs:
    - dout: (N, F, H', W') upstream gradient
    - cache: :class:`ConvCache` from the forward pass
    - input_grad: False skips dx (the first layer of a network needs none)

    Returns (dx, dw, db): dx (N, C, H, W) or None, dw (F, C, kh, kw), db (F,).

    Two routes, both one band of rows at a time on minicnn's threads (:func:`dx_by_gather`
    picks); each band's share of dw is a partial sum, and the partials are added in band
    order:

    - scatter: rebuild the im2col columns of x, dw += cols @ dout^T, then
      dL/dcols = w^T @ dout in the same buffer, added back onto the input positions by
      :func:`col2im`. Neighbouring bands add onto some of the same input rows, so the
      even bands run first and the odd ones after them (bands are tall enough that two
      even ones never touch the same row);
    - gather (stride 1): dx[c, h, w] = sum_{f, p, q} dout[f, h + ph - p, w + pw - q] w[f, c, p, q]
      is itself a convolution, of dout padded by (kh - 1 - ph, kw - 1 - pw) with the
      filters flipped and transposed to (C, F, kh, kw). So im2col of dout, one GEMM
      per band writes each dx element once, and the same columns give dw by a second
      GEMM with the band's rows of x: no im2col of x and no col2im at all.

    Loop version: :func:`minicnn.functional.reference.conv2d_backward`.
    """
    x, w, stride, padding = cache
    xc = np.ascontiguousarray(x.transpose(1, 2, 3, 0))  # (C, H, W, N): no copy for our cache
    C, H, W, N = xc.shape
    F, _, kh, kw = w.shape
    d4 = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))  # (F, H', W', N); no copy if batch-last
    if dx_by_gather((kh, kw), stride, padding, (C, F), input_grad):
        dx, dw = _backward_gather(xc, w, d4, padding)
    else:
        dx, dw = _backward_scatter(xc, w, d4, stride, padding, input_grad)
    dx = None if dx is None else dx.transpose(3, 0, 1, 2)
    return dx, dw, d4.reshape(F, -1).sum(axis=1)


def _in_order(parts):
    """The sum of the arrays ``parts``, added one after another in their order."""
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


def _backward_scatter(xc, w, d4, stride, padding, input_grad):
    """dx (C, H, W, N) or None and dw through the im2col columns of x (see conv2d_backward)."""
    C, H, W, N = xc.shape
    F, _, kh, kw = w.shape
    _, oh, ow, _ = d4.shape
    d, w2 = d4.reshape(F, -1), w.reshape(F, -1)
    dx = np.zeros((C, H, W, N), d.dtype) if input_grad else None

    def band(rows):  # returns the band's share of dw, (C*kh*kw, F)
        cols = im2col(xc, (kh, kw), stride, padding, (oh, ow), rows)
        cols2d = cols.reshape(w2.shape[1], -1)
        d_band = d[:, rows[0] * ow * N:rows[1] * ow * N]
        dw_part = cols2d @ d_band.T
        if input_grad:
            np.matmul(w2.T, d_band, out=cols2d)  # dL/dcols = W^T dout, over the band's cols
            col2im(cols, dx, stride, padding, rows[0])
        return dw_part

    # a band of R rows reads input rows up to kh - sh beyond its own: R >= kh / sh - 1
    # keeps the bands on either side of it apart
    bands = _bands(w2.shape[1], oh, ow * N, d.itemsize, -(-kh // stride[0]) - 1)
    parts = [None] * len(bands)
    for first in (0, 1):
        parts[first::2] = parallel.run(band, bands[first::2])
    return dx, _in_order(parts).T.reshape(w.shape)


def _backward_gather(xc, w, d4, padding):
    """dx (C, H, W, N) and dw of a stride-1 conv through the im2col columns of dout."""
    C, H, W, N = xc.shape
    F, _, kh, kw = w.shape
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(C, -1)
    pad = (kh - 1 - padding[0], kw - 1 - padding[1])
    dx = np.empty((C, H * W * N), d4.dtype)

    def band(rows):  # bands of rows of x (and dx); returns the band's share of dw, flipped
        cols = im2col(d4, (kh, kw), (1, 1), pad, (H, W), rows).reshape(F * kh * kw, -1)
        np.matmul(w_flip, cols, out=dx[:, rows[0] * W * N:rows[1] * W * N])
        return xc[:, rows[0]:rows[1]].reshape(C, -1) @ cols.T

    dwt = _in_order(parallel.run(band, _bands(F * kh * kw, H, W * N, d4.itemsize)))
    dw = dwt.reshape(C, F, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return dx.reshape(C, H, W, N), np.ascontiguousarray(dw)
