"""The rules of the module protocol where a user could otherwise get a silent surprise:
no_grad's per-thread, per-block state, names that cannot collide, buffer names, the
all-or-nothing state-dict load, float-only dtypes and one-line errors for bad arguments."""
import threading
import warnings

import numpy as np
import pytest

from minicnn import Parameter, no_grad
from minicnn.grad_mode import is_grad_enabled
from minicnn.layers import BatchNorm2D, Conv2D, Dropout, Layer, Linear, ReLU
from minicnn.models import Sequential
from minicnn.optim import SGD

rng = np.random.default_rng(0)


def one_line(excinfo):
    assert "\n" not in str(excinfo.value), str(excinfo.value)


# -- no_grad ------------------------------------------------------------------------------

def test_no_grad_decorator_on_a_recursive_function_restores_grad_mode():
    seen = []

    @no_grad()
    def depth(n):
        seen.append(is_grad_enabled())
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert seen == [False] * 4
    assert is_grad_enabled()


def test_no_grad_without_parentheses_is_a_decorator_too():
    @no_grad
    def inside(a, b=1):
        """doc"""
        return is_grad_enabled(), a + b

    assert inside(1, b=2) == (False, 3)
    assert inside.__name__ == "inside" and inside.__doc__ == "doc"
    assert is_grad_enabled()


def test_one_no_grad_object_entered_twice_and_after_an_error():
    block = no_grad()
    with block:
        with block:
            assert not is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert is_grad_enabled()


def test_no_grad_takes_no_argument():
    with pytest.raises(TypeError, match=r"no_grad takes no arguments .* got 5") as e:
        no_grad(5)
    one_line(e)


def test_no_grad_belongs_to_the_thread():
    """Two threads inside one decorated function at once; the main thread's mode stays on,
    and a new thread starts with grad enabled, as in PyTorch."""
    barrier, seen = threading.Barrier(3, timeout=30), {}

    @no_grad()
    def work(name):
        barrier.wait()  # both threads inside, main thread watching
        barrier.wait()
        seen[name] = is_grad_enabled()

    def run(name):
        seen[name + " before"] = is_grad_enabled()
        work(name)
        seen[name + " after"] = is_grad_enabled()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    with no_grad():
        for t in threads:
            t.start()
        barrier.wait()
        main_inside = is_grad_enabled()
        barrier.wait()
        for t in threads:
            t.join()
    assert not main_inside and is_grad_enabled()
    assert seen == {"a before": True, "b before": True, "a": False, "b": False,
                    "a after": True, "b after": True}


# -- names that cannot collide -------------------------------------------------------------

class Holder(Layer):
    def __init__(self, value):
        super().__init__()
        self.parts = value

    def forward(self, x):
        return x


@pytest.mark.parametrize("parts,match", [
    ({0: Linear(2, 2), "0": Linear(2, 2)}, r"under key 0; keys must be non-empty strings"),
    ({"a.b": Linear(2, 2)}, r"under key 'a\.b'; keys must be non-empty strings without a dot"),
    ({"": Linear(2, 2)}, r"under key ''"),
    ({"w": 1, 3: Parameter(np.zeros(2))}, r"under key 3"),
])
def test_dict_keys_must_be_strings_without_a_dot(parts, match):
    layer = Holder(parts)
    for call in (layer.parameters, layer.state_dict):
        with pytest.raises(TypeError, match="Holder: attribute 'parts' holds a layer or "
                                            "parameter " + match) as e:
            call()
        one_line(e)


def test_string_keys_give_the_state_dict_names():
    layer = Holder({"a": Linear(2, 2), "b": Linear(2, 3)})
    assert list(layer.state_dict()) == ["parts.a.weight", "parts.a.bias",
                                        "parts.b.weight", "parts.b.bias"]


