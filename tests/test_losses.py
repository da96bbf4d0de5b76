import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minicnn.functional.losses import mse, softmax_cross_entropy
from minicnn.gradient_check import numerical_grad, rel_error
from minicnn.losses import MSELoss, SoftmaxCrossEntropy


def naive_softmax_cross_entropy(scores, y):
    """One example at a time, straight from the definition."""
    N, C = scores.shape
    loss, dscores = 0.0, np.zeros_like(scores)
    for i in range(N):
        probs = np.exp(scores[i]) / np.sum(np.exp(scores[i]))
        loss -= np.log(probs[y[i]]) / N
        dscores[i] = probs / N
        dscores[i, y[i]] -= 1 / N
    return loss, dscores


# -- kernels: values and gradients ---------------------------------------------------
def test_softmax_cross_entropy_gradient_check(rng):
    scores, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    _, dscores = softmax_cross_entropy(scores, y)
    numeric = numerical_grad(lambda: softmax_cross_entropy(scores, y)[0], scores)
    assert rel_error(dscores, numeric) < 1e-7


def test_mse_gradient_check(rng):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _, dpred = mse(pred, target)
    numeric = numerical_grad(lambda: mse(pred, target)[0], pred)
    assert rel_error(dpred, numeric) < 1e-7


def test_softmax_cross_entropy_equals_naive_formula(rng):
    scores, y = 3 * rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    loss, dscores = softmax_cross_entropy(scores, y)
    naive_loss, naive_dscores = naive_softmax_cross_entropy(scores, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(naive_loss, rel=1e-12)
    np.testing.assert_allclose(dscores, naive_dscores, rtol=1e-10, atol=1e-15)


def test_mse_value():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[1.0, 0.0], [0.0, 4.0]])
    loss, dpred = mse(pred, target)
    assert loss == pytest.approx((0 + 4 + 9 + 0) / 4)
    np.testing.assert_allclose(dpred, 2 * (pred - target) / 4)


