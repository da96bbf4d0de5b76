"""Ready-made networks, each built from one seeded Generator.

Every factory takes ``num_classes``, ``in_channels`` (3 for colour images, 1 for
grayscale), ``seed`` (int, numpy Generator or None) and ``dtype``; networks with a
fully connected layer on the feature maps also take ``image_size`` (an int or (h, w)).
The same seed gives bit-identical initial weights. Every layer is He-initialised
(:mod:`minicnn.init`), the classifier included, so a fresh network's first loss is
somewhat above ln(num_classes) (2.4-3.5 measured for ten classes).
"""
import numpy as np

from ..functional.geometry import pair
from ..layers import (
    BatchNorm2D,
    Conv2D,
    Flatten,
    GlobalAvgPool2D,
    Linear,
    MaxPool2D,
    ReLU,
    Residual,
)
from ..layers.checks import as_generator
from .sequential import Sequential


def three_layer_convnet(num_classes=10, in_channels=3, image_size=32, seed=None,
                        dtype=np.float32, num_filters=32, filter_size=7, hidden_dim=100):
    """The classic CS231n three-layer net: conv - relu - 2x2 max pool - affine - relu - affine.

    Input (N, in_channels, H, W) -> scores (N, num_classes), with (H, W) = image_size. The
    conv keeps the size (padding = filter_size // 2, odd filter_size), the pool halves it,
    so the first affine layer sees num_filters * (H // 2) * (W // 2) features.
    """
    rng = as_generator(seed, "three_layer_convnet")
    h, w = pair(image_size, "three_layer_convnet image_size")
    return Sequential(
        Conv2D(in_channels, num_filters, filter_size, padding=filter_size // 2, seed=rng,
               dtype=dtype),
        ReLU(),
        MaxPool2D(2, 2),
        Flatten(),
        Linear(num_filters * (h // 2) * (w // 2), hidden_dim, seed=rng, dtype=dtype),
        ReLU(),
        Linear(hidden_dim, num_classes, seed=rng, dtype=dtype),
    )


def _conv_bn_relu(c_in, c_out, rng, dtype):
    return [Conv2D(c_in, c_out, 3, padding=1, seed=rng, dtype=dtype),
            BatchNorm2D(c_out, dtype=dtype), ReLU()]


def vgg_small(num_classes=10, in_channels=3, seed=None, dtype=np.float32, widths=(16, 32, 64),
              image_size=None):
    """A small VGG: per stage two [conv3x3 - batchnorm - relu] then a 2x2 max pool; on top,
    global average pooling and one affine layer, or with ``image_size`` the classic VGG
    head: the last feature map flattened into the affine layer.

    Input (N, in_channels, H, W) -> scores (N, num_classes). On 32x32 inputs with the
    default widths (16, 32, 64) the feature maps go 16x32x32 -> 32x16x16 -> 64x8x8 ->
    64x4x4, then (N, 64). Any input size works (global pooling); ``widths=(32, 64)`` gives
    two stages. ``image_size=28`` (an int or (h, w)): inputs of that size only, and the
    affine layer sees where in the image each feature was (64x3x3 = 576 features for
    1x28x28 Fashion-MNIST images: each pool floors, 28 -> 14 -> 7 -> 3).
    """
    rng = as_generator(seed, "vgg_small")
    layers, c_in = [], in_channels
    for c_out in widths:
        layers += _conv_bn_relu(c_in, c_out, rng, dtype) + _conv_bn_relu(c_out, c_out, rng, dtype)
        layers.append(MaxPool2D(2, 2))
        c_in = c_out
    if image_size is None:
        return Sequential(*layers, GlobalAvgPool2D(), Linear(c_in, num_classes, seed=rng, dtype=dtype))
    h, w = pair(image_size, "vgg_small image_size")
    h, w = h >> len(widths), w >> len(widths)  # floor-halved once per stage
    if min(h, w) < 1:
        raise ValueError(f"vgg_small: an image of {image_size} is smaller than 1x1 after "
                         f"{len(widths)} 2x2 pools; give at least {2 ** len(widths)} pixels "
                         f"a side, or image_size=None (global pooling)")
    return Sequential(*layers, Flatten(), Linear(c_in * h * w, num_classes, seed=rng, dtype=dtype))


def basic_block(c_in, c_out, stride=1, seed=None, dtype=np.float32):
    """ResNet's basic block: Residual(conv3x3-bn-relu-conv3x3-bn, shortcut), then ReLU.

    The shortcut is the identity when the shape stays; where it changes (``stride`` > 1 or
    another channel count) it is a strided 1x1 conv and batch-norm. The convs have no bias
    (the batch-norm after each one has it).
    """
    rng = as_generator(seed, "basic_block")
    body = Sequential(
        Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=False, seed=rng, dtype=dtype),
        BatchNorm2D(c_out, dtype=dtype), ReLU(),
        Conv2D(c_out, c_out, 3, padding=1, bias=False, seed=rng, dtype=dtype),
        BatchNorm2D(c_out, dtype=dtype))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(Conv2D(c_in, c_out, 1, stride=stride, bias=False, seed=rng,
                                     dtype=dtype), BatchNorm2D(c_out, dtype=dtype))
    return [Residual(body, shortcut), ReLU()]


def resnet_small(num_classes=10, in_channels=3, seed=None, dtype=np.float32,
                 widths=(16, 32, 64), blocks=2):
    """A small ResNet: a conv3x3-bn-relu stem, then per width ``blocks`` basic blocks (the
    first of each stage after the first halves the size with stride 2), global average
    pooling and one affine layer.

    Input (N, in_channels, H, W) -> scores (N, num_classes); on 32x32 inputs with the
    default widths the feature maps go 16x32x32 -> 32x16x16 -> 64x8x8, then (N, 64).
    """
    rng = as_generator(seed, "resnet_small")
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 1:
        raise ValueError(f"resnet_small: blocks must be a positive int, got {blocks!r}")
    if not isinstance(widths, (tuple, list)) or not widths or any(
            isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise ValueError(f"resnet_small: widths must be a non-empty tuple of positive ints, "
                         f"got {widths!r}")
    layers = [Conv2D(in_channels, widths[0], 3, padding=1, bias=False, seed=rng, dtype=dtype),
              BatchNorm2D(widths[0], dtype=dtype), ReLU()]
    c_in = widths[0]
    for stage, c_out in enumerate(widths):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            layers += basic_block(c_in, c_out, stride, rng, dtype)
            c_in = c_out
    layers += [GlobalAvgPool2D(), Linear(c_in, num_classes, seed=rng, dtype=dtype)]
    return Sequential(*layers)


def linear_classifier(num_classes=10, in_channels=3, image_size=32, seed=None,
                      dtype=np.float32):
    """Softmax regression on raw pixels, Flatten - affine: the baseline to beat."""
    rng = as_generator(seed, "linear_classifier")
    h, w = pair(image_size, "linear_classifier image_size")
    return Sequential(Flatten(), Linear(in_channels * h * w, num_classes, seed=rng, dtype=dtype))


#: Model name -> factory(num_classes=10, in_channels=3, seed=None, dtype=np.float32, ...).
MODELS = {
    "three_layer_convnet": three_layer_convnet,
    "vgg_small": vgg_small,
    "resnet_small": resnet_small,
    "linear": linear_classifier,
}
#: The models whose size depends on the image size (they take ``image_size``).
NEEDS_IMAGE_SIZE = ("three_layer_convnet", "linear")
#: The models that take ``image_size`` if asked to flatten their last feature map.
FLATTEN_HEAD = ("vgg_small",)


def build_model(name, num_classes=10, seed=None, dtype=np.float32, **kwargs):
    """``MODELS[name](num_classes=..., seed=..., dtype=..., **kwargs)`` with a clear
    ValueError for an unknown name or argument."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    try:
        return MODELS[name](num_classes=num_classes, seed=seed, dtype=dtype, **kwargs)
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        raise ValueError(f"model {name!r} does not take {e}".rstrip()) from None
