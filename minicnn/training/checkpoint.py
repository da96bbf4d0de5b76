"""The checkpoint file of a run folder: model, optimizer, history and random-number state.

``checkpoint.npz`` holds ``model.<state key>``, ``optimizer.<state key>`` and ``meta``,
a 0-d string array of JSON with the training position, the history, the states of
every numpy Generator the model owns (Dropout's ``rng``) and, when ``fit`` was given
one, the run's ``config``; it loads without pickle. ``best.npz`` is a plain model file
(``Layer.save``).

Loading is bounded and checked before anything is decompressed (see
:func:`minicnn.serialization.load_npz`): every ``model.*`` entry must have the shape and
kind of the model's own state, every ``optimizer.*`` buffer the shape of its parameter,
and ``meta`` must pass :data:`META_SCHEMA` and agree with itself (the position with the
history). Neither file may hold a NaN or an infinity: they are refused when written and
when read.
"""
import json
import os
import re

import numpy as np

from .. import serialization
from ..serialization import SKIP, array_spec, check_finite, check_spec, load_npz, save_npz
from .history import COLUMNS, History
from .schema import Rule, check_record, choice, integer, list_of, number, record, rng_state

CHECKPOINT, BEST = "checkpoint.npz", "best.npz"
_FORMAT = "minicnn-checkpoint-1"
_MODEL_MARKER = "__minicnn_model__"  # written by Layer.save
#: config.json keys that may differ between a checkpoint and the run that resumes it:
#: the number of epochs to train up to, and where the (same) data set lives.
RESUMABLE_KEYS = ("epochs", "data_dir")
#: config.json keys added after the first runs were written, and what a config without
#: them means (so an older run still loads, and resumes when the key holds that value).
LATER_FIELDS = {"label_smoothing": 0.0, "tta": "none", "final_model": "best"}
#: A run's ``final_model`` -> the file of its weights that the final test accuracy and the
#: report use: the epoch with the best validation accuracy, or the last epoch's.
FINAL_MODELS = {"best": BEST, "last": CHECKPOINT}

_EPOCH_RECORD = {"epoch": integer(1), "train_loss": number(), "train_acc": number(0, 1),
                 "val_loss": number(nullable=True), "val_acc": number(0, 1, nullable=True),
                 "lr": number(0),
                 "seconds": number(0), "iterations": integer(0)}
assert tuple(_EPOCH_RECORD) == COLUMNS
#: The fields of a checkpoint's ``meta`` (``config`` is optional).
META_SCHEMA = {
    "format": choice(_FORMAT),
    "position": record({"epoch": integer(0), "step": integer(0),
                        "rng_state": rng_state(nullable=True), "seen": integer(0),
                        "loss_sum": number(), "correct": integer(0), "seconds": number(0)}),
    "history": record({"iteration_loss": list_of(number(), "finite numbers"),
                       "epochs": list_of(record(_EPOCH_RECORD), "epoch records")}),
    "layer_rngs": list_of(rng_state(), "Generator states"),
    "config": Rule("an object", lambda v, _: isinstance(v, dict)),
}


class Position:
    """Where training stands: finished epochs, finished steps of the current epoch, the
    data Generator's state at the start of that epoch and the epoch's running sums."""

    def __init__(self, epoch=0, step=0, rng_state=None, seen=0, loss_sum=0.0, correct=0,
                 seconds=0.0):
        self.epoch, self.step, self.rng_state = epoch, step, rng_state
        self.seen, self.loss_sum, self.correct, self.seconds = seen, loss_sum, correct, seconds

    def to_dict(self):
        return dict(vars(self))

    def describe(self):
        """``"the end of epoch 2"`` or ``"epoch 3 after step 5"``."""
        if self.step == 0:
            return f"the end of epoch {self.epoch}" if self.epoch else "the start of training"
        return f"epoch {self.epoch + 1} after step {self.step}"


def layer_generators(model):
    """The distinct numpy Generators owned by the model's layers (``layer.rng``, e.g. Dropout)."""
    found = []
    for layer in model.modules():
        rng = getattr(layer, "rng", None)
        if isinstance(rng, np.random.Generator) and not any(rng is g for g in found):
            found.append(rng)
    return found


