"""The training loop: history, exact resume, the non-finite guard, Ctrl-C, schedules."""
import csv
import json
import math
import os
import re
import warnings

import numpy as np
import pytest

from conftest import InterruptAt, channel_data, tiny_net
from minicnn.data import DataLoader, UnnormalizedInputWarning, fit_normalizer, normalize
from minicnn.layers import Flatten, Linear
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import Sequential
from minicnn.optim import Adam
from minicnn.serialization import load_npz
from minicnn.training import (
    NonFiniteLossError,
    evaluate,
    fit,
    load_checkpoint,
    load_weights,
    predict,
    read_checkpoint,
)
from minicnn.training.history import COLUMNS, History
from minicnn.training.schedules import ConstantLR, CosineLR, StepLR, make_schedule

EPOCHS, BATCH = 3, 16


@pytest.fixture(scope="module")
def data():
    return channel_data(200, 150)


def train(data, out_dir=None, loss_fn=None, model_seed=0, epochs=EPOCHS, resume=False):
    model = tiny_net(model_seed)
    opt = Adam(model.parameters(), lr=1e-2)
    hist = fit(model, loss_fn or SoftmaxCrossEntropy(), opt, *data, epochs=epochs,
               batch_size=BATCH, schedule=CosineLR(1e-2, EPOCHS), augment=True, seed=7,
               out_dir=out_dir, resume=resume, progress=False)
    return model, opt, hist


def same_history(a, b):
    assert np.array_equal(a.iteration_loss, b.iteration_loss)
    for column in COLUMNS:
        if column != "seconds":
            assert np.array_equal(a[column], b[column]), column


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k


