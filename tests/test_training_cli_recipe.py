"""train.py's recipe flags (--schedule per step, --label-smoothing, --preset), --find-lr
and --threads: the real command on a tiny synthetic subset, one epoch."""
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from conftest import InterruptAt, train_py
from minicnn import parallel
from minicnn.training.checkpoint import check_resume_config
from minicnn.training.config import RunConfig
from minicnn.training.history import History
from minicnn.training.schedules import SCHEDULES, make_schedule

FASHION = "/usr/share/datasets/fashion-mnist"
TINY = ["--dataset", "synthetic", "--num-train", "48", "--num-val", "16", "--num-test", "16",
        "--batch-size", "16", "--model", "three_layer_convnet", "--no-progress"]


def cli():
    from minicnn.cli import train_command
    return train_command


def config_of(*argv):
    c = cli()
    return c.new_config(c.parse_args(list(argv)))


def parse_error(capsys, *argv):
    """The last line argparse printed when it refused ``argv``."""
    with pytest.raises(SystemExit) as e:
        cli().parse_args(list(argv))
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def threads():
    before = parallel.get_num_threads()
    yield
    parallel.set_num_threads(before)


# -- --schedule and --label-smoothing in the config ---------------------------------------

@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_name_is_a_flag_value_and_a_config_value(name):
    config = config_of("--dataset", "synthetic", "--schedule", name)
    assert config["schedule"] == name
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_the_old_schedule_names_keep_their_per_epoch_rates():
    from minicnn.training.build import build_schedule
    for name in ("none", "step", "cosine"):
        config = config_of("--dataset", "synthetic", "--schedule", name, "--lr", "0.1",
                           "--epochs", "6")
        schedule = build_schedule(config, 5000)
        assert not getattr(schedule, "per_step", False)
        expected = {"none": [0.1] * 6, "step": [0.1, 0.1, 0.01, 0.01, 0.001, 0.001],
                    "cosine": [0.05 * (1 + np.cos(np.pi * t / 6)) for t in range(6)]}[name]
        assert np.allclose([schedule.lr_at(t) for t in range(6)], expected)


