"""Stateless kernels: ``*_forward(x, ...) -> (out, cache)``, ``*_backward(dout, cache)``.

Every kernel here is vectorised for speed and has a loop twin with the same signature
and cache type in :mod:`minicnn.functional.reference`; the caches are the named tuples
of :mod:`minicnn.functional.caches`. ``use_reference()`` runs any model on the twins.
"""
import contextlib
import sys
import threading

from . import allocator, caches, reference
from .activations import (
    dropout_backward,
    dropout_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
)
from .conv import col2im, conv2d_backward, conv2d_forward, im2col
from .geometry import conv_output_size, pair, pool_geometry, pool_output_size, window
from .linear import flatten_backward, flatten_forward, linear_backward, linear_forward
from .losses import mse, softmax_cross_entropy
from .normalization import batchnorm_backward, batchnorm_forward
from .pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

__all__ = ["FAST", "avg_pool2d_backward", "avg_pool2d_forward", "batchnorm_backward",
           "batchnorm_forward", "caches", "col2im", "conv2d_backward", "conv2d_forward",
           "conv_output_size", "dropout_backward", "dropout_forward", "flatten_backward",
           "flatten_forward", "global_avg_pool2d_backward", "global_avg_pool2d_forward", "im2col",
           "leaky_relu_backward", "leaky_relu_forward", "linear_backward", "linear_forward",
           "max_pool2d_backward", "max_pool2d_forward", "mse", "pair", "pool_geometry",
           "pool_output_size", "reference",
           "relu_backward", "relu_forward", "softmax_cross_entropy", "use_reference", "window"]

allocator.keep_freed_memory()

#: The fast kernels, by name: what ``use_reference`` puts back when it ends.
FAST = {name: globals()[name] for name in reference.__all__}
_switch = {"depth": 0, "lock": threading.RLock()}


def _install(kernels):
    module = sys.modules[__name__]
    for name, fn in kernels.items():
        setattr(module, name, fn)


@contextlib.contextmanager
def use_reference():
    """Run every built-in layer and loss on the loop kernels of :mod:`.reference`.

    Inside ``with minicnn.functional.use_reference():`` the names ``conv2d_forward``,
    ``max_pool2d_backward``, ... of this module are the reference kernels; on leaving
    (also through an exception) they are the fast ones again. Layers call
    ``F.<name>(...)`` on this module when they run, so a model built before, inside or
    after the block follows the switch; the caches have the same types on both paths.
    Yields the :mod:`.reference` module.

    The switch is process-wide (not per thread) and nests: an inner block leaves the
    reference kernels in place for the outer one. Code that imported a kernel by name
    (``from minicnn.functional import conv2d_forward``) keeps the one it imported.
    """
    with _switch["lock"]:
        _switch["depth"] += 1
        if _switch["depth"] == 1:
            _install({name: getattr(reference, name) for name in reference.__all__})
    try:
        yield reference
    finally:
        with _switch["lock"]:
            _switch["depth"] -= 1
            if _switch["depth"] == 0:
                _install(FAST)
