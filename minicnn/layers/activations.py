"""Activation layers and dropout."""
import math

from .. import functional as F
from . import checks as C
from .base import Layer
from .checks import as_generator


class ReLU(Layer):
    """out = max(x, 0)."""

    def forward(self, x):
        out, self.cache = F.relu_forward(C.check_any(self, x))
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.relu_backward(dout, cache)


class LeakyReLU(Layer):
    """out = x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        try:
            slope = float(negative_slope)
        except (TypeError, ValueError):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got "
                            f"{negative_slope!r}") from None
        if not math.isfinite(slope):
            raise ValueError(f"LeakyReLU: negative_slope must be a finite number, got "
                             f"{negative_slope!r}")
        self.negative_slope = slope

    def forward(self, x):
        out, self.cache = F.leaky_relu_forward(C.check_any(self, x), self.negative_slope)
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.leaky_relu_backward(dout, cache)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Dropout(Layer):
    """Inverted dropout: zeroes elements with probability p in training, identity in eval."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = C.number("Dropout", "p", p, 0, 1, high_open=True)
        self.rng = as_generator(seed, "Dropout")

    def forward(self, x):
        out, self.cache = F.dropout_forward(C.check_any(self, x), self.p, self.rng, self.training)
        return self.record_output(out)  # cache.mask is None for the identity (eval mode or p == 0)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.dropout_backward(dout, cache)

    def extra_repr(self):
        return f"p={self.p}"
