"""fit without validation data, callbacks, early stopping, live plots, and the NaN rule."""
import math
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import channel_data, tiny_net
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import SGD, Adam
from minicnn.training import History, callbacks, fit, loop, predict, read_checkpoint
from minicnn.training.callbacks import EarlyStopping, StopTraining
from minicnn.training.loop import NonFiniteLossError
from minicnn.viz.figures import mistakes_first
from minicnn.viz.live import LivePlot, SamplePredictions

BATCH = 16
STEPS = 150 // BATCH
LOOP = Path(__file__).resolve().parents[1] / "minicnn" / "training"


@pytest.fixture(scope="module")
def data():
    return channel_data(200, 150)


def train(data, val=True, epochs=2, **kwargs):
    model = tiny_net(0)
    kwargs.setdefault("progress", False)
    hist = fit(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2), data[0],
               data[1] if val else None, epochs, BATCH, seed=1, **kwargs)
    return model, hist


class Recorder:
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step_end(self, history, model):
        self.steps.append(len(history.iteration_loss))

    def on_epoch_end(self, history, model):
        self.epochs.append((len(history), len(history.iteration_loss)))


def test_training_without_validation_data(data, tmp_path, capsys):
    model, hist = train(data, val=False, out_dir=tmp_path, progress="lines")
    assert hist["val_acc"] == [None, None] and hist["val_loss"] == [None, None]
    assert hist.iteration_loss[-1] < hist.iteration_loss[0]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "history.csv", "history.json"]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "validation" not in lines[0] and lines[0].startswith("epoch 1/2")
    # the checkpoint holds the None columns and resumes
    assert read_checkpoint(tmp_path / "checkpoint.npz")[2]["history"]["epochs"][0]["val_acc"] is None
    assert History.load(tmp_path / "history.json").best_val_acc == -math.inf
    other = tiny_net(5)
    resumed = fit(other, SoftmaxCrossEntropy(), Adam(other.parameters()), data[0],
                  None, 3, BATCH, seed=1, out_dir=tmp_path, resume=True, progress=False)
    assert len(resumed) == 3 and resumed["val_acc"] == [None] * 3


def test_empty_or_mismatched_validation_data_is_refused_at_once(data):
    (x, y), (xv, yv) = data
    for bad in [(xv[:0], yv[:0]), (xv, yv[:-1])]:
        with pytest.raises(ValueError, match="fit: val_data must hold as many labels as images, "
                                             "at least one.*val_data=None"):
            model = tiny_net(0)
            fit(model, SoftmaxCrossEntropy(), Adam(model.parameters()), (x, y), bad,
                1, BATCH, progress=False)


def test_callbacks_are_called_after_every_step_and_epoch(data):
    recorder = Recorder()

    class OnlyEpochs:
        calls = 0

        def on_epoch_end(self, history, model):
            OnlyEpochs.calls += 1

    train(data, callbacks=[recorder, OnlyEpochs()])
    assert recorder.steps == list(range(1, 2 * STEPS + 1))
    assert recorder.epochs == [(1, STEPS), (2, 2 * STEPS)] and OnlyEpochs.calls == 2


def test_stop_training_at_an_epoch_end_returns_the_history(data, tmp_path, capsys):
    class StopAfterTwo:
        def on_epoch_end(self, history, model):
            if len(history) == 2:
                raise StopTraining("enough")

    _, hist = train(data, epochs=5, out_dir=tmp_path, callbacks=[StopAfterTwo()], progress="lines")
    assert len(hist) == 2 and capsys.readouterr().out.splitlines()[-1] == "enough"
    assert read_checkpoint(tmp_path / "checkpoint.npz")[2]["position"]["epoch"] == 2


