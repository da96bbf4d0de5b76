"""Run files a user can edit or hand in: config.json, checkpoint meta, best.npz, temp files."""
import json
import os

import numpy as np
import pytest

from minicnn.data import fit_normalizer, normalize, synthetic_cifar, train_val_split
from minicnn.layers import Conv2D, Dropout, Flatten, Linear, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import Sequential
from minicnn.optim import Adam
from minicnn.serialization import load_npz
from minicnn.training import fit, load_checkpoint, loop, read_checkpoint
from minicnn.training.checkpoint import check_resume_config, read_checkpoint_meta
from minicnn.training.runs import build_data, check_sizes, load_config

CONFIG = dict(dataset="synthetic", data_dir=None, model="linear", epochs=2, batch_size=16,
              lr=0.001, optimizer="adam", weight_decay=0.0, schedule="none", augment=False,
              num_train=48, num_val=16, num_test=16, dtype="float32", seed=0)


def write_config(folder, config):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "config.json")
    with open(path, "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))
    return path


def edited(**changes):
    config = dict(CONFIG)
    for k, v in changes.items():
        if v is _DROP:
            del config[k]
        else:
            config[k] = v
    return config


_DROP = object()


@pytest.mark.parametrize("config, message", [
    (edited(augment="no"), "field 'augment' must be true, false, one of 'none', 'flip', 'crop', 'crop-flip' or steps of 'crop', 'flip', 'erase' joined by commas, got 'no' (a str)"),
    (edited(batch_size="64"), "field 'batch_size' must be an integer >= 1, got '64' (a str)"),
    (edited(batch_size=16.0), "field 'batch_size' must be an integer >= 1, got 16.0"),
    (edited(batch_size=True), "field 'batch_size' must be an integer >= 1, got True (a bool)"),
    (edited(dtype="float99"), "field 'dtype' must be one of 'float32', 'float64', got 'float99'"),
    (edited(lr="fast"), "field 'lr' must be a finite number > 0 and <= 10.0, got 'fast' (a str)"),
    (edited(lr=1e38), "field 'lr' must be a finite number > 0 and <= 10.0, got 1e+38"),
    (edited(optimizer="lbfgs"), "field 'optimizer' must be one of 'adam', 'adamw', 'nesterov', "
                                "'rmsprop', 'sgd', got 'lbfgs'"),
    (edited(model=_DROP), "field 'model' is missing"),
    (edited(seed=_DROP), "field 'seed' is missing"),
    (edited(seed=-1), "field 'seed' must be an integer >= 0, got -1"),
    (edited(num_train=-5), "field 'num_train' must be an integer >= 1 or null, got -5"),
    (edited(bach_size=64), "field 'bach_size' is unknown (known fields: dataset, data_dir,"),
    (edited(weight_decay=float("nan")), "field 'weight_decay' must be a finite number >= 0 "
                                        "and <= 1, got nan"),
    ([1, 2], "must hold a JSON object of run settings, got [1, 2] (a list)"),
    ('{"model": ', "is not valid JSON"),
    (edited(dataset="cifar10", num_val=50000), "num_val 50000: CIFAR-10 has 50,000 training "
                                               "images and at least one must be left"),
    (edited(batch_size=64), "batch_size 64: larger than the 48 training images"),
])
def test_hand_edited_config_gives_one_line_naming_file_and_field(tmp_path, config, message):
    path = write_config(tmp_path, config)
    with pytest.raises(ValueError) as info:
        load_config(tmp_path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ") or text.startswith(f"{path!r}")
    assert message in text


def test_check_sizes_against_data_set_and_memory(monkeypatch):
    cifar = edited(dataset="cifar10", num_train=None, num_val=1000, num_test=None)
    assert check_sizes(cifar, memory=False) == (49000, 1000, 10000)
    with pytest.raises(ValueError, match=r"^--num-train 49001: CIFAR-10 has 49,000 training "
                                         r"images left after holding out 1,000"):
        check_sizes({**cifar, "num_train": 49001}, label=lambda k: "--" + k.replace("_", "-"))
    with pytest.raises(ValueError, match=r"num_test 10001: CIFAR-10 has 10,000 test images"):
        check_sizes({**cifar, "num_test": 10001})
    from minicnn.training import memory as runs
    monkeypatch.setattr(runs, "available_memory", lambda: 100 * 2 ** 20)
    with pytest.raises(ValueError, match=r"num_train 100000, num_val 16, num_test 16: the "
                                         r"synthetic images would need about 1\.7 GiB of memory, "
                                         r"but only 100 MiB is available"):
        check_sizes(edited(num_train=100_000))
    from minicnn.models import build_model
    monkeypatch.setattr(runs, "available_memory", lambda: 2 * 2 ** 30)
    with pytest.raises(ValueError, match=r"batch_size 4000: a training step would need about "):
        check_sizes(edited(num_train=5000, batch_size=4000), model=build_model("vgg_small"))


# -- checkpoint meta ---------------------------------------------------------------------

def tiny(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(3, 2, 3, seed=rng), ReLU(), Flatten(), Dropout(0.1, seed=rng),
                      Linear(2 * 6 * 6, 3, seed=rng))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 80)
    return (x[:64], y[:64]), (x[64:], y[64:])


def train(data, out, epochs=2, resume=False, config=None, model=None):
    model = model or tiny()
    opt = Adam(model.parameters(), lr=1e-2)
    hist = fit(model, SoftmaxCrossEntropy(), opt, *data, epochs=epochs, batch_size=16, seed=5,
               out_dir=out, resume=resume, progress=False, config=config)
    return model, opt, hist


@pytest.fixture(scope="module")
def checkpoint(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    train(data, out, epochs=1, config=CONFIG)
    return out / "checkpoint.npz"


def rewrite_meta(src, dst, change):
    arrays = load_npz(src)
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)


def _set(path, value):
    def change(meta):
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[p]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("position.extra", 1), "field 'position.extra' is unknown"),
    (_set("position.rng_state", {"bit_generator": "PCG64", "state": "garbage"}),
     "field 'position.rng_state' must be the state of a numpy random Generator or null"),
    (_set("layer_rngs", [{"bit_generator": "Mersenne"}]),
     "field 'layer_rngs[0]' must be the state of a numpy random Generator"),
    (_set("position.step", "3"), "field 'position.step' must be an integer >= 0, got '3' (a str)"),
    (_set("position.step", 1e6), "field 'position.step' must be an integer >= 0, got 1000000.0"),
    (_set("position.step", 1000000), "field 'history.iteration_loss' holds 4 losses, but the "
                                      "history and field 'position.step' (1000000) account for"),
    (_set("position.epoch", -5), "field 'position.epoch' must be an integer >= 0, got -5"),
    (_set("position.epoch", 0), "field 'position.epoch' is 0 but the history holds 1 epochs"),
    (_set("position.loss_sum", float("nan")), "field 'position.loss_sum' must be a finite number"),
    (_set("history.epochs", [{"epoch": 1}]), "field 'history.epochs[0].train_loss' is missing"),
    (_set("history", _DROP), "field 'history' is missing"),
    (_set("config", [1]), "field 'config' must be an object, got [1] (a list)"),
])
def test_corrupted_meta_gives_one_line_naming_the_field(checkpoint, tmp_path, change, message):
    path = tmp_path / "checkpoint.npz"
    rewrite_meta(checkpoint, path, change)
    for read in (read_checkpoint, read_checkpoint_meta,
                 lambda p: load_checkpoint(p, tiny(), None)):
        with pytest.raises(ValueError) as info:
            read(path)
        text = str(info.value)
        assert "\n" not in text and text.startswith(f"checkpoint {str(path)!r} (meta): ")
        assert message in text


