"""Ready-made networks for 3x32x32 images, each built from one seeded Generator.

Every factory takes ``num_classes``, ``seed`` (int, numpy Generator or None) and
``dtype``; the same seed gives bit-identical initial weights.
"""
import numpy as np

from ..layers import (BatchNorm2D, Conv2D, Flatten, GlobalAvgPool2D, Linear, MaxPool2D,
                      ReLU)
from ..layers.base import as_generator
from .sequential import Sequential


def three_layer_convnet(num_classes=10, seed=None, dtype=np.float32, num_filters=32,
                        filter_size=7, hidden_dim=100):
    """The classic CS231n three-layer net: conv - relu - 2x2 max pool - affine - relu - affine.

    Input (N, 3, 32, 32) -> scores (N, num_classes). The conv keeps the 32x32 size
    (padding = filter_size // 2), the pool halves it, so the first affine layer sees
    num_filters * 16 * 16 features.
    """
    rng = as_generator(seed)
    return Sequential(
        Conv2D(3, num_filters, filter_size, padding=filter_size // 2, seed=rng, dtype=dtype),
        ReLU(),
        MaxPool2D(2, 2),
        Flatten(),
        Linear(num_filters * 16 * 16, hidden_dim, seed=rng, dtype=dtype),
        ReLU(),
        Linear(hidden_dim, num_classes, seed=rng, dtype=dtype),
    )


def _conv_bn_relu(c_in, c_out, rng, dtype):
    return [Conv2D(c_in, c_out, 3, padding=1, seed=rng, dtype=dtype),
            BatchNorm2D(c_out, dtype=dtype), ReLU()]


def vgg_small(num_classes=10, seed=None, dtype=np.float32, widths=(16, 32, 64)):
    """A small VGG: per stage two [conv3x3 - batchnorm - relu] then a 2x2 max pool;
    global average pooling and one affine layer on top.

    Input (N, 3, 32, 32) -> scores (N, num_classes). With the default widths
    (16, 32, 64) the feature maps go 16x32x32 -> 32x16x16 -> 64x8x8 -> 64x4x4, then (N, 64).
    Any input size works (global pooling); ``widths=(32, 64)`` gives two stages.
    """
    rng = as_generator(seed)
    layers, c_in = [], 3
    for c_out in widths:
        layers += _conv_bn_relu(c_in, c_out, rng, dtype) + _conv_bn_relu(c_out, c_out, rng, dtype)
        layers.append(MaxPool2D(2, 2))
        c_in = c_out
    layers += [GlobalAvgPool2D(), Linear(c_in, num_classes, seed=rng, dtype=dtype)]
    return Sequential(*layers)


def linear_classifier(num_classes=10, seed=None, dtype=np.float32):
    """Softmax regression on raw pixels, Flatten - affine: the baseline to beat."""
    rng = as_generator(seed)
    return Sequential(Flatten(), Linear(3 * 32 * 32, num_classes, seed=rng, dtype=dtype))


#: Model name -> factory(num_classes=10, seed=None, dtype=np.float32), for the CLI.
MODELS = {
    "three_layer_convnet": three_layer_convnet,
    "vgg_small": vgg_small,
    "linear": linear_classifier,
}


def build_model(name, num_classes=10, seed=None, dtype=np.float32):
    """``MODELS[name](...)`` with a clear ValueError for an unknown name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes, seed=seed, dtype=dtype)
