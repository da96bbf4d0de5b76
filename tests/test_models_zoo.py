"""Ready-made networks: shapes, seeding, and that a small convnet actually learns."""
import numpy as np
import pytest

from minicnn.data import fit_normalizer, normalize, synthetic_cifar
from minicnn.layers import BatchNorm2D, Conv2D, Flatten, GlobalAvgPool2D, Linear, MaxPool2D
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import (
    MODELS,
    Sequential,
    build_model,
    linear_classifier,
    three_layer_convnet,
    vgg_small,
)
from minicnn.optim import Adam
from minicnn.training import fit


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shapes_and_dtypes(name):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model = build_model(name, num_classes=7, seed=0)
    assert isinstance(model, Sequential) and model(x).shape == (2, 7)
    model64 = MODELS[name](num_classes=10, seed=0, dtype=np.float64)
    out = model64(x)
    assert out.shape == (2, 10) and out.dtype == np.float64
    assert all(p.dtype == np.float64 for p in model64.parameters())


def test_three_layer_convnet_is_the_cs231n_net():
    model = three_layer_convnet()
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(32, 3, 7, 7), (32,), (100, 32 * 16 * 16), (100,), (10, 100), (10,)]
    assert model[0].padding == (3, 3) and isinstance(model[2], MaxPool2D)


def test_vgg_small_stages():
    model = vgg_small(widths=(32, 64))
    convs = [layer for layer in model if isinstance(layer, Conv2D)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == \
        [(3, 32, (3, 3)), (32, 32, (3, 3)), (32, 64, (3, 3)), (64, 64, (3, 3))]
    assert sum(isinstance(layer, BatchNorm2D) for layer in model) == 4
    assert sum(isinstance(layer, MaxPool2D) for layer in model) == 2
    assert isinstance(model[-2], GlobalAvgPool2D) and model[-1].in_features == 64


@pytest.mark.parametrize("size,features", [(28, 64 * 3 * 3), ((28, 32), 64 * 3 * 4), (8, 64)])
def test_vgg_small_with_an_image_size_flattens_its_last_map(size, features):
    model = vgg_small(in_channels=1, image_size=size, seed=0)
    assert isinstance(model[-2], Flatten) and model[-1].in_features == features
    # the convolutions are those of the pooled network with the same seed
    mine, pooled = model.state_dict(), vgg_small(in_channels=1, seed=0).state_dict()
    convs = [k for k in pooled if not k.startswith(f"{len(model) - 1}.")]
    assert len(convs) == len(pooled) - 2
    for k in convs:
        np.testing.assert_array_equal(mine[k], pooled[k])
    h, w = (size, size) if isinstance(size, int) else size
    assert model(np.zeros((2, 1, h, w), np.float32)).shape == (2, 10)


def test_vgg_small_image_size_below_one_pixel_after_the_pools_is_refused():
    with pytest.raises(ValueError, match=r"^vgg_small: an image of 7 is smaller than 1x1 after "
                                         r"3 2x2 pools; give at least 8 pixels a side"):
        vgg_small(image_size=7)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_weights(name):
    a, b, c = (build_model(name, seed=s) for s in (3, 3, 4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert any(not np.array_equal(sa[k], sc[k]) for k in sa if k.endswith("weight"))


def test_one_generator_is_passed_through_every_layer():
    rng = np.random.default_rng(5)
    first, second = three_layer_convnet(seed=rng), three_layer_convnet(seed=rng)
    again = three_layer_convnet(seed=np.random.default_rng(5))
    assert np.array_equal(first[0].weight.data, again[0].weight.data)
    assert np.array_equal(first[-1].weight.data, again[-1].weight.data)
    assert not np.array_equal(first[0].weight.data, second[0].weight.data)  # stream moved on


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*three_layer_convnet"):
        build_model("resnet")


def test_small_convnet_learns_shapes_a_linear_model_cannot():
    """On the synthetic set (class = shape or texture, anywhere, any colour) a tiny VGG
    beats chance (0.1) by far after a few epochs, while softmax regression on the same
    pixels stays near chance. Images are halved to 16x16 to keep the test fast."""
    x, y = synthetic_cifar(1800, seed=0)
    x = x.reshape(-1, 3, 16, 2, 16, 2).mean(axis=(3, 5))
    mean, std = fit_normalizer(x[:1500])
    x = normalize(x, mean, std)
    train, val = (x[:1500], y[:1500]), (x[1500:], y[1500:])

    def val_acc(model, lr):
        history = fit(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=lr), train, val,
                      epochs=4, batch_size=32, seed=0, progress=False)
        return history["val_acc"][-1]

    conv = val_acc(vgg_small(seed=0, widths=(8, 16)), 3e-3)
    linear = val_acc(Sequential(Flatten(), Linear(3 * 16 * 16, 10, seed=0)), 1e-3)
    assert conv > 0.4, conv
    assert conv > linear + 0.25, (conv, linear)
    assert isinstance(linear_classifier()[1], Linear)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_runs_forward_and_backward_on_grayscale_and_colour(name, shape):
    c, size = shape[0], shape[1]
    extra = {"image_size": size} if name in ("three_layer_convnet", "linear") else {}
    model = build_model(name, num_classes=10, seed=0, in_channels=c, **extra)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    scores = model(x)
    assert scores.shape == (2, 10) and scores.dtype == np.float32
    dx = model.backward(np.ones_like(scores))
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    assert weights[0].grad.any() and weights[-1].grad.any()


def test_a_pytorch_initialised_classifier_starts_near_log_of_the_class_count():
    """The CS231n sanity check: with the classifier on init="pytorch" the loss of a fresh
    vgg_small on normalised images is about ln(10) = 2.30; with the default He classifier
    it starts higher."""
    x, y = synthetic_cifar(128, seed=0)
    x = normalize(x, *fit_normalizer(x))
    model = vgg_small(seed=0)
    he = SoftmaxCrossEntropy()(model(x), y)
    model.layers[-1] = Linear(64, 10, seed=1, init="pytorch")
    small = SoftmaxCrossEntropy()(model(x), y)
    assert abs(small - np.log(10)) < 0.35 and he > small, (he, small)


def test_init_rules():
    he = Linear(400, 50, seed=0)
    torch_like = Linear(400, 50, seed=0, init="pytorch")
    assert abs(he.weight.data.std() - np.sqrt(2 / 400)) < 0.005 and not he.bias.data.any()
    bound = 1 / np.sqrt(400)
    for p in (torch_like.weight.data, torch_like.bias.data):
        assert np.abs(p).max() <= bound and abs(p.std() - bound / np.sqrt(3)) < 0.005 * 4
    conv = Conv2D(4, 8, 3, seed=0, init="pytorch", bias=False)
    assert conv.bias is None and np.abs(conv.weight.data).max() <= 1 / np.sqrt(36)
    with pytest.raises(ValueError, match="init must be one of 'he', 'pytorch', got 'xavier'"):
        Linear(2, 2, init="xavier")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_bad_seed_names_the_model(name):
    with pytest.raises(TypeError, match=f"{MODELS[name].__name__}: seed must be a non-negative int"):
        build_model(name, seed="abc")


def test_vgg_small_with_a_flattened_head_matches_pytorch():
    torch = pytest.importorskip("torch")
    from minicnn.export import to_torch
    model = vgg_small(in_channels=1, image_size=28, seed=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28))
    theirs = to_torch(model).eval()
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(x), theirs(torch.tensor(x)).numpy(), rtol=1e-10, atol=1e-10)
