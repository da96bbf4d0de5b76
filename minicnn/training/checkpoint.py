"""The checkpoint file of a run folder: model, optimizer, history and random-number state.

``checkpoint.npz`` holds ``model.<state key>``, ``optimizer.<state key>`` and ``meta``,
a 0-d string array of JSON with the training position, the history and the states of
every numpy Generator the model owns (Dropout's ``rng``); it loads without pickle.
``best.npz`` is a plain model file (``Layer.save``).
"""
import json

import numpy as np

from ..serialization import load_npz, save_npz
from .history import History

CHECKPOINT, BEST = "checkpoint.npz", "best.npz"
_FORMAT = "minicnn-checkpoint-1"


class Position:
    """Where training stands: finished epochs, finished steps of the current epoch, the
    data Generator's state at the start of that epoch and the epoch's running sums."""

    def __init__(self, epoch=0, step=0, rng_state=None, seen=0, loss_sum=0.0, correct=0,
                 seconds=0.0):
        self.epoch, self.step, self.rng_state = epoch, step, rng_state
        self.seen, self.loss_sum, self.correct, self.seconds = seen, loss_sum, correct, seconds

    def to_dict(self):
        return dict(vars(self))



def layer_generators(model):
    """The distinct numpy Generators owned by the model's layers (``layer.rng``, e.g. Dropout)."""
    found = []
    for layer in model.modules():
        rng = getattr(layer, "rng", None)
        if isinstance(rng, np.random.Generator) and not any(rng is g for g in found):
            found.append(rng)
    return found


def save_checkpoint(path, model, optimizer, history, position):
    """Write model, optimizer, history and RNG states to one .npz atomically.

    Keys: ``model.<state key>``, ``optimizer.<state key>`` and ``meta``, a 0-d string
    array of JSON with the counters, the history and the Generator states.
    """
    meta = {"format": _FORMAT, "position": position.to_dict(), "history": history.to_dict(),
            "layer_rngs": [g.bit_generator.state for g in layer_generators(model)]}
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.array(json.dumps(meta))
    save_npz(path, arrays)


def read_checkpoint(path):
    """``(model_state, optimizer_state, meta)`` of a checkpoint; ValueError if it is not one."""
    arrays = load_npz(path, "checkpoint")
    try:
        meta = json.loads(str(arrays.pop("meta")))
        ok = meta["format"] == _FORMAT
    except (KeyError, ValueError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{path!r} is not a minicnn training checkpoint")
    split = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    return split("model."), split("optimizer."), meta


def load_checkpoint(path, model, optimizer=None, rng=None):
    """Restore a checkpoint into ``model`` (and ``optimizer``, the data Generator ``rng`` and
    the layers' Generators); returns ``(history, position)``."""
    model_state, optimizer_state, meta = read_checkpoint(path)
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
    except ValueError as e:
        raise ValueError(f"checkpoint {path!r} does not fit this model/optimizer: {e}") from None
    generators = layer_generators(model)
    if len(generators) != len(meta["layer_rngs"]):
        raise ValueError(f"checkpoint {path!r} has {len(meta['layer_rngs'])} layer RNG states, "
                         f"the model has {len(generators)} layers with a Generator")
    for g, state in zip(generators, meta["layer_rngs"]):
        g.bit_generator.state = state
    position = Position(**meta["position"])
    if rng is not None:
        rng.bit_generator.state = position.rng_state
    return History.from_dict(meta["history"]), position


def load_weights(model, path):
    """Load weights into ``model`` from ``best.npz`` (model file) or ``checkpoint.npz``."""
    try:
        model.load(path)
    except ValueError as e:
        if "not a saved minicnn model" not in str(e):
            raise
        model.load_state_dict(read_checkpoint(path)[0])
    return model