def test_per_step_schedules_count_the_steps_of_the_run():
    from minicnn.training.build import build_schedule
    config = config_of("--dataset", "synthetic", "--schedule", "onecycle", "--lr", "0.2",
                       "--epochs", "2", "--batch-size", "64", "--num-train", "1000")
    schedule = build_schedule(config, 1000)
    assert schedule.per_step and schedule.total_steps == 2 * (1000 // 64)
    assert schedule.max_lr == 0.2


def test_label_smoothing_is_recorded_and_round_trips():
    config = config_of("--dataset", "synthetic", "--label-smoothing", "0.1")
    assert config["label_smoothing"] == 0.1
    record = json.loads(json.dumps(config.to_dict()))
    assert record["label_smoothing"] == 0.1
    assert RunConfig.from_dict(record)["label_smoothing"] == 0.1
    assert config_of("--dataset", "synthetic")["label_smoothing"] == 0.0


def test_a_config_json_without_label_smoothing_loads_with_none():
    record = config_of("--dataset", "synthetic").to_dict()
    del record["label_smoothing"]
    config = RunConfig.from_dict(record)
    assert config["label_smoothing"] == 0.0
    from minicnn.training.build import build_loss
    assert build_loss(record).label_smoothing == 0.0


@pytest.mark.parametrize("value", ["0", "0.0", "0.1", "0.999"])
def test_label_smoothing_from_zero_up_to_one_is_accepted(value):
    assert config_of("--dataset", "synthetic", "--label-smoothing", value)[
        "label_smoothing"] == float(value)


@pytest.mark.parametrize("value", ["1", "1.0", "-0.1", "nan", "inf"])
def test_label_smoothing_outside_zero_to_one_is_one_line_naming_the_flag(value, capsys):
    line = parse_error(capsys, "--label-smoothing", value)
    assert line == (f"train.py: error: --label-smoothing must be a finite number >= 0 and < 1, "
                    f"got {float(value)!r}")


def test_label_smoothing_in_a_hand_edited_config_is_checked():
    record = {**config_of("--dataset", "synthetic").to_dict(), "label_smoothing": 1.0}
    with pytest.raises(ValueError, match=r"^runs/a/config.json: field 'label_smoothing' must "
                                         r"be a finite number >= 0 and < 1, got 1.0$"):
        RunConfig.from_dict(record, "runs/a/config.json")


def test_the_resume_rule_counts_a_missing_label_smoothing_as_none():
    stored = config_of("--dataset", "synthetic").to_dict()
    del stored["label_smoothing"]  # a checkpoint written before the field existed
    check_resume_config(stored, {**stored, "label_smoothing": 0.0}, "c")
    with pytest.raises(ValueError, match="field 'label_smoothing' is 0.1 but the checkpoint "
                                         "was trained with 0.0"):
        check_resume_config(stored, {**stored, "label_smoothing": 0.1}, "c")
    with pytest.raises(ValueError, match="field 'schedule' is 'onecycle'"):
        check_resume_config(stored, {**stored, "schedule": "onecycle"}, "c")


# -- the real command -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def onecycle_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "onecycle"
    result = train_py(*TINY, "--epochs", 1, "--schedule", "onecycle", "--lr", "0.01",
                      "--label-smoothing", "0.1", "--threads", 1, "--out", out)
    return out, result


def test_onecycle_and_label_smoothing_train_a_run(onecycle_run):
    out, result = onecycle_run
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"] == "onecycle" and config["label_smoothing"] == 0.1
    assert "schedule onecycle, SoftmaxCrossEntropy(label_smoothing=0.1), 1 thread" in result.stdout
    history = History.load(out / "history.json")
    # the epoch's rate is that of its last step: per step, not the epoch's first rate
    expected = make_schedule("onecycle", 0.01, 1, steps_per_epoch=3).lr_at(2)
    assert history["lr"] == [pytest.approx(expected)] and expected < 0.01 / 25
    assert "test accuracy" in result.stdout


def test_resume_keeps_the_recipe_but_may_change_the_threads(onecycle_run, tmp_path):
    out, _ = onecycle_run
    line = train_py("--resume", out, "--label-smoothing", "0.2", check=False).stderr.strip()
    assert line.endswith("--label-smoothing cannot be given; only --epochs, --data-dir, "
                         "--threads and --no-progress can change")
    line = train_py("--resume", out, "--schedule", "cosine", check=False).stderr.strip()
    assert "--schedule cannot be given" in line
    folder = tmp_path / "old"  # a run written before label_smoothing was recorded
    folder.mkdir()
    for name in ("config.json", "checkpoint.npz", "history.json"):
        (folder / name).write_bytes((out / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "label_smoothing": 0.2}))
    result = train_py("--resume", folder, "--epochs", 2, "--no-progress", check=False)
    assert result.returncode == 1
    assert "field 'label_smoothing' is 0.2 but the checkpoint was trained with 0.1" in result.stderr
    result = train_py("--resume", folder, "--epochs", 2, "--threads", 2, "--no-progress",
                      check=False)
    assert result.returncode == 1  # --threads is accepted; the edited config is not
    del config["label_smoothing"]
    (folder / "config.json").write_text(json.dumps({**config, "label_smoothing": 0.1}))
    result = train_py("--resume", folder, "--epochs", 2, "--threads", 2, "--no-progress")
    assert "2 threads" in result.stdout and "resuming" in result.stdout
    assert History.load(folder / "history.json")["epoch"] == [1, 2]


def test_an_old_run_without_label_smoothing_resumes(tmp_path):
    out = tmp_path / "plain"
    train_py(*TINY, "--epochs", 1, "--out", out)
    config = json.loads((out / "config.json").read_text())
    del config["label_smoothing"]
    (out / "config.json").write_text(json.dumps(config))
    result = train_py("--resume", out, "--epochs", 2, "--no-progress")
    assert "SoftmaxCrossEntropy()" in result.stdout
    assert json.loads((out / "config.json").read_text())["label_smoothing"] == 0.0


# -- --find-lr ------------------------------------------------------------------------------

def test_find_lr_prints_a_rate_draws_the_sweep_and_trains_nothing(tmp_path):
    picture = tmp_path / "sweep.png"
    result = train_py(*TINY, "--optimizer", "sgd", "--find-lr", picture)
    lines = result.stdout.splitlines()
    assert any(line.startswith("learning-rate finder: ") and "suggested rate" in line
               for line in lines)
    suggestion = [line for line in lines if line.startswith("train with it: ")]
    assert len(suggestion) == 1 and "--optimizer sgd" in suggestion[0]
    rate = float(suggestion[0].split("--lr ")[1])
    assert 1e-7 <= rate <= 10
    assert Image.open(picture).format == "PNG"
    assert os.listdir(tmp_path) == ["sweep.png"]  # no run folder, no history
    assert "epoch 1/" not in result.stdout