class NanAt(SoftmaxCrossEntropy):
    def __init__(self, at):
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, scores, y):
        self.calls += 1
        loss = super().forward(scores, y)
        return math.nan if self.calls == self.at else loss


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run and its folder."""
    out = tmp_path_factory.mktemp("reference")
    model, _, hist = train(data, out)
    return model, hist, out


def test_fit_records_history_and_files(data, reference):
    model, hist, out = reference
    steps = 150 // BATCH  # the last, smaller batch is dropped
    assert len(hist) == EPOCHS and len(hist.iteration_loss) == EPOCHS * steps
    assert hist["epoch"] == [1, 2, 3] and hist["iterations"] == [steps, 2 * steps, 3 * steps]
    assert hist["lr"] == [CosineLR(1e-2, EPOCHS).lr_at(e) for e in range(EPOCHS)]
    assert hist.iteration_loss[-1] < hist.iteration_loss[0]
    assert hist["val_acc"][-1] > 0.6 and all(0 <= a <= 1 for a in hist["train_acc"])
    assert model.training  # fit leaves the model in train mode
    assert sorted(os.listdir(out)) == ["best.npz", "checkpoint.npz", "history.csv", "history.json"]
    same_history(History.load(out / "history.json"), hist)
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_acc"]) for r in rows] == hist["val_acc"]
    # best.npz is the model of the best validation epoch, loadable with Sequential.load
    best = tiny_net(1).load(out / "best.npz")
    x_val, y_val = data[1]
    assert evaluate(best, SoftmaxCrossEntropy(), x_val, y_val)[1] == max(hist["val_acc"])


def test_resume_after_an_epoch_equals_the_uninterrupted_run(data, reference, tmp_path):
    model_ref, hist_ref, out_ref = reference
    train(data, tmp_path, epochs=1)
    model, _, hist = train(data, tmp_path, model_seed=99, resume=True)  # other init: all restored
    same_weights(model, model_ref)
    same_history(hist, hist_ref)
    same_weights(tiny_net(1).load(tmp_path / "best.npz"), tiny_net(2).load(out_ref / "best.npz"))


def test_ctrl_c_saves_mid_epoch_checkpoint_that_resumes_exactly(data, reference, tmp_path):
    model_ref, hist_ref, _ = reference
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path, loss_fn=InterruptAt(15))  # in epoch 2 (9 steps + 1 eval each)
    _, _, meta = read_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["position"]["epoch"] == 1 and meta["position"]["step"] == 5
    assert len(History.load(tmp_path / "history.json").iteration_loss) == 14
    model, opt, hist = train(data, tmp_path, model_seed=99, resume=True)
    same_weights(model, model_ref)
    same_history(hist, hist_ref)


def test_keyboard_interrupt_raised_in_code_saves_history(data, tmp_path):
    class Boom(SoftmaxCrossEntropy):
        calls = 0

        def forward(self, scores, y):
            Boom.calls += 1
            if Boom.calls == 25:
                raise KeyboardInterrupt
            return super().forward(scores, y)

    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path, loss_fn=Boom())
    assert len(History.load(tmp_path / "history.json").iteration_loss) == 9 + 9 + 4
    assert read_checkpoint(tmp_path / "checkpoint.npz")[2]["position"]["epoch"] == 2


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    train(data, tmp_path, epochs=1)
    before = load_npz(tmp_path / "checkpoint.npz")
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 2, iteration 3.*checkpoint"):
        train(data, tmp_path, loss_fn=NanAt(3), resume=True)
    after = load_npz(tmp_path / "checkpoint.npz")
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_checkpoint_restores_model_and_rejects_other_files(data, reference, tmp_path):
    model_ref, hist_ref, out = reference
    model = tiny_net(5)
    hist, position = load_checkpoint(out / "checkpoint.npz", model)
    same_weights(model, model_ref)
    assert position.epoch == EPOCHS and position.step == 0
    same_weights(load_weights(tiny_net(6), out / "checkpoint.npz"), model_ref)
    with pytest.raises(ValueError, match="not a minicnn training checkpoint"):
        read_checkpoint(out / "best.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_weights(tiny_net(0), tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="does not fit"):
        load_checkpoint(out / "checkpoint.npz",
                        Sequential(Flatten(), Linear(192, 3)))


def test_checkpoint_holds_no_pickles_and_json_rng_state(reference):
    _, _, out = reference
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert all(z[k].dtype != object for k in z.files)
    assert meta["position"]["rng_state"]["bit_generator"] == "PCG64"
    assert len(meta["layer_rngs"]) == 1  # the Dropout layer's Generator


def test_evaluate_is_batched_in_eval_mode_and_restores_mode(data):
    model = tiny_net(0)
    x, y = data[1]
    full = predict(model, x, batch_size=len(x))
    assert np.allclose(predict(model, x, batch_size=7), full, atol=1e-5)
    assert model.training
    model.eval()
    loss, acc = evaluate(model, SoftmaxCrossEntropy(), x, y, batch_size=7)
    assert not model.training
    assert acc == np.mean(full.argmax(1) == y) and math.isfinite(loss)


def test_resume_needs_a_checkpoint(data, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        train(data, tmp_path, resume=True)
    with pytest.raises(ValueError, match="epochs"):
        train(data, tmp_path, epochs=-1)
    model = tiny_net(0)
    with pytest.raises(ValueError, match="larger than the 150 training samples"):
        fit(model, SoftmaxCrossEntropy(), Adam(model.parameters()), *data, 1, 151)


def test_schedules():
    assert [StepLR(1.0, 2, 0.5).lr_at(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    cos = CosineLR(1.0, 4, min_lr=0.1)
    assert cos.lr_at(0) == 1.0 and math.isclose(cos.lr_at(2), 0.55) and math.isclose(cos.lr_at(4), 0.1)
    assert all(cos.lr_at(e) > cos.lr_at(e + 1) for e in range(4))
    assert ConstantLR(0.3).lr_at(10) == 0.3
    assert isinstance(make_schedule("cosine", 1.0, 6), CosineLR)
    assert make_schedule("step", 1.0, 6).lr_at(2) == pytest.approx(0.1)
    assert make_schedule("none", 1.0, 6).lr_at(5) == 1.0
    with pytest.raises(ValueError):
        make_schedule("linear", 1.0, 6)
    with pytest.raises(ValueError):
        StepLR(1.0, 0)


def test_history_round_trip(tmp_path):
    h = History([2.0, 1.5, 1.25])
    h.add_epoch(epoch=1, train_loss=1.6, train_acc=0.3, val_loss=1.4, val_acc=0.4, lr=0.1,
                seconds=1.0, iterations=3)
    h.save(tmp_path / "h.json")
    g = History.load(tmp_path / "h.json")
    assert g.to_dict() == h.to_dict() and g.best_val_acc == 0.4 and g["lr"] == [0.1]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a minicnn training history"):
        History.load(tmp_path / "bad.json")


def fit_quietly(model, train_data, val_data, **kwargs):
    return fit(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-3), train_data,
               val_data, 1, BATCH, progress=False, **kwargs)


def test_fit_warns_once_about_raw_uint8_images(data):
    """Raw pixels train badly without a word unless fit says so: one warning, naming
    the fix, pointing at the caller's line."""
    (x, y), (xv, yv) = data
    raw = np.clip(x * 60 + 128, 0, 255).astype(np.uint8)
    raw_val = np.clip(xv * 60 + 128, 0, 255).astype(np.uint8)
    with pytest.warns(UnnormalizedInputWarning) as caught:
        fit_quietly(tiny_net(0), (raw, y), (raw_val, yv))
    assert len(caught) == 1
    message = str(caught[0].message)
    for part in ("training inputs", "uint8", "fit_normalizer", "normalize", "minicnn.data"):
        assert part in message, part
    assert caught[0].filename == __file__  # stacklevel: the line that called fit