@pytest.mark.parametrize("parts,where", [
    ([[Linear(2, 2)]], r"attribute 'parts'\[0\]"),
    ([Linear(2, 2), (ReLU(), [Linear(2, 2)])], r"attribute 'parts'\[1\]"),
    ({"a": [Linear(2, 2)]}, r"attribute 'parts'\['a'\]"),
    ([{"a": Parameter(np.zeros(2))}], r"attribute 'parts'\[0\]"),
    ({Linear(2, 2)}, r"attribute 'parts' \(a set\)"),
])
def test_a_layer_hidden_where_it_would_not_be_found_is_an_error(parts, where):
    layer = Holder(parts)
    for call in (layer.parameters, layer.state_dict, lambda: list(layer.named_modules())):
        with pytest.raises(TypeError, match=f"Holder: {where} holds a layer or parameter "
                                            "that minicnn cannot find.*Sequential") as e:
            call()
        one_line(e)


def test_plain_data_in_nested_containers_is_fine():
    layer = Holder([[1, 2], {"a": (3, "x")}, {4, 5}])
    assert layer.state_dict() == {} and layer.parameters() == []


# -- buffers -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["forward", "backward", "weight", "bias", "cache", "_calls",
                                  "training", "_buffer_names", "state_dict", "child"])
def test_register_buffer_refuses_taken_names(name):
    layer = Linear(2, 2)
    layer.child = ReLU()
    with pytest.raises(KeyError, match=f"Linear: invalid buffer name '{name}': it is an "
                                       "attribute, method, parameter or sub-layer") as e:
        layer.register_buffer(name, np.zeros(1))
    one_line(e)
    assert callable(layer.forward) and isinstance(layer.weight, Parameter)
    assert isinstance(layer.child, ReLU)


@pytest.mark.parametrize("name,error", [("a.b", KeyError), ("", KeyError), (3, TypeError)])
def test_register_buffer_refuses_names_that_are_not_identifiers(name, error):
    with pytest.raises(error, match="not a Python identifier|must be a string"):
        Linear(2, 2).register_buffer(name, np.zeros(1))


def test_a_buffer_may_be_registered_again_and_may_be_none(tmp_path):
    layer = Linear(2, 2, seed=0)
    layer.register_buffer("count", np.zeros(1))
    layer.register_buffer("count", np.ones(1))
    layer.register_buffer("later", None)
    assert list(layer.state_dict()) == ["weight", "bias", "count"]
    assert [n for n, _ in layer.named_buffers()] == ["count"]
    layer.astype(np.float64)  # a None buffer is skipped, not cast
    layer.save(tmp_path / "m.npz")
    other = Linear(2, 2, seed=1, dtype=np.float64)
    other.register_buffer("count", np.zeros(1))
    other.register_buffer("later", None)
    other.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(other.weight.data, layer.weight.data)
    assert other.later is None and other.count[0] == 1
    layer.later = np.full(2, 7.0)  # assigned later: now in the state dict
    assert list(layer.state_dict()) == ["weight", "bias", "count", "later"]


# -- load_state_dict: all or nothing -------------------------------------------------------

def two_layers():
    return Sequential(Linear(3, 2, seed=0), BatchNorm2D(2), Linear(2, 4, seed=1))


