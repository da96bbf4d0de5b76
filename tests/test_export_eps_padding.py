"""Exports keep batch-norm eps and non-square padding (to_torch, from_torch, ONNX).

Small running variances make eps matter: with var ~ 1e-3, eps 0.5 and PyTorch's default
1e-5 give outputs that differ by orders of magnitude, so a dropped eps cannot pass; the
padding (2, 0) changes the output size, so swapped ONNX pads cannot pass either.
"""
import numpy as np
import pytest

from minicnn import layers as L
from minicnn.export import from_torch, to_onnx, to_torch
from minicnn.models import Sequential


def eps_net(dtype=np.float32):
    rng = np.random.default_rng(0)
    net = Sequential(L.Conv2D(3, 4, 3, padding=(2, 0), seed=1), L.BatchNorm2D(4, eps=0.5),
                     L.ReLU(), L.Flatten(), L.Linear(4 * 8 * 3, 6, seed=2),
                     L.BatchNorm1D(6, eps=0.3), L.Linear(6, 3, seed=3))
    for bn in (net[1], net[5]):
        c = bn.num_features
        bn.running_mean = rng.standard_normal(c).astype(np.float32)
        bn.running_var = rng.uniform(1e-3, 1e-2, c).astype(np.float32)
        bn.weight.data = rng.uniform(0.5, 2, c).astype(np.float32)
        bn.bias.data = rng.standard_normal(c).astype(np.float32)
    return net.astype(dtype).eval()


def inputs(dtype=np.float32):
    return np.random.default_rng(1).standard_normal((5, 3, 6, 5)).astype(dtype)


def test_the_network_is_sensitive_to_eps_and_padding():
    """The premise: changing either eps or the padding changes the output a lot."""
    x = inputs()
    ours = eps_net()(x)
    assert ours.shape == (5, 3)
    for i in (1, 5):
        other = eps_net()
        other[i].eps = 1e-5
        assert np.abs(other(x) - ours).max() > 0.1
    with pytest.raises(ValueError):  # padding (2, 2) makes the Linear layer's input too wide
        swapped = eps_net()
        swapped[0].padding = (2, 2)
        swapped(x)


def test_to_torch_and_back_keep_eps_and_padding():
    torch = pytest.importorskip("torch")
    net, x = eps_net(np.float64), inputs(np.float64)
    ours = net(x)
    tnet = to_torch(net)
    assert tnet[0].padding == (2, 0)
    assert tnet[1].eps == 0.5 and tnet[5].eps == 0.3
    with torch.no_grad():
        theirs = tnet(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-10)
    back = from_torch(tnet)
    assert back[0].padding == (2, 0) and back[1].eps == 0.5 and back[5].eps == 0.3
    assert repr(back) == repr(net)
    np.testing.assert_allclose(back(x), ours, rtol=1e-10, atol=1e-10)


def test_onnx_keeps_eps_and_padding(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net, x = eps_net(), inputs()
    proto = to_onnx(net, tmp_path / "net.onnx", x.shape[1:])
    attrs = {n.op_type + "@" + n.name: {a.name: a for a in n.attribute} for n in proto.graph.node}
    assert list(attrs["Conv@0"]["pads"].ints) == [2, 0, 2, 0]  # [top, left, bottom, right]
    assert attrs["BatchNormalization@1"]["epsilon"].f == pytest.approx(0.5)
    assert attrs["BatchNormalization@5"]["epsilon"].f == pytest.approx(0.3)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], net(x), rtol=1e-4, atol=1e-4)
