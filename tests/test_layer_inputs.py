"""Inputs no layer can use get a clear error, not a silent cast or a raw numpy error."""
import warnings

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

LAYERS = [
    (lambda: Conv2D(2, 3, 3, seed=0), (2, 2, 5, 5)),
    (lambda: MaxPool2D(2), (2, 2, 4, 4)),
    (lambda: AvgPool2D(2), (2, 2, 4, 4)),
    (lambda: GlobalAvgPool2D(), (2, 2, 4, 4)),
    (lambda: BatchNorm2D(2), (2, 2, 3, 3)),
    (lambda: BatchNorm1D(4), (3, 4)),
    (lambda: Linear(4, 3, seed=0), (2, 4)),
    (lambda: Flatten(), (2, 3, 2)),
    (lambda: ReLU(), (2, 3)),
    (lambda: LeakyReLU(0.1), (2, 3)),
    (lambda: Dropout(0.5, seed=0), (2, 3)),
]


@pytest.mark.parametrize("make, shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_input_is_refused_not_cast(make, shape, dtype):
    layer = make()
    x = (np.ones(shape) + 1j * np.ones(shape)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning would mean a cast happened
        with pytest.raises(TypeError, match=rf"^{type(layer).__name__}\(.*\): expected real numbers "
                                            rf"\(floats, integers or booleans\), got an array of "
                                            rf"{np.dtype(dtype)}"):
            layer(x)


@pytest.mark.parametrize("make, shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_string_and_object_inputs_are_refused(make, shape):
    with pytest.raises(TypeError, match="expected real numbers"):
        make()(np.full(shape, "1.5"))
    with pytest.raises(TypeError, match="expected real numbers"):
        make()(np.full(shape, 1.5, dtype=object))


@pytest.mark.parametrize("make, shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_real_inputs_still_pass(make, shape):
    layer = make()
    for dtype in (np.float32, np.float64, np.int64, np.bool_):
        out = layer(np.ones(shape, dtype))
        assert out.dtype.kind == "f" or (isinstance(layer, Flatten) and out.dtype == dtype)


def test_flatten_on_an_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^Flatten\(\): got an empty batch, shape \(0, 3, 4\)$"):
        Flatten()(np.zeros((0, 3, 4), np.float32))
    net = Sequential(Flatten(), Linear(12, 2, seed=0))
    with pytest.raises(ValueError, match="empty batch"):
        net(np.zeros((0, 3, 4), np.float32))
