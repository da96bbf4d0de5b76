"""Running a trained model: ``predict`` class scores and ``evaluate`` loss and accuracy."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..grad_mode import no_grad

if TYPE_CHECKING:
    from ..layers import Layer
    from ..losses import Loss


def predict(model: Layer, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class scores (N, C) for inputs x (N, ...), computed in eval mode, batch by batch,
    under ``no_grad()``: no layer keeps a cache (a backward afterwards is an error).

    Every layer's previous mode (train or eval) is restored afterwards. An empty ``x``
    is a ValueError (there is no batch to learn the number of classes from).
    """
    if len(x) == 0:
        raise ValueError(f"predict: got no inputs (an array of shape {np.shape(x)}); "
                         f"pass at least one sample")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            return np.concatenate([model(x[i:i + batch_size])
                                   for i in range(0, len(x), batch_size)])
    finally:
        for m, training in modes:
            m.training = training


def evaluate(model: Layer, loss_fn: Loss, x: np.ndarray, y: np.ndarray,
             batch_size: int = 500) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode: ``(loss, acc)`` floats."""
    scores = predict(model, x, batch_size)
    return loss_fn(scores, y), float(np.mean(scores.argmax(axis=1) == y))
