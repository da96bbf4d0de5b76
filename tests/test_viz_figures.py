"""Pictures are written, have the promised size, are not blank; routing numbers agree
with the pooling layer's own backward; the report's text lies inside the page at a
readable size, with no empty band."""
import matplotlib
import numpy as np
import pytest
from figure_checks import assert_text_fits, colour_pixels, crop, longest_blank_run, pixels
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.image import imread

from minicnn import functional as F
from minicnn import layers as L
from minicnn import viz
from minicnn.models import Sequential

CLASSES = [f"class {k}" for k in range(5)]
TIES_4x4 = np.array([[1, 3, 3, 0],
                     [2, 3, 1, 1],
                     [5, 5, 2, 2],
                     [0, 5, 2, 0]], dtype=np.float64)


def check_png(path, fig, min_colours=50):
    """The file exists, is figsize * dpi pixels, and has many distinct colours."""
    pixels = imread(str(path))
    w, h = (fig.get_size_inches() * viz.DPI).round().astype(int)
    assert pixels.shape[:2] == (h, w)
    packed = (pixels * 255).round().astype(np.uint32) << np.arange(0, 8 * pixels.shape[-1], 8,
                                                                   dtype=np.uint32)
    colours = np.unique(packed.sum(axis=-1, dtype=np.uint32))
    assert len(colours) >= min_colours, f"{path} looks blank: {len(colours)} colours"


def small_net():
    return Sequential(L.Conv2D(3, 8, 3, padding=1, seed=0), L.ReLU(), L.MaxPool2D(2),
                      L.Flatten(), L.Linear(8 * 4 * 4, 5, seed=1))


def test_filters_and_feature_maps(tmp_path):
    net = small_net()
    image = np.random.default_rng(0).standard_normal((3, 8, 8)).astype(np.float32)
    net.train()
    net(image[None])
    cache = net[0].cache
    for name, fig in [("filters", viz.filters_figure(net, path=tmp_path / "filters.png")),
                      ("maps", viz.feature_maps_figure(net, image, 1, path=tmp_path / "maps.png")),
                      ("scores", viz.feature_maps_figure(net, image, -1,
                                                         path=tmp_path / "scores.png"))]:
        check_png(tmp_path / f"{name}.png", fig)
    assert net.training and net[0].cache is cache  # mode and caches left alone
    grey = Sequential(L.Conv2D(1, 4, 3, seed=0))
    check_png(tmp_path / "grey.png", viz.filters_figure(grey, path=tmp_path / "grey.png"), 10)
    with pytest.raises(ValueError, match="no Conv2D"):
        viz.filters_figure(Sequential(L.ReLU()))


def test_confusion_and_predictions(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 40)
    pred = np.where(rng.random(40) < 0.7, y, rng.integers(0, 5, 40))
    counts = viz.confusion_matrix(y, pred, 5)
    assert counts.sum() == 40 and np.trace(counts) == np.sum(y == pred)
    assert counts[y[0], pred[0]] >= 1
    fig = viz.confusion_figure(y, pred, CLASSES, path=tmp_path / "confusion.png")
    check_png(tmp_path / "confusion.png", fig)
    images = rng.integers(0, 256, (10, 3, 16, 16), dtype=np.uint8)
    fig = viz.predictions_figure(images, y[:10], pred[:10], CLASSES, cols=5,
                                 path=tmp_path / "predictions.png")
    check_png(tmp_path / "predictions.png", fig)
    wrong = int(np.sum(y[:10] != pred[:10]))
    assert f"{wrong} of 10 wrong" in fig._suptitle.get_text()


def test_routing_of_the_4x4_example_with_ties():
    shares = viz.pool_routing(L.MaxPool2D(2), TIES_4x4)
    assert shares.shape == (2, 2, 4, 4)
    np.testing.assert_allclose(shares.sum(axis=(2, 3)), 1)
    winners = (shares > 0).sum(axis=(2, 3))
    np.testing.assert_array_equal(winners, [[2, 1], [3, 3]])
    np.testing.assert_allclose(shares[1, 0][[2, 2, 3], [0, 1, 1]], 1 / 3)
    first = viz.pool_routing({"kernel_size": 2, "ties": "first"}, TIES_4x4)
    np.testing.assert_array_equal((first > 0).sum(axis=(2, 3)), 1)
    np.testing.assert_array_equal(first[0, 0, 0, 1], 1)  # row-major first of the tied 3s


