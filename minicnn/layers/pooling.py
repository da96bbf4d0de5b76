"""Pooling layers: max, average and global average."""
from .. import functional as F
from ..functional.geometry import pair
from . import checks as C
from .base import Layer
from .checks import short


class _Pool2D(Layer):
    """Shared hyper-parameters and checks of windowed pooling."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, f"{name} kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, f"{name} stride")
        self.padding = pair(padding, f"{name} padding")
        self.ceil_mode = bool(ceil_mode)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.padding) < 0:
            raise ValueError(f"{name}: kernel_size and stride must be positive and padding "
                             f"non-negative, got kernel_size={kernel_size}, stride={stride}, "
                             f"padding={padding}")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {padding} must be at most half of "
                             f"kernel_size {kernel_size}")

    def _check(self, x):
        C.check_input(self, x, 4)
        C.check_window(self, x, self.kernel_size, self.padding)
        return C.as_float(x)

    def extra_repr(self):
        s = (f"kernel_size={short(self.kernel_size)}, stride={short(self.stride)}, "
             f"padding={short(self.padding)}")
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2D(_Pool2D):
    """Max pooling; padding counts as -inf.

    Backward: ``ties="split"`` (default) divides each window's gradient evenly among
    the elements tied for its maximum; ``ties="first"`` gives it to the first maximum
    in row-major order, as PyTorch does. Overlapping windows accumulate.
    """

    copies_reachable_output = True  # out only marks the winners, as PyTorch's indices do

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, ties="split"):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if ties not in ("split", "first"):
            raise ValueError(f"MaxPool2D: ties must be 'split' or 'first', got {ties!r}")
        self.ties = ties

    def forward(self, x):
        out, self.cache = F.max_pool2d_forward(self._check(x), self.kernel_size, self.stride,
                                               self.padding, self.ceil_mode)
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.max_pool2d_backward(dout, cache, self.ties)

    def extra_repr(self):
        return super().extra_repr() + (", ties='first'" if self.ties == "first" else "")


class AvgPool2D(_Pool2D):
    """Average pooling with zero padding; ``count_include_pad`` as in PyTorch."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        out, self.cache = F.avg_pool2d_forward(self._check(x), self.kernel_size, self.stride,
                                               self.padding, self.ceil_mode,
                                               self.count_include_pad)
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.avg_pool2d_backward(dout, cache)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")


class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each feature map."""

    def forward(self, x):
        C.check_input(self, x, 4)
        out, self.cache = F.global_avg_pool2d_forward(C.as_float(x))
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        return F.global_avg_pool2d_backward(dout, cache)