def test_meta_with_a_non_pcg_layer_generator_round_trips(data, tmp_path):
    model = Sequential(Flatten(), Dropout(0.2, seed=np.random.Generator(np.random.MT19937(3))),
                       Linear(192, 3, seed=0))
    train(data, tmp_path, epochs=1, model=model)
    assert read_checkpoint_meta(tmp_path / "checkpoint.npz")["layer_rngs"][0]["bit_generator"] == "MT19937"


def test_resume_refuses_a_config_that_differs_except_epochs(data, checkpoint, tmp_path):
    assert read_checkpoint_meta(checkpoint)["config"] == CONFIG
    check_resume_config(CONFIG, {**CONFIG, "epochs": 9, "data_dir": "/elsewhere"}, "c.json")
    for key, value in (("num_train", 32), ("dtype", "float64"), ("lr", 0.002), ("augment", True)):
        with pytest.raises(ValueError, match=rf"^c\.json: field '{key}' is {value!r} but the "
                                             rf"checkpoint was trained with "):
            check_resume_config(CONFIG, {**CONFIG, key: value}, "c.json")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "checkpoint.npz").write_bytes(checkpoint.read_bytes())
    before = (folder / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match="field 'num_train' is 40 but the checkpoint was trained with 48"):
        train(data, folder, resume=True, config={**CONFIG, "num_train": 40})
    assert (folder / "checkpoint.npz").read_bytes() == before
    train(data, folder, resume=True, config={**CONFIG, "epochs": 2})  # epochs may change


