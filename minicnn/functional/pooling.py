"""Max and average pooling by strided windows: one whole-array pass per kernel offset.

The plain versions, a loop over every sample, channel and window, are in
:mod:`minicnn.functional.reference`; these compute the same numbers. Instead of visiting
the H' x W' windows one at a time, they visit the kh x kw positions inside a window:
``window(xp, i, j, ...)`` is the strided view of element (i, j) of every window at once,
so max pooling is kh * kw calls of ``np.maximum`` on whole arrays.

Max pooling's backward follows the project's tie rule: each window's upstream gradient
goes to its maximum, split evenly among elements that tie for it (``ties="split"``), or
all to the first maximum in row-major order (``ties="first"``, PyTorch's rule).
Overlapping windows accumulate. Every array keeps the memory layout of the input (a
conv's output is batch-last, see :mod:`.conv`). Channels are independent, so max pooling
runs blocks of channels side by side on minicnn's threads (:mod:`minicnn.parallel`).
Measurements: docs/performance.md.
"""
from __future__ import annotations

import numpy as np

from .. import parallel
from .caches import AvgPoolCache, GlobalAvgPoolCache, MaxPoolCache
from .geometry import pool_geometry, window


def _padded_shape(x, padding, extra):
    (ph, pw), (eh, ew) = padding, extra
    N, C, H, W = x.shape
    return N, C, H + 2 * ph + eh, W + 2 * pw + ew


def _pad(x, padding, extra, fill, xp=None):
    """x: (N, C, H, W) -> padded copy filled with ``fill`` in x's memory layout (written
    into ``xp`` if given), or x itself if there is no padding."""
    (ph, pw), (eh, ew) = padding, extra
    if ph == pw == eh == ew == 0:
        return x
    H, W = x.shape[2:]
    if xp is None:
        xp = np.empty_like(x, shape=_padded_shape(x, padding, extra))
    xp[:, :, :ph] = fill
    xp[:, :, ph + H:] = fill
    xp[:, :, ph:ph + H, :pw] = fill
    xp[:, :, ph:ph + H, pw + W:] = fill
    xp[:, :, ph:ph + H, pw:pw + W] = x
    return xp


