"""A trainable array and its gradient."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


class Parameter:
    """A trainable tensor: ``data`` holds the values, ``grad`` the accumulated dL/d(data).

    As in PyTorch, ``backward`` *adds* into ``grad`` and ``zero_grad`` clears it. ``grad``
    may be set to None (no gradient yet): ``accumulate`` and ``zero_grad`` then start a
    new one, and the optimizers skip the parameter.
    """

    def __init__(self, data: ArrayLike) -> None:
        self.data = np.asarray(data)
        if self.data.dtype.kind != "f":
            raise TypeError(f"Parameter: data must hold floats (float32, float64), got an "
                            f"array of {self.data.dtype}")
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        if self.grad is None or self.grad.shape != self.data.shape or self.grad.dtype != self.dtype:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad[...] = 0

    def accumulate(self, g: np.ndarray) -> None:
        """grad += g; g must have the parameter's shape (no silent broadcasting)."""
        if np.shape(g) != self.data.shape:
            raise ValueError(f"Parameter of shape {self.data.shape}: gradient has shape {np.shape(g)}")
        if self.grad is None:
            self.grad = np.zeros_like(self.data)
        self.grad += g

    def astype(self, dtype: DTypeLike) -> Parameter:
        """Cast data and grad to ``dtype``, a floating type; returns self."""
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"Parameter.astype: dtype must be a floating type such as "
                            f"np.float32, got {dtype!r}")
        self.data = self.data.astype(dt)
        self.grad = None if self.grad is None else self.grad.astype(dt)
        return self

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"