def test_position_step_beyond_the_epoch_is_refused_on_resume(data, checkpoint, tmp_path):
    def mid_epoch(meta):  # consistent meta, but 9 steps where an epoch has 4
        meta["position"].update(step=9, seen=144, correct=10)
        meta["history"]["iteration_loss"] += [1.0] * 9
    rewrite_meta(checkpoint, tmp_path / "checkpoint.npz", mid_epoch)
    with pytest.raises(ValueError, match=r"field 'position.step' is 9, but an epoch of 64 "
                                         r"samples in batches of 16 has 4 steps"):
        train(data, tmp_path, resume=True)


def test_stale_temp_files_are_removed_when_a_run_starts_or_resumes(data, tmp_path):
    stale = [".checkpoint.npz.k2j4h5g6.tmp", ".best.npz.abcdefgh.tmp", ".history.json.x_y_z_12.tmp"]
    for name in stale:
        (tmp_path / name).write_bytes(b"partial write of a killed run")
    train(data, tmp_path, epochs=1)  # only stale temp files: the folder counts as empty
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "checkpoint.npz", "history.csv",
                                            "history.json"]
    (tmp_path / stale[0]).write_bytes(b"again")
    (tmp_path / "notes.txt").write_text("mine")  # a user's note in a run's folder stays
    train(data, tmp_path, epochs=2, resume=True)
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "checkpoint.npz", "history.csv",
                                            "history.json", "notes.txt"]


def test_best_npz_is_replaced_only_by_a_strictly_better_accuracy(data, tmp_path, monkeypatch):
    """Validation accuracies 0.5, 0.9, 0.9, 0.7: best.npz is written after epochs 1 and 2
    only and holds the epoch-2 model (a tie keeps the earlier epoch)."""
    scripted = iter([0.5, 0.9, 0.9, 0.7])
    snapshots, written = [], []

    def fake_evaluate(model, loss_fn, x, y, batch_size=500):
        snapshots.append(model.state_dict())
        return 1.0, next(scripted)
    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    model = tiny()
    real_save = model.save

    def save(path):
        written.append((len(snapshots), os.path.basename(path)))
        real_save(path)
    model.save = save
    _, _, hist = train(data, tmp_path, epochs=4, model=model)
    assert hist["val_acc"] == [0.5, 0.9, 0.9, 0.7]
    assert written == [(1, "best.npz"), (2, "best.npz")]
    best = load_npz(tmp_path / "best.npz")
    for k, v in snapshots[1].items():
        assert np.array_equal(best[k], v), k
    assert not np.array_equal(best["4.weight"], snapshots[2]["4.weight"])
    assert not np.array_equal(best["4.weight"], snapshots[0]["4.weight"])