def save_checkpoint(path, model, optimizer, history, position, config=None):
    """Write model, optimizer, history and RNG states (and ``config``) to one .npz atomically.

    Keys: ``model.<state key>``, ``optimizer.<state key>`` and ``meta``, a 0-d string
    array of JSON with the counters, the history, the Generator states and ``config``.
    Raises :class:`minicnn.serialization.NonFiniteError` and writes nothing if any array
    or number holds NaN or inf.
    """
    meta = {"format": _FORMAT, "position": position.to_dict(), "history": history.to_dict(),
            "layer_rngs": [_jsonable(g.bit_generator.state) for g in layer_generators(model)]}
    if config is not None:
        meta["config"] = config
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    text = json.dumps(meta)
    check_meta(json.loads(text), f"refusing to write {path!r}")  # the check it meets when read
    arrays["meta"] = np.array(json.dumps(meta, allow_nan=False))
    save_npz(path, arrays)


def _jsonable(state):
    """A Generator state with its numpy arrays (MT19937's key, Philox's counter) as lists;
    numpy accepts the lists back when the state is set."""
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    return state.tolist() if isinstance(state, np.ndarray) else state


def check_meta(meta, where):
    """Raise a one-line ValueError unless ``meta`` passes :data:`META_SCHEMA` and its
    position agrees with its history."""
    check_record(meta, META_SCHEMA, where, "the JSON object of a minicnn checkpoint",
                 optional=("config",))
    position, epochs = meta["position"], meta["history"]["epochs"]
    numbered = [r["epoch"] for r in epochs]
    problem = None
    if numbered != list(range(1, len(epochs) + 1)):
        problem = f"field 'history.epochs' numbers its epochs {numbered}, expected 1, 2, ..."
    elif position["epoch"] != len(epochs):
        problem = (f"field 'position.epoch' is {position['epoch']} but the history holds "
                   f"{len(epochs)} epochs")
    elif len(meta["history"]["iteration_loss"]) != \
            (epochs[-1]["iterations"] if epochs else 0) + position["step"]:
        problem = (f"field 'history.iteration_loss' holds "
                   f"{len(meta['history']['iteration_loss'])} losses, but the history and "
                   f"field 'position.step' ({position['step']}) account for "
                   f"{(epochs[-1]['iterations'] if epochs else 0) + position['step']}")
    elif (position["step"] == 0) != (position["seen"] == 0) or position["correct"] > position["seen"]:
        problem = (f"fields 'position.step', 'position.seen' and 'position.correct' disagree "
                   f"({position['step']}, {position['seen']}, {position['correct']})")
    if problem:
        raise ValueError(f"{where}: {problem}")
    return meta


def _parse_meta(array, path):
    where = f"checkpoint {path!r} (meta)"
    try:
        meta = json.loads(str(array), parse_constant=lambda c: float("nan"))
    except ValueError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{path!r} is not a minicnn training checkpoint")
    return check_meta(meta, where)


def _optimizer_entry(optimizer, key, shape, dtype):
    """What is wrong with entry ``optimizer.<key>`` for ``optimizer`` (None: anything numeric)."""
    if dtype.kind not in "biuf":
        return f"holds {dtype} values, expected numbers"
    if optimizer is None:
        return None
    head = {**{name: ((2,) if name == "betas" else (), "biuf") for name in optimizer.hyper_names},
            "step": ((), "iu"), "num_params": ((), "iu")}
    if key in head:
        return check_spec(head[key], shape, dtype)
    match = re.fullmatch(r"(\w+)\.(\d+)", key)
    if match and int(match.group(2)) < len(optimizer.params):
        return check_spec((optimizer.params[int(match.group(2))].shape, "f"), shape, dtype)
    return f"is not a state entry of {type(optimizer).__name__}"


def _entries(model, optimizer, read_optimizer=True, unknown=None):
    """The ``expected`` callable of :func:`load_npz` for a checkpoint (or model file).

    With a list ``unknown``, entries that are not the model's are left unread and their
    names appended to it (the caller decides what they mean), instead of refused.
    """
    spec = None if model is None else array_spec(model.state_dict())

    def check(name, shape, dtype):
        if name == "meta":
            return check_spec(((), "U"), shape, dtype)
        if name == _MODEL_MARKER:
            return check_spec(((), "iu"), shape, dtype)
        key = name[len("model."):] if name.startswith("model.") else name
        if name.startswith("optimizer."):
            if not read_optimizer:
                return SKIP
            return _optimizer_entry(optimizer, name[len("optimizer."):], shape, dtype)
        if spec is None:
            return None if dtype.kind in "biuf" else f"holds {dtype} values, expected numbers"
        if key not in spec:
            if unknown is not None:
                unknown.append(name)
                return SKIP
            return "is not a state entry of this model"
        return check_spec(spec[key], shape, dtype)
    return check


