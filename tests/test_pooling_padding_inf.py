"""Max pooling with padding where a window's real maximum is -inf: the padding (which
counts as -inf) ties with it but never wins; the gradient goes to the input's elements, as
in PyTorch. Fast and reference kernels alike, against torch."""
import numpy as np
import pytest

from minicnn import functional as F
from minicnn.functional import reference as R
from minicnn.layers import MaxPool2D

torch = pytest.importorskip("torch")

INF = np.inf
# kernel, stride, padding, ceil_mode: padded, ceil_mode's extra only, both, overlapping
CASES = [(2, 2, 1, False), (3, 2, 1, False), (3, 2, 1, True), (2, 2, 0, True), (3, 3, 0, True),
         (3, 1, 1, False), (4, 3, 2, True)]
KERNELS = {"fast": F, "reference": R}


def torch_pool(x, dout, k, s, p, ceil_mode):
    t = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.max_pool2d(t, k, s, p, ceil_mode=ceil_mode)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), t.grad.numpy()


def pool(kernels, x, dout, k, s, p, ceil_mode, ties):
    out, cache = kernels.max_pool2d_forward(x, (k, k), (s, s), (p, p), ceil_mode)
    return out, kernels.max_pool2d_backward(dout, cache, ties)


def minus_inf_maps(seed, shape):
    """Mostly -inf with a few finite values: many windows whose maximum is -inf."""
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(shape) < 0.75, -INF, rng.standard_normal(shape))
    return x


def test_the_issue_example_sums_to_nine_like_pytorch():
    x = np.full((1, 1, 4, 4), -INF)
    x[0, 0, 2:, 2:] = [[0.0, 1.0], [2.0, 3.0]]
    layer = MaxPool2D(2, 2, padding=1)
    out = layer(x)
    dx = layer.backward(np.ones_like(out))
    _, want = torch_pool(x, np.ones_like(out), 2, 2, 1, False)
    assert dx.sum() == want.sum() == 9.0
    # the corner windows hold one real element each: it takes the whole gradient
    assert dx[0, 0, 0, 0] == dx[0, 0, 0, 3] == dx[0, 0, 3, 0] == 1.0


@pytest.mark.parametrize("k, s, p, ceil_mode", CASES)
@pytest.mark.parametrize("kind", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_rule_equals_pytorch_with_minus_inf_windows(k, s, p, ceil_mode, kind, dtype):
    x = minus_inf_maps(k * 10 + s + p, (2, 3, 7, 6)).astype(dtype)
    rng = np.random.default_rng(1)
    t_out = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, ceil_mode=ceil_mode)
    dout = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    want_out, want_dx = torch_pool(x, dout, k, s, p, ceil_mode)
    out, dx = pool(KERNELS[kind], x, dout, k, s, p, ceil_mode, "first")
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-6, atol=1e-6)
    assert dx.dtype == dtype


@pytest.mark.parametrize("k, s, p, ceil_mode", CASES)
@pytest.mark.parametrize("kind", ["fast", "reference"])
def test_split_rule_gives_padding_nothing(k, s, p, ceil_mode, kind):
    """Every window hands on exactly its upstream value, shared among x's elements that
    tie for the maximum; with ties only among real elements the split rule equals the
    fast/reference twin, and the total equals PyTorch's."""
    x = minus_inf_maps(k * 7 + s + p, (2, 2, 7, 8))
    rng = np.random.default_rng(2)
    out, cache = F.max_pool2d_forward(x, (k, k), (s, s), (p, p), ceil_mode)
    dout = rng.standard_normal(out.shape)
    _, dx = pool(KERNELS[kind], x, dout, k, s, p, ceil_mode, "split")
    _, want = torch_pool(x, dout, k, s, p, ceil_mode)
    assert np.isclose(dx.sum(), dout.sum()) and np.isclose(dx.sum(), want.sum())
    _, twin = pool(KERNELS["reference" if kind == "fast" else "fast"], x, dout, k, s, p,
                   ceil_mode, "split")
    np.testing.assert_allclose(dx, twin, rtol=1e-13, atol=1e-13)


def test_an_all_minus_inf_window_splits_among_its_real_elements():
    """A 3x3/2 window with padding 1 at the corner holds 2x2 real -inf: a quarter each."""
    x = np.full((1, 1, 4, 4), -INF)
    out, cache = F.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))
    dx = F.max_pool2d_backward(np.ones_like(out), cache, "split")
    ref = R.max_pool2d_backward(np.ones_like(out), R.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))[1],
                                "split")
    np.testing.assert_array_equal(dx, ref)
    assert dx.sum() == out.size
    assert dx[0, 0, 0, 0] == 0.25  # the top-left window: 4 real elements of its 9


def test_unpadded_minus_inf_windows_unchanged():
    """Without padding the -inf ties are among real elements: split evenly, as before."""
    x = np.full((1, 1, 2, 2), -INF)
    out, cache = F.max_pool2d_forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(F.max_pool2d_backward(np.ones_like(out), cache, "split"),
                                  np.full((1, 1, 2, 2), 0.25))