def assert_unchanged(model, before):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("key,value,match", [
    ("2.bias", np.array(["a", "b", "c", "d"]), r"entry '2.bias' holds <U1 values, expected numbers"),
    ("2.bias", np.array([1, 2, np.nan, 4]), r"entry '2.bias' holds NaN or infinite values"),
    ("2.weight", "transposed", r"entry '2.weight' should have shape \(4, 2\), got \(2, 4\)"),
    ("2.bias", np.zeros(5), r"entry '2.bias' should have shape \(4,\), got \(5,\)"),
    ("2.bias", np.full(4, 1e300), r"entry '2.bias' overflows float32"),
    ("1.num_batches_tracked", np.array(2.5), r"entry .1.num_batches_tracked. should hold whole numbers \(int64\)"),
    ("2.bias", [object()] * 4, r"entry '2.bias' holds object values"),
    ("2.bias", [[1, 2], [3]], r"entry '2.bias' cannot be read as an array"),
])
def test_a_bad_last_entry_changes_nothing_and_is_named(key, value, match):
    model = two_layers()
    before = model.state_dict()
    state = {k: v + 1 if v.dtype.kind == "f" else v for k, v in before.items()}
    state[key] = state[key].T.copy() if isinstance(value, str) else value
    assert list(state)[-1] == "2.bias" or key != "2.bias"
    with pytest.raises(ValueError, match=f"Sequential.load_state_dict: {match}") as e:
        model.load_state_dict(state)
    one_line(e)
    assert_unchanged(model, before)


def test_missing_and_unexpected_entries_are_listed_and_nothing_changes():
    model = two_layers()
    before = model.state_dict()
    state = dict(before)
    del state["0.bias"]
    state["9.weight"] = np.zeros(1)
    state["2.weight"] = state["2.weight"] + 1
    with pytest.raises(ValueError, match=r"missing entries \['0.bias'\]; unexpected entries "
                                         r"\['9.weight'\]"):
        model.load_state_dict(state)
    assert_unchanged(model, before)
    with pytest.raises(TypeError, match="expected a dict of arrays, got list"):
        model.load_state_dict([1, 2])


def test_entries_are_converted_to_the_models_dtypes():
    model = two_layers()
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in
             model.state_dict().items()}
    state["2.bias"] = np.arange(4)  # integers are numbers too (PyTorch copies them)
    state["1.num_batches_tracked"] = np.array(3.0)
    model.load_state_dict(state)
    assert model[2].bias.data.dtype == np.float32 and model[2].bias.data[3] == 3
    assert model[1].num_batches_tracked == 3 and model[1].num_batches_tracked.dtype == np.int64


# -- float-only dtypes ---------------------------------------------------------------------

@pytest.mark.parametrize("make,owner", [
    (lambda: Linear(2, 2).astype(np.int32), "Linear.astype"),
    (lambda: Sequential(Linear(2, 2)).astype(bool), "Sequential.astype"),
    (lambda: Linear(2, 2).astype("nonsense"), "Linear.astype"),
    (lambda: Conv2D(1, 1, 3, dtype=np.int8), "Conv2D"),
    (lambda: Linear(2, 2, dtype=int), "Linear"),
    (lambda: BatchNorm2D(2, dtype=np.uint8), "BatchNorm2D"),
    (lambda: Linear(2, 2).weight.astype(np.int64), "Parameter.astype"),
])
def test_only_floating_dtypes(make, owner):
    with pytest.raises(TypeError, match=f"{owner}: dtype must be a floating type") as e:
        make()
    one_line(e)


def test_integer_parameter_data_is_refused():
    with pytest.raises(TypeError, match="Parameter: data must hold floats"):
        Parameter(np.arange(3))


def test_floating_dtypes_are_accepted():
    layer = Linear(2, 2).astype("float64")
    assert layer.dtype == np.float64
    assert Conv2D(1, 1, 3, dtype=np.float16).weight.dtype == np.float16


# -- one line for a bad argument -----------------------------------------------------------

@pytest.mark.parametrize("make,error,match", [
    (lambda: Conv2D(1, 1, 3, seed="abc"), TypeError, "Conv2D: seed must be a non-negative int"),
    (lambda: Linear(2, 2, seed=-1), TypeError, "Linear: seed must be a non-negative int"),
    (lambda: Dropout(p="0.5"), TypeError, "Dropout: p must be a number, got '0.5'"),
    (lambda: Dropout(p=float("nan")), ValueError, r"Dropout: p must be in \[0, 1\)"),
    (lambda: Dropout(seed=1.5), TypeError, "Dropout: seed must be"),
    (lambda: Sequential(Linear(4, 2)).summary(4), TypeError,
     r"summary: input_shape must be one sample's shape, a tuple of positive ints .* got 4"),
    (lambda: Sequential(Linear(4, 2)).summary((4, 0)), TypeError, "summary: input_shape"),
])
def test_bad_arguments_give_one_line(make, error, match):
    with pytest.raises(error, match=match) as e:
        make()
    one_line(e)