def test_best_npz_keeps_the_best_epoch_when_accuracy_drops_and_partly_recovers(
        data, tmp_path, monkeypatch):
    """Validation accuracies 0.9, 0.5, 0.6: best.npz holds epoch 1's model. (Comparing with
    the previous epoch instead of the best would write epoch 3's, 0.6 > 0.5.)"""
    scripted = iter([0.9, 0.5, 0.6])
    snapshots = []

    def fake_evaluate(model, loss_fn, x, y, batch_size=500):
        snapshots.append(model.state_dict())
        return 1.0, next(scripted)
    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    _, _, hist = train(data, tmp_path, epochs=3)
    assert hist["val_acc"] == [0.9, 0.5, 0.6] and hist.best_val_acc == 0.9
    best = load_npz(tmp_path / "best.npz")
    assert all(np.array_equal(best[k], v) for k, v in snapshots[0].items())
    assert not np.array_equal(best["4.weight"], snapshots[2]["4.weight"])


def test_build_data_normalises_with_the_training_split_only():
    """The path train.py takes: build_data(config). Its statistics are those of the
    training images alone, not of the pool before the split, the validation or the test
    images."""
    config = edited(num_train=40, num_val=30, num_test=25)
    data = build_data(config)
    x, y = synthetic_cifar(40 + 30, seed=0)
    x_train, _, x_val, _ = train_val_split(x, y, num_val=30, seed=0)
    mean, std = fit_normalizer(x_train)
    np.testing.assert_array_equal(data.mean, mean)
    np.testing.assert_array_equal(data.std, std)
    np.testing.assert_array_equal(data.x_train, normalize(x_train, mean, std))
    np.testing.assert_array_equal(data.x_val, normalize(x_val, mean, std))
    x_test, _ = synthetic_cifar(25, seed=1)
    np.testing.assert_array_equal(data.x_test, normalize(x_test, mean, std))
    for other in (x, x_val, x_test):
        assert not np.allclose(fit_normalizer(other)[0], mean, rtol=0, atol=1e-3)
    assert np.allclose(data.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-4)


def test_load_checkpoint_restores_the_data_generator_when_asked(data, checkpoint):
    """fit restores the data Generator once, in train_epoch; load_checkpoint does it for
    callers that pass ``rng``."""
    g = np.random.default_rng(123)
    _, position = load_checkpoint(checkpoint, tiny(), None, rng=g)
    assert g.bit_generator.state == position.rng_state


@pytest.mark.parametrize("at, held, resumable", [
    (7, "checkpoint.npz still holds the end of epoch 1", True),  # epoch 2 (4 steps + 1 eval each)
    (2, "there is no checkpoint yet", False),
])
def test_an_interrupt_mid_step_says_which_checkpoint_is_left(data, tmp_path, at, held, resumable):
    class Stop(SoftmaxCrossEntropy):
        calls = 0

        def forward(self, scores, y):
            Stop.calls += 1
            if Stop.calls == at:
                raise KeyboardInterrupt
            return super().forward(scores, y)
    model = tiny()
    with pytest.raises(loop.Interrupted) as info:
        fit(model, Stop(), Adam(model.parameters(), lr=1e-2), *data, epochs=3, batch_size=16,
            seed=5, out_dir=tmp_path, progress=False)
    assert str(info.value) == (f"interrupted in the middle of a step: only the history was "
                               f"saved in {tmp_path}, and {held}")
    assert info.value.resumable is resumable
    assert os.path.exists(tmp_path / "history.json")
