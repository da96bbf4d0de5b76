"""Label smoothing: PyTorch's definition, forward and backward, gradient-checked."""
import numpy as np
import pytest

from minicnn import functional as F
from minicnn.functional import reference
from minicnn.gradient_check import numerical_grad, rel_error
from minicnn.losses import SoftmaxCrossEntropy


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
def test_label_smoothing_gradient_check(rng, eps):
    scores, y = 2 * rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=eps)
    loss_fn(scores, y)
    analytic = loss_fn.backward()
    numeric = numerical_grad(lambda: loss_fn(scores, y), scores)
    assert rel_error(analytic, numeric) < 1e-7


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3, 1.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_label_smoothing_matches_pytorch(rng, eps, dtype):
    torch = pytest.importorskip("torch")
    scores, y = (4 * rng.standard_normal((16, 10))).astype(dtype), rng.integers(0, 10, 16)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=eps)
    loss = loss_fn(scores, y)
    t = torch.tensor(scores, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(t, torch.tensor(y), label_smoothing=eps)
    tloss.backward()
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert loss == pytest.approx(tloss.item(), rel=tol)
    grad = loss_fn.backward()
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=tol * 10, atol=tol / 10)


def test_smoothing_changes_the_loss_and_the_reference_kernel_agrees(rng):
    scores, y = 3 * rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    plain, dplain = F.softmax_cross_entropy(scores, y)
    smooth, dsmooth = F.softmax_cross_entropy(scores, y, 0.2)
    assert abs(smooth - plain) > 1e-3 and not np.allclose(dsmooth, dplain)
    loop_loss, loop_grad = reference.softmax_cross_entropy(scores, y, 0.2)
    assert smooth == pytest.approx(loop_loss, rel=1e-12)
    np.testing.assert_allclose(dsmooth, loop_grad, rtol=1e-10, atol=1e-15)
    with F.use_reference():
        loss_fn = SoftmaxCrossEntropy(label_smoothing=0.2)
        assert loss_fn(scores, y) == pytest.approx(smooth, rel=1e-12)


def test_perfect_scores_leave_the_entropy_of_the_smoothed_target():
    eps, C = 0.1, 10
    scores = np.full((2, C), -50.0)
    scores[[0, 1], [3, 7]] = 50.0
    loss = SoftmaxCrossEntropy(label_smoothing=eps)(scores, np.array([3, 7]))
    # the loss is eps * (C - 1) / C * 100 (the log-probability of each wrong class is -100)
    assert loss == pytest.approx(eps * (C - 1) / C * 100, rel=1e-9)


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), "0.1", True, None])
def test_label_smoothing_out_of_range_is_one_clear_line(bad):
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: label_smoothing must be a "
                                         r"number between 0.0 and 1.0, got"):
        SoftmaxCrossEntropy(label_smoothing=bad)
    assert repr(SoftmaxCrossEntropy(0.1)) == "SoftmaxCrossEntropy(label_smoothing=0.1)"
    assert repr(SoftmaxCrossEntropy(0.0)) == "SoftmaxCrossEntropy()"
    assert SoftmaxCrossEntropy(1).label_smoothing == 1.0  # the edges are allowed
    assert SoftmaxCrossEntropy(0).label_smoothing == 0.0