def test_uniform_scores_give_log_of_the_class_count():
    loss, dscores = softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 4, 9]))
    assert loss == pytest.approx(np.log(10))
    np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_for_huge_scores(dtype):
    scores = np.array([[1e4, 0, -1e4], [0, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=dtype)
    y = np.array([0, 2, 1])
    loss, dscores = softmax_cross_entropy(scores, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dscores))
    # per example: -log 1 = 0, -log(1/2), -log(1/3)
    assert loss == pytest.approx((0 + np.log(2) + np.log(3)) / 3, rel=1e-6)
    np.testing.assert_allclose(dscores[1], [0, 0.5 / 3, -0.5 / 3], atol=1e-7)


def test_float32_stays_float32(rng):
    scores, y = rng.standard_normal((5, 3)).astype(np.float32), rng.integers(0, 3, 5)
    loss, dscores = softmax_cross_entropy(scores, y)
    assert isinstance(loss, float) and dscores.dtype == np.float32
    pred = scores
    loss, dpred = mse(pred, np.zeros((5, 3)))  # a float64 target must not promote dpred
    assert isinstance(loss, float) and dpred.dtype == np.float32
    loss_fn = SoftmaxCrossEntropy()
    assert isinstance(loss_fn(scores, y), float) and loss_fn.backward().dtype == np.float32
    loss_fn = MSELoss()
    assert isinstance(loss_fn(pred, np.ones((5, 3), np.int64)), float)
    assert loss_fn.backward().dtype == np.float32


@settings(max_examples=50, deadline=None)
@given(scores=arrays(np.float64, (4, 3), elements=st.floats(-50, 50)),
       shift=st.floats(-1e3, 1e3), labels=st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_softmax_cross_entropy_properties(scores, shift, labels):
    y = np.array(labels)
    loss, dscores = softmax_cross_entropy(scores, y)
    shifted_loss, shifted_dscores = softmax_cross_entropy(scores + shift, y)
    assert loss >= 0
    assert shifted_loss == pytest.approx(loss, rel=1e-6, abs=1e-9)  # softmax ignores a shift
    np.testing.assert_allclose(shifted_dscores, dscores, atol=1e-9)
    np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-12)  # probabilities sum to 1


# -- loss objects ------------------------------------------------------------------------
def test_objects_forward_and_backward_match_kernels(rng):
    scores, y = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    loss_fn = SoftmaxCrossEntropy()
    loss, dscores = softmax_cross_entropy(scores, y)
    assert loss_fn(scores, y) == loss == loss_fn.forward(scores, y)
    np.testing.assert_array_equal(loss_fn.backward(), dscores)
    loss_fn.backward()[...] = 0  # the returned gradient is the caller's to change
    np.testing.assert_array_equal(loss_fn.backward(), dscores)

    pred, target = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    loss_fn = MSELoss()
    assert loss_fn(pred, target) == mse(pred, target)[0]
    np.testing.assert_array_equal(loss_fn.backward(), mse(pred, target)[1])


def test_objects_gradient_check(rng):
    scores, y = rng.standard_normal((3, 4)), rng.integers(0, 4, 3)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn(scores, y)
    assert rel_error(loss_fn.backward(), numerical_grad(lambda: loss_fn(scores, y), scores)) < 1e-7


@pytest.mark.parametrize("loss_fn", [SoftmaxCrossEntropy(), MSELoss()])
def test_backward_before_forward_raises(loss_fn):
    with pytest.raises(RuntimeError, match=rf"{type(loss_fn).__name__}\(\): backward called before forward"):
        loss_fn.backward()


def test_repr():
    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    assert repr(MSELoss()) == "MSELoss()"


S = np.zeros((4, 3))
Y = np.array([0, 1, 2, 1])


@pytest.mark.parametrize("scores, y, error, message", [
    (S[0], Y[:1], ValueError, r"SoftmaxCrossEntropy: expected scores of shape \(N, C\), got shape \(3,\)"),
    (S[None], Y, ValueError, r"scores of shape \(N, C\), got shape \(1, 4, 3\)"),
    (np.zeros((0, 3)), Y[:0], ValueError, r"SoftmaxCrossEntropy: got an empty batch, scores of shape \(0, 3\)"),
    (S, Y[:, None], ValueError, r"labels of shape \(N,\) = \(4,\) to match scores of shape \(4, 3\), got shape \(4, 1\)"),
    (S, Y[:3], ValueError, r"labels of shape \(N,\) = \(4,\) .* got shape \(3,\)"),
    (S, np.array([0, 1, 3, 1]), ValueError, r"label 3 at index 2 is out of range \[0, 3\)"),
    (S, np.array([0, -1, 2, 1]), ValueError, r"label -1 at index 1 is out of range \[0, 3\)"),
    (S, Y.astype(float), TypeError, r"SoftmaxCrossEntropy: labels must be a numpy array of integers, got dtype float64"),
    (S, [0, 1, 2, 1], TypeError, r"labels must be a numpy array, got list"),
    (S.astype(int), Y, TypeError, r"scores must be a numpy array of floats, got dtype int64"),
    (S.tolist(), Y, TypeError, r"scores must be a numpy array, got list"),
])
def test_softmax_cross_entropy_bad_input(scores, y, error, message):
    loss_fn = SoftmaxCrossEntropy()
    loss_fn(S, Y)
    with pytest.raises(error, match=message):
        loss_fn(scores, y)
    with pytest.raises(RuntimeError):  # no stale gradient from the earlier call
        loss_fn.backward()


@pytest.mark.parametrize("pred, target, error, message", [
    (S, S[:2], ValueError, r"MSELoss: pred and target must have the same shape, got pred \(4, 3\) and target \(2, 3\)"),
    (S, S.T, ValueError, r"got pred \(4, 3\) and target \(3, 4\)"),
    (np.zeros((0, 3)), np.zeros((0, 3)), ValueError, r"MSELoss: got empty arrays of shape \(0, 3\)"),
    (S.astype(int), S, TypeError, r"MSELoss: pred must be a numpy array of floats, got dtype int64"),
    (S, S.astype(str), TypeError, r"target must be a numpy array of real numbers, got dtype <U"),
    (S, 0.0, TypeError, r"MSELoss: target must be a numpy array, got float"),
])
def test_mse_bad_input(pred, target, error, message):
    with pytest.raises(error, match=message):
        MSELoss()(pred, target)


# -- against PyTorch ---------------------------------------------------------------------
def test_softmax_cross_entropy_matches_torch(rng):
    torch = pytest.importorskip("torch")
    scores, y = 5 * rng.standard_normal((8, 6)), rng.integers(0, 6, 8)
    t_scores = torch.tensor(scores, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(t_scores, torch.tensor(y))
    t_loss.backward()
    loss, dscores = softmax_cross_entropy(scores, y)
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(dscores, t_scores.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_mse_matches_torch(rng):
    torch = pytest.importorskip("torch")
    pred, target = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    t_pred = torch.tensor(pred, requires_grad=True)
    t_loss = torch.nn.functional.mse_loss(t_pred, torch.tensor(target))
    t_loss.backward()
    loss, dpred = mse(pred, target)
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(dpred, t_pred.grad.numpy(), rtol=1e-12)
