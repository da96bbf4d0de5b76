"""Bad input gets a clear error naming the layer, the expected and the actual shape."""
import numpy as np
import pytest

from minicnn.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    Linear,
    MaxPool2D,
    ReLU,
)
from minicnn.models import Sequential


def test_conv_wrong_rank_and_channels():
    conv = Conv2D(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2D\(3, 8.*\(N, C, H, W\).*got shape \(3, 32, 32\)"):
        conv(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D\(3, 8.*expected 3 channels.*\(2, 1, 8, 8\)"):
        conv(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(TypeError, match="Conv2D.*numpy array, got list"):
        conv([[1, 2]])


@pytest.mark.parametrize("layer", [Conv2D(1, 1, 5, padding=1), MaxPool2D(5, padding=1),
                                   AvgPool2D(4)], ids=repr)
def test_kernel_larger_than_padded_input(layer):
    with pytest.raises(ValueError, match=r"kernel \(\d, \d\) is larger than the padded input.*\(1, 1, 2, 2\)"):
        layer(np.zeros((1, 1, 2, 2), np.float32))


def test_linear_wrong_features():
    with pytest.raises(ValueError, match=r"Linear\(in_features=8192.*expected 8192.*\(4, 4096\)"):
        Linear(8192, 10)(np.zeros((4, 4096), np.float32))
    with pytest.raises(ValueError, match=r"Linear.*\(N, D\).*got shape \(4, 2, 3\)"):
        Linear(6, 10)(np.zeros((4, 2, 3), np.float32))


def test_batchnorm_wrong_channels_and_rank():
    with pytest.raises(ValueError, match=r"BatchNorm2D\(16.*expected 16.*\(2, 8, 4, 4\)"):
        BatchNorm2D(16)(np.zeros((2, 8, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1D.*got shape \(2, 8, 4, 4\)"):
        BatchNorm1D(8)(np.zeros((2, 8, 4, 4), np.float32))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1D(8)(np.zeros((1, 8), np.float32))


def test_empty_batch_and_flatten_rank():
    with pytest.raises(ValueError, match="empty batch"):
        Conv2D(1, 1, 1)(np.zeros((0, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"Flatten.*at least 2 dimensions, got \(5,\)"):
        Flatten()(np.zeros(5))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D.*\(N, C, H, W\)"):
        GlobalAvgPool2D()(np.zeros((2, 3)))


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(0, 8, 3), "in_channels must be a positive int"),
    (lambda: Conv2D(3, -1, 3), "out_channels must be a positive int"),
    (lambda: Conv2D(3, 8, 0), "kernel_size and stride must be positive"),
    (lambda: Conv2D(3, 8, 3, stride=0), "kernel_size and stride must be positive"),
    (lambda: Conv2D(3, 8, 3, padding=-1), "padding non-negative"),
    (lambda: Conv2D(3, 8, (3, 3, 3)), "kernel_size must be an int or a pair"),
    (lambda: Conv2D(3, 8, 2.5), "kernel_size must be an int or a pair of ints"),
    (lambda: MaxPool2D(2, padding=2), "padding 2 must be at most half"),
    (lambda: AvgPool2D(3, padding=2), "padding 2 must be at most half"),
    (lambda: MaxPool2D(0), "kernel_size and stride must be positive"),
    (lambda: MaxPool2D(2, ties="random"), "ties must be 'split' or 'first'"),
    (lambda: Linear(0, 3), "in_features must be a positive int"),
    (lambda: Dropout(1.0), r"p must be in \[0, 1\)"),
    (lambda: Dropout(-0.1), r"p must be in \[0, 1\)"),
    (lambda: BatchNorm2D(0), "num_features must be a positive int"),
    (lambda: BatchNorm2D(4, eps=0), "need eps > 0"),
])
def test_bad_hyper_parameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("layer", [Conv2D(1, 1, 1), MaxPool2D(2), AvgPool2D(2), ReLU(),
                                   LeakyReLU(), Linear(2, 2), Flatten(), BatchNorm2D(1),
                                   GlobalAvgPool2D(), Dropout(0.5)], ids=repr)
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        layer.backward(np.zeros((1, 1, 2, 2), np.float32))


def test_sequential_error_names_the_layer_inside():
    net = Sequential(Conv2D(3, 4, 3, padding=1), ReLU(), Flatten(), Linear(100, 10))
    with pytest.raises(ValueError, match=r"Linear\(in_features=100.*\(2, 256\)"):
        net(np.zeros((2, 3, 8, 8), np.float32))


@pytest.mark.parametrize("layer,shape", [
    (Conv2D(2, 4, 3, seed=0), (2, 2, 4, 4)), (MaxPool2D(2), (2, 3, 4, 4)), (AvgPool2D(2), (2, 3, 4, 4)),
    (ReLU(), (2, 3)), (LeakyReLU(), (2, 3)), (Dropout(0.5, seed=0), (2, 3)), (Linear(3, 2), (2, 3)),
    (Flatten(), (2, 3, 2)), (BatchNorm2D(3), (2, 3, 2, 2)), (GlobalAvgPool2D(), (2, 3, 4, 4)),
], ids=repr)
def test_backward_rejects_dout_of_the_wrong_shape(layer, shape):
    out = layer(np.ones(shape, np.float32))
    wrong = np.ones((1,) + out.shape[1:], np.float32)  # would broadcast silently
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*dout must have the shape of "
                                         rf"the last output, \({out.shape[0]}, .*got \(1, "):
        layer.backward(wrong)
    with pytest.raises(TypeError, match="dout must be a numpy array"):
        layer.backward(out.tolist())
    dx = layer.backward(np.ones(out.shape, np.float64))  # float64 dout: cast, not promoted
    assert dx.dtype == np.float32


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.5), Dropout(0.5, seed=0)], ids=repr)
def test_element_wise_layers_check_and_cast_input(layer):
    with pytest.raises(TypeError, match="expected a numpy array, got list"):
        layer([1.0, -2.0])
    out = layer(np.array([[3, -2, 4, -6]]))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out[0, 0] in (3.0, 0.0, 6.0) and out[0, 1] in (0.0, -1.0, -4.0)  # relu, leaky, dropout
