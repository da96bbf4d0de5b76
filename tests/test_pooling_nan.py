"""NaN in a max-pool window: NaN is the window's maximum, as in PyTorch.

The forward pass gives NaN for every window holding one (``np.maximum`` propagates it).
The backward pass sends the window's gradient to its NaN: with ``ties="split"`` the
NaNs of a window share it evenly (one NaN takes it all, as in PyTorch), with
``ties="first"`` the first NaN in row-major order takes it (PyTorch gives it to the last
NaN of the window). The other elements of such a window get nothing, windows without a
NaN are unaffected, and no divide-by-zero or invalid-value warning is raised.
"""
import warnings

import numpy as np
import pytest

from minicnn.layers import MaxPool2D

NAN = np.nan


def pool_grad(x, dout, **kw):
    layer = MaxPool2D(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a divide-by-zero or invalid-value warning fails
        out = layer(np.asarray(x, np.float64)[None, None])
        dx = layer.backward(np.asarray(dout, np.float64)[None, None])
    return out[0, 0], dx[0, 0]


def test_one_nan_takes_its_window_gradient_split():
    x = [[1.0, NAN, 3.0, 4.0],
         [0.0, 2.0, 5.0, 1.0]]
    out, dx = pool_grad(x, [[10.0, 20.0]], kernel_size=2, ties="split")
    assert np.isnan(out[0, 0]) and out[0, 1] == 5.0
    np.testing.assert_array_equal(dx, [[0, 10, 0, 0],
                                       [0, 0, 20, 0]])


def test_nans_of_one_window_share_it_under_split_and_first_takes_all_under_first():
    x = [[NAN, 2.0],
         [NAN, 9.0]]
    _, dx = pool_grad(x, [[8.0]], kernel_size=2, ties="split")
    np.testing.assert_array_equal(dx, [[4, 0], [4, 0]])
    _, dx = pool_grad(x, [[8.0]], kernel_size=2, ties="first")
    np.testing.assert_array_equal(dx, [[8, 0], [0, 0]])


def naive_grad(x, dout, k, stride, pad, ties):
    """The documented rule, one window at a time: the window's NaNs (else its maxima)
    share its gradient under "split"; the first of them takes it under "first"."""
    xp = np.pad(x, pad, constant_values=-np.inf)
    dxp = np.zeros_like(xp)
    for r in range(dout.shape[0]):
        for c in range(dout.shape[1]):
            win = xp[r * stride:r * stride + k, c * stride:c * stride + k]
            hit = np.isnan(win) if np.isnan(win).any() else win == win.max()
            if ties == "first":
                first = np.argmax(hit.ravel())
                hit = np.zeros_like(hit)
                hit.ravel()[first] = True
            dxp[r * stride:r * stride + k, c * stride:c * stride + k] += hit * dout[r, c] / hit.sum()
    return dxp[pad:pad + x.shape[0], pad:pad + x.shape[1]]


@pytest.mark.parametrize("ties", ["split", "first"])
@pytest.mark.parametrize("k, stride, pad", [(2, 1, 1), (3, 2, 1), (3, 1, 0), (2, 2, 0)])
def test_overlapping_windows_padding_and_ties_follow_the_rule(ties, k, stride, pad):
    rng = np.random.default_rng(k * 10 + stride + pad)
    x = rng.integers(0, 3, (7, 6)).astype(np.float64)  # many ties
    x[rng.random(x.shape) < 0.15] = NAN
    x[3, 2] = NAN
    oh, ow = ((x.shape[0] + 2 * pad - k) // stride + 1, (x.shape[1] + 2 * pad - k) // stride + 1)
    dout = rng.standard_normal((oh, ow))
    out, dx = pool_grad(x, dout, kernel_size=k, stride=stride, padding=pad, ties=ties)
    assert np.isnan(out).any() and not np.isnan(out).all()
    np.testing.assert_allclose(dx, naive_grad(x, dout, k, stride, pad, ties), rtol=1e-12)
    assert np.isfinite(dx).all()


def test_matches_pytorch_for_a_single_nan_per_window():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    x[0, 1, 2, 3] = x[1, 2, 0, 0] = x[1, 0, 5, 5] = NAN
    dout = rng.standard_normal((2, 3, 3, 3))
    layer = MaxPool2D(2, ties="split")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer(x)
        dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, 2)
    ty.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, ty.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_array_equal(dx, tx.grad.numpy())
