"""Loss kernels: ``loss_fn(prediction, target) -> (loss, dprediction)``.

The kernels trust their inputs; :mod:`minicnn.losses` wraps them with input checks.
Both work on the whole batch at once; the loops over samples are in
:mod:`minicnn.functional.reference`.
"""
from __future__ import annotations

import numpy as np


def softmax_cross_entropy(scores: np.ndarray, y: np.ndarray,
                          label_smoothing: float = 0.0) -> tuple[float, np.ndarray]:
    """
    Softmax cross-entropy loss, averaged over the batch, with optional label smoothing.

    Inputs:
    - scores: Array of shape (N, C); scores[i, c] is the score of class c for example i.
    - y: Integer array of shape (N,) of labels, 0 <= y[i] < C.
    - label_smoothing: eps in [0, 1]: the target of example i is the distribution
      q_i = (1 - eps) * one_hot(y[i]) + eps / C instead of one_hot(y[i]) (PyTorch's
      ``cross_entropy(label_smoothing=eps)``; Szegedy et al., "Rethinking the Inception
      architecture").

    Returns a tuple of:
    - loss: Python float, L = -(1/N) sum_i sum_c q_i[c] log softmax(scores[i])[c]; with
      eps = 0 that is -(1/N) sum_i log(exp(scores[i, y[i]]) / sum_c exp(scores[i, c]))
    - dscores: Gradient dL/dscores of shape (N, C) and the dtype of scores,
      (softmax(scores) - q) / N.

    All rows at once, with the largest score subtracted from each row before ``exp`` so
    that nothing overflows. Loop version (eps = 0):
    :func:`minicnn.functional.reference.softmax_cross_entropy`.
    """
    N, C = scores.shape
    rows = np.arange(N)
    shifted = scores - scores.max(axis=1, keepdims=True)  # largest exponent is 0: no overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].mean()
    dscores = np.exp(log_probs)
    if label_smoothing:  # q = (1 - eps) one_hot + eps / C, so -sum_c q_c log p_c splits in two
        eps = label_smoothing
        loss = (1 - eps) * loss - eps * log_probs.mean(axis=1).mean()
        dscores -= eps / C
        dscores[rows, y] -= 1 - eps
    else:
        dscores[rows, y] -= 1
    dscores /= N
    return float(loss), dscores.astype(scores.dtype, copy=False)


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """
    Mean squared error over all elements (PyTorch's ``MSELoss`` with reduction='mean').

    Inputs:
    - pred: Array of any shape, e.g. (N, D).
    - target: Array of the same shape as pred.

    Returns a tuple of:
    - loss: Python float, L = (1/M) sum_j (pred_j - target_j)^2 with M = pred.size
    - dpred: Gradient dL/dpred = 2 (pred - target) / M, shape and dtype of pred.

    Loop version: :func:`minicnn.functional.reference.mse`.
    """
    diff = pred - target
    loss = np.mean(diff * diff)
    dpred = (2 / diff.size) * diff
    return float(loss), dpred.astype(pred.dtype, copy=False)
