"""Export to PyTorch and ONNX: same weights, same outputs, clear errors."""
import numpy as np
import pytest

from minicnn import layers as L
from minicnn.export import from_torch, to_onnx, to_torch
from minicnn.layers import Layer
from minicnn.models import Sequential


def every_layer_net(seed=0):
    """A net with every exportable layer, padded and ceil_mode pooling, nested Sequential."""
    rng = np.random.default_rng(seed)
    net = Sequential(
        L.Conv2D(3, 4, 3, padding=1, seed=0), L.BatchNorm2D(4), L.ReLU(),
        L.MaxPool2D(3, stride=2, padding=1, ceil_mode=True),
        L.Conv2D(4, 5, (3, 2), stride=(1, 2), bias=False, seed=1), L.LeakyReLU(0.1),
        L.AvgPool2D(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        L.Dropout(0.3),
        Sequential(L.AvgPool2D(2, stride=1, padding=1, ceil_mode=True), L.Conv2D(5, 6, 1, seed=2)),
        L.MaxPool2D(2, stride=1, padding=1), L.GlobalAvgPool2D(), L.BatchNorm1D(6),
        L.Linear(6, 8, seed=3), L.ReLU(), L.Linear(8, 4, seed=4))
    for layer in list(net) + list(net[8]):  # non-trivial running statistics and affine weights
        if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
            c = layer.num_features
            layer.running_mean = rng.standard_normal(c).astype(np.float32)
            layer.running_var = rng.uniform(0.5, 2, c).astype(np.float32)
            layer.weight.data = rng.standard_normal(c).astype(np.float32)
            layer.bias.data = rng.standard_normal(c).astype(np.float32)
            layer.num_batches_tracked = np.array(7, dtype=np.int64)
    return net.eval()


def conv_flatten_net():
    return Sequential(L.Conv2D(2, 3, 3, stride=2, seed=0), L.ReLU(), L.Flatten(),
                      L.Linear(3 * 3 * 3, 5, seed=1)).eval()


class Swish(Layer):
    def forward(self, x):
        return x / (1 + np.exp(-x))


def test_torch_round_trip_float64():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((3, 3, 13, 11))
    for net in (every_layer_net(), conv_flatten_net()):
        net.astype(np.float64)
        if net[0].in_channels == 2:
            x = x[:, :2, :7, :7]
        ours = net(x)
        tnet = to_torch(net)
        assert not tnet.training
        assert list(tnet.state_dict()) == list(net.state_dict())
        for k, v in tnet.state_dict().items():
            assert np.array_equal(v.numpy(), net.state_dict()[k]), k
        with torch.no_grad():
            theirs = tnet(torch.from_numpy(x)).numpy()
        assert theirs.dtype == np.float64
        np.testing.assert_allclose(theirs, ours, atol=1e-6, rtol=0)
        back = from_torch(tnet)
        assert repr(back) == repr(net)
        np.testing.assert_allclose(back(x), ours, atol=1e-6, rtol=0)
        assert int(back.state_dict().get("1.num_batches_tracked", 7)) == 7


def test_torch_training_mode_and_batchnorm_update_agree():
    torch = pytest.importorskip("torch")
    net = Sequential(L.Conv2D(3, 4, 3, seed=0), L.BatchNorm2D(4), L.ReLU(), L.GlobalAvgPool2D(),
                     L.Linear(4, 2, seed=1)).astype(np.float64).train()
    tnet = to_torch(net)
    assert tnet.training
    x = np.random.default_rng(2).standard_normal((5, 3, 6, 6))
    np.testing.assert_allclose(tnet(torch.from_numpy(x)).detach().numpy(), net(x), atol=1e-6)
    for k, v in tnet.state_dict().items():  # running statistics updated the same way
        np.testing.assert_allclose(v.numpy(), net.state_dict()[k], atol=1e-6, err_msg=k)


def test_from_torch_rejects_what_minicnn_lacks():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    with pytest.raises(TypeError, match=r"\(1\) Sigmoid"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid()))
    with pytest.raises(TypeError, match="dilation"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)))
    with pytest.raises(TypeError, match="Swish"):
        to_torch(Sequential(L.ReLU(), Swish()))


