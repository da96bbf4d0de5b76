"""minicnn: a small, modular convolutional-network framework in numpy.

The names below load on first use, so ``import minicnn`` stays light and the command-line
front can set BLAS options before numpy is imported.
"""
import importlib

__version__ = "0.2.0"
__all__ = ["Parameter", "get_num_threads", "gradcheck", "no_grad", "set_num_threads", "__version__"]

_LAZY = {"Parameter": ".parameter", "gradcheck": ".gradient_check", "no_grad": ".grad_mode",
         "get_num_threads": ".parallel", "set_num_threads": ".parallel"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