def _offsets(kernel):
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _spread(dxp, kernel, stride, out_hw, put, add, write_first=True):
    """The adjoint of taking windows: fills the array dxp (uninitialised, the padded
    input's shape) so that window(dxp, i, j) receives the contribution of every kernel
    offset k = (i, j): ``put(k, dst)`` writes it into dst, ``add(k, dst)`` adds it.

    The windows of the offsets i < sh, j < sw hit disjoint positions that together cover
    the top-left (sh * H') x (sw * W') block. So with ``write_first`` (and a kernel at
    least as large as the stride) those offsets are written straight into dxp, only the
    rest of dxp is zeroed, and only the other offsets are added: non-overlapping pooling
    adds nothing at all. ``write_first=False`` is the plain zero-then-add reference.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    tiled = write_first and kh >= sh and kw >= sw
    if tiled:
        dxp[:, :, sh * oh:] = 0
        dxp[:, :, :sh * oh, sw * ow:] = 0
    else:
        dxp[...] = 0
    for k, (i, j) in enumerate(_offsets(kernel)):
        dst = window(dxp, i, j, oh, ow, stride)
        (put if tiled and i < sh and j < sw else add)(k, dst)
    return dxp


def _real(i, j, out_hw, stride, padding, hw):
    """(H', W') booleans (broadcast): whether kernel offset (i, j) of each window reads x
    rather than its padding."""
    rows = np.arange(out_hw[0]) * stride[0] + i - padding[0]
    cols = np.arange(out_hw[1]) * stride[1] + j - padding[1]
    return ((rows >= 0) & (rows < hw[0]))[:, None] & ((cols >= 0) & (cols < hw[1]))


def _crop(dxp, shape, padding):
    H, W = shape[2:]
    ph, pw = padding
    return dxp[:, :, ph:ph + H, pw:pw + W]


def max_pool2d_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int] = (0, 0), ceil_mode: bool = False,
                       ) -> tuple[np.ndarray, MaxPoolCache]:
    """Forward pass of 2-D max pooling; padding counts as -inf.

    out[n, c, i, j] = max_{p < kh, q < kw} xpad[n, c, sh*i + p, sw*j + q]

    Inputs:
    - x: (N, C, H, W), floating point
    - kernel, stride, padding: (kh, kw), (sh, sw), (ph, pw) with 2p <= k

    Returns (out, cache):
    - out: (N, C, H', W') with H' = floor((H + 2ph - kh) / sh) + 1 (ceil with ceil_mode)
    - cache: :class:`MaxPoolCache` (xp, out, x_shape, kernel, stride, padding); xp is
      the padded input

    Fast because it loops over the kh * kw offsets, not the windows: each step is one
    ``np.maximum`` of a strided view over all windows. Loop version:
    :func:`minicnn.functional.reference.max_pool2d_forward`.
    """
    (oh, ow), extra = pool_geometry(x.shape, kernel, stride, padding, ceil_mode)
    padded = _padded_shape(x, padding, extra)
    xp = x if padded == x.shape else np.empty_like(x, shape=padded)
    out = np.empty_like(window(xp, 0, 0, oh, ow, stride))  # laid out like x

    def block(c):  # the channels c: pad, then one np.maximum per kernel offset
        xpc = _pad(x[:, c], padding, extra, -np.inf, xp[:, c])
        wins = [window(xpc, i, j, oh, ow, stride) for i, j in _offsets(kernel)]
        if len(wins) == 1:
            np.copyto(out[:, c], wins[0])
        else:
            np.maximum(wins[0], wins[1], out=out[:, c])
        for win in wins[2:]:
            np.maximum(out[:, c], win, out=out[:, c])

    parallel.run(block, parallel.blocks(xp, 1))
    return out, MaxPoolCache(xp, out, x.shape, kernel, stride, padding)


def max_pool2d_backward(dout: np.ndarray, cache: MaxPoolCache, ties: str = "split") -> np.ndarray:
    """Backward pass of 2-D max pooling.

    Inputs:
    - dout: (N, C, H', W') upstream gradient
    - cache: :class:`MaxPoolCache` from :func:`max_pool2d_forward`
    - ties: "split" shares a window's gradient evenly among its tied maxima;
      "first" gives it all to the first maximum in row-major order

    Returns dx: (N, C, H, W). Overlapping windows add their shares.

    Padding is -inf and never wins: where a window's real maximum is -inf too, the
    offsets that read padding are struck from its winners (PyTorch's rule).

    Per kernel offset, ``window == out`` marks the winners of every window at once; their
    count (or a running "taken" mask for "first") gives each winner's share, and
    :func:`_spread` adds the shares back offset by offset. Loop version:
    :func:`minicnn.functional.reference.max_pool2d_backward`.
    """
    if ties not in ("split", "first"):
        raise ValueError(f"max_pool2d: ties must be 'split' or 'first', got {ties!r}")
    xp, out, shape, kernel, stride, padding = cache
    dxp = np.empty_like(xp)
    parallel.run(lambda c: _max_pool_backward_block(dout[:, c], xp[:, c], out[:, c], dxp[:, c],
                                                    shape, kernel, stride, padding, ties),
                 parallel.blocks(xp, 1))
    return _crop(dxp, shape, padding)


def _max_pool_backward_block(dout, xp, out, dxp, shape, kernel, stride, padding, ties):
    """Fill dxp with max pooling's dL/dxp for one block of channels (see max_pool2d_backward)."""
    oh, ow = out.shape[2:]
    winners = [window(xp, i, j, oh, ow, stride) == out for i, j in _offsets(kernel)]
    if np.isnan(out).any():  # NaN is the maximum, as in PyTorch: each NaN wins its window
        for w, (i, j) in zip(winners, _offsets(kernel)):
            w |= np.isnan(window(xp, i, j, oh, ow, stride))
    if xp.shape[2:] != shape[2:] and np.isneginf(out).any():
        # a window whose real maximum is -inf ties with its padding: padding never wins
        for w, (i, j) in zip(winners, _offsets(kernel)):
            w &= _real(i, j, (oh, ow), stride, padding, shape[2:])
    if ties == "split":
        count = winners[0].astype(dout.dtype)
        for w in winners[1:]:
            count += w
        share = np.divide(dout, count, out=count)  # >= 1 winner per window (a NaN wins)
    else:
        taken = winners[0].copy(order="K")
        for w in winners[1:]:
            np.greater(w, taken, out=w)  # a winner only if no earlier offset won
            taken |= w
        share = dout
    tmp = np.empty_like(share)

    def put(k, dst):
        np.multiply(winners[k], share, out=dst)

    def add(k, dst):
        dst += np.multiply(winners[k], share, out=tmp)

    _spread(dxp, kernel, stride, (oh, ow), put, add)


def _window_counts(size, out, kernel, stride, padding, include_pad):
    """How many positions of each 1-D window lie inside the counted region."""
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if not include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def avg_pool2d_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int] = (0, 0), ceil_mode: bool = False,
                       count_include_pad: bool = True) -> tuple[np.ndarray, AvgPoolCache]:
    """Forward pass of 2-D average pooling (zero padding), divisors as in PyTorch.

    out[n, c, i, j] = sum_{p, q} xpad[n, c, sh*i + p, sw*j + q] / divisor[i, j]

    Inputs:
    - x: (N, C, H, W); kernel, stride, padding: (kh, kw), (sh, sw), (ph, pw)
    - count_include_pad: whether padded zeros count in the divisor

    Returns (out, cache): out (N, C, H', W') (H' as for max pooling),
    cache :class:`AvgPoolCache` (x_shape, padded_shape, divisor, kernel, stride, padding).

    Sums the kh * kw strided views, one whole-array add each. Loop version:
    :func:`minicnn.functional.reference.avg_pool2d_forward`.
    """
    (oh, ow), extra = pool_geometry(x.shape, kernel, stride, padding, ceil_mode)
    xp = _pad(x, padding, extra, 0.0)
    total = window(xp, 0, 0, oh, ow, stride).copy(order="K")
    for i, j in _offsets(kernel)[1:]:
        total += window(xp, i, j, oh, ow, stride)
    H, W = x.shape[2:]
    rows = _window_counts(H, oh, kernel[0], stride[0], padding[0], count_include_pad)
    cols = _window_counts(W, ow, kernel[1], stride[1], padding[1], count_include_pad)
    divisor = np.outer(rows, cols).astype(x.dtype)
    return total / divisor, AvgPoolCache(x.shape, xp.shape, divisor, kernel, stride, padding)


