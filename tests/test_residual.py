"""Residual blocks and resnet_small: gradients, PyTorch parity, export, training and resume."""
import os

import numpy as np
import pytest

from conftest import assert_matches_torch
from minicnn import gradcheck
from minicnn.layers import BatchNorm2D, Conv2D, ReLU, Residual
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import MODELS, Sequential, build_model, resnet_small
from minicnn.optim import SGD
from minicnn.training import fit

X = np.random.default_rng(0).standard_normal((2, 3, 8, 8))


def tiny_resnet(seed=0, dtype=np.float64):
    return resnet_small(num_classes=5, seed=seed, dtype=dtype, widths=(4, 6), blocks=1)


def test_identity_residual_adds_the_input_and_passes_dout_to_both_branches():
    block = Residual(Sequential(Conv2D(3, 3, 3, padding=1, seed=0))).astype(np.float64)
    out = block(X)
    np.testing.assert_allclose(out, block.body[0](X) + X)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    block(X)
    dx = block.backward(dout)
    conv = Conv2D(3, 3, 3, padding=1, seed=0).astype(np.float64)
    conv(X)
    np.testing.assert_allclose(dx, conv.backward(dout) + dout, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shortcut", [None, "conv"])
def test_residual_gradcheck(shortcut):
    body = Sequential(Conv2D(3, 4, 3, stride=2, padding=1, bias=False, seed=1), BatchNorm2D(4),
                      ReLU(), Conv2D(4, 4, 3, padding=1, seed=2))
    if shortcut is None:
        body = Sequential(Conv2D(3, 3, 3, padding=1, seed=1), ReLU())
        block = Residual(body)
    else:
        block = Residual(body, Sequential(Conv2D(3, 4, 1, stride=2, bias=False, seed=3),
                                          BatchNorm2D(4)))
    result = gradcheck(block, X)
    assert len(result.errors) == 1 + len(block.parameters())
    assert result.max_error < 1e-6, result


def test_residual_shape_mismatch_is_a_clear_error():
    block = Residual(Sequential(Conv2D(3, 4, 3, padding=1)))
    with pytest.raises(ValueError, match=r"body output \(2, 4, 8, 8\) and shortcut output "
                                         r"\(2, 3, 8, 8\) differ"):
        block(X.astype(np.float32))
    with pytest.raises(TypeError, match="body must be a Layer"):
        Residual(ReLU, None)


@pytest.mark.parametrize("training", [True, False])
def test_resnet_small_gradcheck(training):
    model = tiny_resnet().train(training)
    result = gradcheck(model, X)
    assert result.max_error < 1e-6, result
    assert len(result.errors) == 1 + len(model.parameters())


def test_resnet_small_keys_and_registry():
    keys = list(resnet_small(seed=0).state_dict())
    assert "3.body.0.weight" in keys and "7.shortcut.1.running_mean" in keys
    assert "resnet_small" in MODELS
    model = build_model("resnet_small", num_classes=3, seed=0, in_channels=1)
    assert model(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 3)
    with pytest.raises(ValueError, match="does not take"):
        build_model("resnet_small", image_size=28)


def torch_resnet(torch):
    """The same network written directly in PyTorch (BasicBlock with body/shortcut)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                              nn.BatchNorm2d(c_out))

        def forward(self, x):
            return self.body(x) + (self.shortcut(x) if hasattr(self, "shortcut") else x)

    return nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         Block(4, 4, 1), nn.ReLU(), Block(4, 6, 2), nn.ReLU(),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(6, 5)).double()


@pytest.mark.parametrize("training", [True, False])
def test_resnet_small_matches_pytorch(training):
    torch = pytest.importorskip("torch")
    ours, theirs = tiny_resnet(), torch_resnet(torch)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    ours.train(training), theirs.train(training)
    assert_matches_torch(torch, ours, theirs, X, np.array([0, 3]))


def test_resnet_small_to_torch_and_back():
    torch = pytest.importorskip("torch")
    from minicnn.export import from_torch, to_torch
    ours = tiny_resnet(dtype=np.float32)
    ours(X.astype(np.float32))  # non-trivial running statistics
    ours.eval()
    net = to_torch(ours)
    assert list(net.state_dict()) == list(ours.state_dict())
    x = X.astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), ours(x), atol=1e-5)
    back = from_torch(net)
    assert isinstance(back[3], Residual) and back[5].shortcut is not None
    for (k, a), (k2, b) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert k == k2 and np.array_equal(a, b), k
    np.testing.assert_array_equal(back.eval()(x), ours(x))


def test_resnet_small_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from minicnn.export import to_onnx
    model = resnet_small(seed=0, widths=(4, 8), blocks=2)
    model(np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32))
    model.eval()
    proto = to_onnx(model, tmp_path / "r.onnx", input_shape=(3, 16, 16))
    assert sum(node.op_type == "Add" for node in proto.graph.node) == 4
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "r.onnx"))
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), atol=1e-5)


def train(out, epochs, resume=False, seed=0):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 96)
    x = rng.standard_normal((96, 3, 8, 8)).astype(np.float32)
    x[np.arange(96), y % 3] += 1.5
    model = tiny_resnet(seed=seed, dtype=np.float32)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    hist = fit(model, SoftmaxCrossEntropy(), opt, (x[:64], y[:64]), (x[64:], y[64:]),
               epochs=epochs, batch_size=16, seed=3, out_dir=out, resume=resume,
               progress=False)
    return model, hist


def test_resnet_small_fit_and_resume_bit_identical(tmp_path):
    ref_model, ref_hist = train(tmp_path / "ref", 2)
    train(tmp_path / "resumed", 1)
    model, hist = train(tmp_path / "resumed", 2, resume=True, seed=5)
    assert hist.iteration_loss == ref_hist.iteration_loss
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert np.array_equal(a, b), k
    assert os.path.exists(tmp_path / "resumed" / "best.npz")


@pytest.mark.parametrize("kw,match", [
    (dict(blocks=0), "blocks must be a positive int, got 0"),
    (dict(blocks=1.5), "blocks must be a positive int"),
    (dict(widths=()), "widths must be a non-empty tuple of positive ints"),
    (dict(widths=(4, 0)), "widths must be"),
])
def test_resnet_small_refuses_empty_stages(kw, match):
    with pytest.raises(ValueError, match=f"resnet_small: {match}"):
        resnet_small(**kw)


@pytest.mark.parametrize("c_in,c_out,stride,projection", [
    (4, 8, 1, True), (4, 4, 2, True), (4, 8, 2, True), (4, 4, 1, False)])
def test_basic_block_projects_when_channels_or_size_change(c_in, c_out, stride, projection):
    from minicnn.models.zoo import basic_block
    block, relu = basic_block(c_in, c_out, stride, seed=0)
    assert (block.shortcut is not None) == projection
    x = np.random.default_rng(0).standard_normal((2, c_in, 6, 6)).astype(np.float32)
    out = relu(block(x))
    assert out.shape == (2, c_out, 6 // stride, 6 // stride)
    assert block.backward(relu.backward(np.ones_like(out))).shape == x.shape
