"""Input and argument checks shared by the built-in layers.

Each raises one clear line naming the layer (its repr) and what was expected, before any
computation; none of them is part of the math, so they live here rather than in the
layers' ``forward``.
"""
import math

import numpy as np


def check_input(layer, x, ndim, channels=None, layout=None):
    """Raise a clear error for a non-array, wrong rank or wrong channel count."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{layer!r}: expected a numpy array, got {type(x).__name__}")
    check_real(layer, x)
    layout = layout or ("(N, C, H, W)" if ndim == 4 else "(N, D)")
    if x.ndim != ndim:
        raise ValueError(
            f"{layer!r}: expected input of shape {layout} ({ndim}-D), got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{layer!r}: expected {channels} channels/features on axis 1, "
            f"got input of shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{layer!r}: got an empty batch, shape {x.shape}")


def check_window(layer, x, kernel, padding):
    """Raise a clear error when the kernel does not fit in the padded input."""
    if any(s + 2 * p < k for s, p, k in zip(x.shape[2:], padding, kernel)):
        raise ValueError(f"{layer!r}: kernel {kernel} is larger than the padded input; "
                         f"input shape {x.shape}, padding {padding}")


def check_any(layer, x):
    """An element-wise layer's input: any shape, floats (integers become float32)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{layer!r}: expected a numpy array, got {type(x).__name__}")
    check_real(layer, x)
    return as_float(x)


def check_real(layer, x):
    """Raise TypeError unless ``x`` holds real numbers: a complex input would be cast to
    floats, silently dropping its imaginary part; strings and objects are refused too."""
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{layer!r}: expected real numbers (floats, integers or booleans), "
                        f"got an array of {x.dtype}")


def as_float(x):
    """``x`` itself if it holds floats, else a float32 copy."""
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def float_dtype(owner, dtype):
    """``dtype`` as a numpy floating dtype; TypeError naming ``owner`` for anything else
    (parameters of integers or booleans cannot be trained)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"{owner}: dtype must be a floating type such as np.float32 or "
                        f"np.float64, got {dtype!r}")
    return dt


def number(owner, name, value, low=None, high=None, high_open=False):
    """``value`` as a finite Python float in [low, high] (or [low, high) with ``high_open``);
    one line naming ``owner`` and the argument ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    v = float(value)
    too_high = high is not None and (v >= high if high_open else v > high)
    if not math.isfinite(v) or (low is not None and v < low) or too_high:
        span = f"[{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: {name} must be in {span} (a finite number), got {value!r}")
    return v


def short(p):
    """(3, 3) -> 3 for a readable repr; (3, 5) stays a pair."""
    return p[0] if p[0] == p[1] else p


def as_generator(seed, owner="layer"):
    """A numpy Generator from a seed (a non-negative int, a SeedSequence or BitGenerator),
    an existing Generator, or None (fresh entropy); one line naming ``owner`` otherwise."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise TypeError(f"{owner}: seed must be a non-negative int, a numpy Generator or None, "
                        f"got {seed!r}")
    return np.random.default_rng(seed)
