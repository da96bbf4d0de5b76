"""Loss/accuracy curves: a PNG of the expected size that is not blank; the CLI; epoch
boundaries drawn and named alike in loss.png and the report; overlaid runs stay visible."""
import matplotlib
import numpy as np
import pytest
from figure_checks import assert_text_fits, colour_pixels, crop, pixels
from matplotlib.figure import Figure
from PIL import Image

from minicnn import layers as L
from minicnn.cli.plot_command import main
from minicnn.models import Sequential
from minicnn.training.history import History
from minicnn.viz.curves import ema, plot_histories, plot_runs


def fake_history(seed, epochs=4, steps=25):
    rng = np.random.default_rng(seed)
    loss = 2.3 * np.exp(-np.arange(epochs * steps) / 40) + 0.2 * rng.random(epochs * steps)
    h = History(loss)
    for e in range(1, epochs + 1):
        h.add_epoch(epoch=e, train_loss=float(loss[e * steps - 1]), train_acc=0.2 * e,
                    val_loss=1.0, val_acc=0.18 * e, lr=0.1, seconds=1.0, iterations=e * steps)
    return h


def test_png_has_expected_size_and_is_not_blank(tmp_path):
    fig = plot_histories([fake_history(0), fake_history(1)], ["a", "b"], path=tmp_path / "c.png",
                         figsize=(8, 3), dpi=100)
    assert isinstance(fig, Figure)
    image = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    assert image.shape == (300, 800, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100


def test_plot_runs_labels_by_folder_and_cli(tmp_path, capsys):
    for name, seed in (("run_a", 0), ("run_b", 1)):
        (tmp_path / name).mkdir()
        fake_history(seed).save(tmp_path / name / "history.json")
    fig = plot_runs([tmp_path / "run_a", tmp_path / "run_b"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["run_a", "run_b", "epoch boundary"]
    main([str(tmp_path / "run_a"), str(tmp_path / "run_b"), "-o", str(tmp_path / "out.png"),
          "--title", "two runs"])
    assert Image.open(tmp_path / "out.png").size == (1100, 400)
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")])
    assert e.value.code == 1 and "cannot read history" in capsys.readouterr().err


def test_ema_is_bias_corrected_and_smooths():
    assert np.allclose(ema([3.0, 3.0, 3.0]), 3.0)  # no pull towards 0 at the start
    noisy = np.random.default_rng(0).standard_normal(500)
    assert ema(noisy).std() < noisy.std() / 2


def epoch_lines(ax):
    """x of the dotted vertical lines on ``ax`` and the legend entries."""
    xs = sorted(float(line.get_xdata()[0]) for line in ax.lines
                if line.get_linestyle() == ":" and len(line.get_xdata()) == 2
                and line.get_xdata()[0] == line.get_xdata()[1])
    return xs, [t.get_text() for t in ax.get_legend().get_texts()]


def test_epoch_boundaries_drawn_and_named_alike_in_loss_png_and_report():
    from minicnn.viz.report import report_figure
    history = fake_history(0)  # 4 epochs of 25 iterations
    loss_png = plot_histories([history], ["run_a"])
    rng = np.random.default_rng(0)
    net = Sequential(L.Conv2D(3, 4, 3, padding=1, seed=0), L.ReLU(), L.Flatten(),
                     L.Linear(4 * 8 * 8, 3, seed=1))
    page = report_figure(net, history, rng.standard_normal((20, 3, 8, 8)).astype(np.float32),
                         rng.integers(0, 3, 20), ["a", "b", "c"], label="run_a")
    for ax in (loss_png.axes[0], page.subfigs[0].axes[0]):
        xs, legend = epoch_lines(ax)
        assert xs == [25.5, 50.5, 75.5]
        assert legend == ["run_a", "epoch boundary"]


def test_epoch_boundaries_of_runs_that_differ_take_the_run_colour():
    fig = plot_histories([fake_history(0), fake_history(1, steps=20)], ["a", "b"])
    xs, legend = epoch_lines(fig.axes[0])
    assert xs == [20.5, 25.5, 40.5, 50.5, 60.5, 75.5]
    assert legend[-1] == "epoch boundary (run's colour)"


def test_two_identical_runs_both_stay_visible():
    """A copy of a run drawn on top of it leaves the first visible (wider line, bigger and
    other markers), in both plots."""
    h = fake_history(0)
    fig = plot_histories([h, History(h.iteration_loss, h.epochs)], ["run", "copy"])
    for ax in fig.axes:
        ax.get_legend().set_visible(False)  # count the curves' pixels, not the legend's
    image = pixels(fig)
    for ax in fig.axes[:2]:
        lines = [line for line in ax.lines if line.get_label() in ("run", "copy", "run train",
                                                                   "copy train")]
        assert len({(line.get_linewidth(), line.get_marker()) for line in lines}) == len(lines)
        part = crop(image, ax.bbox)
        for colour in ("C0", "C1"):
            assert colour_pixels(part, matplotlib.colors.to_rgb(colour)) > 150, colour


def test_curve_text_fits_and_is_at_least_9pt():
    fig = plot_histories([fake_history(k) for k in range(3)], ["vgg_small", "three_layer_convnet",
                                                                "linear"], title="three runs")
    assert_text_fits(fig)
