"""Curves that do not mislead: smoothing without lag from the start, a log axis for a loss
that spans decades, mistakes first, layer names a learner knows."""
import numpy as np
import pytest

import minicnn.layers as L
from minicnn.models import Sequential
from minicnn.training.history import History
from minicnn.viz.curves import ema, plot_histories, spans_decades
from minicnn.viz.figures import feature_maps_figure, layer_title, strongest_maps_figure


def history_of(loss, epochs=2, val=True):
    h = History(loss)
    steps = len(loss) // epochs
    for e in range(1, epochs + 1):
        h.add_epoch(epoch=e, train_loss=float(loss[e * steps - 1]), train_acc=0.3 * e,
                    val_loss=1.0 if val else None, val_acc=0.25 * e if val else None, lr=0.1,
                    seconds=1.0, iterations=e * steps)
    return h


def test_smoothed_loss_tracks_a_drop_after_ten_iterations():
    """Five iterations at 3.0, five at 1.0: the bias-corrected average weighs the recent
    ones as an average of the ten should (1.74); an average that starts from the first
    value sits at 2.18, and one that starts from zero without correction at 1.13."""
    values = [3.0] * 5 + [1.0] * 5
    smooth = ema(values, 0.9)
    weights = 0.9 ** np.arange(9, -1, -1)
    assert smooth[-1] == pytest.approx(np.sum(weights * values) / weights.sum(), rel=1e-12)
    assert smooth[-1] < 1.75
    from_first = values[0]
    for v in values[1:]:
        from_first = 0.9 * from_first + 0.1 * v
    assert from_first > 2.1
    assert np.allclose(ema([2.3] * 10), 2.3)  # a flat start stays flat, from iteration 1


def test_loss_axis_turns_logarithmic_when_the_loss_spans_more_than_a_decade():
    steps = np.arange(200)
    falling = 2.3 * np.exp(-steps / 30) + 0.01  # 2.31 down to 0.01: more than two decades
    fig = plot_histories(history_of(falling), ["a"])
    assert fig.axes[0].get_yscale() == "log" and "log" in fig.axes[0].get_ylabel()
    mild = 1.0 + np.exp(-steps / 30)  # 2.0 down to 1.0
    assert plot_histories(history_of(mild), ["a"]).axes[0].get_yscale() == "linear"
    assert not spans_decades([np.array([5.0, 0.0, 0.001])])  # a zero loss cannot be logged
    assert spans_decades([np.array([1.0, 2.0]), np.array([0.05])])  # over all runs
    assert not spans_decades([np.array([1.0, 0.1])])  # exactly one decade: not more


def test_curves_of_a_run_without_validation_show_only_training_accuracy():
    fig = plot_histories(history_of(np.linspace(2, 1, 20), val=False), ["a"])
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["a train"]


def net():
    return Sequential(L.Conv2D(3, 4, 3, padding=1, seed=0), L.ReLU(), L.MaxPool2D(2),
                      Sequential(L.Conv2D(4, 4, 3, padding=1, seed=1), L.BatchNorm2D(4),
                                 L.ReLU()),
                      L.Flatten(), L.Linear(4 * 4 * 4, 3, seed=2))


def test_layer_titles_name_layers_as_a_learner_knows_them():
    model = net()
    assert layer_title(model, "0") == "conv1"
    assert layer_title(model, "1") == "conv1 → ReLU"
    assert layer_title(model, "2") == "conv1 → ReLU → MaxPool2D"
    assert layer_title(model, "3.0") == "conv2"
    assert layer_title(model, "3.2") == "conv2 → BatchNorm2D → ReLU"
    assert layer_title(model, "5") == "fc1"
    assert layer_title(Sequential(L.ReLU(), L.Conv2D(3, 2, 1)), "0") == "ReLU (0)"


def test_feature_map_titles_use_those_names():
    model, image = net(), np.random.default_rng(0).standard_normal((3, 8, 8)).astype(np.float32)
    fig = feature_maps_figure(model, image, 1)
    titles = [ax.get_title() for ax in fig.subfigs[1].axes]
    assert titles[0].startswith("conv1 → ReLU: 4 of 4 maps")
    fig = strongest_maps_figure(model, image, "3.2")
    assert "after conv2 → BatchNorm2D → ReLU" in fig.get_suptitle().replace("\n", " ")
    assert "ReLU()" not in fig.get_suptitle()


def test_report_predictions_show_the_mistakes_first():
    from minicnn.viz.report import report_figure
    rng = np.random.default_rng(0)
    model = net()
    x = rng.standard_normal((40, 3, 8, 8)).astype(np.float32)
    from minicnn.training.loop import predict
    pred = predict(model, x).argmax(axis=1)
    y = pred.copy()
    wrong = [30, 35, 39]  # the only mistakes, all beyond the first 16 images
    y[wrong] = (pred[wrong] + 1) % 3
    page = report_figure(model, history_of(np.linspace(2, 1, 20)), x, y, ["a", "b", "c"])
    panel = page.subfigs[1].subfigs[-1]
    titles = [ax.get_title() for ax in panel.axes if ax.get_title()]
    assert [t.startswith("✗") for t in titles] == [True] * 3 + [False] * (len(titles) - 3)
    assert "3 of 16 wrong" in panel.get_suptitle()
