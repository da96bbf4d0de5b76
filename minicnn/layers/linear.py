"""Fully connected layer and Flatten."""
import numpy as np

from .. import functional as F
from ..init import weight_and_bias
from ..parameter import Parameter
from . import checks as C
from .base import Layer
from .checks import as_generator


class Linear(Layer):
    """out = x W^T + b for x: (N, in_features); weight (out_features, in_features) as in PyTorch.

    ``init="he"`` (default): weight ~ N(0, 2 / in_features), bias 0; ``init="pytorch"``:
    both ~ U(-1/sqrt(in_features), 1/sqrt(in_features)), as ``nn.Linear`` (see
    :mod:`minicnn.init`); drawn from ``seed`` (int or numpy Generator).
    """

    can_skip_input_grad = True

    def __init__(self, in_features, out_features, bias=True, seed=None, dtype=np.float32,
                 init="he"):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = as_generator(seed, "Linear")
        dtype = C.float_dtype("Linear", dtype)
        w, b = weight_and_bias(init, (out_features, in_features), in_features, rng, dtype, bias)
        self.weight = Parameter(w)
        self.bias = None if b is None else Parameter(b)

    def forward(self, x):
        C.check_input(self, x, 2, self.in_features)
        b = None if self.bias is None else self.bias.data
        out, self.cache = F.linear_forward(self._as_param_dtype(x), self.weight.data, b)
        return self.record_output(out)

    def backward(self, dout, input_grad=True):
        cache, dout = self.take_cache(dout)
        dx, dw, db = F.linear_backward(dout, cache, input_grad)
        self._add_weight_bias_grads(dw, db)
        return dx

    def extra_repr(self):
        s = f"in_features={self.in_features}, out_features={self.out_features}"
        return s if self.bias is not None else s + ", bias=False"


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise ValueError(f"{self!r}: expected an array of shape (N, ...) with at least "
                             f"2 dimensions, got {getattr(x, 'shape', type(x).__name__)}")
        if x.shape[0] == 0:
            raise ValueError(f"{self!r}: got an empty batch, shape {x.shape}")
        C.check_real(self, x)
        out, self.cache = F.flatten_forward(x)
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.flatten_backward(dout, cache)
