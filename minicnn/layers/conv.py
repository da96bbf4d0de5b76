"""Convolution layer."""
import numpy as np

from .. import functional as F
from ..functional.geometry import pair
from ..init import weight_and_bias
from ..parameter import Parameter
from . import checks as C
from .base import Layer
from .checks import as_generator, short


class Conv2D(Layer):
    """2-D convolution over (N, C, H, W) inputs; weight (out, in, kh, kw) as in PyTorch.

    Output size: H' = (H + 2 * padding - kernel_size) // stride + 1.
    ``init="he"`` (default): weight ~ N(0, 2 / fan_in), bias 0; ``init="pytorch"``: both
    ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as ``nn.Conv2d``; fan_in = in_channels * kh * kw
    (see :mod:`minicnn.init`); drawn from ``seed`` (int or numpy Generator).
    """

    can_skip_input_grad = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 bias=True, seed=None, dtype=np.float32, init="he"):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"Conv2D: {name} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "Conv2D kernel_size")
        self.stride = pair(stride, "Conv2D stride")
        self.padding = pair(padding, "Conv2D padding")
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.padding) < 0:
            raise ValueError(f"Conv2D: kernel_size and stride must be positive and padding "
                             f"non-negative, got kernel_size={kernel_size}, stride={stride}, "
                             f"padding={padding}")
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        rng = as_generator(seed, "Conv2D")
        dtype = C.float_dtype("Conv2D", dtype)
        w, b = weight_and_bias(init, (out_channels, in_channels, kh, kw), fan_in, rng, dtype, bias)
        self.weight = Parameter(w)
        self.bias = None if b is None else Parameter(b)

    def forward(self, x):
        C.check_input(self, x, 4, self.in_channels)
        C.check_window(self, x, self.kernel_size, self.padding)
        x = self._as_param_dtype(x)
        b = None if self.bias is None else self.bias.data
        out, self.cache = F.conv2d_forward(x, self.weight.data, b, self.stride, self.padding)
        return self.record_output(out)

    def backward(self, dout, input_grad=True):
        cache, dout = self.take_cache(dout)
        dx, dw, db = F.conv2d_backward(dout, cache, input_grad)
        self._add_weight_bias_grads(dw, db)
        return dx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={short(self.kernel_size)}, "
             f"stride={short(self.stride)}, padding={short(self.padding)}")
        return s if self.bias is not None else s + ", bias=False"