@pytest.mark.parametrize("scale, shift", [(100.0, 0.0), (1.0, 50.0)])
def test_fit_warns_about_floats_far_from_normalised(data, scale, shift):
    (x, y), val = data
    with pytest.warns(UnnormalizedInputWarning, match="float32 values with mean"):
        fit_quietly(tiny_net(0), (x * scale + shift, y), val)


def test_fit_names_unnormalised_validation_inputs(data):
    (x, y), (xv, yv) = data
    with pytest.warns(UnnormalizedInputWarning, match="validation inputs") as caught:
        fit_quietly(tiny_net(0), (x, y), ((xv * 60 + 128).astype(np.uint8), yv))
    assert len(caught) == 1


def test_no_warning_for_normalised_inputs(data):
    (x, y), (xv, yv) = data
    raw = np.clip(x * 60 + 128, 0, 255).astype(np.uint8)
    mean, std = fit_normalizer(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_quietly(tiny_net(0), (normalize(raw, mean, std), y), (xv, yv))
        DataLoader(normalize(raw, mean, std), y, BATCH)


def test_data_loader_warns_once_when_made():
    x = np.random.default_rng(0).integers(0, 256, (40, 3, 4, 4), dtype=np.uint8)
    with pytest.warns(UnnormalizedInputWarning, match="DataLoader.*normalize") as caught:
        loader = DataLoader(x, np.zeros(40), 8)
        for _ in range(3):
            list(loader)  # epochs do not repeat it
    assert len(caught) == 1 and caught[0].filename == __file__


def test_progress_lines_prints_one_line_per_epoch(data, capsys):
    model = tiny_net(0)
    hist = fit(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2), *data, 2, BATCH,
               progress="lines")
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and captured.err == ""  # no bar
    for k, (line, record) in enumerate(zip(lines, hist.epochs), start=1):
        match = re.fullmatch(r"epoch (\d+)/2: loss ([\d.]+), accuracy ([\d.]+), validation "
                             r"accuracy ([\d.]+), ([\d.]+) s", line)
        assert match, line
        assert int(match[1]) == k
        assert float(match[2]) == pytest.approx(record["train_loss"], abs=1e-4)
        assert float(match[3]) == pytest.approx(record["train_acc"], abs=1e-4)
        assert float(match[4]) == pytest.approx(record["val_acc"], abs=1e-4)
    quiet = tiny_net(0)
    fit(quiet, SoftmaxCrossEntropy(), Adam(quiet.parameters()), *data, 1, BATCH, progress=False)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="progress must be one of"):
        fit(model, SoftmaxCrossEntropy(), Adam(model.parameters()), *data, 1, BATCH,
            progress="verbose")
