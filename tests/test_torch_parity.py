"""Forward, loss and gradients equal PyTorch's on the same weights (skipped without torch)."""
import numpy as np
import pytest

from conftest import assert_matches_torch
from minicnn.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    Linear,
    MaxPool2D,
    ReLU,
)
from minicnn.models import Sequential


def pair_of_nets(torch):
    nn = torch.nn
    ours = Sequential(
        Conv2D(3, 6, 3, stride=1, padding=1, seed=0), BatchNorm2D(6), ReLU(),
        MaxPool2D(3, stride=2, padding=1, ceil_mode=True, ties="first"),
        Conv2D(6, 8, (3, 2), stride=(2, 1), padding=(1, 0), seed=1), LeakyReLU(0.1),
        AvgPool2D(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False),
        Conv2D(8, 8, 1, seed=2), ReLU(), MaxPool2D(2, stride=1), Flatten(),
        Linear(8 * 3 * 4, 16, seed=3), BatchNorm1D(16), ReLU(), Linear(16, 5, seed=4),
    ).astype(np.float64)
    theirs = nn.Sequential(
        nn.Conv2d(3, 6, 3, 1, 1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        nn.Conv2d(6, 8, (3, 2), (2, 1), (1, 0)), nn.LeakyReLU(0.1),
        nn.AvgPool2d(2, 1, 1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(8, 8, 1), nn.ReLU(), nn.MaxPool2d(2, 1), nn.Flatten(),
        nn.Linear(96, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 5),
    ).double()
    # our state dict loads into torch strictly: same keys, same shapes
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("training", [True, False])
def test_network_matches_pytorch(training):
    torch = pytest.importorskip("torch")
    ours, theirs = pair_of_nets(torch)
    ours.train(training), theirs.train(training)
    rng = np.random.default_rng(0)
    assert_matches_torch(torch, ours, theirs, rng.standard_normal((4, 3, 9, 9)),
                         rng.integers(0, 5, size=4))


def test_max_pool_first_rule_equals_pytorch_with_ties():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(2, 3, 9, 8)).astype(np.float64)
    for k, s, p, ceil in [(2, 2, 0, False), (3, 2, 1, True), (3, 1, 1, False), (4, 3, 2, True)]:
        layer = MaxPool2D(k, s, p, ceil_mode=ceil, ties="first")
        out = layer(x)
        dout = rng.standard_normal(out.shape)
        tx = torch.tensor(x, requires_grad=True)
        tout = torch.nn.functional.max_pool2d(tx, k, s, p, ceil_mode=ceil)
        tout.backward(torch.tensor(dout))
        np.testing.assert_array_equal(out, tout.detach().numpy())
        np.testing.assert_allclose(layer.backward(dout), tx.grad.numpy(), atol=1e-12)


def test_global_avg_pool_matches_adaptive_avg_pool():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))
    ref = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), 1).flatten(1).numpy()
    np.testing.assert_allclose(GlobalAvgPool2D()(x), ref, rtol=1e-12)
