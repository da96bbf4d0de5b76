"""Pictures are written, have the promised size, are not blank; routing numbers agree
with the pooling layer's own backward."""
import numpy as np
import pytest
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
    from minicnn.training.runs import build_data, build_model_for, build_optimizer, save_config
    from minicnn.training import fit
    config = dict(dataset="synthetic", data_dir=None, model=model, epochs=1,
                  batch_size=50, lr=1e-3, optimizer="adam", weight_decay=0.0, schedule="none",
                  augment=False, num_train=100, num_val=40, num_test=60, dtype="float32", seed=0)
    save_config(str(run_dir), config)
    data = build_data(config)
    model = build_model_for(config, len(data.classes))
    fit(model, SoftmaxCrossEntropy(), build_optimizer(model, config), (data.x_train, data.y_train),
        (data.x_val, data.y_val), 1, 50, out_dir=str(run_dir), progress=False)
    return run_dir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


def test_report_of_a_run_folder(tiny_run, capsys):
    """minicnn-report RUN_DIR writes RUN_DIR/report.png via write_report."""
    from minicnn.viz import report
    report.main([str(tiny_run)])
    path = tiny_run / "report.png"
    assert f"wrote {path}" in capsys.readouterr().out
    pixels = imread(str(path))
    assert pixels.shape[:2] == (report.PAGE[1] * viz.DPI, report.PAGE[0] * viz.DPI)
    check_png(path, Figure(figsize=report.PAGE), min_colours=500)
    with pytest.raises(SystemExit) as e:
        report.main([str(tiny_run / "missing")])
    assert e.value.code == 1


def test_report_of_a_model_without_conv(tmp_path):
    from minicnn.viz import report
    path = report.write_report(str(make_run(tmp_path, model="linear")))
    check_png(path, Figure(figsize=report.PAGE), min_colours=500)


def test_raw_images_undo_normalisation():
    from minicnn.data import fit_normalizer, normalize
    from minicnn.viz.report import raw_images
    x = np.random.default_rng(4).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    mean, std = fit_normalizer(x)
    np.testing.assert_array_equal(raw_images(normalize(x, mean, std), mean, std), x)
