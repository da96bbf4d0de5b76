"""One protocol for every layer's cache: it lives until one backward takes it; inference
keeps none; a backward that cannot run says so before any gradient changes."""
import tracemalloc

import numpy as np
import pytest

from minicnn import no_grad
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
    Residual,
)
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import Sequential, resnet_small, vgg_small
from minicnn.training import evaluate, predict

X4 = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
X2 = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)

CASES = [
    (lambda: Conv2D(3, 2, 3, padding=1, seed=0), X4), (lambda: MaxPool2D(2), X4),
    (lambda: AvgPool2D(2), X4), (lambda: GlobalAvgPool2D(), X4), (lambda: ReLU(), X4),
    (lambda: LeakyReLU(), X4), (lambda: Dropout(0.5, seed=0), X4), (lambda: Flatten(), X4),
    (lambda: Linear(3, 2, seed=0), X2), (lambda: BatchNorm2D(3), X4),
    (lambda: BatchNorm1D(3), X2),
    (lambda: Residual(Sequential(Conv2D(3, 3, 3, padding=1, seed=0), BatchNorm2D(3))), X4),
    (lambda: Sequential(Conv2D(3, 4, 3, seed=0), ReLU(), Flatten(), Linear(16, 2, seed=1)), X4),
]
IDS = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "ReLU", "LeakyReLU", "Dropout",
       "Flatten", "Linear", "BatchNorm2D", "BatchNorm1D", "Residual", "Sequential"]


def grads(layer):
    return [p.grad.copy() for p in layer.parameters()]


def assert_same(before, layer):
    for a, b in zip(before, grads(layer)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make,x", CASES, ids=IDS)
def test_backward_before_forward_is_an_error(make, x):
    layer = make()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((2, 2), np.float32))
    assert all(not g.any() for g in grads(layer))


@pytest.mark.parametrize("make,x", CASES, ids=IDS)
def test_backward_twice_is_an_error_and_changes_no_gradient(make, x):
    layer = make()
    out = layer(x)
    layer.backward(np.ones_like(out))
    before = grads(layer)
    with pytest.raises(RuntimeError, match="twice after one forward"):
        layer.backward(np.ones_like(out))
    assert_same(before, layer)


@pytest.mark.parametrize("make,x", CASES, ids=IDS)
def test_backward_after_a_no_grad_forward_is_an_error(make, x):
    layer = make()
    out = layer(x)  # a training forward whose cache a no_grad forward must drop
    with no_grad():
        layer(x)
    assert all(m.cache is None for m in layer.modules())
    with pytest.raises(RuntimeError, match="no_grad"):
        layer.backward(np.ones_like(out))
    assert all(not g.any() for g in grads(layer))


def test_sequential_checks_every_layer_before_changing_any_gradient():
    model = Sequential(Conv2D(3, 4, 3, seed=0), ReLU(), Flatten(), Linear(16, 2, seed=1))
    out = model(X4)
    model[1].cache = None  # as if ReLU's cache had been consumed
    with pytest.raises(RuntimeError, match=r"its layer 1: ReLU\(\)"):
        model.backward(np.ones_like(out))
    assert all(not g.any() for g in grads(model))  # Linear's gradient untouched


def test_backward_after_predict_is_an_error_for_a_whole_network():
    model = vgg_small(seed=0, widths=(4, 8))
    scores = model(np.zeros((2, 3, 8, 8), np.float32))
    predict(model, np.zeros((3, 3, 8, 8), np.float32))
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(scores))
    assert all(not g.any() for g in grads(model))


def test_predict_keeps_no_cache_and_memory_returns():
    model = vgg_small(seed=0)
    x = np.random.default_rng(0).standard_normal((2000, 3, 32, 32)).astype(np.float32)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        scores = predict(model, x)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert scores.shape == (2000, 10)
    assert all(m.cache is None for m in model.modules())
    # only the scores (80 kB) remain; the caches of 2,000 images were ~280 MB
    assert after - before < 0.1 * max(before, x.nbytes)


def test_evaluate_and_predict_restore_mixed_modes():
    model = resnet_small(seed=0, widths=(4,), blocks=1)
    model[1].eval()  # one batch-norm frozen by the user
    evaluate(model, SoftmaxCrossEntropy(), np.zeros((2, 3, 8, 8), np.float32), np.zeros(2, int))
    assert model.training and not model[1].training and model[3].training
