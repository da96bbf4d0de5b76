"""gradcheck itself: it passes right gradients, catches wrong ones, leaves the layer alone."""
import numpy as np
import pytest

from minicnn import Parameter, gradcheck
from minicnn.layers import Layer, Linear


class Square(Layer):
    """out = w * x^2 with an optional mistake in the input gradient."""
    param_names = ("w",)

    def __init__(self, wrong=False):
        super().__init__()
        self.w = Parameter(np.array([1.5], np.float32))
        self.wrong = wrong

    def forward(self, x):
        self.cache = x
        return self.w.data * x ** 2

    def backward(self, dout):
        x = self.cache
        self.w.accumulate(np.sum(dout * x ** 2, keepdims=True).reshape(1))
        return dout * self.w.data * (x if self.wrong else 2 * x)


def test_right_gradients_pass():
    res = gradcheck(Square(), np.random.default_rng(0).standard_normal((3, 4)))
    assert set(res.errors) == {"input", "w"} and res.max_error < 1e-8


def test_wrong_gradient_is_caught_and_named():
    res = gradcheck(Square(wrong=True), np.random.default_rng(0).standard_normal((3, 4)))
    assert res.worst == "input" and res.max_error > 0.1
    assert res.errors["w"] < 1e-8


def test_original_layer_untouched():
    layer = Linear(3, 2, seed=0)
    before = layer.weight.data.copy()
    gradcheck(layer, np.ones((2, 3)))
    assert layer.weight.dtype == np.float32 and np.array_equal(layer.weight.data, before)
    assert not layer.weight.grad.any()


def test_nothing_to_check_is_an_error():
    class Const(Layer):
        def forward(self, x):
            return x * 0

        def backward(self, dout):
            return dout * 0
    with pytest.raises(ValueError, match="no input gradient checked and no parameters"):
        gradcheck(Const(), np.ones(3), input_grad=False)
