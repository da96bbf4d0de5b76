"""Layer as a module: parameters, children and buffers are found, never silently ignored."""
import numpy as np
import pytest

from minicnn import Parameter, gradcheck, no_grad
from minicnn.layers import BatchNorm2D, Conv2D, Dropout, Flatten, Layer, Linear, ReLU
from minicnn.models import Sequential
from minicnn.optim import SGD, Adam, AdamW, RMSprop


class Block(Layer):
    """A custom composite layer written only by attribute assignment: out = scale * body(x)."""

    def __init__(self, c, seed=0):
        super().__init__()
        self.body = Sequential(Conv2D(c, c, 3, padding=1, seed=seed), BatchNorm2D(c), ReLU())
        self.scale = Parameter(np.full((1, c, 1, 1), 0.5, np.float32))  # never declared

    def forward(self, x):
        h = self.body(x)
        self.cache = h
        return self.record_output(self.scale.data * h)

    def backward(self, dout):
        h, dout = self.take_cache(dout)
        self.scale.accumulate((dout * h).sum(axis=(0, 2, 3), keepdims=True))
        return self.body.backward(self.scale.data * dout)


def net(seed=0):
    return Sequential(Conv2D(2, 3, 3, padding=1, seed=seed), Block(3, seed + 1), Flatten(),
                      Linear(3 * 4 * 4, 5, seed=seed + 2))


def test_composite_parameters_are_found_with_pytorch_keys():
    model = net()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.scale", "1.body.0.weight", "1.body.0.bias",
                     "1.body.1.weight", "1.body.1.bias", "3.weight", "3.bias"]
    assert len(model.parameters()) == 9
    assert list(model.state_dict()) == [
        "0.weight", "0.bias", "1.scale", "1.body.0.weight", "1.body.0.bias", "1.body.1.weight",
        "1.body.1.bias", "1.body.1.running_mean", "1.body.1.running_var",
        "1.body.1.num_batches_tracked", "3.weight", "3.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "1.body", "1.body.0",
                                                     "1.body.1", "1.body.2", "2", "3"]
    assert [n for n, _ in model[1].named_children()] == ["body"]
    assert model.get_submodule("1.body.1") is model[1].body[1]
    with pytest.raises(KeyError, match="no layer named '1.nope'"):
        model.get_submodule("1.nope")


def test_state_dict_keys_equal_pytorch_for_the_same_structure():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class TorchBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
            self.scale = nn.Parameter(torch.full((1, 3, 1, 1), 0.5))

    theirs = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), TorchBlock(), nn.Flatten(),
                           nn.Linear(48, 5))
    assert set(net().state_dict()) == set(theirs.state_dict())
    # the same keys and shapes: our state dict loads strictly
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in net().state_dict().items()})


def test_lists_and_dicts_of_layers_and_parameters_are_found():
    class Holder(Layer):
        def __init__(self):
            super().__init__()
            self.stages = [Linear(2, 2, seed=0), Linear(2, 2, seed=1)]
            self.heads = {"a": Linear(2, 1, seed=2)}
            self.gains = (Parameter(np.ones(2)),)

    keys = list(Holder().state_dict())
    assert keys == ["gains.0", "stages.0.weight", "stages.0.bias", "stages.1.weight",
                    "stages.1.bias", "heads.a.weight", "heads.a.bias"]


def test_a_shared_layer_is_one_set_of_parameters():
    shared = Linear(3, 3, seed=0)
    model = Sequential(shared, ReLU(), shared)
    assert len(model.parameters()) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]


def test_register_buffer_is_saved_cast_and_not_trained(tmp_path):
    class Counter(Layer):
        def __init__(self):
            super().__init__()
            self.register_buffer("total", np.zeros(2, np.float32))
            self.w = Parameter(np.ones(2, np.float32))

    layer = Counter()
    layer.total = layer.total + 3  # reassigning keeps it registered
    assert [n for n, _ in layer.named_buffers()] == ["total"]
    assert layer.parameters() == [layer.w]
    assert list(layer.state_dict()) == ["w", "total"]
    layer.astype(np.float64)
    assert layer.total.dtype == np.float64 and layer.w.dtype == np.float64
    layer.save(tmp_path / "c.npz")
    other = Counter().astype(np.float64).load(tmp_path / "c.npz")
    np.testing.assert_array_equal(other.total, [3, 3])
    with pytest.raises(ValueError, match="invalid buffer name"):
        layer.register_buffer("not a name", np.zeros(1))