def test_find_lr_alone_draws_lr_find_png_in_the_current_folder(tmp_path, monkeypatch, capsys,
                                                               threads):
    monkeypatch.chdir(tmp_path)
    cli().main([*TINY, "--find-lr", "--threads", "1"])
    assert os.listdir(tmp_path) == ["lr_find.png"]
    out = capsys.readouterr().out
    assert "picture: lr_find.png" in out and "1 thread" in out


@pytest.mark.skipif(not os.path.isdir(FASHION), reason=f"Fashion-MNIST is not in {FASHION}")
def test_find_lr_suggests_the_command_line_given(tmp_path):
    """The 'train with it' line repeats the flags given, not what the preset filled in."""
    small = ["--model", "three_layer_convnet", "--num-train", "48", "--num-val", "16",
             "--batch-size", "16", "--augment"]
    result = train_py("--preset", "fashion", *small, "--find-lr", tmp_path / "a.png")
    line = result.stdout.splitlines()[-1]
    assert line.startswith("train with it: python train.py --preset fashion --model "
                           "three_layer_convnet --batch-size 16 --augment --num-train 48 "
                           "--num-val 16 --lr ")
    assert "fashion-mnist training images" in result.stdout


@pytest.mark.parametrize("flags, message", [
    (["--find-lr", "--out", "runs/x"], "--find-lr writes no run folder, so --out cannot be "
                                       "given; name the picture instead, e.g. --find-lr "
                                       "runs/x/lr_find.png"),
    (["--find-lr", "sweep.txt"], "--find-lr 'sweep.txt': expected the path of a .png picture"),
    (["--find-lr", "/no/such/folder/a.png"], "--find-lr '/no/such/folder/a.png': the folder "
                                             "'/no/such/folder' does not exist"),
    (["--find-lr", "--resume", "runs/x"], "argument --resume: not allowed with argument "
                                          "--find-lr"),
])
def test_find_lr_refusals_are_one_line(flags, message, capsys):
    assert message in parse_error(capsys, *flags)


def test_find_lr_refuses_a_folder(tmp_path, capsys):
    (tmp_path / "x.png").mkdir()
    assert f"is a folder; name the picture, e.g. {tmp_path / 'x.png' / 'lr_find.png'}" in \
        parse_error(capsys, "--find-lr", str(tmp_path / "x.png"))


# -- --threads --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_threads_must_be_a_positive_integer(value, capsys):
    assert parse_error(capsys, "--threads", value) == (
        f"train.py: error: argument --threads: expected a positive integer, got {value!r}")


def test_threads_sets_minicnns_threads_and_is_not_in_the_recipe(tmp_path, threads, capsys):
    out = tmp_path / "run"
    cli().main([*TINY, "--epochs", "1", "--threads", "1", "--out", str(out)])
    assert parallel.get_num_threads() == 1
    assert "Adam(lr=0.003), schedule cosine, SoftmaxCrossEntropy(), 1 thread\n" in \
        capsys.readouterr().out
    assert "threads" not in json.loads((out / "config.json").read_text())


def test_no_threads_flag_keeps_minicnns_default(threads, monkeypatch):
    """Without --threads the command leaves minicnn's own default alone."""
    calls = []
    monkeypatch.setattr(cli(), "set_num_threads", calls.append)
    monkeypatch.setattr(cli(), "run_training", lambda args: None)
    cli().main(list(TINY))
    assert calls == []
    cli().main([*TINY, "--threads", "3"])
    assert calls == [3]


def test_the_command_leaves_the_blas_threads_to_minicnn(monkeypatch):
    """minicnn.parallel keeps BLAS on one thread; the command sets no BLAS variable."""
    from minicnn.cli import train
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with pytest.raises(SystemExit):
        train(["--help"])
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_the_defaults_still_make_a_run():
    config = config_of("--dataset", "synthetic")
    assert (config["schedule"], config["label_smoothing"], config["optimizer"]) == \
        ("cosine", 0.0, "adam")


# -- presets ----------------------------------------------------------------------------------

RECIPE = dict(dataset="fashion-mnist", model="vgg_small", widths=[32, 64, 128], epochs=15,
              batch_size=128, optimizer="nesterov", lr=0.1, weight_decay=5e-4,
              schedule="onecycle", augment="flip,erase", label_smoothing=0.1)


