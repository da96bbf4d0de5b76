"""Numerical gradient checks (float64, centred differences) of every layer."""
import numpy as np
import pytest

from minicnn import functional as F
from minicnn import gradcheck
from minicnn.functional import reference as R
from minicnn.gradient_check import numerical_grad, rel_error
from minicnn.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    ReLU,
)

SMOOTH = 1e-6


def away_from_zero(shape, seed=0):
    """Random values with |x| >= 0.1, so ReLU kinks stay further than eps away."""
    x = np.random.default_rng(seed).uniform(0.1, 1.0, size=shape)
    return x * np.random.default_rng(seed + 1).choice([-1, 1], size=shape)


CONV_CASES = [  # (in, out, kernel, stride, padding, bias, input HxW)
    (3, 4, 3, 1, 1, True, (5, 5)), (2, 3, 3, 2, 0, True, (7, 6)), (2, 2, (3, 2), (2, 1), (1, 0), True, (6, 5)),
    (1, 3, 5, 1, 2, False, (5, 4)), (3, 2, 1, 1, 0, True, (4, 4)), (2, 3, 4, 3, 2, True, (7, 7)),
]


@pytest.mark.parametrize("cin,cout,k,s,p,bias,hw", CONV_CASES)
def test_conv_forward_matches_loops_and_shape_formula(cin, cout, k, s, p, bias, hw):
    layer = Conv2D(cin, cout, k, stride=s, padding=p, bias=bias, seed=0).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, cin) + hw)
    out = layer(x)
    b = layer.bias.data if bias else None
    ref_out, _ = R.conv2d_forward(x, layer.weight.data, b, layer.stride, layer.padding)
    np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    assert out.shape == (2, cout, (hw[0] + 2 * ph - kh) // sh + 1, (hw[1] + 2 * pw - kw) // sw + 1)


@pytest.mark.parametrize("cin,cout,k,s,p,bias,hw", CONV_CASES)
def test_conv_gradcheck(cin, cout, k, s, p, bias, hw):
    layer = Conv2D(cin, cout, k, stride=s, padding=p, bias=bias, seed=1)
    res = gradcheck(layer, np.random.default_rng(1).standard_normal((2, cin) + hw))
    assert res.max_error < SMOOTH, res
    assert set(res.errors) == {"input", "weight"} | ({"bias"} if bias else set())


def test_conv_first_layer_can_skip_input_grad():
    layer = Conv2D(2, 3, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    out = layer(x)
    assert layer.backward(np.ones_like(out), input_grad=False) is None
    dw = layer.weight.grad.copy()
    layer.zero_grad()
    layer(x)
    layer.backward(np.ones_like(out))
    np.testing.assert_allclose(layer.weight.grad, dw, rtol=1e-6)


def test_conv_backward_twice_needs_a_new_forward():
    layer = Conv2D(1, 1, 3)
    out = layer(np.ones((1, 1, 4, 4), np.float32))
    layer.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones_like(out))


def test_gradients_accumulate_until_zero_grad():
    layer = Linear(3, 2, seed=0)
    x = np.ones((4, 3), np.float32)
    for _ in range(2):
        layer(x)
        layer.backward(np.ones((4, 2), np.float32))
    np.testing.assert_allclose(layer.bias.grad, [8.0, 8.0])
    layer.zero_grad()
    assert not layer.bias.grad.any()


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.1), Flatten()], ids=repr)
def test_parameter_free_gradcheck(layer):
    assert gradcheck(layer, away_from_zero((2, 3, 4, 4))).max_error < SMOOTH


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias):
    res = gradcheck(Linear(5, 3, bias=bias, seed=0), np.random.default_rng(0).standard_normal((4, 5)))
    assert res.max_error < SMOOTH, res


@pytest.mark.parametrize("cls,shape", [(BatchNorm2D, (4, 3, 3, 2)), (BatchNorm1D, (6, 3))])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck_train_and_eval(cls, shape, training):
    layer = cls(3)
    rng = np.random.default_rng(0)
    layer.weight.data = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    layer.bias.data = rng.standard_normal(3).astype(np.float32)
    layer.running_mean = rng.standard_normal(3).astype(np.float32)
    layer.running_var = rng.uniform(0.5, 2, 3).astype(np.float32)
    layer.train(training)
    res = gradcheck(layer, rng.standard_normal(shape) * 2 + 1)
    assert res.max_error < SMOOTH, res


def test_batchnorm_running_statistics_follow_pytorch_rule():
    layer = BatchNorm2D(2, momentum=0.1).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 3)) * 3 + 2
    out = layer(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, atol=1e-3)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mean)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var)
    assert layer.num_batches_tracked == 1
    layer.eval()
    expected = (x - layer.running_mean[None, :, None, None]) / np.sqrt(
        layer.running_var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)


def test_dropout_train_eval_and_gradient():
    layer = Dropout(0.25, seed=0)
    x = np.ones((200, 50), np.float32)
    out = layer(x)
    assert out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    dout = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dout), dout * out)  # x = 1: out is the mask
    layer.eval()
    assert layer(x) is x and layer.backward(dout) is dout
    assert gradcheck(layer, away_from_zero((3, 4))).max_error < SMOOTH


def test_dropout_kernel_gradcheck_with_fixed_mask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    mask = (rng.random((3, 4)) > 0.5) / 0.5
    out, cache = F.dropout_forward(x, 0.5, mask=mask)
    np.testing.assert_array_equal(out, x * mask)
    g = rng.standard_normal(x.shape)
    numeric = numerical_grad(lambda: np.sum(F.dropout_forward(x, 0.5, mask=mask)[0] * g), x)
    assert rel_error(F.dropout_backward(g, cache), numeric) < SMOOTH


def test_reproducible_he_initialisation():
    a, b = Conv2D(3, 8, 3, seed=7), Conv2D(3, 8, 3, seed=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert a.weight.dtype == np.float32
    big = Linear(1000, 500, seed=np.random.default_rng(0))
    assert abs(big.weight.data.std() - np.sqrt(2 / 1000)) < 1e-3
    assert not big.bias.data.any()


def test_float32_network_is_not_turned_float64():
    conv, lin = Conv2D(2, 3, 3, padding=1), Linear(4, 2)
    assert conv(np.ones((1, 2, 4, 4))).dtype == np.float32  # float64 input cast to the weights
    out = lin(np.ones((3, 4)))
    assert out.dtype == np.float32
    assert lin.backward(np.ones((3, 2))).dtype == np.float32 and lin.weight.grad.dtype == np.float32
    assert conv(np.ones((1, 2, 4, 4), np.uint8)).dtype == np.float32


def test_reprs():
    assert repr(Conv2D(3, 32, kernel_size=7, padding=3)) == \
        "Conv2D(3, 32, kernel_size=7, stride=1, padding=3)"
    assert repr(Conv2D(3, 8, (3, 5), bias=False)).endswith("kernel_size=(3, 5), stride=1, padding=0, bias=False)")
    assert repr(Linear(4, 2)) == "Linear(in_features=4, out_features=2)"
    assert repr(ReLU()) == "ReLU()" and repr(Dropout(0.3)) == "Dropout(p=0.3)"
    assert repr(BatchNorm2D(8)) == "BatchNorm2D(8, eps=1e-05, momentum=0.1)"