def onnx_outputs(net, x, path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import onnx
    to_onnx(net, path, x.shape[1:])
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_onnx_matches_minicnn_with_every_layer(tmp_path):
    net = every_layer_net()
    rng = np.random.default_rng(3)
    path = tmp_path / "net.onnx"
    for n in (1, 4):  # dynamic batch size
        x = rng.standard_normal((n, 3, 13, 11)).astype(np.float32)
        np.testing.assert_allclose(onnx_outputs(net, x, path), net(x), atol=1e-5, rtol=0)
    x = rng.standard_normal((2, 2, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(onnx_outputs(conv_flatten_net(), x, path),
                               conv_flatten_net()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel,stride,padding,size", [(2, 2, 1, 5), (3, 3, 1, 8), (1, 3, 0, 6),
                                                       (4, 3, 2, 7), (3, 2, 0, 6)])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_onnx_ceil_mode_pooling_shapes_and_values(tmp_path, kernel, stride, padding, size,
                                                  count_include_pad):
    """Sizes where PyTorch drops a last window that would start in the padding."""
    net = Sequential(L.MaxPool2D(kernel, stride, padding, ceil_mode=True),
                     L.AvgPool2D(kernel, stride, padding, ceil_mode=True,
                                 count_include_pad=count_include_pad))
    x = np.random.default_rng(4).standard_normal((2, 3, size, size + 1)).astype(np.float32)
    np.testing.assert_allclose(onnx_outputs(net, x, tmp_path / "p.onnx"), net(x), atol=1e-5)


def test_onnx_export_is_eval_mode_and_leaves_model_alone(tmp_path):
    net = every_layer_net().train()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    x = np.random.default_rng(5).standard_normal((2, 3, 13, 11)).astype(np.float32)
    got = onnx_outputs(net, x, tmp_path / "net.onnx")
    assert net.training
    for k, v in net.state_dict().items():
        assert np.array_equal(v, before[k]), k
    np.testing.assert_allclose(got, net.eval()(x), atol=1e-5)


def test_onnx_unsupported_layer_is_named(tmp_path):
    pytest.importorskip("onnx")
    net = Sequential(L.Conv2D(1, 2, 3, seed=0), Swish(), L.Flatten())
    path = tmp_path / "bad.onnx"
    with pytest.raises(TypeError, match=r"\(1\) Swish\(\)"):
        to_onnx(net, path, (1, 5, 5))
    assert not path.exists()


def test_missing_optional_package_gives_install_hint(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install torch"):
        to_torch(conv_flatten_net())
    with pytest.raises(ImportError, match=r"minicnn\[export\]"):
        to_onnx(conv_flatten_net(), tmp_path / "m.onnx", (2, 7, 7))


class DoubledReLU(L.ReLU):
    """A subclass of a built-in layer that computes something else."""

    def forward(self, x):
        return super().forward(x) * 2


def test_a_subclass_of_a_built_in_layer_is_refused_not_exported_as_its_parent(tmp_path):
    pytest.importorskip("torch")
    net = Sequential(L.Linear(3, 2, seed=0), DoubledReLU())
    with pytest.raises(TypeError, match=r"to_torch: no PyTorch counterpart for \(1\) DoubledReLU\(\) "
                                        r"\(.*DoubledReLU, a subclass of ReLU: only minicnn's own "
                                        r"layer types are exported\)") as e:
        to_torch(net)
    assert "\n" not in str(e.value)


def test_onnx_refuses_a_subclass_of_a_built_in_layer_in_one_line(tmp_path):
    pytest.importorskip("onnx")
    net = Sequential(L.Linear(3, 2, seed=0), Sequential(DoubledReLU()))
    with pytest.raises(TypeError, match=r"to_onnx: cannot export \(1.0\) DoubledReLU\(\) .*a "
                                        r"subclass of ReLU") as e:
        to_onnx(net, tmp_path / "m.onnx", (3,))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "m.onnx").exists()


def test_from_torch_refuses_a_subclass_of_a_torch_module():
    torch = pytest.importorskip("torch")

    class Shifted(torch.nn.ReLU):
        def forward(self, x):
            return super().forward(x) + 1

    with pytest.raises(TypeError, match=r"from_torch: cannot convert \(1\) Shifted\(\): minicnn "
                                        "has no such layer"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), Shifted()))


def test_from_torch_refuses_bfloat16_in_one_line():
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(2, 2)).to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"from_torch: entry '0.weight' is torch.bfloat16, which "
                                        r"minicnn cannot hold; convert the module first, e.g. "
                                        r"module.float\(\)") as e:
        from_torch(module)
    assert "\n" not in str(e.value)


def test_to_onnx_takes_numpy_ints_and_refuses_other_shapes(tmp_path):
    pytest.importorskip("onnx")
    proto = to_onnx(Sequential(L.Linear(3, 2, seed=0)), tmp_path / "m.onnx", (np.int64(3),))
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] \
        == ["N", 3]
    for bad in (3, (3.0,), (0,), (True,), "3"):
        with pytest.raises(TypeError, match="to_onnx: input_shape must be one sample's shape"):
            to_onnx(Sequential(L.Linear(3, 2, seed=0)), tmp_path / "n.onnx", bad)


def test_onnx_of_a_reused_layer_and_tied_weights_matches(tmp_path):
    lin = L.Linear(4, 4, seed=0)
    a, b = L.Linear(4, 4, seed=1), L.Linear(4, 4, seed=2)
    b.weight = a.weight
    for i, net in enumerate((Sequential(lin, L.ReLU(), lin), Sequential(a, L.ReLU(), b),
                             L.Residual(lin, shortcut=lin))):
        x = np.random.default_rng(i).standard_normal((3, 4)).astype(np.float32)
        np.testing.assert_allclose(onnx_outputs(net, x, tmp_path / f"{i}.onnx"), net(x),
                                   rtol=1e-5, atol=1e-6)