def avg_pool2d_backward(dout: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """Backward pass of 2-D average pooling: each window spreads dout / divisor evenly.

    dout: (N, C, H', W'), cache: :class:`AvgPoolCache` -> dx: (N, C, H, W).
    One write or add per kernel offset (:func:`_spread`). Loop version:
    :func:`minicnn.functional.reference.avg_pool2d_backward`.
    """
    shape, padded_shape, divisor, kernel, stride, padding = cache
    oh, ow = dout.shape[2:]
    share = dout / divisor
    dxp = np.empty_like(dout, shape=padded_shape)

    def put(k, dst):
        dst[...] = share

    def add(k, dst):
        dst += share

    _spread(dxp, kernel, stride, (oh, ow), put, add)
    return _crop(dxp, shape, padding)


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, GlobalAvgPoolCache]:
    """x: (N, C, H, W) -> out: (N, C), out[n, c] = mean over (h, w) of x[n, c, h, w].

    cache: :class:`GlobalAvgPoolCache` (x_shape). One ``mean`` over the last two axes;
    loop version: :func:`minicnn.functional.reference.global_avg_pool2d_forward`.
    """
    return x.mean(axis=(2, 3)), GlobalAvgPoolCache(x.shape)


def global_avg_pool2d_backward(dout: np.ndarray, cache: GlobalAvgPoolCache) -> np.ndarray:
    """dout: (N, C) -> dx: (N, C, H, W), each position receives dout[n, c] / (H * W).

    One broadcast into a batch-last array ((C, H, W, N) in memory, the layout of the
    conv and pooling outputs this layer follows, so their backward reads it without
    mixing layouts); loop version: :func:`minicnn.functional.reference.global_avg_pool2d_backward`.
    """
    N, C, H, W = cache.x_shape
    dx = np.empty((C, H, W, N), dtype=dout.dtype)
    dx[...] = (dout.T / (H * W))[:, None, None, :]
    return dx.transpose(3, 0, 1, 2)
