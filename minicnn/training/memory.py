"""Will a run fit in memory? Checked before anything is loaded or written.

:func:`check_memory` estimates the bytes of a run's images (the raw files while loading,
then the float splits) and, given the network, of one training batch's activations
(measured by running one image through it), and compares them with what this process
may still allocate. :func:`check_weight_memory` does the same for the network's weights
before it is built, from the stage widths alone, so ``--widths 100000,100000,100000`` is
refused without trying to allocate them.
"""
import numpy as np

from ..data.registry import DATASETS
from ..layers.summary import run_recorded

try:
    import resource
except ImportError:  # not on Windows
    resource = None


def available_memory():
    """Bytes this process may still allocate (MemAvailable, capped by RLIMIT_AS), or None."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    return min(found) if found else None


def activation_bytes(model, dtype, dataset="synthetic"):
    """Bytes of the outputs of every leaf layer for one image of the data set, measured in
    eval mode without a trace: a training step keeps about three times this per sample."""
    info = DATASETS[dataset]
    x = np.zeros((1, info.in_channels, info.image_size, info.image_size), dtype)
    calls, error = run_recorded(model, x)
    if error is not None:
        raise error
    return sum(out.nbytes for layer, _, out in calls
               if out is not None and next(layer.children(), None) is None)


def format_bytes(n):
    """``"1.7 GiB"`` or ``"100 MiB"``."""
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def image_bytes(config, train, val, test):
    """Bytes of a run's images: the raw uint8 files while loading and the float splits."""
    info = DATASETS[config["dataset"]]
    if info.sizes is not None:
        pool, test_pool = info.sizes
        raw = 2 * pool + test_pool
    else:
        raw = 2 * (train + val) + test
    return info.image_values * (raw + (train + val + test) * np.dtype(config["dtype"]).itemsize)


def weight_bytes(config):
    """At least how many bytes building the network of ``config`` takes, from its stage
    widths (``model_args["widths"]``; 0 without them): each stage of vgg_small and
    resnet_small holds a 3x3 conv ``c_in -> c_out`` and one ``c_out -> c_out`` (9 * c_in *
    c_out weights each), and the largest is drawn in float64 before it is cast."""
    args = config.get("model_args") or {}
    widths = args.get("widths")
    if not widths:
        return 0
    sizes, c_in = [], args.get("in_channels", 3)
    for c_out in widths:
        sizes += [9 * c_in * c_out, 9 * c_out * c_out]
        c_in = c_out
    return sum(sizes) * np.dtype(config["dtype"]).itemsize + max(sizes) * 8


def check_weight_memory(config, what, where=""):
    """Raise a one-line ValueError ``"<where><what>: ..."`` if the network's weights alone
    (:func:`weight_bytes`) would not fit in the memory available; nothing is allocated."""
    free, need = available_memory(), weight_bytes(config)
    if free is not None and need > free:
        raise ValueError(f"{where}{what}: the network's weights alone would need at least "
                         f"{format_bytes(need)} of memory, but only {format_bytes(free)} is "
                         f"available; choose narrower widths or a smaller model")


def check_memory(config, splits, label=str, where="", model=None):
    """Raise a one-line ValueError if the images of the ``splits`` (train, val, test image
    counts) and, given the ``model``, a training batch's activations would not fit in the
    memory available."""
    free = available_memory()
    if free is None:
        return
    need = image_bytes(config, *splits)
    if need > free:
        sizes = ", ".join(f"{label(k)} {config[k]}" for k in ("num_train", "num_val", "num_test")
                          if config.get(k) is not None)
        raise ValueError(f"{where}{sizes}: the {config['dataset']} images would need about "
                         f"{format_bytes(need)} of memory, but only {format_bytes(free)} is "
                         f"available; ask for fewer images")
    if model is None:
        return
    try:
        step = 3 * activation_bytes(model, config["dtype"], config["dataset"]) * config["batch_size"]
    except MemoryError:
        step = None  # one image's activations do not fit: no batch will
    if step is None or need + step > free:
        size = "more than is available" if step is None else f"about {format_bytes(step)}"
        raise ValueError(f"{where}{label('batch_size')} {config['batch_size']}: a training "
                         f"step would need {size} for the activations besides "
                         f"{format_bytes(need)} for the images, but only {format_bytes(free)} "
                         f"is available; use a smaller batch")
