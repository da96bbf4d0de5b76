"""Layer objects: each keeps its parameters, its children and the cache of its last forward."""
from .activations import Dropout, LeakyReLU, ReLU
from .base import Layer
from .conv import Conv2D
from .linear import Flatten, Linear
from .normalization import BatchNorm1D, BatchNorm2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .residual import Residual

__all__ = ["Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "ReLU", "LeakyReLU",
           "Dropout", "Flatten", "Linear", "BatchNorm1D", "BatchNorm2D", "Residual"]
