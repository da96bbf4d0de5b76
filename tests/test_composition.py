"""Composition as PyTorch allows it: a layer used twice in one forward, tied parameters,
empty containers, and in-place changes between forward and backward."""
import re

import numpy as np
import pytest

from conftest import assert_matches_torch
from minicnn import gradcheck
from minicnn.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Residual
from minicnn.models import Sequential

rng = np.random.default_rng(0)
X = rng.standard_normal((5, 4))
Y = rng.integers(0, 4, 5)


def grads(model):
    return [p.grad.copy() for p in model.parameters()]


def torch_linear(torch, layer):
    t = torch.nn.Linear(layer.in_features, layer.out_features).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data))
        t.bias.copy_(torch.from_numpy(layer.bias.data))
    return t


# -- a layer used twice ------------------------------------------------------------------

def test_sequential_reusing_a_layer_matches_pytorch():
    torch = pytest.importorskip("torch")
    lin = Linear(4, 4, seed=0, dtype=np.float64)
    ours = Sequential(lin, ReLU(), lin)
    tl = torch_linear(torch, lin)
    assert_matches_torch(torch, ours, torch.nn.Sequential(tl, torch.nn.ReLU(), tl), X, Y)


def test_residual_with_the_same_layer_as_body_and_shortcut_matches_pytorch():
    torch = pytest.importorskip("torch")
    from minicnn.export.pytorch import torch_residual_class
    lin = Linear(4, 4, seed=1, dtype=np.float64)
    tl = torch_linear(torch, lin)
    assert_matches_torch(torch, Residual(lin, shortcut=lin),
                         torch_residual_class(torch)(tl, tl), X, Y)


def test_conv_reused_with_different_inputs_matches_pytorch():
    """Each call keeps its own cache: the two uses see different inputs."""
    torch = pytest.importorskip("torch")
    conv = Conv2D(2, 2, 3, padding=1, seed=2, dtype=np.float64)
    head = Linear(2 * 4 * 4, 3, seed=3, dtype=np.float64)
    ours = Sequential(conv, ReLU(), conv, Flatten(), head)
    tc = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    with torch.no_grad():
        tc.weight.copy_(torch.from_numpy(conv.weight.data))
        tc.bias.copy_(torch.from_numpy(conv.bias.data))
    theirs = torch.nn.Sequential(tc, torch.nn.ReLU(), tc, torch.nn.Flatten(), torch_linear(torch, head))
    x = rng.standard_normal((3, 2, 4, 4))
    assert_matches_torch(torch, ours, theirs, x, rng.integers(0, 3, 3))


def test_reuse_passes_gradcheck_and_gradients_of_both_uses_add():
    lin = Linear(3, 3, seed=4)
    assert gradcheck(Sequential(lin, ReLU(), lin), rng.standard_normal((2, 3))).max_error < 1e-6
    assert gradcheck(Residual(lin, shortcut=lin), rng.standard_normal((2, 3))).max_error < 1e-6


def test_backward_twice_after_a_reusing_forward_raises_before_any_gradient_changes():
    lin = Linear(4, 4, seed=0)
    model = Sequential(lin, ReLU(), lin)
    out = model(X.astype(np.float32))
    model.backward(np.ones_like(out))
    before = grads(model)
    with pytest.raises(RuntimeError, match="twice after one forward"):
        model.backward(np.ones_like(out))
    for a, b in zip(before, grads(model)):
        np.testing.assert_array_equal(a, b)


def test_a_layer_consumed_out_of_turn_is_named_before_any_gradient_changes():
    lin, last = Linear(4, 4, seed=0), Linear(4, 2, seed=1)
    model = Sequential(lin, ReLU(), lin, last)
    out = model(X.astype(np.float32))
    lin.backward(np.ones((5, 4), np.float32))  # takes the second use's cache by hand
    before = grads(model)
    with pytest.raises(RuntimeError, match=r"its layer 0: Linear\(in_features=4"):
        model.backward(np.ones_like(out))
    for a, b in zip(before, grads(model)):
        np.testing.assert_array_equal(a, b)


