"""Sequential: container behaviour, passes, state dicts and files."""
import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    Linear,
    MaxPool2D,
    ReLU,
)
from minicnn.models import Sequential


def small_net(seed=0):
    return Sequential(Conv2D(2, 3, 3, padding=1, seed=seed), BatchNorm2D(3), ReLU(),
                      MaxPool2D(2), Flatten(), Linear(3 * 2 * 2, 5, seed=seed + 1), ReLU(),
                      Dropout(0.5, seed=seed), Linear(5, 4, seed=seed + 2))


def test_container_protocol():
    net = small_net()
    assert len(net) == 9
    assert isinstance(net[0], Conv2D) and isinstance(net[-1], Linear)
    head = net[4:]
    assert isinstance(head, Sequential) and len(head) == 5 and head[0] is net[4]
    assert [type(layer).__name__ for layer in net][:3] == ["Conv2D", "BatchNorm2D", "ReLU"]
    net.append(ReLU())
    assert len(net) == 10
    with pytest.raises(TypeError, match="expected a Layer"):
        net.append(np.zeros(3))
    assert "(0): Conv2D(2, 3, kernel_size=3, stride=1, padding=1)" in repr(net)


def test_forward_backward_chain_and_gradcheck():
    net = small_net().eval()  # dropout off so the check is deterministic
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    res = gradcheck(net, x)
    assert res.max_error < 1e-6, res
    assert {"0.weight", "1.weight", "5.weight", "8.bias"} <= set(res.errors)


def test_gradcheck_in_training_mode_without_dropout():
    net = Sequential(Conv2D(2, 3, 3, padding=1, seed=0), BatchNorm2D(3), ReLU(), Flatten(),
                     Linear(48, 4, seed=1), BatchNorm1D(4))
    assert gradcheck(net, np.random.default_rng(1).standard_normal((4, 2, 4, 4))).max_error < 1e-6


def test_backward_without_input_grad_skips_first_layer_only():
    net = small_net()
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    assert net.backward(np.ones_like(net(x)), input_grad=False) is None
    assert net[0].weight.grad.any()
    dx = net.backward(np.ones_like(net(x)))
    assert dx.shape == x.shape


def test_train_eval_propagate_and_parameters():
    net = small_net()
    net.eval()
    assert not any(layer.training for layer in net)
    net.train()
    assert all(layer.training for layer in net)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias",
                     "8.weight", "8.bias"]
    assert len(net.parameters()) == 8


def test_state_dict_keys_like_pytorch_and_round_trip(tmp_path):
    net, other = small_net(0), small_net(10)
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    net(x)  # moves the batch-norm running statistics
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                        "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias",
                        "8.weight", "8.bias"]
    assert sd["0.weight"].shape == (3, 2, 3, 3) and sd["5.weight"].shape == (5, 12)
    other.load_state_dict(sd)
    net.eval(), other.eval()
    np.testing.assert_array_equal(net(x), other(x))
    path = tmp_path / "model.npz"
    net.save(path)
    third = small_net(20).load(path).eval()
    np.testing.assert_array_equal(net(x), third(x))
    assert third[1].num_batches_tracked == 1


def test_bad_state_dict_changes_nothing():
    net = small_net()
    before = net.state_dict()
    sd = dict(before)
    sd["0.weight"] = np.zeros((3, 2, 5, 5), np.float32)
    sd["8.bias"] = np.zeros(4, np.float32) + 1
    del sd["1.running_var"]
    sd["9.weight"] = np.zeros(2)
    with pytest.raises(ValueError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "'0.weight' should have shape (3, 2, 3, 3), got (3, 2, 5, 5)" in msg
    assert "missing entries ['1.running_var']" in msg and "'9.weight'" in msg
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_rejects_files_that_are_not_models(tmp_path):
    net = small_net()
    with pytest.raises(ValueError, match="does not exist"):
        net.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable .npz"):
        net.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved minicnn model"):
        net.load(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __minicnn_model__=np.array(1), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="could not be read safely"):
        net.load(pickled)


def test_save_is_atomic(tmp_path, monkeypatch):
    net = small_net()
    path = tmp_path / "model.npz"
    net.save(path)
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        net.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_astype_float64_for_gradient_checks():
    net = small_net().astype(np.float64)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net[1].running_mean.dtype == np.float64
    assert net[1].num_batches_tracked.dtype == np.int64
    assert net(np.ones((2, 2, 4, 4), np.float32)).dtype == np.float64


def test_summary_prints_shapes_and_counts(capsys):
    net = small_net()
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    out = net(x)
    net.summary((2, 4, 4))
    text = capsys.readouterr().out
    assert "(None, 3, 4, 4)" in text and "(None, 3, 2, 2)" in text and "(None, 4)" in text
    total = sum(p.size for p in net.parameters())
    assert f"Total parameters: {total:,}" in text
    assert net.backward(np.ones_like(out)).shape == x.shape  # summary kept the caches
    assert net.training


def test_nested_sequential_keys():
    net = Sequential(Sequential(Linear(3, 4), ReLU()), Linear(4, 2))
    assert list(net.state_dict()) == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert gradcheck(net, np.random.default_rng(0).standard_normal((2, 3))).max_error < 1e-6
