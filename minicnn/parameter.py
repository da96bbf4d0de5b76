"""A trainable array and its gradient."""
import numpy as np


class Parameter:
    """A trainable tensor: ``data`` holds the values, ``grad`` the accumulated dL/d(data).

    As in PyTorch, ``backward`` *adds* into ``grad`` and ``zero_grad`` clears it.
    """

    def __init__(self, data):
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad[...] = 0

    def accumulate(self, g):
        """grad += g; g must have the parameter's shape (no silent broadcasting)."""
        if np.shape(g) != self.data.shape:
            raise ValueError(f"Parameter of shape {self.data.shape}: gradient has shape {np.shape(g)}")
        self.grad += g

    def astype(self, dtype):
        self.data = self.data.astype(dtype)
        self.grad = self.grad.astype(dtype)
        return self

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"