def test_a_new_forward_drops_what_an_unused_one_kept():
    lin = Linear(4, 4, seed=0)
    model = Sequential(lin, ReLU(), lin)
    for _ in range(5):  # forwards without backward: memory stays one pass deep
        model(X.astype(np.float32))
    assert len(lin._calls) == 2 and len(model._calls) == 1


def test_a_finished_backward_frees_its_caches_without_the_garbage_collector():
    import gc
    import weakref

    from minicnn.layers import calls
    lin = Linear(4, 4, seed=0)
    model = Sequential(lin, ReLU(), lin)
    gc.disable()  # reference counting alone must free what backward consumed
    try:
        out = model(X.astype(np.float32))
        held = [weakref.ref(a) for m in model.modules() for r in m._calls
                for a in calls._arrays(r.cache) if a.shape[0] == len(X)]  # not the weights
        model.backward(np.ones_like(out))
        del out
        alive = [ref().shape for ref in held if ref() is not None]
        assert held and not alive, f"caches still alive after backward: {alive}"
    finally:
        gc.enable()


def test_direct_forward_call_is_one_pass_too():
    lin = Linear(4, 4, seed=0)
    model = Sequential(lin, ReLU(), lin)
    out = model.forward(X.astype(np.float32))
    assert model.backward(np.ones_like(out)).shape == (5, 4)


# -- empty containers ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: Sequential(), lambda: Sequential(Sequential()),
                                  lambda: Residual(Sequential())])
def test_empty_containers_are_the_identity_both_ways(make):
    model = make()
    x = rng.standard_normal((2, 3)).astype(np.float32)
    scale = 2 if isinstance(model, Residual) else 1
    np.testing.assert_array_equal(model(x), scale * x)
    g = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.backward(g), scale * g)


def test_empty_sequential_before_a_layer_matches_the_layer_alone():
    lin = Linear(3, 2, seed=0)
    model = Sequential(Sequential(), lin)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    out = model(x)
    dx = model.backward(np.ones_like(out))
    np.testing.assert_allclose(dx, np.ones((2, 2), np.float32) @ lin.weight.data, rtol=1e-6)


# -- tied parameters -----------------------------------------------------------------------

def tied_pair():
    a, b = Linear(4, 4, seed=0, dtype=np.float64), Linear(4, 4, seed=1, dtype=np.float64)
    b.weight = a.weight
    return Sequential(a, ReLU(), b)