@pytest.mark.parametrize("params", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2)),
    dict(kernel_size=3, stride=1, ties="first"),
])
def test_routing_agrees_with_the_layer_backward(params):
    """Integer-valued maps make many ties; overlapping windows add their shares."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, (2, 3, 7, 6)).astype(np.float64)
    layer = L.MaxPool2D(**params)
    out = layer.forward(x)
    upstream = rng.standard_normal(out.shape)
    shares = viz.pool_routing(layer, x)  # (2, 3, H', W', 7, 6)
    assert shares.shape == x.shape[:2] + out.shape[2:] + x.shape[2:]
    np.testing.assert_allclose(shares.sum(axis=(2, 3)), layer.backward(np.ones_like(out)))
    layer.forward(x)
    routed = np.einsum("ncij,ncijhw->nchw", upstream, shares)
    np.testing.assert_allclose(routed, layer.backward(upstream), atol=1e-12)
    # Winners hold the window's maximum, read straight from the forward output.
    for (n, c, i, j) in np.ndindex(out.shape):
        assert np.all(x[n, c][shares[n, c, i, j] > 0] == out[n, c, i, j])


def test_routing_figure_draws_the_routing_numbers(tmp_path):
    params = dict(kernel_size=3, stride=1, padding=1)
    fig = viz.pool_routing_figure(params, TIES_4x4, path=tmp_path / "routing.png")
    check_png(tmp_path / "routing.png", fig)
    ax_input, ax_received, ax_winners = fig.axes[:3]
    shares = viz.pool_routing(params, TIES_4x4)
    np.testing.assert_allclose(ax_received.images[0].get_array(), shares.sum(axis=(0, 1)))
    np.testing.assert_array_equal(ax_winners.images[0].get_array(),
                                  (shares > 0).sum(axis=(2, 3)))
    texts = [t.get_text() for t in ax_received.texts]
    assert "13/3" in texts and "7/6" in texts
    _, cache = F.max_pool2d_forward(TIES_4x4[None, None], (3, 3), (1, 1), (1, 1))
    np.testing.assert_allclose(ax_received.images[0].get_array(),
                               F.max_pool2d_backward(np.ones((1, 1, 4, 4)), cache)[0, 0])


def test_routing_figure_of_a_real_feature_map(tmp_path):
    net = small_net()
    image = np.random.default_rng(3).standard_normal((3, 8, 8)).astype(np.float32)
    maps = viz.layer_output(net, image, 1)[0]  # input of the MaxPool2D
    fig = viz.pool_routing_figure(net[2], maps, channel=2, path=tmp_path / "r.png")
    check_png(tmp_path / "r.png", fig)
    with pytest.raises(TypeError, match="MaxPool2D"):
        viz.pool_routing(L.AvgPool2D(2), maps)


def make_run(run_dir, model="three_layer_convnet"):
    """A run folder as train.py writes it: 1 epoch of ``model`` on 100 images."""
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.training import fit
    from minicnn.training.runs import build_data, build_model_for, build_optimizer, save_config
    config = dict(dataset="synthetic", data_dir=None, model=model, epochs=1,
                  batch_size=50, lr=1e-3, optimizer="adam", weight_decay=0.0, schedule="none",
                  augment=False, num_train=100, num_val=40, num_test=60, dtype="float32", seed=0)
    data = build_data(config)
    model = build_model_for(config, len(data.classes))
    fit(model, SoftmaxCrossEntropy(), build_optimizer(model, config), (data.x_train, data.y_train),
        (data.x_val, data.y_val), 1, 50, out_dir=str(run_dir), progress=False)
    save_config(str(run_dir), config)  # after fit: fit(out_dir=...) takes a new or empty folder
    return run_dir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


def test_report_of_a_run_folder(tiny_run, capsys):
    """minicnn-report RUN_DIR writes RUN_DIR/report.png via write_report."""
    from minicnn.cli import report_command
    from minicnn.viz import report
    report_command.main([str(tiny_run)])
    path = tiny_run / "report.png"
    assert f"wrote {path}" in capsys.readouterr().out
    pixels = imread(str(path))
    assert pixels.shape[:2] == (report.PAGE[1] * viz.DPI, report.PAGE[0] * viz.DPI)
    check_png(path, Figure(figsize=report.PAGE), min_colours=500)
    with pytest.raises(SystemExit) as e:
        report_command.main([str(tiny_run / "missing")])
    assert e.value.code == 1


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("linear_run"), model="linear")


def test_report_of_a_model_without_conv(linear_run):
    from minicnn.viz import report
    path = report.write_report(str(linear_run))
    check_png(path, Figure(figsize=report.PAGE), min_colours=500)


@pytest.mark.parametrize("which", ["tiny_run", "linear_run"])
def test_report_layout_fits_the_page(which, request):
    """Constrained layout at the page size: every text inside the page and at least
    MIN_FONT points; no panel has a white band over 0.9 inch high; the run's folder
    name is the legend label; prediction captions do not overlap each other."""
    from minicnn.viz import report
    run = request.getfixturevalue(which)
    fig = report.run_report(str(run))
    assert_text_fits(fig)
    image = pixels(fig)
    assert image.shape[:2] == (report.PAGE[1] * viz.DPI, report.PAGE[0] * viz.DPI)
    curves, rest = fig.subfigs
    panels = [curves] + list(rest.subfigs)
    assert len(panels) == (3 if which == "linear_run" else 4)
    for panel in panels:
        assert longest_blank_run(crop(image, panel.bbox)) < 0.9 * viz.DPI
    ax_loss, ax_acc = curves.axes
    assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == [run.name]
    assert [t.get_text() for t in ax_acc.get_legend().get_texts()] == \
        [f"{run.name} train", f"{run.name} validation"]
    renderer = fig.canvas.get_renderer()
    captions = [ax.title.get_window_extent(renderer) for ax in rest.subfigs[-1].axes
                if ax.title.get_text()]
    assert len(captions) >= 16
    for i, a in enumerate(captions):
        assert not any(a.overlaps(b) for b in captions[i + 1:]), "prediction captions overlap"


def test_report_shows_the_first_conv_filters_and_strongest_maps(tiny_run):
    from minicnn.viz import report
    fig = report.run_report(str(tiny_run))
    filters, maps = fig.subfigs[1].subfigs[1].subfigs
    assert filters.axes[0].get_title().startswith("First-layer filters")
    assert "strongest" in maps._suptitle.get_text()
    assert sum(ax.get_title().startswith("map ") for ax in maps.axes) == 8


def test_filters_share_one_symmetric_colour_scale():
    """Zero is the middle colour and +-max|w| the ends, for all filters alike: a filter
    with small weights stays pale instead of being stretched to the full range."""
    conv = L.Conv2D(3, 3, 2, seed=0)
    w = np.zeros((3, 3, 2, 2), np.float32)
    w[0, 0] = 0.5    # filter 0: red-channel weights at the top of the scale
    w[1, 2] = -0.25  # filter 1: blue-channel weights halfway down
    conv.weight.data[...] = w
    fig = viz.filters_figure(Sequential(conv))
    ax, bar = fig.axes
    image = np.asarray(ax.images[0].get_array())[..., :3]  # RGBA
    cmap = matplotlib.colormaps[viz.figures.FILTER_CMAP]
    for value, present in [(1.0, True), (0.25, True), (0.5, True), (0.0, False)]:
        assert (colour_pixels(image, cmap(value), 1e-6) > 0) == present, value
    assert bar.get_ylim() == pytest.approx((-0.5, 0.5))
    assert "R | G | B" in ax.get_title()
    assert_text_fits(fig)


def test_strongest_maps_are_the_largest_mean_activations():
    net = small_net()
    image = np.random.default_rng(5).standard_normal((3, 8, 8)).astype(np.float32)
    assert viz.figures.first_block_end(net) == "1"  # conv, then its ReLU
    out = viz.layer_output(net, image, 1)[0]
    expected = np.argsort(-np.abs(out).mean(axis=(1, 2)), kind="stable")[:3]
    fig = viz.strongest_maps_figure(net, image, k=3)
    axes = fig.axes[1:4]
    assert [ax.get_title() for ax in axes] == [f"map {j}" for j in expected]
    for ax, j in zip(axes, expected):
        np.testing.assert_array_equal(ax.images[0].get_array(), out[j])
        assert ax.images[0].get_clim() == (out[expected].min(), out[expected].max())
    assert_text_fits(fig)
    with pytest.raises(ValueError, match="no Conv2D layer in Sequential"):
        viz.strongest_maps_figure(Sequential(L.Flatten()), image)


def test_confusion_colour_and_colour_bar_count_images():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])
    pred = np.array([0, 0, 1, 1, 1, 2, 2, 0, 2, 3, 4, 3])
    fig = viz.confusion_figure(y, pred, CLASSES)
    ax, bar = fig.axes
    counts = viz.confusion_matrix(y, pred, 5)
    np.testing.assert_array_equal(ax.images[0].get_array(), counts)
    assert ax.images[0].get_clim() == (0, 4)  # the largest class: its perfect row is darkest
    assert bar.get_ylabel() == "images"
    ticks = [t for t in bar.get_yticks() if 0 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(counts.ravel().tolist())
    assert_text_fits(fig)


def test_routing_figure_integer_panels_have_discrete_colour_bars():
    fig = viz.pool_routing_figure(L.MaxPool2D(2), TIES_4x4)
    ax_input, ax_received, ax_winners = fig.axes[:3]
    winners = ax_winners.images[0]
    assert isinstance(winners.norm, BoundaryNorm) and winners.cmap.N == 3  # 1, 2 or 3 winners
    np.testing.assert_array_equal(winners.colorbar.get_ticks(), [1, 2, 3])
    assert isinstance(ax_input.images[0].norm, BoundaryNorm)  # whole numbers 0..5
    np.testing.assert_array_equal(ax_input.images[0].colorbar.get_ticks(), range(6))
    assert not isinstance(ax_received.images[0].norm, BoundaryNorm)  # fractions: continuous
    assert_text_fits(fig)


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    """A folder written by fit(out_dir=...) alone (no config.json), with its network and
    test data."""
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.optim import Adam
    from minicnn.training import fit
    rng = np.random.default_rng(6)
    y = rng.integers(0, 5, 120)
    x = rng.standard_normal((120, 3, 8, 8)).astype(np.float32)
    x[np.arange(120), y % 3] += 1.5
    net = small_net()
    out = tmp_path_factory.mktemp("fit") / "my_run"
    fit(net, SoftmaxCrossEntropy(), Adam(net.parameters(), lr=1e-2), (x[:80], y[:80]),
        (x[80:100], y[80:100]), 2, 20, out_dir=str(out), progress=False)
    return out, net, (x[100:], y[100:])


def test_tools_on_a_fit_folder(fit_run, capsys):
    """minicnn-report says what a fit folder lacks and how to draw its report anyway;
    write_report and load_run take the network; minicnn-plot needs nothing more."""
    from minicnn.cli import plot_command, report_command
    from minicnn.training import load_run
    from minicnn.viz import report
    out, net, test_data = fit_run
    with pytest.raises(SystemExit) as e:
        report_command.main([str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" not in err
    for part in ("no config.json", "fit(out_dir=...)", "history.json", "best.npz",
                 "write_report(", "model=", "test_data=", f"minicnn-plot {out}"):
        assert part in err, part
    before = {k: v.copy() for k, v in net.state_dict().items()}
    path = report.write_report(str(out), model=net, test_data=test_data, classes=CLASSES)
    check_png(path, Figure(figsize=report.PAGE), min_colours=500)
    assert all(np.array_equal(v, before[k]) for k, v in net.state_dict().items())  # untouched
    with pytest.raises(ValueError, match=r"no config.json.*load_run\(.*model="):
        load_run(str(out))
    best, config, history = load_run(str(out), model=net)
    assert config is None and len(history) == 2 and not best.training
    saved = small_net().load(out / "best.npz").state_dict()
    assert all(np.array_equal(v, saved[k]) for k, v in best.state_dict().items())
    plot_command.main([str(out), "-o", str(out / "curves.png")])
    assert "wrote" in capsys.readouterr().out and (out / "curves.png").exists()
    with pytest.raises(ValueError, match="none of config.json"):
        load_run(str(out.parent / "empty"))


def test_raw_images_undo_normalisation():
    from minicnn.data import fit_normalizer, normalize
    from minicnn.viz.report import raw_images
    x = np.random.default_rng(4).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    mean, std = fit_normalizer(x)
    np.testing.assert_array_equal(raw_images(normalize(x, mean, std), mean, std), x)


def test_report_module_runs_as_a_script_on_a_fit_folder(fit_run):
    """``python -m minicnn.cli.report_command`` (what minicnn-report runs) without runpy's warning
    about a module imported twice; one error, no traceback."""
    import os
    import subprocess
    import sys
    out, _, _ = fit_run
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-m", "minicnn.cli.report_command", str(out)],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=root))
    assert result.returncode == 1
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("minicnn-report: error:") and "config.json" in result.stderr
