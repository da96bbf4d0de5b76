"""Names that moved in 0.3 still import from their old home for one release
(docs/changelog.md, "Moved and removed names"), and are the same objects."""
import importlib

import pytest

MOVED = [
    ("minicnn.data.preprocess", "minicnn.data.augment", "random_crop"),
    ("minicnn.data.preprocess", "minicnn.data.augment", "random_flip"),
    ("minicnn.data.preprocess", "minicnn.data.augment", "augment_crop_flip"),
    ("minicnn.data.cifar10", "minicnn.data.paths", "default_root"),
    ("minicnn.training.loop", "minicnn.training.inference", "predict"),
    ("minicnn.training.loop", "minicnn.training.inference", "evaluate"),
    ("minicnn.training.runs", "minicnn.training.config", "check_sizes"),
    ("minicnn.training.runs", "minicnn.training.build", "build_data"),
    ("minicnn.training.runs", "minicnn.training.memory", "available_memory"),
    ("minicnn.training.runs", "minicnn.training.run_folder", "load_run"),
    ("minicnn.training.runs", "minicnn.data.registry", "DATASETS"),
    ("minicnn.layers.base", "minicnn.layers.checks", "as_generator"),
    ("minicnn.layers.base", "minicnn.layers.checks", "short"),
    ("minicnn.layers.base", "minicnn.layers.calls", "preserved_state"),
]


@pytest.mark.parametrize("old, new, name", MOVED,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_moved_name_imports_from_its_old_home(old, new, name):
    assert getattr(importlib.import_module(old), name) is \
        getattr(importlib.import_module(new), name)


def test_checkpoint_load_weights_still_loads_through_serialization(tmp_path):
    import numpy as np

    from minicnn.layers import Linear
    from minicnn.training.checkpoint import load_weights
    a, b = Linear(3, 2, seed=0), Linear(3, 2, seed=1)
    path = tmp_path / "w.npz"
    a.save(path)
    load_weights(b, path)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
