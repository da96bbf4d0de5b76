"""Weight initialisation: the ``init=`` choices of Conv2D and Linear.

- ``"he"`` (the default): weight ~ N(0, 2 / fan_in), bias 0. He et al.'s rule keeps the
  variance of activations through ReLU layers, with or without batch-norm.
- ``"pytorch"``: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default
  for ``nn.Linear`` and ``nn.Conv2d``: a sixth of He's variance.

The zoo uses He everywhere, the classifier included, so a fresh network's loss starts
above ln(num_classes) (the CS231n sanity check expects 2.30 for ten classes): 2.6-3.5 was
measured on Fashion-MNIST. Giving the classifier ``init="pytorch"`` brings it to 2.4-2.6,
but measured no better after training (Fashion-MNIST, ``--preset fashion``: 93.37 % with
the He classifier, 92.83 % with PyTorch's; PyTorch's own default init and minicnn's He
init reach the same accuracy within the spread between seeds, see docs/fashion_mnist.md),
so the default stays He.

``fan_in`` is the number of inputs of one output: in_features, or in_channels * kh * kw.
"""
import numpy as np

INITS = ("he", "pytorch")


def kaiming_normal(shape, fan_in, rng, dtype=np.float32):
    """He initialisation for ReLU networks: N(0, 2 / fan_in)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def weight_and_bias(init, shape, fan_in, rng, dtype, bias=True):
    """``(weight, bias or None)`` arrays of a layer by the rule ``init`` (module docstring);
    ``shape`` is the weight's, ``bias`` has ``shape[0]`` entries."""
    if init == "he":
        return kaiming_normal(shape, fan_in, rng, dtype), (np.zeros(shape[0], dtype) if bias else None)
    if init == "pytorch":
        bound = 1.0 / np.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, shape).astype(dtype)
        return weight, (rng.uniform(-bound, bound, shape[0]).astype(dtype) if bias else None)
    raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
