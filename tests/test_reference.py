"""The loop kernels of minicnn.functional.reference: against the fast kernels (float64,
equal to round-off; max pooling on integer maps full of ties, both tie rules), against
centred differences, and the use_reference() switch on whole networks."""
import copy

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import functional as F
from minicnn.functional import caches
from minicnn.functional import reference as R
from minicnn.gradient_check import numerical_grad, rel_error
from minicnn.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool2D,
    ReLU,
)
from minicnn.losses import MSELoss, SoftmaxCrossEntropy
from minicnn.models import Sequential, resnet_small, three_layer_convnet, vgg_small

TOL = dict(rtol=1e-12, atol=1e-12)
SMOOTH = 1e-6
FEW = settings(max_examples=25, deadline=None)


def close(got, want, **tol):
    if want is None:
        assert got is None
    else:
        np.testing.assert_allclose(got, want, **(tol or TOL))


def integer_maps(rng, shape, high=3):
    """Small integers: ties inside windows and across overlapping ones."""
    return rng.integers(0, high, size=shape).astype(np.float64)


def check_pair(fast_fwd, ref_fwd, fast_bwd, ref_bwd, args, dout_rng, exact=False, bwd_args=()):
    """Forward and backward of both kernels, each backward on both caches."""
    out, cache = fast_fwd(*args)
    ref_out, ref_cache = ref_fwd(*args)
    assert type(cache) is type(ref_cache) and isinstance(cache, tuple) and cache._fields
    (np.testing.assert_array_equal if exact else close)(ref_out, out)
    dout = dout_rng.standard_normal(np.shape(out))
    want = fast_bwd(dout, cache, *bwd_args)
    for got in (ref_bwd(dout, ref_cache, *bwd_args), ref_bwd(dout, cache, *bwd_args),
                fast_bwd(dout, ref_cache, *bwd_args)):
        for g, w in zip(got, want) if isinstance(want, tuple) else [(got, want)]:
            close(g, w)
    return out, want


# -- every kernel has a twin --------------------------------------------------------------
def test_every_kernel_has_a_reference_twin_with_the_same_signature():
    import inspect
    kernels = {name for name in dir(F) if name.endswith(("_forward", "_backward"))}
    kernels |= {"softmax_cross_entropy", "mse"}
    assert kernels == set(R.__all__)
    for name in R.__all__:
        params = [[(p.name, p.kind, p.default) for p in
                   inspect.signature(getattr(module, name)).parameters.values()] for module in (R, F)]
        assert params[0] == params[1], name  # the same arguments (the fast ones carry type hints)
        assert getattr(R, name).__doc__ and "reference" in getattr(F, name).__doc__, name


# -- conv --------------------------------------------------------------------------------
@FEW
@given(n=st.integers(1, 2), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 7),
       w=st.integers(1, 7), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2), bias=st.booleans(),
       input_grad=st.booleans(), seed=st.integers(0, 2**16))
def test_conv_reference_equals_fast(n, c, f, h, w, kh, kw, sh, sw, ph, pw, bias, input_grad, seed):
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw))
    b = rng.standard_normal(f) if bias else None
    args = (x, wt, b, (sh, sw), (ph, pw))
    _, (dx, dw, db) = check_pair(F.conv2d_forward, R.conv2d_forward, F.conv2d_backward,
                                 R.conv2d_backward, args, rng, bwd_args=(input_grad,))
    assert (dx is None) == (not input_grad) and dw.shape == wt.shape and db.shape == (f,)


def test_conv_cache_holds_what_backward_needs_and_nothing_else():
    """No workspace rides in the cache or the signature: x, w, stride, padding."""
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    for kernels in (F, R):
        _, cache = kernels.conv2d_forward(x, w, None)
        assert isinstance(cache, caches.ConvCache)
        assert cache._fields == ("x", "w", "stride", "padding")
        with pytest.raises(TypeError):
            kernels.conv2d_forward(x, w, None, (1, 1), (0, 0), None)


# -- max pooling -----------------------------------------------------------------------
POOL = dict(n=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(1, 8), w=st.integers(1, 8),
            kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
            ph=st.integers(0, 2), pw=st.integers(0, 2), ceil_mode=st.booleans(),
            seed=st.integers(0, 2**16))


def pool_args(n, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, seed):
    assume(2 * ph <= kh and 2 * pw <= kw and h + 2 * ph >= kh and w + 2 * pw >= kw)
    rng = np.random.default_rng(seed)
    return rng, (integer_maps(rng, (n, c, h, w)), (kh, kw), (sh, sw), (ph, pw), ceil_mode)


