"""train.py end to end in subprocesses on a tiny synthetic subset."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, InterruptAt, train_py
from minicnn.serialization import load_npz
from minicnn.training.history import History

TINY = ["--dataset", "synthetic", "--num-train", "48", "--num-val", "16", "--num-test", "16",
        "--batch-size", "16", "--model", "three_layer_convnet", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "two_epochs"
    result = train_py(*TINY, "--epochs", 2, "--augment", "--out", out)
    return out, result


def test_run_folder_holds_every_file_and_they_are_valid(run):
    out, result = run
    assert {"config.json", "history.json", "history.csv", "loss.png", "checkpoint.npz",
            "best.npz"} <= set(os.listdir(out))
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "synthetic" and config["epochs"] == 2 and config["augment"]
    history = History.load(out / "history.json")
    assert len(history) == 2 and len(history.iteration_loss) == 2 * 3
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert np.allclose([float(r["val_acc"]) for r in rows], history["val_acc"])
    image = Image.open(out / "loss.png")
    assert image.format == "PNG" and min(image.size) > 100
    assert "0.weight" in load_npz(out / "best.npz")
    assert "meta" in load_npz(out / "checkpoint.npz")
    assert "test accuracy" in result.stdout and "synthetic" in result.stdout


def test_resume_continues_like_an_uninterrupted_run(run, tmp_path):
    out, _ = run
    part = tmp_path / "resumed"
    train_py(*TINY, "--epochs", 1, "--augment", "--out", part)
    result = train_py("--resume", part, "--epochs", 2, "--no-progress")
    assert "test accuracy" in result.stdout
    assert "cosine schedule is re-planned over 2 epochs instead of 1" in result.stdout
    assert json.loads((part / "config.json").read_text())["epochs"] == 2
    a, b = History.load(out / "history.json"), History.load(part / "history.json")
    assert np.array_equal(a.iteration_loss, b.iteration_loss)
    assert a["val_acc"] == b["val_acc"]
    ca, cb = load_npz(out / "checkpoint.npz"), load_npz(part / "checkpoint.npz")
    assert all(np.array_equal(ca[k], cb[k]) for k in ca if k.startswith(("model.", "optimizer.")))


def test_no_progress_prints_one_line_per_epoch(run):
    """--no-progress: no bars on stderr, one line per epoch with loss, accuracy, validation
    accuracy and seconds, matching history.json."""
    out, result = run
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    history = History.load(out / "history.json")
    assert len(lines) == 2
    for line, record in zip(lines, history.epochs):
        match = re.fullmatch(r"epoch (\d)/2: loss ([\d.]+), accuracy ([\d.]+), validation "
                             r"accuracy ([\d.]+), ([\d.]+) s", line)
        assert match, line
        assert int(match[1]) == record["epoch"]
        assert float(match[4]) == pytest.approx(record["val_acc"], abs=1e-4)
        assert float(match[5]) == pytest.approx(record["seconds"], abs=0.06)
    assert "it/s" not in result.stderr and "%|" not in result.stderr


@pytest.mark.parametrize("extra", [[], ["--epochs", "2"], ["--epochs", "1"]])
def test_resume_of_a_finished_run_says_so_and_trains_nothing(run, extra):
    out, _ = run
    files = {name: (out / name).read_bytes() for name in
             ("config.json", "history.json", "checkpoint.npz", "best.npz")}
    result = train_py("--resume", out, *extra, "--no-progress")
    assert "nothing to train" in result.stdout
    assert f"--resume {out} --epochs 7" in result.stdout  # how to extend it
    assert not re.search(r"^epoch \d+/", result.stdout, flags=re.M)  # no training
    assert not re.search(r"test accuracy \d", result.stdout)  # nor evaluation
    assert all((out / name).read_bytes() == data for name, data in files.items())


def test_evaluate_prints_test_accuracy(run):
    out, _ = run
    for name in ("best.npz", "checkpoint.npz"):
        result = train_py("--evaluate", out / name)
        assert result.stdout.startswith("test accuracy") and "16 synthetic test images" in result.stdout


@pytest.mark.parametrize("flags", [["--lr", "0.3"], ["--final-model", "last"], ["--augment"],
                                   ["--download"], ["--no-progress"]])
def test_evaluate_refuses_the_flags_it_would_ignore(run, flags):
    out, _ = run
    line = one_error_line(train_py("--evaluate", out / "best.npz", *flags, check=False), 2)
    assert line.endswith(f"--evaluate measures {out / 'best.npz'} with the config.json beside "
                         f"it, so {flags[0]} cannot be given; only --data-dir, --threads and "
                         f"--tta can be given"), line


def test_evaluate_takes_data_dir_threads_and_tta(run, tmp_path, monkeypatch, capsys):
    from minicnn.cli import train_command as cli
    from minicnn.training import evaluate, load_run
    from minicnn.training.build import build_data, build_loss
    out, _ = run
    seen = []
    monkeypatch.setattr(cli, "build_data", lambda config: seen.append(config) or build_data(config))
    cli.main(["--evaluate", str(out / "best.npz"), "--data-dir", str(tmp_path), "--tta", "flip"])
    assert seen[0]["data_dir"] == str(tmp_path) and seen[0]["tta"] == "flip"
    model, config, _ = load_run(out, weights="best.npz")
    data = build_data(config)
    flip = evaluate(model, build_loss(config), data.x_test, data.y_test, tta="flip")[1]
    plain = evaluate(model, build_loss(config), data.x_test, data.y_test)[1]
    assert (f"test accuracy {flip:.4f}, loss" in capsys.readouterr().out and
            f"flip test-time augmentation, {plain:.4f} without" in
            train_py("--evaluate", out / "best.npz", "--tta", "flip", "--threads", "1").stdout)
    assert config["tta"] == "none"  # the run's own config is not changed


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "interrupted"
    env = dict(os.environ, PYTHONPATH=ROOT, MINICNN_DATA=str(tmp_path))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *TINY,
                             "--epochs", "1000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    position = json.loads(str(load_npz(out / "checkpoint.npz")["meta"]))["position"]
    assert len(History.load(out / "history.json").iteration_loss) >= 3 * position["epoch"]


@pytest.mark.parametrize("args, message", [
    (["--epochs", "-1"], "--epochs must be an integer >= 1, got -1"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["--model", "resnet152"], "invalid choice"),
    (["--data-dir", "/no/such/dir"], "does not exist"),
    (["--dataset", "cifar10"], "CIFAR-10 not found"),
    (["--resume", "/no/such/run"], "does not exist"),
])
def test_bad_arguments_give_one_line_and_non_zero_exit(args, message, tmp_path):
    result = train_py(*args, "--out", tmp_path / "run", check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) > 0
    assert sum(1 for line in result.stderr.splitlines() if "error" in line) == 1
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_refuses_to_overwrite_a_run(run):
    out, _ = run
    result = train_py(*TINY, "--epochs", 1, "--out", out, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"continue it with --resume {out}" in result.stderr


def test_bad_checkpoint_gives_one_line_error(run, tmp_path):
    out, _ = run
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    (tmp_path / "best.npz").write_bytes(b"garbage")
    result = train_py("--evaluate", tmp_path / "best.npz", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"train.py: error: model file {str(tmp_path / 'best.npz')!r} " \
                                    f"is not a readable .npz archive"
    result = train_py("--evaluate", __file__, check=False)  # no config.json beside it
    assert result.returncode == 1 and "is '" in result.stderr and "a run folder?" in result.stderr


def test_resnet_small_trains_resumes_reports_and_evaluates(tmp_path):
    out = tmp_path / "resnet"
    tiny = [a if a != "three_layer_convnet" else "resnet_small" for a in TINY]
    train_py(*tiny, "--epochs", 1, "--out", out)
    result = train_py("--resume", out, "--epochs", 2, "--no-progress")
    assert "resuming" in result.stdout
    assert (out / "report.png").exists() and (out / "best.npz").exists()
    history = History.load(out / "history.json")
    assert history["epoch"] == [1, 2]
    keys = load_npz(out / "best.npz")
    assert "3.body.0.weight" in keys and "7.shortcut.1.running_mean" in keys
    result = train_py("--evaluate", out / "best.npz")
    assert "test accuracy" in result.stdout


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION),
                    reason=f"Fashion-MNIST is not installed in {FASHION} "
                           "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_short_run_learns_real_images(tmp_path):
    out = tmp_path / "fashion"
    result = train_py("--dataset", "fashion-mnist", "--num-train", 4000, "--epochs", 2,
                      "--batch-size", 32, "--no-progress", "--out", out)
    acc = float(result.stdout.split("test accuracy ")[1].split()[0])
    assert acc > 0.80, result.stdout
    assert "on 10000 fashion-mnist test images" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model_args"] == {"in_channels": 1}
    for name in ("history.json", "best.npz", "checkpoint.npz", "loss.png", "report.png"):
        assert (out / name).exists(), name


def test_auto_picks_fashion_mnist_when_cifar10_is_missing(tmp_path):
    if not os.path.isdir(FASHION):
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION}")
    result = train_py("--num-train", 64, "--num-val", 16, "--num-test", 16, "--batch-size", 16,
                      "--epochs", 1, "--model", "linear", "--no-progress", "--out", tmp_path / "a")
    assert "dataset: Fashion-MNIST from" in result.stdout
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["dataset"] == "fashion-mnist"
    assert config["model_args"] == {"in_channels": 1, "image_size": 28}


def test_a_config_without_model_args_still_loads(tmp_path):
    from minicnn.training.runs import build_model_for
    config = {"model": "three_layer_convnet", "dataset": "synthetic", "dtype": "float32",
              "seed": 0}
    assert build_model_for(config)[4].in_features == 32 * 16 * 16
    config.update(dataset="fashion-mnist")
    assert build_model_for(config)[0].in_channels == 1


def test_auto_falls_back_to_synthetic_and_says_how_to_get_real_images(monkeypatch, capsys,
                                                                        tmp_path):
    from minicnn.cli import train_command as cli
    monkeypatch.setattr(cli, "find_fashion_mnist", lambda root=None: None)
    args = cli.parse_args(["--data-dir", str(tmp_path)])
    assert cli.resolve_dataset(args) == "synthetic"
    out = capsys.readouterr().out
    assert "neither CIFAR-10" in out and "apt-get install dataset-fashion-mnist" in out
    assert "--dataset fashion-mnist --download" in out


# -- messages that name the flag, the file or the field ---------------------------------

def one_error_line(result, returncode=None):
    assert result.returncode != 0 if returncode is None else result.returncode == returncode
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_seed_flag_is_named(tmp_path):
    line = one_error_line(train_py(*TINY, "--seed", "-1", "--out", tmp_path / "r", check=False), 2)
    assert line == "train.py: error: --seed must be an integer >= 0, got -1"
    assert not (tmp_path / "r").exists()


def test_resume_takes_a_run_folder_not_a_file(run):
    out, _ = run
    line = one_error_line(train_py("--resume", out / "best.npz", check=False), 2)
    assert line == (f"train.py: error: --resume {str(out / 'best.npz')!r} is a file; it takes a run "
                    f"folder (the folder that holds config.json and checkpoint.npz), e.g. "
                    f"--resume {out}")


def test_resume_before_the_first_checkpoint_suggests_a_fresh_run(run, tmp_path):
    out, _ = run
    early = tmp_path / "early"
    early.mkdir()
    (early / "config.json").write_text((out / "config.json").read_text())
    line = one_error_line(train_py("--resume", early, check=False), 2)
    assert f"--resume {str(early)!r} holds no checkpoint.npz yet" in line
    assert f"start it afresh: rm -r {early} && python train.py --out {early} --dataset synthetic --model " \
           f"three_layer_convnet --epochs 2 --batch-size 16" in line and "--augment" in line
    assert os.listdir(early) == ["config.json"]


def test_resume_refuses_other_flags_and_an_edited_config(run, tmp_path):
    out, _ = run
    line = one_error_line(train_py("--resume", out, "--lr", "0.1", check=False), 2)
    assert ("--lr cannot be given; only --epochs, --data-dir, --threads and --no-progress can "
            "change") in line
    folder = tmp_path / "edited"
    folder.mkdir()
    for name in ("config.json", "checkpoint.npz", "history.json"):
        (folder / name).write_bytes((out / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_train": 32}))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    line = one_error_line(train_py("--resume", folder, "--epochs", 3, check=False), 1)
    assert line == (f"train.py: error: {folder / 'config.json'}: field 'num_train' is 32 but the "
                    f"checkpoint was trained with 48; a resumed run may change only epochs and "
                    f"data_dir: put 'num_train' back to 48, or start a new run")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing changed


def test_hand_edited_config_gives_one_line_through_evaluate(run, tmp_path):
    out, _ = run
    config = json.loads((out / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "augment": "no"}))
    (tmp_path / "best.npz").write_bytes((out / "best.npz").read_bytes())
    line = one_error_line(train_py("--evaluate", tmp_path / "best.npz", check=False), 1)
    assert line == (f"train.py: error: {tmp_path / 'config.json'}: field 'augment' must be true, "
                    f"false, one of 'none', 'flip', 'crop', 'crop-flip' or steps of 'crop', 'flip', 'erase' joined by commas, got 'no' (a str)")


@pytest.mark.parametrize("flags, message", [
    (["--num-train", "100000000"], "--num-train 100000000, --num-val 16, --num-test 16: the "
                                   "synthetic images would need about "),
    (["--num-val", "100000000"], "--num-val 100000000"),
    (["--batch-size", "100"], "--batch-size 100: larger than the 48 training images"),
    (["--dataset", "cifar10", "--num-val", "50000"], "--num-val 50000: CIFAR-10 has 50,000 "
                                                     "training images"),
    (["--dataset", "cifar10", "--num-test", "20000"], "--num-test 20000: CIFAR-10 has 10,000 test"),
])
def test_sizes_are_checked_before_anything_is_created(flags, message, tmp_path):
    result = train_py(*TINY, *flags, "--out", tmp_path / "run", check=False)
    line = one_error_line(result, 1)
    assert line.startswith("train.py: error: ") and message in line
    assert not (tmp_path / "run").exists()


def test_a_full_disk_names_the_file(tmp_path):
    """A file-size limit makes writing best.npz fail as a full disk would (EFBIG instead
    of ENOSPC, the same path through the code): the message names the file."""
    import resource
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT, MINICNN_DATA=str(tmp_path / "none"))

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *TINY, "--epochs", "1",
                             "--out", str(out)], capture_output=True, text=True, env=env,
                            preexec_fn=limit, timeout=300)
    line = one_error_line(result, 1)
    assert line == f"train.py: error: cannot write {str(out / 'best.npz')!r}: File too large"
    assert sorted(os.listdir(out)) == ["config.json"]  # no temp file left behind


def test_evaluate_takes_a_file_not_a_folder(run):
    out, _ = run
    line = one_error_line(train_py("--evaluate", out, check=False), 2)
    assert f"--evaluate {str(out)!r} is a folder; it takes a model file, e.g. --evaluate " \
           f"{out / 'best.npz'}" in line


def test_double_ctrl_c_says_exactly_what_was_saved(tmp_path, monkeypatch, capsys):
    """A second Ctrl-C inside a step: only the history is written, and the message names
    the checkpoint the folder still holds (here the end of epoch 1)."""
    from minicnn.cli import train_command as cli
    loss = InterruptAt(6, times=2)  # epoch 2, step 2 (3 steps and one evaluation per epoch)
    monkeypatch.setattr(cli, "build_loss", lambda config: loss)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "none"))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main([*TINY, "--epochs", "5", "--out", str(out)])
    assert info.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"interrupted: interrupted again before a checkpoint could be written: only "
                   f"the history was saved in {out}, and checkpoint.npz still holds the end of "
                   f"epoch 1; continue with python train.py --resume {out}")
    assert len(History.load(out / "history.json").iteration_loss) == 4  # 3 + the step it stopped after
    position = json.loads(str(load_npz(out / "checkpoint.npz")["meta"]))["position"]
    assert position["epoch"] == 1 and position["step"] == 0


def test_single_ctrl_c_names_the_checkpoint_it_wrote(tmp_path, monkeypatch, capsys):
    from minicnn.cli import train_command as cli
    loss = InterruptAt(2)
    monkeypatch.setattr(cli, "build_loss", lambda config: loss)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "none"))
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        cli.main([*TINY, "--epochs", "5", "--out", str(out)])
    assert capsys.readouterr().err.strip() == (
        f"interrupted: checkpoint.npz (epoch 1 after step 2) and the history were saved in "
        f"{out}; continue with python train.py --resume {out}")


def test_report_on_a_read_only_folder_gives_one_line(run, tmp_path, monkeypatch, capsys):
    out, _ = run
    from minicnn import serialization
    from minicnn.cli import report_command as report

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(kwargs["dir"], ".x.tmp"))
    monkeypatch.setattr(serialization.tempfile, "mkstemp", read_only)
    with pytest.raises(SystemExit) as info:
        report.main([str(out)])
    assert info.value.code == 1
    assert capsys.readouterr().err == (f"minicnn-report: error: cannot write "
                                       f"{str(out / 'report.png')!r}: Permission denied\n")


def _can_write(folder):
    import tempfile
    try:
        fd, path = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


@pytest.mark.skipif(_can_write("/sys"), reason="needs a folder this user cannot write")
def test_report_command_into_an_unwritable_folder(run):
    out, _ = run
    result = subprocess.run([sys.executable, "-m", "minicnn.cli.report_command", str(out), "-o",
                             "/sys/report.png"], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == "minicnn-report: error: cannot write '/sys/report.png': Permission denied\n"


def test_preset_fills_the_recipe_and_flags_given_win(monkeypatch):
    from minicnn.cli import train_command as cli
    monkeypatch.setattr(cli, "find_fashion_mnist", lambda root=None: "/somewhere")
    config = cli.new_config(cli.parse_args(["--preset", "fashion"]))
    assert {k: config[k] for k in ("dataset", "model", "epochs", "batch_size", "optimizer",
                                   "lr", "weight_decay", "schedule", "augment", "num_train")} == {
        "dataset": "fashion-mnist", "model": "vgg_small", "epochs": 13, "batch_size": 128,
        "optimizer": "nesterov", "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle",
        "augment": "flip,erase", "num_train": None}
    config = cli.new_config(cli.parse_args(["--preset", "fashion", "--epochs", "3", "--lr", "0.05",
                                            "--augment", "--widths", "8,16", "--head", "avg",
                                            "--final-model", "best"]))
    assert config["epochs"] == 3 and config["lr"] == 0.05 and config["augment"] is True
    assert config["final_model"] == "best"
    assert config["model_args"] == {"in_channels": 1, "widths": [8, 16]}
    other = cli.new_config(cli.parse_args(["--preset", "fashion", "--optimizer", "adam"]))
    assert other["optimizer"] == "adam" and other["lr"] == 3e-3  # not the preset's SGD rate
    plain = cli.new_config(cli.parse_args(["--dataset", "fashion-mnist"]))
    assert plain["num_train"] == 10_000 and plain["epochs"] == 3 and plain["augment"] is False
    assert cli.new_config(cli.parse_args(["--dataset", "synthetic"]))["num_train"] == 5000


def test_widths_and_augment_names_are_checked(capsys):
    from minicnn.cli import train_command as cli
    with pytest.raises(SystemExit):
        cli.parse_args(["--widths", "8,x"])
    assert "expected positive integers separated by commas" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--widths is for vgg_small and resnet_small"):
        cli.new_config(cli.parse_args(["--dataset", "synthetic", "--model", "linear",
                                       "--widths", "8"]))


def test_named_augmentations():
    from minicnn.data import augment_crop_flip, random_flip
    from minicnn.training.runs import augment_crop, augmentation
    assert augmentation({"dataset": "fashion-mnist", "augment": "flip"}) is random_flip
    assert augmentation({"dataset": "fashion-mnist", "augment": True}) is augment_crop_flip
    assert augmentation({"dataset": "mnist", "augment": True}) is augment_crop
    assert augmentation({"dataset": "mnist", "augment": False}) is False


def test_augment_takes_the_data_modules_steps(capsys):
    """--augment crop,flip,erase: the steps of minicnn.data.augment, recorded as given and
    applied in that order; an unknown step is one line naming it."""
    from minicnn.cli import train_command as cli
    from minicnn.training.build import augmentation
    config = cli.new_config(cli.parse_args(["--dataset", "synthetic", "--augment",
                                            "crop,flip,erase"]))
    assert config["augment"] == "crop,flip,erase"
    assert augmentation(config).names == ("crop", "flip", "erase")
    with pytest.raises(SystemExit):
        cli.parse_args(["--augment", "crop,blur"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train.py: error: argument --augment: unknown augmentation "
                              "'blur' in 'crop,blur'; allowed: crop, flip, erase")
