"""Loss/accuracy curves: a PNG of the expected size that is not blank; the CLI."""
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from minicnn.training.history import History
from minicnn.viz.curves import ema, main, plot_histories, plot_runs


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
    assert legend == ["run_a", "run_b"]
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