@settings(max_examples=40, deadline=None)
@given(ties=st.sampled_from(["split", "first"]), **POOL)
def test_max_pool_reference_equals_fast_with_many_ties(ties, **kw):
    rng, args = pool_args(**kw)
    out, dx = check_pair(F.max_pool2d_forward, R.max_pool2d_forward, F.max_pool2d_backward,
                         R.max_pool2d_backward, args, rng, exact=True, bwd_args=(ties,))
    assert dx.shape == args[0].shape


@FEW
@given(count_include_pad=st.booleans(), **POOL)
def test_avg_pool_reference_equals_fast(count_include_pad, **kw):
    rng, args = pool_args(**kw)
    check_pair(F.avg_pool2d_forward, R.avg_pool2d_forward, F.avg_pool2d_backward,
               R.avg_pool2d_backward, args + (count_include_pad,), rng)


def test_max_pool_tie_rules_and_overlap_exact_values():
    """All four 2x2 windows of a 3x3 zero map tie everywhere and overlap at the centre."""
    x = np.zeros((1, 1, 3, 3))
    out, cache = R.max_pool2d_forward(x, (2, 2), (1, 1))
    ones = np.ones_like(out)
    np.testing.assert_array_equal(R.max_pool2d_backward(ones, cache, "split")[0, 0],
                                  [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    np.testing.assert_array_equal(R.max_pool2d_backward(ones, cache, "first")[0, 0],
                                  [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_max_pool_overlapping_windows_add_up_where_the_note_overwrote():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the maximum of all four overlapping 2x2 windows
    out, cache = R.max_pool2d_forward(x, (2, 2), (1, 1))
    dx = R.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    assert dx[0, 0, 1, 1] == 10.0 and dx.sum() == 10.0  # the note's `=` would keep only 4


def test_max_pool_padding_and_ceil_mode_never_win():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: the -inf fill must lose
    out, cache = R.max_pool2d_forward(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_array_equal(out[0, 0], [[-1, -2], [-4, -5]])
    dx = R.max_pool2d_backward(np.ones_like(out), cache, "first")
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    out, cache = R.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=True)  # 2x2, not 1x1
    np.testing.assert_array_equal(out[0, 0], [[-1, -3], [-7, -9]])
    dx = R.max_pool2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])


def test_max_pool_reference_rejects_an_unknown_tie_rule():
    _, cache = R.max_pool2d_forward(np.zeros((1, 1, 2, 2)), (2, 2), (2, 2))
    with pytest.raises(ValueError, match="ties must be 'split' or 'first'"):
        R.max_pool2d_backward(np.ones((1, 1, 1, 1)), cache, ties="last")


# -- the other kernels -----------------------------------------------------------------------
SHAPES = st.sampled_from([(3, 4), (2, 3, 4), (2, 3, 2, 3), (1, 5)])


@FEW
@given(shape=SHAPES, seed=st.integers(0, 2**16))
def test_elementwise_and_flatten_reference_equal_fast(shape, seed):
    rng = np.random.default_rng(seed)
    x = integer_maps(rng, shape, 5) - 2  # negatives, zeros (the kink) and positives
    check_pair(F.relu_forward, R.relu_forward, F.relu_backward, R.relu_backward, (x,), rng, True)
    check_pair(F.leaky_relu_forward, R.leaky_relu_forward, F.leaky_relu_backward,
               R.leaky_relu_backward, (x, 0.1), rng, True)
    check_pair(F.flatten_forward, R.flatten_forward, F.flatten_backward, R.flatten_backward,
               (x,), rng, True)
    mask = rng.integers(0, 2, size=shape) / 0.6
    check_pair(F.dropout_forward, R.dropout_forward, F.dropout_backward, R.dropout_backward,
               (x, 0.4, None, True, mask), rng, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_reference_draws_the_same_mask_from_the_same_seed(dtype):
    x = np.ones((6, 7), dtype)
    out, cache = F.dropout_forward(x, 0.3, np.random.default_rng(5))
    ref_out, ref_cache = R.dropout_forward(x, 0.3, np.random.default_rng(5))
    np.testing.assert_array_equal(ref_cache.mask, cache.mask)
    np.testing.assert_array_equal(ref_out, out)
    assert ref_out.dtype == dtype and 0 < (out == 0).sum() < out.size
    for training, p in ((False, 0.3), (True, 0.0)):
        assert R.dropout_forward(x, p, None, training)[0] is x
        assert R.dropout_backward(x, R.dropout_forward(x, p, None, training)[1]) is x


@FEW
@given(n=st.integers(1, 4), d=st.integers(1, 6), m=st.integers(1, 5), bias=st.booleans(),
       input_grad=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_reference_equals_fast(n, d, m, bias, input_grad, seed):
    rng = np.random.default_rng(seed)
    args = (rng.standard_normal((n, d)), rng.standard_normal((m, d)),
            rng.standard_normal(m) if bias else None)
    check_pair(F.linear_forward, R.linear_forward, F.linear_backward, R.linear_backward,
               args, rng, bwd_args=(input_grad,))


@FEW
@given(shape=st.sampled_from([(4, 3), (2, 3, 2, 3), (3, 1, 2, 2)]), training=st.booleans(),
       seed=st.integers(0, 2**16))
def test_batchnorm_reference_equals_fast_train_and_eval(shape, training, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    stats = () if training else (rng.standard_normal(C), rng.uniform(0.5, 2, C))
    check_pair(F.batchnorm_forward, R.batchnorm_forward, F.batchnorm_backward,
               R.batchnorm_backward, (x, gamma, beta) + stats, rng)
    cache, ref_cache = F.batchnorm_forward(x, gamma, beta, *stats)[1], \
        R.batchnorm_forward(x, gamma, beta, *stats)[1]
    assert ref_cache.batch_stats == cache.batch_stats == training
    close(ref_cache.mean, cache.mean)
    close(ref_cache.var, cache.var)


@FEW
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_global_avg_pool_reference_equals_fast(n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    check_pair(F.global_avg_pool2d_forward, R.global_avg_pool2d_forward,
               F.global_avg_pool2d_backward, R.global_avg_pool2d_backward,
               (rng.standard_normal((n, c, h, w)),), rng)


@FEW
@given(n=st.integers(1, 5), c=st.integers(2, 6), scale=st.sampled_from([1.0, 50.0]),
       seed=st.integers(0, 2**16))
def test_losses_reference_equal_fast(n, c, scale, seed):
    rng = np.random.default_rng(seed)
    scores, y = rng.standard_normal((n, c)) * scale, rng.integers(0, c, n)
    for fast, ref, args in ((F.softmax_cross_entropy, R.softmax_cross_entropy, (scores, y)),
                            (F.mse, R.mse, (scores, rng.standard_normal((n, c))))):
        loss, grad = fast(*args)
        ref_loss, ref_grad = ref(*args)
        assert isinstance(ref_loss, float) and ref_loss == pytest.approx(loss, rel=1e-12, abs=1e-12)
        close(ref_grad, grad)


# -- numerical gradients of the reference backward kernels ----------------------------------------
def grad_errors(forward, backward, inputs, seed=0, bwd_args=()):
    """rel_error of each gradient backward returns against centred differences of
    L = sum(forward(*inputs)[0] * g), one per array in ``inputs`` (None: not checked)."""
    g = np.random.default_rng(seed).standard_normal(np.shape(forward(*inputs)[0]))
    grads = backward(g, forward(*inputs)[1], *bwd_args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    loss = lambda: float(np.sum(forward(*inputs)[0] * g))
    return [rel_error(got, numerical_grad(loss, a)) for got, a in zip(grads, inputs)
            if isinstance(a, np.ndarray)]


def test_reference_conv_gradcheck():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    fwd = lambda x, w, b: R.conv2d_forward(x, w, b, (2, 1), (1, 1))
    assert max(grad_errors(fwd, R.conv2d_backward, (x, w, b))) < SMOOTH


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode",
                         [((2, 2), (2, 2), (0, 0), False), ((3, 3), (1, 2), (1, 1), True),
                          ((3, 2), (2, 1), (1, 0), True)])
def test_reference_pooling_gradcheck(kernel, stride, padding, ceil_mode):
    x = np.random.default_rng(1).permutation(2 * 7 * 6).reshape(1, 2, 7, 6) * 0.1  # no ties
    for ties in ("split", "first"):
        fwd = lambda x: R.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)
        assert grad_errors(fwd, R.max_pool2d_backward, (x,), bwd_args=(ties,))[0] < SMOOTH
    for include in (True, False):
        fwd = lambda x, include=include: R.avg_pool2d_forward(x, kernel, stride, padding,
                                                              ceil_mode, include)
        assert grad_errors(fwd, R.avg_pool2d_backward, (x,))[0] < SMOOTH
    assert grad_errors(R.global_avg_pool2d_forward, R.global_avg_pool2d_backward, (x,))[0] < SMOOTH


def test_reference_linear_flatten_activation_dropout_gradcheck():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.1, 1, (3, 4)) * rng.choice([-1, 1], (3, 4))  # away from ReLU's kink
    w, b = rng.standard_normal((2, 4)), rng.standard_normal(2)
    assert max(grad_errors(R.linear_forward, R.linear_backward, (x, w, b))) < SMOOTH
    assert grad_errors(R.flatten_forward, R.flatten_backward, (x.reshape(3, 2, 2),))[0] < SMOOTH
    assert grad_errors(R.relu_forward, R.relu_backward, (x,))[0] < SMOOTH
    assert grad_errors(lambda x: R.leaky_relu_forward(x, 0.2), R.leaky_relu_backward, (x,))[0] < SMOOTH
    mask = (rng.random(x.shape) > 0.5) / 0.5
    fwd = lambda x: R.dropout_forward(x, 0.5, mask=mask)
    assert grad_errors(fwd, R.dropout_backward, (x,))[0] < SMOOTH


@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 2, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_reference_batchnorm_gradcheck(shape, training):
    rng = np.random.default_rng(3)
    x, gamma, beta = rng.standard_normal(shape) * 2 + 1, rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    stats = () if training else (rng.standard_normal(3), rng.uniform(0.5, 2, 3))
    fwd = lambda x, gamma, beta: R.batchnorm_forward(x, gamma, beta, *stats)
    assert max(grad_errors(fwd, R.batchnorm_backward, (x, gamma, beta))) < SMOOTH


def test_reference_losses_gradcheck():
    rng = np.random.default_rng(4)
    scores, y, target = rng.standard_normal((4, 5)), rng.integers(0, 5, 4), rng.standard_normal((4, 5))
    for loss_fn, args in ((R.softmax_cross_entropy, (scores, y)), (R.mse, (scores, target))):
        numeric = numerical_grad(lambda loss_fn=loss_fn, args=args: loss_fn(*args)[0], scores)
        assert rel_error(loss_fn(*args)[1], numeric) < SMOOTH


# -- the switch --------------------------------------------------------------------------------------
def test_use_reference_swaps_every_kernel_and_restores_them():
    fast = {name: getattr(F, name) for name in R.__all__}
    assert fast == F.FAST
    with F.use_reference() as ref:
        assert ref is R
        assert all(getattr(F, name) is getattr(R, name) for name in R.__all__)
        with F.use_reference():  # nested: the inner exit keeps the outer block on the loops
            pass
        assert F.conv2d_forward is R.conv2d_forward
    assert all(getattr(F, name) is fast[name] for name in R.__all__)
    with pytest.raises(KeyError), F.use_reference():
        raise KeyError("inside the block")
    assert all(getattr(F, name) is fast[name] for name in R.__all__)


def run(model, x, loss_fn, target):
    """Loss, scores, dL/dx and every parameter's gradient after one forward/backward."""
    model.zero_grad()
    scores = model(x)
    loss = loss_fn(scores, target)
    dx = model.backward(loss_fn.backward())
    return [loss, scores, dx] + [p.grad.copy() for p in model.parameters()]


@pytest.fixture
def spy(monkeypatch):
    """Wraps every reference kernel to record its name when called; returns the set."""
    called = set()

    def wrap(name, fn):
        def recorded(*args, **kwargs):
            called.add(name)
            return fn(*args, **kwargs)
        return recorded

    for name in R.__all__:
        monkeypatch.setattr(R, name, wrap(name, getattr(R, name)))
    return called


def assert_same_on_both_paths(model, x, loss_fn, target, spy, steps=2):
    """Runs a copy of the model on the fast kernels and one on the loops; outputs,
    gradients and buffers (running statistics) must agree to float64 round-off.
    Returns the names of the reference kernels that ran (the spy's record) in the last step."""
    twin = copy.deepcopy(model)  # same weights, same dropout generator state
    for _ in range(steps):
        spy.clear()
        fast = run(model, x, loss_fn, target)
        assert not spy, f"the fast path called reference kernels: {spy}"
        with F.use_reference():
            slow = run(twin, x, loss_fn, target)
        assert slow[0] == pytest.approx(fast[0], rel=1e-12)
        for got, want in zip(slow[1:], fast[1:]):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    ran = set(spy)
    for (name, got), (_, want) in zip(twin.named_buffers(), model.named_buffers()):
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
    return ran


def kernels(*families):
    return {f"{k}_{d}" for k in families for d in ("forward", "backward")}


def test_switch_three_layer_convnet(spy):
    model = three_layer_convnet(seed=0, num_filters=2, hidden_dim=6).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    ran = assert_same_on_both_paths(model, x, SoftmaxCrossEntropy(), np.array([3, 7]), spy, 1)
    assert ran == kernels("conv2d", "relu", "max_pool2d", "flatten", "linear") | {
        "softmax_cross_entropy"}


@pytest.mark.parametrize("training", [True, False])
def test_switch_vgg_small(training, spy):
    model = vgg_small(seed=1, widths=(3, 4)).astype(np.float64).train(training)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8))
    ran = assert_same_on_both_paths(model, x, SoftmaxCrossEntropy(), np.array([0, 9]), spy)
    assert ran == kernels("conv2d", "batchnorm", "relu", "max_pool2d", "global_avg_pool2d",
                          "linear") | {"softmax_cross_entropy"}


@pytest.mark.parametrize("training", [True, False])
def test_switch_resnet_small(training, spy):
    model = resnet_small(seed=2, widths=(3, 4), blocks=1).astype(np.float64).train(training)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8))
    ran = assert_same_on_both_paths(model, x, SoftmaxCrossEntropy(), np.array([1, 5]), spy)
    assert ran == kernels("conv2d", "batchnorm", "relu", "global_avg_pool2d",
                          "linear") | {"softmax_cross_entropy"}


