"""Finite or nothing: a run that goes non-finite stops, names where, and writes nothing broken."""
import json
import math
import os

import numpy as np
import pytest

from conftest import channel_data, tiny_net
from conftest import train_py as _train_py
from minicnn.layers import BatchNorm2D, LeakyReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import SGD, Adam, AdamW, RMSprop
from minicnn.serialization import load_npz
from minicnn.training import NonFiniteLossError, fit, load_weights, read_checkpoint
from minicnn.training.loop import NonFiniteWeightsError

STEPS = 4  # per epoch: 64 samples in batches of 16


def net(seed=0):
    return tiny_net(seed, dropout=False)


@pytest.fixture(scope="module")
def data():
    return channel_data(96, 64)


class Poison:
    """Wraps an optimizer: after update number ``at``, ``poison(model, optimizer)`` runs."""

    def __init__(self, optimizer, model, at, poison):
        self.inner, self.model, self.at, self.poison, self.steps = optimizer, model, at, poison, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        if name == "lr":
            self.inner.lr = value
        else:
            object.__setattr__(self, name, value)

    def step(self):
        self.inner.step()
        self.steps += 1
        if self.steps == self.at:
            self.poison(self.model, self.inner)


def run(data, out, at=None, poison=None, epochs=3, loss_fn=None, resume=False):
    model = net()
    opt = Adam(model.parameters(), lr=1e-2)
    if poison is not None:
        opt = Poison(opt, model, at, poison)
    fit(model, loss_fn or SoftmaxCrossEntropy(), opt, *data, epochs=epochs, batch_size=16,
        seed=3, out_dir=out, progress=False, resume=resume)
    return model