def _split(arrays, prefix):
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def read_checkpoint(path, model=None, optimizer=None):
    """``(model_state, optimizer_state, meta)`` of a checkpoint; ValueError if it is not one.

    With ``model`` (and ``optimizer``) the shape and kind of every entry is checked
    against theirs before anything is decompressed; ``meta`` is always checked.
    """
    path = os.fspath(path)
    arrays = load_npz(path, "checkpoint", expected=_entries(model, optimizer),
                      mismatch="does not fit this model/optimizer")
    if "meta" not in arrays or any(not k.startswith(("model.", "optimizer.", "meta"))
                                   for k in arrays):
        raise ValueError(f"{path!r} is not a minicnn training checkpoint")
    meta = _parse_meta(arrays.pop("meta"), path)
    for prefix in ("model.", "optimizer."):
        check_finite(_split(arrays, prefix), f"checkpoint {path!r}")
    return _split(arrays, "model."), _split(arrays, "optimizer."), meta


def read_checkpoint_meta(path):
    """The checked ``meta`` of a checkpoint, reading only that member of the file."""
    path = os.fspath(path)
    arrays = load_npz(path, "checkpoint",
                      expected=lambda name, shape, dtype: (check_spec(((), "U"), shape, dtype)
                                                           if name == "meta" else SKIP))
    if "meta" not in arrays:
        raise ValueError(f"{path!r} is not a minicnn training checkpoint")
    return _parse_meta(arrays["meta"], path)


def check_resume_config(stored, config, where):
    """Raise ValueError naming the first field where ``config`` differs from the ``stored``
    config a checkpoint was trained with, except :data:`RESUMABLE_KEYS` (a key of
    :data:`LATER_FIELDS` missing on either side counts as its default)."""
    if stored is None:
        return
    stored, config = {**LATER_FIELDS, **stored}, {**LATER_FIELDS, **config}
    for key in list(stored) + [k for k in config if k not in stored]:
        if key in RESUMABLE_KEYS:
            continue
        if key not in config or key not in stored or config[key] != stored[key]:
            now = config.get(key, "<missing>")
            then = stored.get(key, "<missing>")
            raise ValueError(f"{where}: field {key!r} is {now!r} but the checkpoint was trained "
                             f"with {then!r}; a resumed run may change only "
                             f"{' and '.join(RESUMABLE_KEYS)}: put {key!r} back to {then!r}, "
                             f"or start a new run")


def load_checkpoint(path, model, optimizer=None, rng=None, config=None):
    """Restore a checkpoint into ``model`` (and ``optimizer``, the data Generator ``rng``
    and the layers' Generators); returns ``(history, position)``.

    With ``config``, the config stored in the checkpoint (if any) must equal it except for
    :data:`RESUMABLE_KEYS`. Nothing is changed unless everything fits.
    """
    path = os.fspath(path)
    model_state, optimizer_state, meta = read_checkpoint(path, model, optimizer)
    if config is not None:
        check_resume_config(meta.get("config"), config, f"checkpoint {path!r}")
    generators = layer_generators(model)
    if len(generators) != len(meta["layer_rngs"]):
        raise ValueError(f"checkpoint {path!r} has {len(meta['layer_rngs'])} layer RNG states, "
                         f"the model has {len(generators)} layers with a Generator")
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
    except ValueError as e:
        raise ValueError(f"checkpoint {path!r} does not fit this model/optimizer: {e}") from None
    for g, state in zip(generators, meta["layer_rngs"]):
        g.bit_generator.state = state
    position = Position(**meta["position"])
    if rng is not None:
        rng.bit_generator.state = position.rng_state
    return History.from_dict(meta["history"]), position


def load_weights(model, path):
    """Load weights into ``model`` from ``best.npz`` (model file) or ``checkpoint.npz``
    (see :func:`minicnn.serialization.load_weights`), the checkpoint's meta fully checked."""
    return serialization.load_weights(model, path, parse_meta=_parse_meta)