def test_a_preset_carries_widths_schedule_erasing_and_label_smoothing(monkeypatch):
    from minicnn.cli import presets
    c = cli()
    monkeypatch.setitem(presets.PRESETS, "wide", RECIPE)
    monkeypatch.setattr(c, "find_fashion_mnist", lambda root=None: "/somewhere")
    config = c.new_config(c.parse_args(["--preset", "wide"]))
    assert config["model_args"] == {"in_channels": 1, "widths": [32, 64, 128]}
    assert (config["schedule"], config["augment"], config["label_smoothing"], config["epochs"]) \
        == ("onecycle", "flip,erase", 0.1, 15)
    given = c.new_config(c.parse_args(["--preset", "wide", "--label-smoothing", "0",
                                       "--widths", "8,16", "--schedule", "warmup-cosine"]))
    assert given["label_smoothing"] == 0.0 and given["schedule"] == "warmup-cosine"
    assert given["model_args"]["widths"] == [8, 16]
    other = c.new_config(c.parse_args(["--preset", "wide", "--model", "linear"]))
    assert "widths" not in other["model_args"]  # the preset's widths belong to its model
    assert "--widths 32,64,128" in presets.describe(RECIPE)
    assert "--label-smoothing 0.1" in presets.describe(RECIPE)



def test_a_per_step_schedule_resumes_mid_epoch_exactly(tmp_path, monkeypatch, capsys):
    """Ctrl-C inside epoch 1 of a one-cycle run, then --resume: every step's rate and loss
    equal an uninterrupted run's (the command rebuilds the same per-step schedule)."""
    c = cli()
    loss = InterruptAt(2, label_smoothing=0.1)

    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "none"))
    recipe = [*TINY, "--epochs", "2", "--schedule", "onecycle", "--lr", "0.01",
              "--label-smoothing", "0.1"]
    c.main([*recipe, "--out", str(tmp_path / "whole")])
    with monkeypatch.context() as m:
        m.setattr(c, "build_loss", lambda config: loss)
        with pytest.raises(SystemExit):
            c.main([*recipe, "--out", str(tmp_path / "part")])
    c.main(["--resume", str(tmp_path / "part"), "--no-progress"])
    capsys.readouterr()
    whole = History.load(tmp_path / "whole" / "history.json")
    part = History.load(tmp_path / "part" / "history.json")
    assert np.array_equal(whole.iteration_loss, part.iteration_loss)
    assert whole["lr"] == part["lr"] and whole["val_acc"] == part["val_acc"]


# -- --head flatten and --tta flip -----------------------------------------------------------

def test_head_flatten_records_the_image_size_and_builds_the_flattened_head():
    from minicnn.training.build import build_model_for
    config = config_of("--dataset", "synthetic", "--head", "flatten", "--widths", "4,8")
    assert config["model_args"] == {"in_channels": 3, "image_size": 32, "widths": [4, 8]}
    model = build_model_for(RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))))
    assert type(model[-2]).__name__ == "Flatten" and model[-1].in_features == 8 * 8 * 8
    assert "image_size" not in config_of("--dataset", "synthetic", "--head", "avg")["model_args"]
    assert "image_size" not in config_of("--dataset", "synthetic")["model_args"]


def test_head_flatten_is_for_vgg_small_only():
    with pytest.raises(ValueError, match=r"^--head flatten is for vgg_small, not resnet_small$"):
        config_of("--dataset", "synthetic", "--model", "resnet_small", "--head", "flatten")
    with pytest.raises(ValueError, match=r"^field 'head' must be one of avg, flatten, got 'max'$"):
        RunConfig.new("synthetic", head="max")


def test_tta_is_recorded_and_an_old_config_has_none():
    config = config_of("--dataset", "synthetic", "--tta", "flip")
    assert config["tta"] == "flip"
    record = config_of("--dataset", "synthetic").to_dict()
    assert record["tta"] == "none"
    del record["tta"]  # a config.json written before the field existed
    assert RunConfig.from_dict(record)["tta"] == "none"
    with pytest.raises(ValueError, match=r"field 'tta' must be one of 'none', 'flip', got 'x'"):
        RunConfig.from_dict({**record, "tta": "x"})


