import io

import numpy as np
import pytest

from minicnn.optim import SGD, Adam, AdamW, RMSprop
from minicnn.parameter import Parameter

W0 = np.array([1.0, -2.0, 0.5])
G = [np.array([0.1, -0.3, 2.0]), np.array([-0.4, 0.2, 1.0]), np.array([0.3, 0.3, -0.5])]


def trajectory(make_opt, steps=3):
    """Weights after each of ``steps`` steps on one parameter starting at W0 with gradients G."""
    p = Parameter(W0.copy())
    opt = make_opt([p])
    ws = []
    for g in G[:steps]:
        opt.zero_grad()
        p.accumulate(g)
        opt.step()
        ws.append(p.data.copy())
    return ws


def assert_trajectory(ws, expected):
    assert len(ws) == len(expected)
    for w, e in zip(ws, expected):
        np.testing.assert_allclose(w, e, rtol=1e-13, atol=1e-15)


# -- update rules by hand ----------------------------------------------------------------
def test_sgd():
    lr = 0.1
    w1 = W0 - lr * G[0]
    w2 = w1 - lr * G[1]
    w3 = w2 - lr * G[2]
    assert_trajectory(trajectory(lambda ps: SGD(ps, lr=lr)), [w1, w2, w3])


def test_sgd_momentum_starts_from_the_first_gradient():
    lr, mu = 0.1, 0.9
    b1 = G[0]
    w1 = W0 - lr * b1
    b2 = mu * b1 + G[1]
    w2 = w1 - lr * b2
    b3 = mu * b2 + G[2]
    w3 = w2 - lr * b3
    assert_trajectory(trajectory(lambda ps: SGD(ps, lr=lr, momentum=mu)), [w1, w2, w3])


def test_sgd_nesterov():
    lr, mu = 0.1, 0.9
    b1 = G[0]
    w1 = W0 - lr * (G[0] + mu * b1)
    b2 = mu * b1 + G[1]
    w2 = w1 - lr * (G[1] + mu * b2)
    b3 = mu * b2 + G[2]
    w3 = w2 - lr * (G[2] + mu * b3)
    assert_trajectory(trajectory(lambda ps: SGD(ps, lr=lr, momentum=mu, nesterov=True)), [w1, w2, w3])


def test_sgd_weight_decay():
    lr, mu, wd = 0.1, 0.5, 0.2
    g1 = G[0] + wd * W0
    b1 = g1
    w1 = W0 - lr * b1
    g2 = G[1] + wd * w1
    b2 = mu * b1 + g2
    w2 = w1 - lr * b2
    assert_trajectory(trajectory(lambda ps: SGD(ps, lr=lr, momentum=mu, weight_decay=wd), 2),
                      [w1, w2])


def adam_by_hand(lr, b1, b2, eps, wd=0.0, decoupled=False, steps=3):
    w, m, v, ws = W0, 0.0, 0.0, []
    for t, g in enumerate(G[:steps], start=1):
        if decoupled:
            w = w - lr * wd * w
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        ws.append(w)
    return ws


def test_adam_first_step_moves_each_weight_by_lr():
    # m_hat = g and v_hat = g^2 after one step, so w1 = w0 - lr * g / (|g| + eps)
    lr, eps = 0.1, 1e-8
    w1 = W0 - lr * G[0] / (np.abs(G[0]) + eps)
    assert_trajectory(trajectory(lambda ps: Adam(ps, lr=lr), 1), [w1])


def test_adam():
    ws = trajectory(lambda ps: Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6))
    assert_trajectory(ws, adam_by_hand(0.1, 0.8, 0.99, 1e-6))


def test_adam_weight_decay_is_added_to_the_gradient():
    ws = trajectory(lambda ps: Adam(ps, lr=0.1, weight_decay=0.5))
    assert_trajectory(ws, adam_by_hand(0.1, 0.9, 0.999, 1e-8, wd=0.5))


def test_adamw_decays_weights_before_the_adam_step():
    ws = trajectory(lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5))
    assert_trajectory(ws, adam_by_hand(0.1, 0.9, 0.999, 1e-8, wd=0.5, decoupled=True))
    # with weight_decay=0 AdamW is Adam
    assert_trajectory(trajectory(lambda ps: AdamW(ps, lr=0.1, weight_decay=0)),
                      trajectory(lambda ps: Adam(ps, lr=0.1)))


def test_rmsprop():
    lr, alpha, eps = 0.01, 0.9, 1e-8
    v1 = (1 - alpha) * G[0] ** 2
    w1 = W0 - lr * G[0] / (np.sqrt(v1) + eps)
    v2 = alpha * v1 + (1 - alpha) * G[1] ** 2
    w2 = w1 - lr * G[1] / (np.sqrt(v2) + eps)
    assert_trajectory(trajectory(lambda ps: RMSprop(ps, lr=lr, alpha=alpha), 2), [w1, w2])