@pytest.mark.parametrize("ties", ["split", "first"])
def test_switch_pooling_network_with_many_ties(ties, spy):
    """Integer inputs and integer conv weights keep every max-pooling input integer-valued,
    so windows tie all the time: overlapping, padded and ceil_mode windows."""
    rng = np.random.default_rng(2)
    conv = Conv2D(2, 3, 3, padding=1, seed=0, dtype=np.float64)
    conv.weight.data = rng.integers(-1, 2, conv.weight.data.shape).astype(np.float64)
    model = Sequential(
        MaxPool2D(3, stride=1, padding=1, ties=ties),                   # 9x9, overlapping, padded
        conv, ReLU(),
        MaxPool2D(3, stride=2, padding=1, ceil_mode=True, ties=ties),   # -> 5x5
        MaxPool2D(2, stride=1, ties=ties),                              # -> 4x4
        AvgPool2D(2, stride=2, padding=1, ceil_mode=True, count_include_pad=False),  # -> 3x3
        BatchNorm2D(3), LeakyReLU(0.1), Dropout(0.3, seed=3),
        Flatten(), Linear(27, 5, seed=4), BatchNorm1D(5), ReLU(), Linear(5, 4, seed=5),
    ).astype(np.float64)
    x = integer_maps(rng, (4, 2, 9, 9))
    ran = assert_same_on_both_paths(model, x, SoftmaxCrossEntropy(), np.array([0, 1, 2, 3]), spy)
    assert ran == kernels("max_pool2d", "conv2d", "relu", "avg_pool2d", "batchnorm",
                          "leaky_relu", "dropout", "flatten", "linear") | {"softmax_cross_entropy"}
    ran = assert_same_on_both_paths(model, x, MSELoss(), rng.standard_normal((4, 4)), spy, 1)
    assert "mse" in ran


def test_switch_keeps_float32_and_agrees_to_float32_round_off():
    model = vgg_small(seed=0, widths=(3, 4))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    twin, loss_fn = copy.deepcopy(model), SoftmaxCrossEntropy()
    fast = run(model, x, loss_fn, np.array([1, 2]))
    with F.use_reference():
        slow = run(twin, x, loss_fn, np.array([1, 2]))
    for got, want in zip(slow[1:], fast[1:]):
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ties", ["split", "first"])
def test_nan_in_a_window_routes_the_same_on_both_paths(ties):
    x = np.random.default_rng(5).integers(0, 3, (2, 2, 6, 6)).astype(np.float64)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[1, 1, 4, 0] = np.nan
    out, cache = F.FAST["max_pool2d_forward"](x, (3, 3), (2, 2), (1, 1), True)
    ref_out, ref_cache = R.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), True)
    np.testing.assert_array_equal(out, ref_out)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    np.testing.assert_allclose(F.FAST["max_pool2d_backward"](dout, cache, ties),
                               R.max_pool2d_backward(dout, ref_cache, ties), rtol=1e-12)
