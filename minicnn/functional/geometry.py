"""Shapes and windows: the geometry the kernels and the layers share.

- ``pair``: an int or an (h, w) pair as two ints (kernel sizes, strides, paddings);
- ``conv_output_size`` / ``pool_output_size`` / ``pool_geometry``: output sizes, with
  PyTorch's rules for ``ceil_mode``;
- ``window``: the strided view that lines up one kernel offset with every output position.
"""
from __future__ import annotations

import numpy as np


def pair(v: int | tuple[int, int], name: str = "value") -> tuple[int, int]:
    """Normalise an int or (h, w) pair to a tuple of two ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {v!r}")
        h, w = v
    else:
        h = w = v
    for t in (h, w):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(h), int(w)


def conv_output_size(size: int, kernel: int, stride: int, padding: int,
                     who: str = "conv2d") -> int:
    """floor((size + 2 * padding - kernel) / stride) + 1, or a clear ValueError."""
    if size + 2 * padding < kernel:
        raise ValueError(f"{who}: kernel size {kernel} is larger than the padded input "
                         f"size {size} + 2*{padding} = {size + 2 * padding}")
    return (size + 2 * padding - kernel) // stride + 1


def window(a: np.ndarray, i: int, j: int, out_h: int, out_w: int, stride: tuple[int, int]) -> np.ndarray:
    """The view a[..., i + sh*oh, j + sw*ow] for all oh < out_h, ow < out_w."""
    sh, sw = stride
    return a[..., i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]


def pool_output_size(size: int, kernel: int, stride: int, padding: int,
                     ceil_mode: bool = False, who: str = "pool2d") -> int:
    """Output size as PyTorch defines it.

    floor((size + 2p - k) / s) + 1, or with ceil_mode ceil(...) + 1, minus one if the
    last window would start inside the right padding.
    """
    if padding * 2 > kernel:
        raise ValueError(f"{who}: padding {padding} must be at most half the kernel size {kernel}")
    if size + 2 * padding < kernel:
        raise ValueError(f"{who}: kernel size {kernel} is larger than the padded input "
                         f"size {size} + 2*{padding} = {size + 2 * padding}")
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_geometry(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int], ceil_mode: bool,
                  ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Output size and the extra bottom/right padding that ceil_mode's last window needs."""
    H, W = shape[2:]
    oh = pool_output_size(H, kernel[0], stride[0], padding[0], ceil_mode)
    ow = pool_output_size(W, kernel[1], stride[1], padding[1], ceil_mode)
    eh = max(0, (oh - 1) * stride[0] + kernel[0] - H - 2 * padding[0])
    ew = max(0, (ow - 1) * stride[1] + kernel[1] - W - 2 * padding[1])
    return (oh, ow), (eh, ew)