def test_rmsprop_momentum_and_weight_decay():
    lr, alpha, eps, mu, wd = 0.01, 0.9, 1e-8, 0.5, 0.1
    g1 = G[0] + wd * W0
    v1 = (1 - alpha) * g1 ** 2
    b1 = g1 / (np.sqrt(v1) + eps)
    w1 = W0 - lr * b1
    g2 = G[1] + wd * w1
    v2 = alpha * v1 + (1 - alpha) * g2 ** 2
    b2 = mu * b1 + g2 / (np.sqrt(v2) + eps)
    w2 = w1 - lr * b2
    ws = trajectory(lambda ps: RMSprop(ps, lr=lr, alpha=alpha, momentum=mu, weight_decay=wd), 2)
    assert_trajectory(ws, [w1, w2])


# -- dtype, zero_grad, lr ----------------------------------------------------------------------
CONFIGS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
    (RMSprop, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.1)),
]
IDS = [f"{cls.__name__}-{'-'.join(kw)}" for cls, kw in CONFIGS]


def make_params(dtype=np.float64, shapes=((2, 3), (3,))):
    rng = np.random.default_rng(1)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def train(opt, steps, start=0):
    """Steps with gradients that depend on the weights and the step number."""
    for t in range(start, start + steps):
        opt.zero_grad()
        for i, p in enumerate(opt.params):
            p.accumulate(np.sin(3 * p.data + t + i))
        opt.step()


@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_float32_stays_float32(cls, kw):
    params = make_params(np.float32)
    opt = cls(params, **kw)
    train(opt, 2)
    opt.lr = np.float64(opt.lr) / 2  # as a schedule written with numpy might
    train(opt, 2, start=2)
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for k, v in opt.state_dict().items() if "." in k)

    # the same run with a Python-float lr gives the same bits, and float64 about the same values
    for dtype, check in ((np.float32, np.testing.assert_array_equal),
                         (np.float64, lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5))):
        ref = make_params(dtype)
        opt = cls(ref, **kw)
        train(opt, 2)
        opt.lr = kw["lr"] / 2
        train(opt, 2, start=2)
        for p, r in zip(params, ref):
            check(p.data, r.data.astype(np.float32))


def test_zero_grad():
    params = make_params()
    opt = Adam(params)
    for p in params:
        p.accumulate(np.ones(p.shape))
    opt.zero_grad()
    assert all(np.all(p.grad == 0) for p in params)


def test_lr_can_be_changed_between_steps():
    p = Parameter(np.zeros(2))
    opt = SGD([p], lr=1.0)
    p.accumulate(np.ones(2))
    opt.step()
    opt.lr = 0.5
    opt.step()
    np.testing.assert_array_equal(p.data, [-1.5, -1.5])
    assert isinstance(opt.lr, float)
    with pytest.raises(ValueError, match=r"SGD: lr must be >= 0, got -1.0"):
        opt.lr = -1
    assert opt.lr == 0.5


def test_params_may_be_a_generator():
    params = make_params()
    opt = SGD((p for p in params), lr=0.1)
    assert opt.params == params


def test_repr():
    params = make_params()
    assert repr(SGD(params, lr=0.01, momentum=0.9)) == "SGD(lr=0.01, momentum=0.9)"
    assert repr(SGD(params, lr=0.1, momentum=0.9, nesterov=True)) == \
        "SGD(lr=0.1, momentum=0.9, nesterov=True)"
    assert repr(Adam(params)) == "Adam(lr=0.001)"
    assert repr(Adam(params, betas=(0.8, 0.9))) == "Adam(lr=0.001, betas=(0.8, 0.9))"
    assert repr(AdamW(params, lr=0.1, weight_decay=0)) == "AdamW(lr=0.1, weight_decay=0.0)"
    assert repr(RMSprop(params, alpha=0.9)) == "RMSprop(lr=0.01, alpha=0.9)"


# -- bad hyper-parameters and parameters ---------------------------------------------------
P = make_params()


def int_param():
    """A parameter whose data was replaced by integers after it was made."""
    p = Parameter(np.zeros(3))
    p.data = np.arange(3)
    return p


