"""A trainable array and its gradient."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


class Parameter:
    """A trainable tensor: ``data`` holds the values, ``grad`` the accumulated dL/d(data).

    As in PyTorch, ``backward`` *adds* into ``grad`` and ``zero_grad`` clears it.
    """

    def __init__(self, data: ArrayLike) -> None:
        self.data = np.asarray(data)
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
        self.grad[...] = 0

    def accumulate(self, g: np.ndarray) -> None:
        """grad += g; g must have the parameter's shape (no silent broadcasting)."""
        if np.shape(g) != self.data.shape:
            raise ValueError(f"Parameter of shape {self.data.shape}: gradient has shape {np.shape(g)}")
        self.grad += g

    def astype(self, dtype: DTypeLike) -> Parameter:
        self.data = self.data.astype(dtype)
        self.grad = self.grad.astype(dtype)
        return self

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"
