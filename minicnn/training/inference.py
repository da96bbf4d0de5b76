"""Running a trained model: ``predict`` class scores and ``evaluate`` loss and accuracy."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..grad_mode import no_grad

if TYPE_CHECKING:
    from ..layers import Layer
    from ..losses import Loss


#: Test-time augmentations: the views of a batch whose scores ``predict`` averages.
TTA = {"none": (lambda x: x,),
       "flip": (lambda x: x, lambda x: x[..., ::-1])}  # the mirror image, as augment "flip"


def predict(model: Layer, x: np.ndarray, batch_size: int = 500, tta: str = "none") -> np.ndarray:
    """Class scores (N, C) for inputs x (N, ...), computed in eval mode, batch by batch,
    under ``no_grad()``: no layer keeps a cache (a backward afterwards is an error).

    ``tta="flip"`` (test-time augmentation): each image's scores are the mean of its own
    and its mirror image's (the last axis reversed, as the "flip" augmentation flips in
    training), for a model trained with flips. Every layer's previous mode (train or
    eval) is restored afterwards. An empty ``x`` is a ValueError (there is no batch to
    learn the number of classes from).
    """
    if tta not in TTA:
        raise ValueError(f"predict: tta must be one of {', '.join(map(repr, TTA))}, got {tta!r}")
    if len(x) == 0:
        raise ValueError(f"predict: got no inputs (an array of shape {np.shape(x)}); "
                         f"pass at least one sample")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    views = TTA[tta]
    try:
        with no_grad():
            return np.concatenate([_mean([model(view(x[i:i + batch_size])) for view in views])
                                   for i in range(0, len(x), batch_size)])
    finally:
        for m, training in modes:
            m.training = training


def _mean(scores):
    return scores[0] if len(scores) == 1 else sum(scores[1:], scores[0]) / len(scores)


def evaluate(model: Layer, loss_fn: Loss, x: np.ndarray, y: np.ndarray,
             batch_size: int = 500, tta: str = "none") -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode: ``(loss, acc)``
    floats; ``tta`` as in :func:`predict` (the loss of the averaged scores)."""
    scores = predict(model, x, batch_size, tta)
    return loss_fn(scores, y), float(np.mean(scores.argmax(axis=1) == y))