@pytest.mark.parametrize("make, error, message", [
    (lambda: SGD(P, lr=-0.1), ValueError, r"SGD: lr must be >= 0, got -0.1"),
    (lambda: SGD(P, lr=float("nan")), ValueError, r"SGD: lr must be >= 0, got nan"),
    (lambda: SGD(P, lr="fast"), TypeError, r"SGD: lr must be a number, got 'fast'"),
    (lambda: SGD(P, lr=0.1, momentum=-0.5), ValueError, r"SGD: momentum must be >= 0, got -0.5"),
    (lambda: SGD(P, lr=0.1, nesterov=True), ValueError, r"SGD: nesterov=True requires momentum > 0"),
    (lambda: SGD(P, lr=0.1, weight_decay=-1), ValueError, r"SGD: weight_decay must be >= 0"),
    (lambda: Adam(P, betas=(1.0, 0.999)), ValueError, r"Adam: betas must be a pair of numbers in \[0, 1\), got \(1.0, 0.999\)"),
    (lambda: Adam(P, betas=(0.9, -0.1)), ValueError, r"Adam: betas must be a pair"),
    (lambda: Adam(P, betas=(0.9,)), ValueError, r"Adam: betas must be a pair"),
    (lambda: Adam(P, betas=0.9), TypeError, r"Adam: betas must be a pair of numbers, got 0.9"),
    (lambda: Adam(P, eps=0), ValueError, r"Adam: eps must be > 0, got 0.0"),
    (lambda: AdamW(P, eps=-1e-8), ValueError, r"AdamW: eps must be > 0"),
    (lambda: AdamW(P, weight_decay=-0.01), ValueError, r"AdamW: weight_decay must be >= 0"),
    (lambda: RMSprop(P, alpha=1.5), ValueError, r"RMSprop: alpha must be in \[0, 1\), got 1.5"),
    (lambda: RMSprop(P, momentum=-1), ValueError, r"RMSprop: momentum must be >= 0"),
    (lambda: RMSprop(P, lr=-1), ValueError, r"RMSprop: lr must be >= 0"),
    (lambda: SGD([], lr=0.1), ValueError, r"SGD: got an empty parameter list"),
    (lambda: Adam(P[0]), TypeError, r"Adam: params must be a list of Parameters, got a single Parameter"),
    (lambda: Adam([P[0].data]), TypeError, r"Adam: params\[0\] is a ndarray, not a Parameter"),
    (lambda: Adam([int_param()]), TypeError, r"Adam: params\[0\] has dtype int64, expected floats"),
    (lambda: Parameter(np.arange(3)), TypeError, r"Parameter: data must hold floats .* got an array of int64"),
    (lambda: Adam([P[0], P[1], P[0]]), ValueError, r"Adam: a Parameter appears more than once"),
])
def test_bad_arguments_raise(make, error, message):
    with pytest.raises(error, match=message):
        make()


# -- state dict ------------------------------------------------------------------------------
def npz_roundtrip(sd):
    """What a checkpoint does: np.savez, then np.load without pickle."""
    buf = io.BytesIO()
    np.savez(buf, **sd)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_state_dict_is_flat_and_keyed_by_parameter_position():
    opt = Adam(make_params(np.float32), lr=0.01)
    train(opt, 3)
    sd = opt.state_dict()
    assert set(sd) == {"lr", "betas", "eps", "weight_decay", "step", "num_params",
                       "exp_avg.0", "exp_avg.1", "exp_avg_sq.0", "exp_avg_sq.1"}
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["lr"].shape == sd["step"].shape == () and sd["betas"].shape == (2,)
    assert sd["step"] == 3 and sd["num_params"] == 2 and sd["lr"] == 0.01
    assert sd["exp_avg.0"].shape == (2, 3) and sd["exp_avg_sq.1"].shape == (3,)
    sd["exp_avg.0"][...] = 7  # a copy, not the optimizer's buffer
    assert not np.any(opt.state_dict()["exp_avg.0"] == 7)
    assert set(SGD(make_params(), lr=0.1).state_dict()) == {
        "lr", "momentum", "nesterov", "weight_decay", "step", "num_params"}
    assert "momentum_buffer.1" in SGD(make_params(), lr=0.1, momentum=0.9).state_dict()


@pytest.mark.parametrize("k", [0, 3])
@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_resuming_from_state_dict_is_bit_exact(cls, kw, k):
    params = make_params(np.float32)
    opt = cls(params, **kw)
    train(opt, k)
    opt.lr = opt.lr * 0.5  # a schedule changed lr: it must be saved too
    sd = npz_roundtrip(opt.state_dict())
    weights = [p.data.copy() for p in params]
    train(opt, 4, start=k)

    resumed = [Parameter(w) for w in weights]
    opt2 = cls(resumed, lr=123.0)  # other hyper-parameters at their defaults: loading restores all
    opt2.load_state_dict(sd)
    assert repr(opt2) == repr(opt)
    train(opt2, 4, start=k)
    for p, r in zip(params, resumed):
        assert np.array_equal(p.data, r.data)
    for key, v in opt.state_dict().items():
        assert np.array_equal(v, opt2.state_dict()[key]), key


