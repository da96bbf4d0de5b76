"""Pooling layers against the seed note's loops, generalised (padding, ceil_mode, overlap),
as minicnn.functional.reference has them."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import gradcheck
from minicnn.functional import pool_output_size
from minicnn.functional import reference as R
from minicnn.layers import AvgPool2D, GlobalAvgPool2D, MaxPool2D


def loops_max_pool(x, k, s, p, ceil_mode, ties, dout):
    """The seed note's loops, generalised, from minicnn.functional.reference: (out, dx)."""
    out, cache = R.max_pool2d_forward(x, (k, k), (s, s), (p, p), ceil_mode)
    return out, R.max_pool2d_backward(dout, cache, ties)


# (kernel, stride, padding, ceil_mode): non-overlapping, overlapping, padded, uneven, ceil
CONFIGS = [(2, 2, 0, False), (3, 2, 0, False), (3, 1, 1, False), (2, 1, 0, False),
           (3, 2, 1, False), (3, 3, 0, True), (2, 2, 1, True), (3, 2, 1, True), (4, 3, 2, False)]


@pytest.mark.parametrize("k,s,p,ceil_mode", CONFIGS)
@pytest.mark.parametrize("ties", ["split", "first"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 2, 8, 5)])
def test_max_pool_matches_the_loops_with_many_ties(k, s, p, ceil_mode, ties, shape):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    x = rng.integers(-2, 3, size=shape).astype(np.float64)  # integer values: ties everywhere
    x = np.maximum(x, 0)  # ReLU-like: many all-zero windows
    layer = MaxPool2D(k, s, p, ceil_mode=ceil_mode, ties=ties)
    out = layer(x)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_dx = loops_max_pool(x, k, s, p, ceil_mode, ties, dout)
    assert out.shape == ref_out.shape
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_allclose(layer.backward(dout), ref_dx, rtol=1e-12, atol=1e-12)


def test_seed_note_example_split_evenly():
    x = np.array([[[[1., 1.], [0., 1.]]]])
    layer = MaxPool2D(2)
    assert layer(x)[0, 0, 0, 0] == 1
    np.testing.assert_allclose(layer.backward(np.full((1, 1, 1, 1), 3.0)),
                               [[[[1., 1.], [0., 1.]]]])


def test_overlapping_windows_accumulate():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the centre is the max of all four 2x2 windows
    layer = MaxPool2D(2, stride=1)
    out = layer(x)
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 5.0))
    dx = layer.backward(np.ones_like(out))
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_first_rule_picks_row_major_first():
    x = np.array([[[[0., 2.], [2., 2.]]]])
    layer = MaxPool2D(2, ties="first")
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1))), [[[[0., 1.], [0., 0.]]]])


def test_padding_is_minus_infinity():
    x = -np.ones((1, 1, 2, 2))
    out = MaxPool2D(2, stride=1, padding=1)(x)
    np.testing.assert_array_equal(out, -np.ones((1, 1, 3, 3)))


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 4), p=st.integers(0, 2), h=st.integers(1, 9),
       w=st.integers(1, 9), ceil_mode=st.booleans(), ties=st.sampled_from(["split", "first"]),
       seed=st.integers(0, 2**16))
def test_max_pool_property_against_the_loops(k, s, p, h, w, ceil_mode, ties, seed):
    assume(2 * p <= k and h + 2 * p >= k and w + 2 * p >= k)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(1, 2, h, w)).astype(np.float64)
    layer = MaxPool2D(k, s, p, ceil_mode=ceil_mode, ties=ties)
    out = layer(x)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_dx = loops_max_pool(x, k, s, p, ceil_mode, ties, dout)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-12)
    # the gradient is conserved: every window hands on exactly its upstream value
    assert np.isclose(dx.sum(), dout.sum())


@pytest.mark.parametrize("k,s,p,ceil_mode", CONFIGS)
def test_max_pool_gradcheck_distinct_values(k, s, p, ceil_mode):
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 7 * 6).reshape(1, 2, 7, 6) * 0.1  # distinct: no ties, no kinks
    res = gradcheck(MaxPool2D(k, s, p, ceil_mode=ceil_mode), x)
    assert res.max_error < 1e-8, res


def test_float32_stays_float32():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for layer in (MaxPool2D(3, 2, 1), AvgPool2D(3, 2, 1), GlobalAvgPool2D()):
        out = layer(x)
        assert out.dtype == np.float32
        assert layer.backward(np.ones_like(out)).dtype == np.float32


@pytest.mark.parametrize("k,s,p,ceil_mode", CONFIGS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_forward_and_gradcheck(k, s, p, ceil_mode, count_include_pad):
    x = np.random.default_rng(2).standard_normal((2, 2, 7, 6))
    layer = AvgPool2D(k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    want = R.avg_pool2d_forward(x, (k, k), (s, s), (p, p), ceil_mode, count_include_pad)[0]
    np.testing.assert_allclose(layer(x), want, rtol=1e-12)
    assert gradcheck(layer, x).max_error < 1e-8


def test_global_avg_pool():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    layer = GlobalAvgPool2D()
    np.testing.assert_allclose(layer(x), x.mean(axis=(2, 3)))
    assert gradcheck(layer, x).max_error < 1e-8


@pytest.mark.parametrize("size,k,s,p,ceil_mode,expected", [
    (32, 2, 2, 0, False, 16), (7, 3, 2, 1, False, 4), (7, 3, 2, 1, True, 4), (8, 3, 2, 0, False, 3),
    (8, 3, 2, 0, True, 4), (6, 3, 3, 0, True, 2), (5, 2, 2, 1, True, 3), (4, 2, 2, 1, True, 3),
    (10, 4, 3, 2, True, 4), (9, 3, 2, 0, False, 4)])
def test_pool_output_size_formula(size, k, s, p, ceil_mode, expected):
    # ceil_mode drops a last window that would start in the right padding: (5, 2, 2, 1) -> 3, not 4
    assert pool_output_size(size, k, s, p, ceil_mode) == expected


def test_stride_defaults_to_kernel_and_repr():
    assert repr(MaxPool2D(kernel_size=2)) == "MaxPool2D(kernel_size=2, stride=2, padding=0)"
    assert MaxPool2D((2, 3)).stride == (2, 3)
    assert "ties='first'" in repr(MaxPool2D(3, ties="first"))
    assert "ceil_mode=True" in repr(AvgPool2D(2, ceil_mode=True))
