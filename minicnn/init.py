"""Weight initialisation."""
import numpy as np


def kaiming_normal(shape, fan_in, rng, dtype=np.float32):
    """He initialisation for ReLU networks: N(0, 2 / fan_in)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
