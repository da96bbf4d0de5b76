"""What a forward call leaves for its backward: one record per call, kept on a stack.

A layer may run more than once in one forward pass (``Sequential(l, ReLU(), l)``,
``Residual(l, shortcut=l)``), so a layer keeps a *stack* of records, one per call:
forward pushes, backward pops, and since a network's backward visits its layers in the
reverse order of its forward, each backward finds the record of its own call on top.
A record holds the cache, the shape and dtype of the output (which ``dout`` must match)
and, for a layer built from others, the record each sub-layer held when its forward
ended, so its backward can check them all before any gradient changes.

A *pass* is one forward called from outside every other forward (``model(x)``) with all
the calls inside it. A layer's first record of a new pass drops what older passes left
unused (a forward without backward, e.g. an accuracy check outside ``no_grad``), so
memory stays bounded by one pass.

In-place changes: the arrays a caller can reach, the input and the output of that
outermost call, may also sit in a cache (``Linear`` keeps its input, ``ReLU`` and
``MaxPool2D`` their output). Those few arrays get a fingerprint (CRC-32) when the pass
ends, checked again when backward starts: ``out *= 2`` between forward and backward is
then an error naming the layer, as in PyTorch, instead of a silently wrong gradient.
Arrays inside the network, which no caller sees, are not fingerprinted (it would cost a
pass over every activation).
"""
import threading
import zlib

import numpy as np

from ..grad_mode import no_grad

_local = threading.local()  # .current: the Pass of this thread's outermost forward, or None


class Pass:
    """One outermost forward and the records its calls pushed."""

    __slots__ = ("records",)

    def __init__(self):
        self.records = []


class Record:
    """What one forward call left for its backward."""

    __slots__ = ("cache", "spec", "open", "pass_", "inside", "prints")

    def __init__(self, cache, pass_, open_):
        self.cache, self.pass_, self.open = cache, pass_, open_
        self.spec = None     # (shape, dtype) of the output, set by record_output
        self.inside = None   # [(sub-layer, its top record)] when the forward ended
        self.prints = None   # [(array, crc, "input"/"output")] of arrays a caller can reach


def current_pass():
    """The pass this thread is in, or None outside every forward."""
    return getattr(_local, "current", None)


def run_pass(forward, layer, x, args, kwargs):
    """Run ``forward(layer, x, ...)`` as an outermost call: open a pass, and when it ends
    fingerprint the cached arrays the caller can reach (its input and its output)."""
    pass_ = _local.current = Pass()
    try:
        out = forward(layer, x, *args, **kwargs)
    finally:
        _local.current = None
    fingerprint(pass_, x, out)
    return out


def push(calls, record):
    """Put ``record`` on a layer's stack ``calls``, dropping records of older passes."""
    if calls and calls[-1].pass_ is not record.pass_:
        calls.clear()
    calls.append(record)
    record.pass_.records.append(record)


def _arrays(cache):
    if isinstance(cache, np.ndarray):
        return (cache,)
    if isinstance(cache, (tuple, list)):
        return tuple(a for a in cache if isinstance(a, np.ndarray))
    return ()


def _crc(a):
    return zlib.crc32(a if a.flags.c_contiguous else np.ascontiguousarray(a))


def fingerprint(pass_, x, out):
    """Fingerprint every cached array of the pass that shares memory with ``x`` or ``out``."""
    reachable = [(a, what) for a, what in ((x, "input"), (out, "output"))
                 if isinstance(a, np.ndarray)]
    for record in pass_.records:
        for a in _arrays(record.cache):
            for user, what in reachable:
                if np.may_share_memory(a, user):
                    record.prints = (record.prints or []) + [(a, _crc(a), what)]
                    break


def changed(record):
    """"input" or "output" if an array fingerprinted in ``record`` has changed, else None."""
    for a, crc, what in record.prints or ():
        if _crc(a) != crc:
            return what
    return None


class preserved_state:  # noqa: N801 - used like a function: with preserved_state(model):
    """Run forwards that leave no trace: eval mode and ``no_grad`` inside, and afterwards
    every sub-layer's mode and pending records (cache and recorded output) as before."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = [(m, m.training, list(m.__dict__.get("_calls", ())))
                      for m in self.model.modules()]
        self.model.eval()
        self.grad = no_grad()
        self.grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        for m, training, calls in self.saved:
            m.training = training
            m.__dict__["_calls"] = calls
        return False


class Watchers:
    """Who watches every ``layer(x)`` call (summary, layer_output): ``active`` is None or
    an object with ``enter(layer, x) -> row`` and ``leave(row, out)``."""

    active = None