def test_stop_training_mid_epoch_saves_where_it_stopped(data, tmp_path):
    class StopAtStep:
        def on_step_end(self, history, model):
            if len(history.iteration_loss) == STEPS + 3:
                raise StopTraining("mid-epoch")

    _, hist = train(data, epochs=3, out_dir=tmp_path, callbacks=[StopAtStep()])
    assert len(hist) == 1 and len(hist.iteration_loss) == STEPS + 3
    position = read_checkpoint(tmp_path / "checkpoint.npz")[2]["position"]
    assert (position["epoch"], position["step"]) == (1, 3)
    # resuming it gives the uninterrupted run
    _, ref = train(data, epochs=3)
    other = tiny_net(7)
    resumed = fit(other, SoftmaxCrossEntropy(), Adam(other.parameters(), lr=1e-2),
                  *data, 3, BATCH, seed=1, out_dir=tmp_path, resume=True, progress=False)
    assert np.array_equal(resumed.iteration_loss, ref.iteration_loss)


def history_of(accuracies):
    h = History([1.0] * len(accuracies))
    for e, acc in enumerate(accuracies, start=1):
        h.add_epoch(epoch=e, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=acc, lr=0.1,
                    seconds=1.0, iterations=e)
    return h


@pytest.mark.parametrize("accuracies, patience, min_delta, stops", [
    ([0.5, 0.6, 0.6], 2, 0.0, False),        # one epoch without improvement
    ([0.5, 0.6, 0.6, 0.59], 2, 0.0, True),   # two: a tie is not an improvement
    ([0.5, 0.6, 0.6, 0.61], 2, 0.0, False),  # improved at the last moment
    ([0.5, 0.6, 0.605, 0.61], 2, 0.01, True),  # too small to count with min_delta
    ([0.5], 1, 0.0, False),
    ([0.5, 0.5], 1, 0.0, True),
])
def test_early_stopping_rule(accuracies, patience, min_delta, stops):
    stopper = EarlyStopping(patience, min_delta)
    if stops:
        with pytest.raises(StopTraining, match=f"not improved for {patience} epochs"):
            stopper.on_epoch_end(history_of(accuracies), None)
    else:
        stopper.on_epoch_end(history_of(accuracies), None)


def test_early_stopping_ends_a_plateaued_run_and_needs_validation(data):
    model = tiny_net(0)
    hist = fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.0), *data, 10, BATCH,
               progress=False, callbacks=[EarlyStopping(patience=2)])
    assert len(hist) == 3  # lr 0: nothing ever improves after the first epoch
    with pytest.raises(ValueError, match="needs validation data, but val_data is None"):
        train(data, val=False, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        EarlyStopping(0)


def test_mistakes_come_first():
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 9, 2, 9, 4, 5])
    assert mistakes_first(y_true, y_pred, 4).tolist() == [1, 3, 0, 2]
    assert mistakes_first(y_true, y_true, 2).tolist() == [0, 1]


def test_sample_predictions_writes_a_picture_per_epoch(data, tmp_path):
    xv, yv = data[1]
    train(data, epochs=2, callbacks=[SamplePredictions(xv, yv, tmp_path / "samples", num=8)])
    assert sorted(os.listdir(tmp_path / "samples")) == ["predictions-epoch-001.png",
                                                        "predictions-epoch-002.png"]
    with pytest.raises(ValueError, match="need as many labels as images"):
        SamplePredictions(xv[:0], yv[:0], tmp_path)


def test_progress_plot_outside_a_notebook_prints_lines(data, capsys):
    train(data, progress="plot")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "validation accuracy" in lines[1]


def test_progress_plot_in_a_notebook_adds_the_live_plot_viz_registered(data, capsys,
                                                                      monkeypatch):
    import minicnn.viz  # noqa: F401 (importing it registers its LivePlot)
    assert isinstance(callbacks.live_plot(), LivePlot)
    shown = []
    monkeypatch.setattr(loop, "in_notebook", lambda: True)
    monkeypatch.setitem(callbacks._live_plot, "factory",
                        lambda: LivePlot(interval=3600, show=shown.append))
    train(data, progress="plot")
    assert len(shown) == 1 + 2 and capsys.readouterr().out == ""  # a picture, no lines
    monkeypatch.setitem(callbacks._live_plot, "factory", None)  # viz never imported
    train(data, progress="plot")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('fit: progress="plot" draws with minicnn.viz; import it first')
    assert len(lines) == 3 and "validation accuracy" in lines[2] and len(shown) == 3
    with pytest.raises(TypeError, match="set_live_plot: expected a function or None"):
        callbacks.set_live_plot("LivePlot")


