"""Batch normalisation layers with PyTorch's running statistics and state-dict entries."""
import math

import numpy as np

from .. import functional as F
from ..parameter import Parameter
from . import checks as C
from .base import Layer


class _BatchNorm(Layer):
    """Normalises each channel (axis 1) by batch statistics in training, running ones in eval.

    running = (1 - momentum) * running + momentum * batch, with the unbiased batch
    variance, as in PyTorch.
    """

    ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) \
                or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if not (math.isfinite(eps) and eps > 0) or not 0 <= momentum <= 1:
            raise ValueError(f"{name}: need eps > 0 (and finite) and 0 <= momentum <= 1, got "
                             f"eps={eps}, momentum={momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        dtype = C.float_dtype(name, dtype)
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x):
        C.check_input(self, x, self.ndim, self.num_features)
        x = self._as_param_dtype(x)
        if self.training:
            m = x.size // x.shape[1]
            if m < 2:
                raise ValueError(f"{self!r}: training needs more than one value per channel, "
                                 f"got input of shape {x.shape}")
            out, cache = F.batchnorm_forward(x, self.weight.data, self.bias.data, eps=self.eps)
            self.cache = cache
            mean, var = cache.mean, cache.var  # the batch's, for the running averages
            mom = self.momentum
            self.running_mean = ((1 - mom) * self.running_mean + mom * mean).astype(x.dtype)
            self.running_var = ((1 - mom) * self.running_var + mom * var * m / (m - 1)).astype(x.dtype)
            self.num_batches_tracked = self.num_batches_tracked + 1
        else:
            out, self.cache = F.batchnorm_forward(x, self.weight.data, self.bias.data,
                                                  self.running_mean, self.running_var, self.eps)
        return self.record_output(out)

    def backward(self, dout):
        cache, dout = self.take_cache(dout)
        dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
        self._add_weight_bias_grads(dgamma, dbeta)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W for each channel."""
    ndim = 4


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of (N, C) inputs over N for each feature."""
    ndim = 2