@pytest.mark.parametrize("opt_cls", [SGD, Adam, AdamW, RMSprop])
def test_every_optimizer_trains_the_nested_parameters(opt_cls):
    model = net()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt = opt_cls(model.parameters(), lr=0.01)
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4)).astype(np.float32)
    out = model(x)
    model.backward(np.ones_like(out))
    opt.step()
    after = model.state_dict()
    for key in ("1.scale", "1.body.0.weight", "1.body.1.weight", "1.body.1.bias"):
        assert not np.array_equal(before[key], after[key]), key


def test_save_load_round_trip_is_exact_and_eval_reaches_inner_layers(tmp_path):
    model = net()
    x = np.random.default_rng(1).standard_normal((4, 2, 4, 4)).astype(np.float32)
    model(x)  # moves the inner batch-norm's running statistics
    model.save(tmp_path / "m.npz")
    other = net(seed=7).load(tmp_path / "m.npz")
    for (k, a), (k2, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert k == k2 and np.array_equal(a, b), k
    model.eval()
    assert all(not m.training for m in model.modules())
    np.testing.assert_array_equal(model(x), other.eval()(x))
    model.train()
    assert all(m.training for m in model.modules())


def test_load_state_dict_is_all_or_nothing():
    model = net()
    before = model.state_dict()
    bad = dict(before)
    bad["1.body.0.weight"] = np.zeros((1, 1))
    del bad["3.bias"]
    with pytest.raises(ValueError) as err:
        model.load_state_dict(bad)
    assert "missing entries ['3.bias']" in str(err.value)
    assert "'1.body.0.weight' should have shape (3, 3, 3, 3)" in str(err.value)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_gradcheck_covers_every_sub_layer_parameter():
    model = net().eval()  # batch-norm in eval mode: a deterministic function of x
    x = np.random.default_rng(2).standard_normal((2, 2, 4, 4))
    result = gradcheck(model, x)
    assert set(result.errors) == {"input"} | {n for n, _ in model.named_parameters()}
    assert result.max_error < 1e-6
    assert gradcheck(net().train(), x).max_error < 1e-6


def test_repr_nests_like_pytorch():
    text = repr(net())
    assert "(1): Block(\n    (body): Sequential(\n      (0): Conv2D(3, 3, kernel_size=3" in text


def test_summary_is_indented_by_depth(capsys):
    net().summary((2, 4, 4))
    out = capsys.readouterr().out
    assert "(1) Block" in out and "  (body) Sequential" in out and "    (0) Conv2D(3, 3" in out
    assert out.rstrip().endswith("Total parameters: 395")  # 57 + 3 + 84 + 6 + 245


def test_summary_prints_the_rows_before_a_failing_layer(capsys):
    model = Sequential(Conv2D(2, 3, 3, padding=1), ReLU(), Flatten(), Linear(10, 2))
    with pytest.raises(ValueError, match=r"summary: layer \(3\) Linear\(in_features=10.*"
                                         r"got input of shape \(1, 48\)"):
        model.summary((2, 4, 4))
    out = capsys.readouterr().out
    assert "(0) Conv2D" in out and "(2) Flatten()" in out and "(None, 48)" in out
    assert "Total parameters" not in out


def test_summary_leaves_caches_and_modes_as_they_were():
    model = net()
    x = np.random.default_rng(3).standard_normal((2, 2, 4, 4)).astype(np.float32)
    out = model(x)
    model.summary((2, 4, 4))
    assert model.training and all(m.training for m in model.modules())
    model.backward(np.ones_like(out))  # the pending backward still works


def test_no_grad_keeps_no_cache_and_also_works_as_decorator():
    model = net()
    x = np.zeros((2, 2, 4, 4), np.float32)

    @no_grad()
    def infer(v):
        return model(v)

    infer(x)
    assert all(m.cache is None for m in model.modules())
    with no_grad():
        model(x)
    assert all(m.cache is None for m in model.modules())
    model(x)
    assert all(m.cache is not None for m in model.modules() if next(m.children(), None) is None)


def test_dropout_rng_of_a_nested_layer_is_found_for_checkpoints():
    from minicnn.training.checkpoint import layer_generators
    inner = Dropout(0.5, seed=0)
    model = Sequential(Linear(2, 2), Sequential(inner))
    assert layer_generators(model) == [inner.rng]


def test_summary_keeps_the_pending_output_record_so_dout_is_still_checked():
    model = net()
    x = np.random.default_rng(3).standard_normal((2, 2, 4, 4)).astype(np.float32)
    out = model(x)
    model.summary((2, 4, 4))
    with pytest.raises(ValueError, match=r"dout must have the shape of the last output, \(2, 5\)"):
        model.backward(np.ones((1, 5), np.float32))
    dx = model.backward(np.ones(out.shape, np.float64))  # cast to the output's float32
    assert dx.dtype == np.float32
