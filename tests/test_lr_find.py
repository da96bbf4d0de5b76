"""The learning-rate range test: the sweep, its stop, its suggestion, and an untouched model."""
import numpy as np
import pytest

from conftest import channel_data, tiny_net
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import SGD, Adam
from minicnn.training import fit, lr_find
from minicnn.training.lr_find import _copies, _suggest, _valley
from minicnn.viz import plot_lr_find


@pytest.fixture(scope="module")
def data():
    return channel_data(1200, 1000)


def snapshot(model, optimizer):
    state = {k: v.copy() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.copy() for p in model.parameters()]
    rngs = [m.rng.bit_generator.state for m in model.modules() if hasattr(m, "rng")]
    modes = [m.training for m in model.modules()]
    return state, grads, rngs, modes, {k: np.copy(v) for k, v in optimizer.state_dict().items()}


def identical(a, b):
    (sa, ga, ra, ma, oa), (sb, gb, rb, mb, ob) = a, b
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert all((x is None and y is None) or np.array_equal(x, y) for x, y in zip(ga, gb))
    assert ra == rb and ma == mb
    assert oa.keys() == ob.keys() and all(np.array_equal(oa[k], ob[k]) for k in oa)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=1e-3, momentum=0.9),
                                  lambda p: Adam(p, lr=1e-4)])
def test_the_model_and_optimizer_are_left_bit_identical(data, make):
    model = tiny_net(0)
    optimizer = make(model.parameters())
    fit(model, SoftmaxCrossEntropy(), optimizer, data[0], None, 1, 50, progress=False)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=0.1)
    loss_fn(model(data[0][0][:4]), data[0][1][:4])
    grad = loss_fn.grad.copy()
    before = snapshot(model, optimizer)  # momentum or moments, a Dropout Generator in use
    result = lr_find(model, loss_fn, optimizer, data[0], num_iter=40)
    identical(before, snapshot(model, optimizer))
    assert np.array_equal(loss_fn.grad, grad)
    assert len(result.lrs) > 10 and optimizer.lr == before[4]["lr"]


def test_the_sweep_starts_from_the_optimizers_state_on_the_copys_parameters(data):
    model = tiny_net(0)
    optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    fit(model, SoftmaxCrossEntropy(), optimizer, data[0], None, 1, 50, progress=False)
    trial, trial_opt = _copies(model, optimizer)
    assert type(trial_opt) is Adam and trial_opt.hypers() == optimizer.hypers()
    state, copied = optimizer.state_dict(), trial_opt.state_dict()
    assert state.keys() == copied.keys() and all(np.array_equal(state[k], copied[k]) for k in state)
    ours = {id(p) for p in trial.parameters()}
    assert all(id(p) in ours for p in trial_opt.params) and len(trial_opt.params) == len(ours)


def test_the_sweep_is_exponential_trains_and_stops_when_the_loss_diverges(data):
    model = tiny_net(0)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = lr_find(model, SoftmaxCrossEntropy(), opt, data[0], start_lr=1e-5, end_lr=1e3,
                     num_iter=60)
    n = len(result.lrs)
    assert np.allclose(result.lrs, 1e-5 * 1e8 ** (np.arange(n) / 59), rtol=1e-12)
    assert result.diverged and n < 60
    assert result.smoothed[-1] > 4 * result.smoothed[:-1].min() or not np.isfinite(result.losses[-1])
    assert result.smoothed[:-1].min() < result.smoothed[0] - 0.2  # the copy learned
    assert result.lrs[0] < result.suggestion < result.lrs[-1]
    gentle = lr_find(model, SoftmaxCrossEntropy(), opt, data[0], start_lr=1e-6, end_lr=1e-3,
                     num_iter=30)
    assert not gentle.diverged and len(gentle.lrs) == 30
    assert "30 steps from 1e-06 to 0.001 (the sweep ended)" in str(gentle)
    lrs, losses, suggestion = gentle  # unpacks as the three values a learner wants
    assert lrs is gentle.lrs and losses is gentle.losses and suggestion == gentle.suggestion
    assert suggestion == lrs[gentle.index] and len(losses) == len(gentle.smoothed) == 30


