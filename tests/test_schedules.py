"""Learning-rate schedules, step by step beside torch.optim.lr_scheduler."""
import math
import warnings

import pytest

from minicnn.training.schedules import (
    ConstantLR,
    CosineAnnealingLR,
    CosineLR,
    OneCycleLR,
    StepLR,
    WarmupCosineLR,
    make_schedule,
)

torch = pytest.importorskip("torch")


def torch_rates(make_scheduler, steps, lr=1.0):
    """The rate PyTorch's scheduler gives before each of ``steps`` optimizer steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(opt)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation notes
        for _ in range(steps):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return rates


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15), (t, a, b)


@pytest.mark.parametrize("kwargs", [
    {},
    dict(pct_start=0.25, anneal_strategy="linear"),
    dict(div_factor=10.0, final_div_factor=100.0, three_phase=True),
    dict(pct_start=0.5, three_phase=True, anneal_strategy="linear"),
])
@pytest.mark.parametrize("total", [7, 100, 1000])
def test_one_cycle_equals_pytorch_step_by_step(total, kwargs):
    ours = OneCycleLR(0.4, total_steps=total, **kwargs)
    theirs = torch_rates(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.4, total_steps=total, cycle_momentum=False, **kwargs), total)
    assert_same([ours.lr_at(t) for t in range(total)], theirs)
    assert ours.per_step


def test_one_cycle_from_epochs_and_its_end():
    s = OneCycleLR(1.0, epochs=3, steps_per_epoch=10)
    assert s.total_steps == 30
    assert s.lr_at(0) == pytest.approx(1 / 25) and max(s.lr_at(t) for t in range(30)) == 1.0
    assert s.lr_at(29) == pytest.approx(1 / 25 / 1e4)
    with pytest.raises(ValueError, match="step 31 is past the schedule's total_steps"):
        s.lr_at(31)
    with pytest.raises(ValueError, match="give total_steps, or epochs and steps_per_epoch"):
        OneCycleLR(1.0, epochs=3)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(1.0, 10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        OneCycleLR(1.0, 10, anneal_strategy="exp")


@pytest.mark.parametrize("warmup, total, factor, min_lr", [(5, 40, 1 / 3, 0.0), (1, 12, 0.1, 0.01),
                                                          (20, 21, 0.5, 0.0)])
def test_warmup_cosine_equals_pytorch_sequential(warmup, total, factor, min_lr):
    ours = WarmupCosineLR(0.3, warmup, total, min_lr=min_lr, start_factor=factor)
    sched = torch.optim.lr_scheduler
    theirs = torch_rates(lambda opt: sched.SequentialLR(opt, [
        sched.LinearLR(opt, start_factor=factor, total_iters=warmup),
        sched.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)],
        milestones=[warmup]), total + 1, lr=0.3)
    assert_same([ours.lr_at(t) for t in range(total + 1)], theirs)
    assert ours.lr_at(total + 5) == pytest.approx(min_lr)


def test_warmup_cosine_without_warmup_is_cosine_per_step():
    assert [WarmupCosineLR(1.0, 0, 10).lr_at(t) for t in range(12)] == \
        [CosineLR(1.0, 10, per_step=True).lr_at(t) for t in range(12)]
    with pytest.raises(ValueError, match=r"warmup must be an integer in \[0, total\)"):
        WarmupCosineLR(1.0, 10, 10)
    with pytest.raises(ValueError, match="start_factor"):
        WarmupCosineLR(1.0, 1, 10, start_factor=0)


@pytest.mark.parametrize("per_step", [False, True])
def test_step_and_cosine_equal_pytorch(per_step):
    assert_same([StepLR(0.5, 3, 0.5, per_step=per_step).lr_at(t) for t in range(10)],
                torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), 10, lr=0.5))
    assert_same([CosineAnnealingLR(0.5, 8, min_lr=0.01, per_step=per_step).lr_at(t)
                 for t in range(9)],
                torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
                    o, T_max=8, eta_min=0.01), 9, lr=0.5))
    assert StepLR(1.0, 2, per_step=per_step).per_step is per_step


def test_per_epoch_schedules_keep_their_numbers():
    assert [StepLR(1.0, 2, 0.5).lr_at(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    cos = CosineLR(1.0, 4, min_lr=0.1)
    assert cos.lr_at(0) == 1.0 and math.isclose(cos.lr_at(2), 0.55) and math.isclose(cos.lr_at(4), 0.1)
    assert not cos.per_step and cos.total_epochs == 4
    assert not ConstantLR(0.3).per_step and ConstantLR(0.3).lr_at(10) == 0.3


def test_make_schedule_per_step_names():
    one = make_schedule("onecycle", 0.2, 3, steps_per_epoch=50)
    assert isinstance(one, OneCycleLR) and one.total_steps == 150 and one.max_lr == 0.2
    warm = make_schedule("warmup-cosine", 0.2, 30, steps_per_epoch=50)
    assert isinstance(warm, WarmupCosineLR) and (warm.warmup, warm.total) == (50, 1500)
    assert make_schedule("warmup-cosine", 0.2, 2, steps_per_epoch=50).warmup == 5  # 5 % of 100
    with pytest.raises(ValueError, match="is per step: give steps_per_epoch"):
        make_schedule("onecycle", 0.2, 3)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        make_schedule("linear", 0.2, 3)
