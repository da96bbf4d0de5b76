"""Containers and ready-made networks."""
from .sequential import Sequential
from .zoo import (
                  FLATTEN_HEAD,
                  MODELS,
                  NEEDS_IMAGE_SIZE,
                  basic_block,
                  build_model,
                  linear_classifier,
                  resnet_small,
                  three_layer_convnet,
                  vgg_small,
)

__all__ = ["FLATTEN_HEAD", "MODELS", "NEEDS_IMAGE_SIZE", "Sequential", "basic_block", "build_model",
           "linear_classifier", "resnet_small", "three_layer_convnet", "vgg_small"]