def test_a_run_with_tta_prints_both_accuracies_and_its_fresh_command_keeps_the_recipe(tmp_path):
    from minicnn.cli.train_args import fresh_command
    out = tmp_path / "r"
    result = train_py("--dataset", "synthetic", "--num-train", "48", "--num-val", "16",
                      "--num-test", "16", "--batch-size", "16", "--widths", "4", "--head",
                      "flatten", "--augment", "flip", "--tta", "flip", "--epochs", "1",
                      "--no-progress", "--threads", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    line = next(s for s in result.stdout.splitlines() if s.startswith("test accuracy"))
    m = re.match(r"test accuracy ([0-9.]+) \(loss [0-9.]+; flip test-time augmentation, "
                 r"([0-9.]+) without\) on 16 synthetic test images", line)
    assert m, line
    from minicnn.training import evaluate, load_run
    from minicnn.training.build import build_data, build_loss
    best, config, _ = load_run(out)
    data = build_data(config)
    assert float(m[1]) == round(evaluate(best, build_loss(config), data.x_test, data.y_test,
                                         tta="flip")[1], 4)
    assert float(m[2]) == round(evaluate(best, build_loss(config), data.x_test, data.y_test)[1], 4)
    command = fresh_command(str(out))
    assert "--head flatten" in command and "--tta flip" in command and "--widths 4" in command
    evaluated = train_py("--evaluate", out / "best.npz")
    assert f"test accuracy {m[1]}, loss" in evaluated.stdout
    assert f"flip test-time augmentation, {m[2]} without" in evaluated.stdout


# -- --final-model ---------------------------------------------------------------------------

def test_final_model_is_recorded_and_an_old_config_has_best():
    assert config_of("--dataset", "synthetic", "--final-model", "last")["final_model"] == "last"
    record = config_of("--dataset", "synthetic").to_dict()
    assert record["final_model"] == "best"
    del record["final_model"]  # a config.json written before the field existed
    assert RunConfig.from_dict(record)["final_model"] == "best"
    with pytest.raises(ValueError, match=r"field 'final_model' must be one of 'best', 'last', "
                                         r"got 'first'"):
        RunConfig.from_dict({**record, "final_model": "first"})


def _weights(model):
    return [p.data.copy() for p in model.parameters()]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_final_model_last_reports_and_loads_the_last_epochs_weights(tmp_path):
    from minicnn.cli.train_args import fresh_command
    from minicnn.training import evaluate, load_run
    from minicnn.training.build import build_data, build_loss, build_model_for
    from minicnn.training.checkpoint import load_weights
    out = tmp_path / "r"
    result = train_py(*TINY, "--epochs", "2", "--final-model", "last", "--threads", "1",
                      "--out", out)
    # best.npz made to differ from the last epoch for sure: other weights of the same network
    config = load_run(out)[1]
    build_model_for(config).save(out / "best.npz")
    last = _weights(load_weights(build_model_for(config), out / "checkpoint.npz"))
    best = _weights(load_weights(build_model_for(config), out / "best.npz"))
    assert not _same(last, best)
    model, config, _ = load_run(out)
    assert _same(_weights(model), last)
    line = next(s for s in result.stdout.splitlines() if s.startswith("test accuracy"))
    assert line.endswith(f"model {out / 'checkpoint.npz'} (the last epoch's weights)"), line
    data = build_data(config)
    acc = float(re.match(r"test accuracy ([0-9.]+)", line)[1])
    assert acc == round(evaluate(model, build_loss(config), data.x_test, data.y_test)[1], 4)
    assert "--final-model last" in fresh_command(str(out))
    finished = train_py("--resume", out)
    assert f"--evaluate {out / 'checkpoint.npz'}" in finished.stdout
    # the same folder read as a "best" run gives best.npz's weights
    record = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**record, "final_model": "best"}))
    assert _same(_weights(load_run(out)[0]), best)


def test_the_fashion_preset_is_the_measured_recipe(monkeypatch):
    c = cli()
    monkeypatch.setattr(c, "find_fashion_mnist", lambda root=None: "/somewhere")
    config = c.new_config(c.parse_args(["--preset", "fashion"]))
    assert config["model_args"] == {"in_channels": 1, "image_size": 28, "widths": [16, 48, 96]}
    assert (config["epochs"], config["schedule"], config["augment"], config["label_smoothing"],
            config["tta"], config["final_model"], config["optimizer"], config["lr"]) == \
        (13, "onecycle", "flip,erase", 0.1, "flip", "last", "nesterov", 0.1)
    other = c.new_config(c.parse_args(["--preset", "fashion", "--model", "resnet_small"]))
    assert "image_size" not in other["model_args"]  # the preset's head belongs to its model