def test_summary_takes_numpy_ints(capsys):
    Sequential(Linear(4, 2)).summary((np.int64(4),))
    assert "Total parameters: 10" in capsys.readouterr().out


def test_seed_sequences_and_generators_are_seeds():
    a = Linear(3, 3, seed=np.random.SeedSequence(4))
    b = Linear(3, 3, seed=np.random.default_rng(np.random.SeedSequence(4)))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def test_a_gradient_set_to_none_restarts_as_in_pytorch():
    layer = Linear(3, 2, seed=0)
    w = layer.weight.data.copy()
    layer.weight.grad = None
    SGD(layer.parameters(), lr=0.1).step()  # a parameter without gradient is skipped
    np.testing.assert_array_equal(layer.weight.data, w)
    layer.zero_grad()
    assert layer.weight.grad.shape == (2, 3) and not layer.weight.grad.any()
    layer.weight.grad = None
    out = layer(rng.standard_normal((4, 3)).astype(np.float32))
    layer.backward(np.ones_like(out))
    assert layer.weight.grad.shape == (2, 3) and layer.weight.grad.any()


# -- fit with another model's optimizer ----------------------------------------------------

def test_fit_warns_when_the_optimizer_holds_none_of_the_models_parameters():
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.training import fit
    model, other = Sequential(Linear(3, 2, seed=0)), Sequential(Linear(3, 2, seed=1))
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    with pytest.warns(UserWarning, match="fit: the optimizer holds none of the model's "
                                         "parameters"):
        fit(model, SoftmaxCrossEntropy(), SGD(other.parameters(), lr=0.1), (x, y), (x, y),
            1, 4, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, y), (x, y),
            1, 4, progress=False)


def test_a_layer_set_as_an_attribute_of_a_sequential_is_an_error_not_ignored():
    seq = Sequential(Linear(2, 2))
    seq.extra = Linear(2, 3)
    for call in (seq.parameters, seq.state_dict, lambda: list(seq.modules())):
        with pytest.raises(TypeError, match="Sequential: attribute 'extra' holds a layer that "
                                            "forward does not run.*append"):
            call()
    seq.extra = None
    assert list(seq.state_dict()) == ["0.weight", "0.bias"]


def test_a_layer_that_contains_itself_is_refused_by_state_dict():
    holder = Holder([Linear(2, 2)])
    holder.again = holder
    with pytest.raises(ValueError, match="Holder: layer 'again' contains itself"):
        holder.state_dict()
    assert len(holder.parameters()) == 2  # each parameter once


def test_from_torch_takes_only_a_torch_module():
    pytest.importorskip("torch")
    from minicnn.export import from_torch
    with pytest.raises(TypeError, match="from_torch: expected a torch.nn.Module, got int"):
        from_torch(3)


def test_a_list_that_contains_itself_is_plain_data():
    loop = [1]
    loop.append(loop)
    layer = Holder(loop)
    assert layer.state_dict() == {} and layer.parameters() == []


def test_a_summary_watches_only_its_own_thread():
    from minicnn.layers.summary import CallRecorder
    model, other = Sequential(Linear(3, 2, seed=0)), Sequential(ReLU(), ReLU())
    x = np.ones((1, 3), np.float32)
    with CallRecorder() as rec:
        worker = threading.Thread(target=lambda: other(x))
        worker.start()
        worker.join()
        model(x)
    assert [type(c[0]).__name__ for c in rec.calls] == ["Sequential", "Linear"]
