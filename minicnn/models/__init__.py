"""Containers and ready-made networks."""
from .sequential import Sequential, leaf_layers
from .zoo import MODELS, build_model, linear_classifier, three_layer_convnet, vgg_small

__all__ = ["Sequential", "MODELS", "build_model", "three_layer_convnet", "vgg_small",
           "linear_classifier"]