def all_finite(folder):
    """Every number in every .npz and .json of the folder is finite (JSON has no NaN)."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".npz"):
            for k, v in load_npz(path).items():
                if v.dtype.kind == "f":
                    assert np.isfinite(v).all(), (name, k)
                elif k == "meta":
                    json.loads(str(v), parse_constant=lambda c, name=name: pytest.fail(f"{name}: {c}"))
        elif name.endswith(".json"):
            with open(path) as f:
                json.load(f, parse_constant=lambda c, name=name: pytest.fail(f"{name}: {c}"))
    return True


def test_weights_going_non_finite_after_a_finite_loss_stop_training(data, tmp_path):
    def blow_up(model, opt):
        model[0].weight.data[0, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteWeightsError, match=r"entry '0\.weight' of the model became NaN "
                                                    r"or infinite in the update of epoch 2, "
                                                    r"iteration 2 \(its loss was \d"):
        run(data, tmp_path, at=STEPS + 2, poison=blow_up)
    _, _, meta = read_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["position"] == {**meta["position"], "epoch": 1, "step": 0}  # the last good one
    assert all_finite(tmp_path)
    load_weights(net(1), tmp_path / "best.npz")  # loads: finite and whole


def test_a_non_finite_buffer_is_caught_too(data, tmp_path):
    def bad_statistics(model, opt):
        model[1].running_var[1] = np.nan
    with pytest.raises(NonFiniteWeightsError, match=r"'1\.running_var'.*epoch 1, iteration 3"):
        run(data, tmp_path, at=3, poison=bad_statistics)
    assert not os.path.exists(tmp_path / "checkpoint.npz")
    assert not os.path.exists(tmp_path / "best.npz")
    assert all_finite(tmp_path)


def test_non_finite_optimizer_state_is_never_written(data, tmp_path):
    """Adam's second moment can overflow while the weights stay finite: the checkpoint
    check at the end of the epoch catches it, and neither file is written."""
    def overflow(model, opt):
        opt.state[0]["exp_avg_sq"][...] = np.inf
    with pytest.raises(NonFiniteWeightsError, match=r"'optimizer\.exp_avg_sq\.0' hold NaN or "
                                                    r"infinite values at the end of epoch 2"):
        run(data, tmp_path, at=STEPS + 1, poison=overflow)
    assert read_checkpoint(tmp_path / "checkpoint.npz")[2]["position"]["epoch"] == 1
    assert all_finite(tmp_path)


def test_nan_validation_loss_is_a_failure_not_a_result(data, tmp_path):
    class NanOnValidation(SoftmaxCrossEntropy):
        calls = 0

        def forward(self, scores, y):
            loss = super().forward(scores, y)
            if len(y) == 32:  # the validation set
                NanOnValidation.calls += 1
                if NanOnValidation.calls == 2:
                    return math.inf
            return loss
    with pytest.raises(NonFiniteLossError, match=r"validation loss is inf after epoch 2.*"
                                                 r"last good checkpoint \(the end of epoch 1\)"):
        run(data, tmp_path, loss_fn=NanOnValidation())
    assert read_checkpoint(tmp_path / "checkpoint.npz")[2]["history"]["epochs"][-1]["epoch"] == 1
    assert all_finite(tmp_path)


def test_non_finite_errors_are_value_errors_and_one_family():
    assert issubclass(NonFiniteWeightsError, NonFiniteLossError)
    assert issubclass(NonFiniteLossError, ValueError)


@pytest.mark.parametrize("make, message", [
    (lambda p: SGD(p, lr=math.inf), "SGD: lr must be finite, got inf"),
    (lambda p: SGD(p, lr=0.1, momentum=math.inf), "SGD: momentum must be finite, got inf"),
    (lambda p: SGD(p, lr=0.1, weight_decay=math.inf), "SGD: weight_decay must be finite"),
    (lambda p: Adam(p, eps=math.inf), "Adam: eps must be finite, got inf"),
    (lambda p: Adam(p, betas=(0.9, math.nan)), "Adam: betas must be a pair of numbers in"),
    (lambda p: AdamW(p, weight_decay=math.inf), "AdamW: weight_decay must be finite"),
    (lambda p: RMSprop(p, alpha=math.nan), r"RMSprop: alpha must be in \[0, 1\), got nan"),
    (lambda p: RMSprop(p, momentum=math.inf), "RMSprop: momentum must be finite"),
])
def test_optimizer_hyper_parameters_must_be_finite(make, message):
    with pytest.raises(ValueError, match=message):
        make(net().parameters())


def test_setting_a_non_finite_lr_later_is_refused():
    opt = SGD(net().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="SGD: lr must be finite, got inf"):
        opt.lr = math.inf
    assert opt.lr == 0.1


@pytest.mark.parametrize("slope", [math.nan, math.inf, -math.inf])
def test_leaky_relu_slope_must_be_finite(slope):
    with pytest.raises(ValueError, match=rf"LeakyReLU: negative_slope must be a finite number, got {slope}"):
        LeakyReLU(slope)
    with pytest.raises(TypeError, match="LeakyReLU: negative_slope must be a number"):
        LeakyReLU("steep")


@pytest.mark.parametrize("eps", [math.nan, math.inf])
def test_batchnorm_eps_must_be_finite(eps):
    with pytest.raises(ValueError, match=r"BatchNorm2D: need eps > 0 \(and finite\)"):
        BatchNorm2D(3, eps=eps)


def train_py(*args):
    return _train_py(*args, check=False)


TINY = ["--dataset", "synthetic", "--num-train", "48", "--num-val", "16", "--num-test", "16", "--batch-size", "16",
        "--model", "three_layer_convnet", "--no-progress"]


@pytest.mark.parametrize("lr", ["inf", "nan", "1e38", "-1", "0"])
def test_train_py_refuses_a_learning_rate_out_of_range(lr, tmp_path):
    result = train_py(*TINY, "--lr", lr, "--out", tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.py: error: --lr must be a finite number > 0 and <= 10.0, got " in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_py_refuses_bad_weight_decay(tmp_path):
    result = train_py(*TINY, "--weight-decay", "inf", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "--weight-decay must be a finite number >= 0 and <= 1, got inf" in result.stderr


def test_a_diverging_run_exits_non_zero_and_leaves_only_finite_files(tmp_path):
    """SGD at lr 10 with weight decay 1 (in range, but far too large) blows up in epoch 2:
    train.py says where, exits 1, and every file of the run folder holds finite numbers only."""
    out = tmp_path / "run"
    result = train_py(*TINY, "--optimizer", "sgd", "--lr", "10", "--weight-decay", "1",
                      "--epochs", "3", "--out", out)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and "Traceback" not in result.stderr
    assert "at epoch 2, iteration" in last and "Try a smaller learning rate" in last
    assert f"The last good checkpoint (the end of epoch 1) is {out / 'checkpoint.npz'}" in last
    assert "test accuracy" not in result.stdout
    assert all_finite(out)
    assert read_checkpoint(out / "checkpoint.npz")[2]["position"]["epoch"] == 1
