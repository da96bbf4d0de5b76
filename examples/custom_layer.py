"""Write your own layer and check its gradients: Swish, out = x * sigmoid(beta * x),
with a learnable beta.

Run: python examples/custom_layer.py
"""
import numpy as np

from minicnn import Parameter, gradcheck
from minicnn.layers import Conv2D, Flatten, Layer, Linear
from minicnn.models import Sequential


class Swish(Layer):
    """out = x * sigmoid(beta * x) for any input shape; one learnable scalar beta."""

    def __init__(self, beta=1.0):
        super().__init__()
        # a Parameter attribute: parameters(), state_dict() and the optimizers find it
        self.beta = Parameter(np.array([beta], dtype=np.float32))

    def forward(self, x):
        s = 1 / (1 + np.exp(-self.beta.data * x))
        self.cache = (x, s)  # what backward needs
        return self.record_output(x * s)  # backward's dout must have this shape

    def backward(self, dout):
        (x, s), dout = self.take_cache(dout)  # clear error if there was no forward
        ds = s * (1 - s)  # sigmoid'(beta * x)
        # d out / d beta = x * ds * x, summed over every element into the one beta
        self.beta.accumulate(np.array([np.sum(dout * x * x * ds)], dtype=self.beta.dtype))
        return dout * (s + self.beta.data * x * ds)  # d out / d x


rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 5, 5))

# 1. The layer alone: dL/dx and dL/dbeta against centred differences (in float64).
result = gradcheck(Swish(beta=1.5), x)
print("Swish alone:      ", result)
assert result.max_error < 1e-6

# 2. Inside a network: gradcheck works on any Layer, a Sequential included.
net = Sequential(Conv2D(3, 4, 3, padding=1, seed=0), Swish(), Flatten(),
                 Linear(4 * 5 * 5, 3, seed=1))
result = gradcheck(net, x)
print("Conv-Swish-Linear:", result)
assert result.max_error < 1e-6

# 3. A broken backward is caught: forget the beta * x * ds term of d out / d x.
class BrokenSwish(Swish):
    def backward(self, dout):
        (x, s), dout = self.take_cache(dout)
        ds = s * (1 - s)
        self.beta.accumulate(np.array([np.sum(dout * x * x * ds)], dtype=self.beta.dtype))
        return dout * s  # forgot + beta * x * ds


result = gradcheck(BrokenSwish(), x)
print("Broken backward:  ", result)
assert result.worst == "input" and result.max_error > 1e-3
print(f"gradcheck flags {result.worst!r}: fix the backward until max_error < 1e-6.")
