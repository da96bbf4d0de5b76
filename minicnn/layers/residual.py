"""Residual: a layer built from other layers, out = body(x) + shortcut(x)."""
from __future__ import annotations

import numpy as np

from .base import Layer


class Residual(Layer):
    """out = body(x) + shortcut(x), with the identity as shortcut when ``shortcut`` is None.

    Backward sends dout into both branches and adds their input gradients:
    dL/dx = body.backward(dout) + shortcut.backward(dout)   (+ dout for the identity),
    the shortcut's first, since it ran last (a layer used in both branches then finds the
    cache of each call in turn).
    ``body`` and ``shortcut`` are children, so their parameters, buffers and modes are
    this layer's too; state-dict keys read "body.0.weight", "shortcut.1.running_mean".
    """

    def __init__(self, body: Layer, shortcut: Layer | None = None) -> None:
        super().__init__()
        for name, part in (("body", body), ("shortcut", shortcut)):
            if part is not None and not isinstance(part, Layer):
                raise TypeError(f"Residual: {name} must be a Layer, got {type(part).__name__}")
        if body is None:
            raise TypeError("Residual: body must be a Layer, got None")
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self.body(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if np.shape(skip) != out.shape:
            raise ValueError(f"Residual: body output {out.shape} and shortcut output "
                             f"{np.shape(skip)} differ; give a shortcut that maps the input "
                             "to the body's output shape (e.g. a 1x1 Conv2D with the same stride)")
        return self.record_output(out + skip.astype(out.dtype, copy=False))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        _, dout = self.take_cache(dout)
        skip = dout if self.shortcut is None else self.shortcut.backward(dout)
        return self.body.backward(dout) + skip
