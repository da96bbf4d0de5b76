"""minicnn: a small, modular convolutional-network framework in numpy."""
from .gradcheck import gradcheck
from .parameter import Parameter

__version__ = "0.1.0"
__all__ = ["Parameter", "gradcheck", "__version__"]
