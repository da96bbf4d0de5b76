"""Loss objects: ``loss = loss_fn(scores, y)`` then ``dscores = loss_fn.backward()``."""
import numpy as np

from . import functional as F  # kernels looked up at call time: use_reference() applies

_KINDS = {"f": "floats", "iu": "integers", "iuf": "real numbers"}


class Loss:
    """Base of the losses: calling runs ``forward`` and keeps dL/d(prediction), ``self.grad``,
    for ``backward``. (A loss stores its gradient, not a layer's cache: it is computed with
    the loss, as in CS231n's ``softmax_loss``.)"""

    def __init__(self):
        self.grad = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def backward(self):
        """Gradient of the last loss with respect to the prediction (same shape and dtype)."""
        if self.grad is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        return self.grad.copy()

    def __repr__(self):
        return f"{type(self).__name__}()"

    def _check_array(self, a, what, kinds="f"):
        """Raise TypeError unless ``a`` is a numpy array whose dtype kind is in ``kinds``."""
        name = type(self).__name__
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}: {what} must be a numpy array, got {type(a).__name__}")
        if a.dtype.kind not in kinds:
            raise TypeError(f"{name}: {what} must be a numpy array of {_KINDS[kinds]}, "
                            f"got dtype {a.dtype}")


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, averaged over the batch
    (PyTorch's ``nn.CrossEntropyLoss`` on raw class scores).

    - scores: (N, C) floating-point class scores (logits).
    - y: (N,) integer labels in [0, C).
    - label_smoothing: eps in [0, 1]; the target becomes (1 - eps) on the true class plus
      eps / C on every class (PyTorch's ``label_smoothing``), so the network is not pushed
      to ever larger scores for the true class. The loss then never reaches 0: its
      minimum is the entropy of that target.
    Returns the loss as a Python float; ``backward()`` returns dL/dscores, shape (N, C).
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"SoftmaxCrossEntropy: label_smoothing must be a number between "
                             f"0.0 and 1.0, got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def __repr__(self):
        if self.label_smoothing:
            return f"SoftmaxCrossEntropy(label_smoothing={self.label_smoothing})"
        return "SoftmaxCrossEntropy()"

    def forward(self, scores, y):
        self.grad = None
        self._check_array(scores, "scores")
        self._check_array(y, "labels", kinds="iu")
        if scores.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expected scores of shape (N, C), "
                             f"got shape {scores.shape}")
        N, C = scores.shape
        if N == 0:
            raise ValueError(f"SoftmaxCrossEntropy: got an empty batch, scores of shape {scores.shape}")
        if y.shape != (N,):
            raise ValueError(f"SoftmaxCrossEntropy: expected labels of shape (N,) = ({N},) to "
                             f"match scores of shape {scores.shape}, got shape {y.shape}")
        bad = np.flatnonzero((y < 0) | (y >= C))
        if bad.size:
            i = bad[0]
            raise ValueError(f"SoftmaxCrossEntropy: label {y[i]} at index {i} is out of range "
                             f"[0, {C}) for scores of shape {scores.shape}")
        loss, self.grad = F.softmax_cross_entropy(scores, y, self.label_smoothing)
        return loss


class MSELoss(Loss):
    """Mean squared error over all elements (PyTorch's ``nn.MSELoss``, reduction='mean').

    - pred: floating-point array of any shape.
    - target: real array of the same shape.
    Returns the loss as a Python float; ``backward()`` returns dL/dpred, shape of pred.
    """

    def forward(self, pred, target):
        self.grad = None
        self._check_array(pred, "pred")
        self._check_array(target, "target", kinds="iuf")
        if pred.shape != target.shape:
            raise ValueError(f"MSELoss: pred and target must have the same shape, "
                             f"got pred {pred.shape} and target {target.shape}")
        if pred.size == 0:
            raise ValueError(f"MSELoss: got empty arrays of shape {pred.shape}")
        loss, self.grad = F.mse(pred, target)
        return loss
