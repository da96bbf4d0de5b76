"""Every script in examples/ runs as it is and exits 0."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"custom_layer.py", "max_pooling_explained.py", "residual_block.py",
            "train_small.py"} <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    # Small GEMMs gain little from BLAS threads, and threads spinning on a busy machine
    # (tests running in parallel) can make a script several times slower.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{script.name} printed nothing"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not left, f"{script.name} wrote {left} into the current folder (use a temporary folder or runs/)"
    if script.name == "train_small.py":  # well above chance (10%)
        last = [line for line in done.stdout.splitlines() if "validation accuracy" in line][-1]
        assert float(last.rsplit(" ", 1)[1].rstrip("%")) > 30, last
    if script.name == "residual_block.py":  # trained, saved and reloaded well above chance
        last = done.stdout.strip().splitlines()[-1]
        assert last.startswith("reloaded") and float(last.split()[3].rstrip("%")) > 30, last
