"""Stateless kernels: ``*_forward(x, ...) -> (out, cache)``, ``*_backward(dout, cache)``."""
from .activations import (dropout_backward, dropout_forward, leaky_relu_backward,
                          leaky_relu_forward, relu_backward, relu_forward)
from .conv import col2im, conv2d_backward, conv2d_forward, conv_output_size, im2col
from .linear import flatten_backward, flatten_forward, linear_backward, linear_forward
from .normalization import batchnorm_backward, batchnorm_forward
from .pooling import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward,
                      global_avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
                      pool_output_size)
from .losses import mse, softmax_cross_entropy