def test_the_smoothed_loss_is_the_bias_corrected_average(data):
    model = tiny_net(0)
    result = lr_find(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), data[0],
                     num_iter=20, beta=0.9)
    s, expected = 0.0, []
    for t, v in enumerate(result.losses, start=1):
        s = 0.9 * s + 0.1 * v
        expected.append(s / (1 - 0.9 ** t))
    assert np.allclose(result.smoothed, expected, rtol=1e-12)
    assert result.smoothed[0] == result.losses[0]  # no lag from a start at zero


def test_a_loss_that_blows_up_at_once_still_gives_a_suggestion(data):
    model = tiny_net(0, dropout=False)
    for suggest in ("valley", "steepest"):
        result = lr_find(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1),
                         data[0], start_lr=1e30, end_lr=1e31, num_iter=20, suggest=suggest)
        assert result.diverged and len(result.lrs) <= 3
        assert result.suggestion == result.lrs[0]


def test_valley_and_steepest_on_known_curves():
    # fastai's valley: the longest decreasing run is steps 0..4; half way down it
    assert _valley(np.array([5.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0])) == 1
    lrs = np.logspace(-6, 1, 100)
    # a loss that falls fastest (in log lr) at lr = 1e-2, then rises
    loss = 2 - np.tanh(np.log10(lrs) + 2) + np.where(lrs > 1, 5 * (lrs - 1), 0)
    assert abs(np.log10(lrs[_suggest(lrs, loss, "steepest")]) + 2) < 0.2
    valley = lrs[_suggest(lrs, loss, "valley")]
    assert 1e-4 < valley < 1  # on the descent, before the bottom


def test_bad_arguments_are_one_clear_line(data):
    model = tiny_net(0)
    with pytest.raises(ValueError, match=r"optimizer's params\[0\] is not a parameter of the model"):
        lr_find(model, SoftmaxCrossEntropy(), SGD(tiny_net(1).parameters(), lr=0.1), data[0])
    opt = SGD(model.parameters(), lr=0.1)
    for kwargs, message in [(dict(start_lr=1.0, end_lr=0.1), "need 0 < start_lr < end_lr"),
                            (dict(start_lr=0.0), "need 0 < start_lr < end_lr"),
                            (dict(start_lr=0.1, end_lr=0.1), "need 0 < start_lr < end_lr"),
                            (dict(num_iter=4), "num_iter must be an integer >= 5"),
                            (dict(num_iter=5.5), "num_iter must be an integer >= 5"),
                            (dict(suggest="min"), "suggest must be one of"),
                            (dict(beta=1.0), r"beta must be in \[0, 1\), got 1.0"),
                            (dict(beta=-0.1), r"beta must be in \[0, 1\)"),
                            (dict(diverge=1.0), "diverge must be > 1"),
                            (dict(batch_size=5000), "batch_size 5000 is larger than the 1000")]:
        with pytest.raises(ValueError, match=message):
            lr_find(model, SoftmaxCrossEntropy(), opt, data[0], **kwargs)
    x, y = data[0]  # the boundaries themselves are fine: five steps, one batch of all samples
    result = lr_find(model, SoftmaxCrossEntropy(), opt, (x[:64], y[:64]), num_iter=5, beta=0.0)
    assert len(result.lrs) == 5 and np.array_equal(result.smoothed, result.losses)


def test_plot_marks_the_suggestion(data, tmp_path):
    model = tiny_net(0)
    result = lr_find(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), data[0],
                     num_iter=30)
    fig = plot_lr_find(*result, path=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-1] == f"suggested rate {result.suggestion:.2g}"
    dot = ax.lines[-1]
    assert dot.get_xdata()[0] == result.suggestion
    assert dot.get_ydata()[0] == pytest.approx(result.smoothed[result.index], rel=1e-12)
    bottom, top = ax.get_ylim()  # the divergence at the end does not squash the descent
    assert top < 1.5 * result.smoothed[0] + 1e-9 and bottom < result.smoothed.min()


def test_plot_refuses_mismatched_curves():
    with pytest.raises(ValueError, match=r"plot_lr_find: lrs and losses .* shapes \(3,\) and \(2,\)"):
        plot_lr_find([1e-3, 1e-2, 1e-1], [1.0, 2.0], 1e-2)
    with pytest.raises(ValueError, match="positive rates"):
        plot_lr_find([0.0, 1e-2], [1.0, 2.0], 1e-2)