def trained_adam_state():
    opt = Adam(make_params(), lr=0.01)
    train(opt, 2)
    return opt.state_dict()


def edited(**changes):
    sd = trained_adam_state()
    for k, v in changes.items():
        if v is None:
            del sd[k]
        else:
            sd[k] = v
    return sd


BAD_STATES = [
    (edited(**{"exp_avg.1": None}), r"Adam: cannot load state dict: missing entries \['exp_avg.1'\]"),
    (edited(lr=None), r"missing entries \['lr'\]"),
    (edited(momentum_buffer=np.zeros(3)), r"unexpected entries \['momentum_buffer'\]"),
    (edited(**{"exp_avg.2": np.zeros(3)}), r"unexpected entries \['exp_avg.2'\]"),
    (edited(**{"exp_avg.0": np.zeros((3, 2))}), r"entry 'exp_avg.0' should have shape \(2, 3\), got \(3, 2\)"),
    (edited(lr=np.array([0.01])), r"entry 'lr' should have shape \(\), got \(1,\)"),
    (edited(lr=np.array(-0.01)), r"Adam: cannot load state dict: lr must be >= 0, got -0.01"),
    (edited(betas=np.array([0.9, 1.5])), r"Adam: cannot load state dict: betas must be a pair of numbers in \[0, 1\)"),
    (edited(step=np.array(-1)), r"Adam: cannot load state dict: step must be >= 0, got -1"),
    (edited(**{"exp_avg_sq.1": np.array(["a", "b", "c"])}), r"Adam: cannot load state dict: could not convert"),
    (Adam(make_params(shapes=((2, 3), (3,), (4,)))).state_dict(),
     r"Adam: cannot load state dict: it was saved for 3 parameters, this optimizer has 2"),
    (edited(step=np.array("three")), r"Adam: cannot load state dict: invalid literal for int"),
    (SGD(make_params(), lr=0.1, momentum=0.9).state_dict(), r"Adam: cannot load state dict: missing entries"),
]


@pytest.mark.parametrize("sd, message", BAD_STATES)
def test_invalid_state_dict_raises_and_changes_nothing(sd, message):
    opt = Adam(make_params(), lr=0.05, betas=(0.5, 0.6))
    train(opt, 1)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert set(after) == set(before)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_invalid_sgd_state_dict():
    sd = SGD(make_params(), lr=0.1, momentum=0.9, nesterov=True).state_dict()
    sd["momentum"] = np.array(0.0)
    with pytest.raises(ValueError, match=r"SGD: cannot load state dict: nesterov=True requires momentum > 0"):
        SGD(make_params(), lr=0.1).load_state_dict(sd)


# -- against PyTorch ---------------------------------------------------------------------
@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_matches_torch_optim(cls, kw):
    torch = pytest.importorskip("torch")
    params = make_params()
    t_params = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = cls(params, **kw)
    t_opt = getattr(torch.optim, cls.__name__)(t_params, **kw)
    rng = np.random.default_rng(2)
    for _ in range(5):
        grads = [rng.standard_normal(p.shape) for p in params]
        opt.zero_grad()
        for p, tp, g in zip(params, t_params, grads):
            p.accumulate(g)
            tp.grad = torch.tensor(g)
        opt.step()
        t_opt.step()
    for p, tp in zip(params, t_params):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls, kw", CONFIGS + [(SGD, dict(lr=0.1, weight_decay=0.5))], ids=IDS + ["SGD-wd"])
def test_step_never_changes_the_gradient(cls, kw):
    """A step reads p.grad and leaves it as it was (weight decay included), as in PyTorch:
    a second step without a new backward uses the same gradient."""
    params = make_params()
    opt = cls(params, **kw)
    for t in range(3):
        for i, p in enumerate(params):
            p.grad = np.cos(p.data + t + i)
        grads = [p.grad.copy() for p in params]
        opt.step()
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad, g)
            assert p.grad.flags.writeable


def test_an_update_that_writes_into_the_gradient_is_stopped():
    class Halving(SGD):
        def update(self, w, dw, s):
            dw *= 0.5  # would change p.grad
            w -= self.lr * dw

    p = Parameter(np.ones(2))
    p.accumulate(np.ones(2))
    with pytest.raises(ValueError, match="read-only"):
        Halving([p], lr=0.1).step()
    np.testing.assert_array_equal(p.grad, np.ones(2))
