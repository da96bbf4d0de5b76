"""fit with per-step schedules: the rate of every step, and exact resume mid-schedule."""

import numpy as np
import pytest

from conftest import InterruptAt, channel_data, tiny_net
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import SGD
from minicnn.training import fit, read_checkpoint
from minicnn.training.schedules import CosineLR, OneCycleLR, StepLR

BATCH, EPOCHS = 16, 3
STEPS = 150 // BATCH


@pytest.fixture(scope="module")
def data():
    return channel_data(200, 150)


class RecordingSGD(SGD):
    """SGD that notes the rate of every step it takes."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.rates = []

    def step(self):
        self.rates.append(self.lr)
        super().step()


def run(data, schedule, out_dir=None, resume=False, loss_fn=None, model_seed=0):
    model = tiny_net(model_seed)
    opt = RecordingSGD(model.parameters(), lr=0.05, momentum=0.9)
    hist = fit(model, loss_fn or SoftmaxCrossEntropy(), opt, *data, epochs=EPOCHS,
               batch_size=BATCH, schedule=schedule, seed=3, out_dir=out_dir, resume=resume,
               progress=False)
    return model, opt, hist


def test_per_step_schedule_sets_the_rate_of_every_step(data):
    schedule = OneCycleLR(0.1, total_steps=EPOCHS * STEPS)
    _, opt, hist = run(data, schedule)
    assert opt.rates == [schedule.lr_at(t) for t in range(EPOCHS * STEPS)]
    assert hist["lr"] == [schedule.lr_at(e * STEPS + STEPS - 1) for e in range(EPOCHS)]


def test_per_epoch_schedule_still_changes_once_per_epoch(data):
    _, opt, hist = run(data, CosineLR(0.1, EPOCHS))
    assert opt.rates == [CosineLR(0.1, EPOCHS).lr_at(t // STEPS) for t in range(EPOCHS * STEPS)]
    _, opt, _ = run(data, StepLR(0.1, 4, 0.5, per_step=True))
    assert opt.rates == [0.1 * 0.5 ** (t // 4) for t in range(EPOCHS * STEPS)]


def test_resume_mid_epoch_continues_the_schedule_exactly(data, tmp_path):
    schedule = OneCycleLR(0.1, total_steps=EPOCHS * STEPS)
    ref_model, ref_opt, ref_hist = run(data, schedule)
    with pytest.raises(KeyboardInterrupt):
        run(data, schedule, tmp_path, loss_fn=InterruptAt(STEPS + 1 + 5))  # epoch 2, step 5
    position = read_checkpoint(tmp_path / "checkpoint.npz")[2]["position"]
    assert (position["epoch"], position["step"]) == (1, 5)
    model, opt, hist = run(data, schedule, tmp_path, resume=True, model_seed=9)
    assert opt.rates == ref_opt.rates[STEPS + 5:]
    assert np.array_equal(hist.iteration_loss, ref_hist.iteration_loss)
    for (name, a), (_, b) in zip(model.named_parameters(), ref_model.named_parameters()):
        assert np.array_equal(a.data, b.data), name


def test_a_schedule_too_short_for_the_run_fails_before_training(data):
    model = tiny_net(0)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match="past the schedule's total_steps"):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), *data, epochs=EPOCHS,
            batch_size=BATCH, schedule=OneCycleLR(0.1, total_steps=EPOCHS * STEPS - 2),
            progress=False)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
