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

from minicnn.training.history import History
from minicnn.serialization import load_npz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num-train", "48", "--num-val", "16", "--num-test", "16",
        "--batch-size", "16", "--model", "three_layer_convnet", "--no-progress"]


def train_py(*args, check=True):
    """Run train.py; with no CIFAR-10 in $MINICNN_DATA, --dataset auto picks the synthetic set."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MINICNN_DATA=os.path.join(ROOT, "tests", "no-such-data-dir"))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *map(str, args)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


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
    assert "CIFAR-10 is not in" in result.stdout and "python train.py --download" in result.stdout


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
    (["--epochs", "-1"], "--epochs must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
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
