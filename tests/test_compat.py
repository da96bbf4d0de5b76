"""A run folder written by minicnn 0.1 (tests/data/run_v0_1: train.py --dataset synthetic
--model linear --epochs 1 ...) still loads, evaluates and resumes."""
import shutil
from pathlib import Path

import numpy as np

from conftest import train_py
from minicnn.models import linear_classifier
from minicnn.training import load_run, load_weights

OLD = Path(__file__).parent / "data" / "run_v0_1"


def test_load_run_and_weights_of_a_0_1_folder():
    model, config, history = load_run(OLD)
    assert "model_args" not in config and len(history) == 1
    assert model[1].weight.shape == (10, 3 * 32 * 32)
    again = load_weights(linear_classifier(seed=5), OLD / "checkpoint.npz")
    np.testing.assert_array_equal(again[1].weight.data,
                                  load_weights(linear_classifier(seed=6), OLD / "best.npz")[1].weight.data)


def test_evaluate_and_resume_a_0_1_folder(tmp_path):
    assert "test accuracy" in train_py("--evaluate", OLD / "best.npz").stdout
    run = tmp_path / "old"
    shutil.copytree(OLD, run)
    result = train_py("--resume", run, "--epochs", 2, "--no-progress")
    assert "epoch 2/2" in result.stdout
    assert len(load_run(run)[2]) == 2