def test_tied_parameters_are_listed_under_every_name_and_stepped_once():
    model = tied_pair()
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    reused = Sequential(model[0], ReLU(), model[0])
    assert list(reused.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(reused.parameters()) == 2


def test_tied_state_dict_loads_and_copies_must_agree():
    model = tied_pair()
    state = model.state_dict()
    state["0.weight"] = state["0.weight"] + 1
    state["2.weight"] = state["0.weight"].copy()
    model.load_state_dict(state)
    assert model[0].weight is model[2].weight
    np.testing.assert_array_equal(model[2].weight.data, state["0.weight"])
    state["2.weight"] = state["2.weight"] + 1
    with pytest.raises(ValueError, match="'0.weight' and '2.weight' are one tied parameter"):
        model.load_state_dict(state)


def test_tied_weights_match_pytorch_and_pytorch_state_dict_loads():
    torch = pytest.importorskip("torch")
    model = tied_pair()
    ta, tb = torch_linear(torch, model[0]), torch_linear(torch, model[2])
    tb.weight = ta.weight
    theirs = torch.nn.Sequential(ta, torch.nn.ReLU(), tb)
    assert list(theirs.state_dict()) == list(model.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert_matches_torch(torch, model, theirs, X, Y)


def test_to_torch_and_from_torch_keep_reuse_and_ties():
    torch = pytest.importorskip("torch")
    from minicnn.export import from_torch, to_torch
    model = tied_pair()
    lin = Linear(4, 4, seed=2, dtype=np.float64)
    for m in (model, Sequential(lin, ReLU(), lin), Residual(lin, shortcut=lin), lin):
        t = to_torch(m)
        assert list(t.state_dict()) == list(m.state_dict())
        assert len(list(t.parameters())) == len(m.parameters())
        back = from_torch(t)
        assert list(back.state_dict()) == list(m.state_dict())
        assert len(back.parameters()) == len(m.parameters())
        np.testing.assert_allclose(back(X), m(X), rtol=1e-12)
    tl = torch.nn.Linear(4, 4).double()
    back = from_torch(torch.nn.Sequential(tl, torch.nn.ReLU(), tl))
    assert back[0] is back[2]


def test_to_torch_keys_equal_for_a_bare_layer():
    pytest.importorskip("torch")
    from minicnn.export import to_torch
    for layer in (Linear(3, 2), Residual(Linear(2, 2)), Conv2D(1, 2, 3)):
        assert list(to_torch(layer).state_dict()) == list(layer.state_dict())


# -- in-place changes between forward and backward -----------------------------------------

@pytest.mark.parametrize("tail", [[], [Flatten()]], ids=["pool last", "a view of it"])
def test_maxpool_output_changed_in_place_leaves_the_gradient_as_pytorch_does(tail):
    """PyTorch's max pooling keeps the winners' indices, not its output: changing the
    output (or a view of it) in place does not change the gradient. minicnn keeps a copy
    of the output a caller can reach, so dx and the weight gradients are those of the
    unchanged output (before: the winners were looked for in the changed output)."""
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    g = rng.standard_normal((2, 2, 2, 2)).astype(np.float32)

    def run(change):
        model = Sequential(Conv2D(1, 2, 3, padding=1, seed=0), MaxPool2D(2), *tail)
        out = model(x)
        if change:
            out *= 2
        return model.backward(g.reshape(out.shape)), grads(model)

    dx, dw = run(False)
    dx2, dw2 = run(True)
    np.testing.assert_array_equal(dx2, dx)
    for a, b in zip(dw2, dw):
        np.testing.assert_array_equal(a, b)
    torch = pytest.importorskip("torch")
    x2 = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    t = torch.tensor(x2, requires_grad=True)
    out = torch.nn.functional.max_pool2d(t, 2)
    with torch.no_grad():  # a change outside the graph, as ``out *= 2`` is in minicnn
        out.mul_(2)  # allowed: PyTorch keeps the indices
    out.backward(torch.tensor(g))
    pool = MaxPool2D(2)
    out = pool(x2)
    out *= 2
    np.testing.assert_array_equal(pool.backward(g), t.grad.numpy())


def test_only_the_maxpool_output_a_caller_can_reach_is_copied():
    """Inside a network the pool's cache keeps the very array the next layer read; the
    last pool's output, which the caller holds, is kept as a copy."""
    model = Sequential(MaxPool2D(2), MaxPool2D(1))
    out = model(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    first, second = (m._calls[-1].cache for m in model)
    assert first.out is second.xp  # MaxPool2D(1) reads its input unpadded
    assert second.out is not out and not np.may_share_memory(second.out, out)
    np.testing.assert_array_equal(second.out, out)


@pytest.mark.parametrize("make,shape,where", [
    (lambda: Sequential(Linear(4, 3, seed=0), ReLU()), (2, 4), "output"),
    (lambda: Sequential(Linear(4, 3, seed=0)), (2, 4), "input"),
    (lambda: Sequential(Flatten(), Linear(4, 3, seed=0)), (2, 1, 2, 2), "input"),
    (lambda: Sequential(MaxPool2D(2), Flatten()), (2, 1, 4, 4), "input"),
    (lambda: ReLU(), (2, 3), "output"),
])
def test_changing_a_kept_input_or_output_in_place_is_an_error(make, shape, where):
    model = make()
    x = rng.standard_normal(shape).astype(np.float32)
    out = model(x)
    (x if where == "input" else out)[...] *= 3
    with pytest.raises(RuntimeError, match=f"the {where} that backward reads was modified"):
        model.backward(np.ones_like(out))


def test_unchanged_or_copied_arrays_pass():
    model = Sequential(Linear(4, 3, seed=0), ReLU())
    x = rng.standard_normal((2, 4)).astype(np.float32)
    out = model(x)
    scaled = out * 2  # a copy: fine
    assert model.backward(np.ones_like(scaled)).shape == (2, 4)
    out = model(x)
    x2 = x.copy()
    x2 *= 3  # another array: fine
    model.backward(np.ones_like(out))


@pytest.mark.parametrize("change", [
    lambda a: a.__setitem__((0, 0), np.nextafter(a[0, 0], np.inf)),  # one ulp of one element
    lambda a: a.__setitem__((slice(None), slice(0, 2)), a[:, [1, 0]]),  # a swap
    lambda a: a.__imul__(2),
    lambda a: a.__setitem__((1, 2), a[1, 2] + 1),
])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "odd float16"])
def test_the_checksum_sees_small_changes_swaps_and_any_layout(change, layout):
    from minicnn.layers.calls import checksum
    a = rng.standard_normal((3, 5)) + 2
    a = {"contiguous": a, "transposed": np.asfortranarray(a),
         "odd float16": a.astype(np.float16)}[layout]
    before = checksum(a)
    assert checksum(a.copy(order="K")) == before  # the same numbers in the same layout
    change(a)
    assert checksum(a) != before


def test_a_transposed_input_changed_in_place_is_an_error():
    model = Sequential(Linear(5, 3, seed=0))
    x = np.asfortranarray(rng.standard_normal((4, 5)).astype(np.float32))
    out = model(x)
    x[0, 0] += 1
    with pytest.raises(RuntimeError, match="the input that backward reads was modified"):
        model.backward(np.ones_like(out))


def test_the_checksum_of_a_large_array_is_one_dot_product_for_any_thread_count():
    """A large array's checksum is summed in parts on minicnn's threads; mod 2**64 the
    parts add up to the one dot product, whatever the number of threads."""
    import minicnn
    from minicnn.layers import calls
    a = rng.standard_normal(3 * 2**18 + 5)  # 6 MiB: several parts
    calls.checksum(a)
    words = a.view(np.uint64)
    whole = int(np.dot(words, calls._weights[:words.size]))
    before = minicnn.get_num_threads()
    try:
        for n in (1, 2, 3):
            minicnn.set_num_threads(n)
            assert calls.checksum(a) == whole
    finally:
        minicnn.set_num_threads(before)


def test_a_kept_input_is_read_once_after_forward_and_once_before_backward(monkeypatch):
    """However deep the layer sits in containers, its fingerprinted input is checksummed
    once when the pass ends and once when backward starts, not again per container."""
    from minicnn.layers import calls
    real, count = calls.checksum, []
    monkeypatch.setattr(calls, "checksum", lambda a: count.append(1) or real(a))
    for model in (Sequential(Linear(4, 3, seed=0)),
                  Sequential(Sequential(Sequential(Linear(4, 3, seed=0))))):
        count.clear()
        out = model(X.astype(np.float32))
        model.backward(np.ones_like(out))
        assert len(count) == 2


def test_the_checksum_reads_an_array_laid_out_in_any_axis_order_without_a_copy(monkeypatch):
    """A batch-last array (what a conv hands on: (C, H, W, N) in memory) is one block of
    memory: it is read in place. Only a view with gaps is copied first."""
    from minicnn.layers import calls
    copies = []
    real = np.ascontiguousarray
    monkeypatch.setattr(calls.np, "ascontiguousarray",
                        lambda a: (copies.append(not a.flags.c_contiguous), real(a))[1])
    batch_last = rng.standard_normal((5, 4, 3, 2)).transpose(3, 0, 1, 2)  # (N, C, H, W) view
    before = calls.checksum(batch_last)
    batch_last[1, 2, 0, 0] += 1
    assert calls.checksum(batch_last) != before
    calls.checksum(batch_last[:, :, ::2])  # gaps: a copy
    assert copies == [False, False, True]


def test_the_checksum_does_not_change_when_its_weights_grow():
    """The weights are drawn once per size needed; a longer draw starts with the shorter."""
    from minicnn.layers import calls
    a = rng.standard_normal(10)
    before = calls.checksum(a)
    calls.checksum(np.zeros(calls._weights.size + 1000))  # grows the weights
    assert calls.checksum(a) == before


def test_tied_weights_train_like_pytorch():
    """Three SGD-with-momentum steps on the tied pair: the shared weight is stepped once per
    step with the sum of both uses' gradients, in minicnn as in PyTorch."""
    torch = pytest.importorskip("torch")
    from minicnn.export import to_torch
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.optim import SGD
    model = tied_pair()
    theirs = to_torch(model)
    assert theirs[0].weight is theirs[2].weight
    ours_opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    their_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(3):
        ours_opt.zero_grad()
        loss_fn(model(X), Y)
        model.backward(loss_fn.backward())
        ours_opt.step()
        their_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.from_numpy(X)), torch.from_numpy(Y)).backward()
        their_opt.step()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key], value.numpy(), rtol=1e-10, err_msg=key)
    assert model[0].weight is model[2].weight