def test_live_plot_redraws_after_steps_and_epochs(data):
    shown = []
    plot = LivePlot(interval=0, show=shown.append)
    train(data, callbacks=[plot])
    assert len(shown) == 2 * STEPS + 2 and all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in shown)
    shown.clear()
    train(data, callbacks=[LivePlot(interval=3600, show=shown.append)])
    assert len(shown) == 1 + 2  # the first step, then every epoch end


class NanAt(SoftmaxCrossEntropy):
    """A NaN loss at call ``at``, whose gradient is finite; remembers the weights then."""

    def __init__(self, at, model):
        super().__init__()
        self.calls, self.at, self.model, self.before = 0, at, model, None

    def forward(self, scores, y):
        self.calls += 1
        loss = super().forward(scores, y)
        if self.calls == self.at:
            self.before = {k: v.copy() for k, v in self.model.state_dict().items()}
            return math.nan
        return loss


def test_a_nan_step_is_never_applied(data):
    """The weights and the optimizer's state after the error are those before the bad step:
    this fails if the update runs before the loss is checked."""
    model = tiny_net(0, dropout=False)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = NanAt(4, model)
    steps = []
    opt_step = opt.step
    opt.step = lambda: (steps.append(1), opt_step())
    with pytest.raises(NonFiniteLossError, match="nan at epoch 1, iteration 4"):
        fit(model, loss_fn, opt, *data, 2, BATCH, progress=False)
    assert len(steps) == 3
    after = model.state_dict()
    assert all(np.array_equal(after[k], v) for k, v in loss_fn.before.items())


def test_predict_on_no_inputs_is_one_clear_line(data):
    with pytest.raises(ValueError, match=r"^predict: got no inputs \(an array of shape "
                                         r"\(0, 3, 8, 8\)\); pass at least one sample$"):
        predict(tiny_net(0), data[1][0][:0])
    assert predict(tiny_net(0), data[1][0][:1]).shape == (1, 3)


def test_predict_with_flip_tta_averages_the_scores_of_each_image_and_its_mirror(data):
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.training import evaluate
    model, x = tiny_net(0), data[1][0][:40]
    plain, mirrored = predict(model, x), predict(model, x[..., ::-1].copy())
    assert not np.allclose(plain, mirrored)  # the net is not mirror-symmetric
    both = predict(model, x, batch_size=16, tta="flip")
    np.testing.assert_array_equal(both, (plain + mirrored) / 2)
    assert both.dtype == plain.dtype
    np.testing.assert_array_equal(predict(model, x, tta="none"), plain)
    y = data[1][1][:40]
    loss, acc = evaluate(model, SoftmaxCrossEntropy(), x, y, tta="flip")
    assert acc == np.mean(both.argmax(1) == y)
    assert loss == SoftmaxCrossEntropy()(both, y)
    with pytest.raises(ValueError, match=r"^predict: tta must be one of 'none', 'flip', "
                                         r"got 'mirror'$"):
        predict(model, x, tta="mirror")


def test_no_function_in_the_training_loop_is_above_complexity_c():
    radon = pytest.importorskip("radon.complexity")
    for name in ("loop.py", "callbacks.py", "schedules.py", "inference.py"):
        blocks = radon.cc_visit((LOOP / name).read_text())
        worst = max(blocks, key=lambda b: b.complexity)
        assert radon.cc_rank(worst.complexity) in "ABC", (name, worst.name, worst.complexity)
