"""Input checks shared by the layers beyond those of :class:`minicnn.layers.base.Layer`."""
import numpy as np


def check_real(layer, x):
    """Raise TypeError unless ``x`` holds real numbers (bools, integers or floats).

    A complex input would otherwise be cast to floats, silently dropping its imaginary
    part (numpy only warns); strings and objects are refused too.
    """
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise TypeError(f"{layer!r}: expected real numbers (floats, integers or booleans), "
                        f"got an array of {x.dtype}")
    return x