@pytest.mark.parametrize("seed", range(6))
def test_random_reuse_patterns_match_pytorch(seed):
    """Chains drawn from a pool of three Linear(4, 4) layers and ReLUs, layers repeated at
    random and some inside a Residual: outputs, dx and every gradient as in PyTorch."""
    torch = pytest.importorskip("torch")
    from minicnn.export.pytorch import torch_residual_class
    r = np.random.default_rng(seed)
    pool = [Linear(4, 4, seed=10 * seed + i, dtype=np.float64) for i in range(3)]
    tpool = {id(lin): torch_linear(torch, lin) for lin in pool}
    ours, theirs = [], []
    for _ in range(r.integers(3, 7)):
        lin = pool[r.integers(3)]
        kind = r.integers(3)
        if kind == 0:
            ours.append(lin)
            theirs.append(tpool[id(lin)])
        elif kind == 1:
            ours.append(ReLU())
            theirs.append(torch.nn.ReLU())
        else:
            other = pool[r.integers(3)]
            ours.append(Residual(Sequential(lin, ReLU()), shortcut=other))
            theirs.append(torch_residual_class(torch)(
                torch.nn.Sequential(tpool[id(lin)], torch.nn.ReLU()), tpool[id(other)]))
    assert_matches_torch(torch, Sequential(*ours), torch.nn.Sequential(*theirs), X, Y)


def test_summary_names_each_place_of_a_reused_layer(capsys):
    lin = Linear(4, 4, seed=0)
    Sequential(lin, ReLU(), lin, Residual(Sequential(lin, ReLU()), shortcut=lin)).summary((4,))
    lines = capsys.readouterr().out.splitlines()[2:-2]
    rows = [re.split(r"(?<=\S)\s{2,}", line)[0] for line in lines]
    assert rows == ["(0) Linear(in_features=4, out_features=4)", "(1) ReLU()",
                    "(2) Linear(in_features=4, out_features=4)", "(3) Residual",
                    "  (body) Sequential", "    (0) Linear(in_features=4, out_features=4)",
                    "    (1) ReLU()", "  (shortcut) Linear(in_features=4, out_features=4)"]


def test_summary_counts_a_reused_layer_once(capsys):
    lin = Linear(4, 4, seed=0)
    Sequential(lin, ReLU(), lin).summary((4,))
    out = capsys.readouterr().out
    assert "(shared)" in out.splitlines()[4] and "Total parameters: 20" in out
