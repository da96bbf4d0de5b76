"""Numerical gradient checking for any layer, including ones users write."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from .layers import Layer


@dataclass
class GradcheckResult:
    """Relative errors ||analytic - numeric|| / max(||analytic|| + ||numeric||, 1e-3), per tensor."""
    errors: dict = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values())

    @property
    def worst(self) -> str:
        return max(self.errors, key=self.errors.get)

    def __repr__(self):
        items = ", ".join(f"{k}: {v:.2e}" for k, v in self.errors.items())
        return f"GradcheckResult(max_error={self.max_error:.2e}, worst={self.worst!r}; {items})"


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-3) -> float:
    """Norm-wise relative error; gradients that are (near) zero, like a bias before
    batch-norm, are compared absolutely through the ``floor`` on the denominator."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), floor))


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Centred differences of the scalar f() with respect to the array x (changed in place)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(layer: Layer, x: np.ndarray, eps: float = 1e-6, seed: int = 0,
              input_grad: bool = True) -> GradcheckResult:
    """Check a layer's dL/dx and every parameter's gradient against centred differences.

    Works on a float64 copy of ``layer`` (the original is untouched) with the scalar
    L = sum(layer(x) * g) for a fixed random g. Returns a :class:`GradcheckResult`;
    ``result.max_error`` is the worst relative error (smooth layers: < 1e-6).
    The layer must be deterministic given its state (dropout: use eval mode).
    """
    layer = copy.deepcopy(layer).astype(np.float64)
    x = np.array(x, dtype=np.float64)
    g = np.random.default_rng(seed).standard_normal(layer.forward(x).shape)
    loss = lambda: float(np.sum(layer.forward(x) * g))

    layer.zero_grad()
    layer.forward(x)
    dx = layer.backward(g)
    result = GradcheckResult()
    if input_grad:
        result.errors["input"] = rel_error(np.asarray(dx), numerical_grad(loss, x, eps))
    for name, p in layer.named_parameters():
        result.errors[name] = rel_error(p.grad, numerical_grad(loss, p.data, eps))
    if not result.errors:
        raise ValueError(f"gradcheck: {layer!r} has no input gradient checked and no parameters")
    return result
