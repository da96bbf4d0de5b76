"""What a forward call leaves for its backward: one record per call, kept on a stack.

A layer may run more than once in one forward pass (``Sequential(l, ReLU(), l)``,
``Residual(l, shortcut=l)``), so a layer keeps a *stack* of records, one per call:
forward pushes, backward pops, and since a network's backward visits its layers in the
reverse order of its forward, each backward finds the record of its own call on top.
A record holds the cache, the shape and dtype of the output (which ``dout`` must match)
and, for a layer built from others, the last record each sub-layer pushed during the
call, so its backward can check them all before any gradient changes.

A *pass* is one forward called from outside every other forward (``model(x)``) with all
the calls inside it. A layer's first record of a new pass drops what older passes left
unused (a forward without backward, e.g. an accuracy check outside ``no_grad``), so
memory stays bounded by one pass.

In-place changes: the arrays a caller can reach, the input and the output of that
outermost call, may also sit in a cache (``Linear`` keeps its input, ``ReLU`` and
``MaxPool2D`` their output). Those few arrays get a fingerprint (:func:`checksum`) when
the pass ends, checked again when backward starts: ``out *= 2`` between forward and backward is
then an error naming the layer, as in PyTorch, instead of a silently wrong gradient.
A layer whose backward reads its output only where PyTorch keeps something else
(``MaxPool2D``: PyTorch keeps the winners' indices) keeps a copy of a reachable output
instead, so there, as in PyTorch, changing the output does not change the gradient.
Arrays inside the network, which no caller sees, are neither fingerprinted nor copied (it
would cost a pass over every activation).
"""
import threading
import zlib

import numpy as np

from .. import parallel
from ..grad_mode import no_grad

_local = threading.local()  # .current: this thread's pass or None; .watcher: see Watchers


class Pass:
    """One outermost forward and the records its calls pushed."""

    __slots__ = ("records",)

    def __init__(self):
        self.records = []


class Record:
    """What one forward call of ``owner`` left for its backward."""

    __slots__ = ("owner", "cache", "spec", "open", "pass_", "inside", "prints")

    def __init__(self, owner, cache, pass_, open_):
        self.owner, self.cache, self.pass_, self.open = owner, cache, pass_, open_
        self.spec = None     # (shape, dtype) of the output, set by record_output
        self.inside = None   # the last record of each sub-layer that ran inside this call
        self.prints = None   # [(array, checksum, "input"/"output")] of arrays a caller can reach


def inside(pass_, start, owner):
    """The last record of each layer other than ``owner`` among the records pushed since
    position ``start`` of the pass: what a call that started there must find on its
    sub-layers' stacks when its backward begins."""
    last = {}
    for record in pass_.records[start:]:
        if record.owner is not owner:
            last[id(record.owner)] = record
    return list(last.values())


def current_pass():
    """The pass this thread is in, or None outside every forward."""
    return getattr(_local, "current", None)


def run_pass(forward, layer, x, args, kwargs):
    """Run ``forward(layer, x, ...)`` as an outermost call: open a pass, and when it ends
    fingerprint the cached arrays the caller can reach (its input and its output)."""
    pass_ = _local.current = Pass()
    try:
        out = forward(layer, x, *args, **kwargs)
        fingerprint(pass_, x, out)
    finally:
        _local.current = None
        # The records stay on their layers' stacks. Emptying the pass's list breaks the cycle
        # record -> pass -> record, so a record popped by backward (and its cache) is freed at
        # once by reference counting, not later by the garbage collector.
        pass_.records.clear()
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


_weights = np.zeros(0, np.uint64)  # fixed random odd weights, grown on demand


def checksum(a):
    """A number that changes when any element of ``a`` changes in place.

    The array's bytes read as 64-bit words w_i, sum(k_i * w_i) mod 2**64 with fixed random
    odd weights k_i: a change of one word always changes it (k_i is odd), and a change of
    several (a swap, ``a *= 2``) leaves it equal only by a very rare coincidence. Faster
    than CRC-32, which is kept for arrays whose size is not whole words. A sum mod 2**64
    can be cut anywhere, so the parts of a large array run on minicnn's threads.
    """
    global _weights
    a = _in_memory_order(a)
    if a.nbytes % 8:
        return zlib.crc32(a)
    words = a.reshape(-1).view(np.uint64)
    if _weights.size < words.size:
        seeds = np.random.default_rng(0).integers(0, 2**63, words.size, dtype=np.uint64)
        _weights = seeds * np.uint64(2) + np.uint64(1)
    weights = _weights[:words.size]
    parts = parallel.split_bytes(words.size, words.nbytes, parallel.CHUNK_BYTES)
    # np.dot of unsigned integers wraps mod 2**64 and makes no temporary array
    sums = parallel.run(lambda r: int(np.dot(words[r[0]:r[1]], weights[r[0]:r[1]])), parts)
    return sum(sums) % 2**64


def _in_memory_order(a):
    """``a`` with its axes in the order of its memory: a C-contiguous view when ``a`` is one
    block in any axis order (a transposed or batch-last array), else a C-contiguous copy
    (a view with gaps or reversed axes). Its bytes are the words :func:`checksum` reads."""
    order = sorted(range(a.ndim), key=lambda k: abs(a.strides[k]), reverse=True)
    return np.ascontiguousarray(a.transpose(order))


def _owner_of_memory(a):
    """The object at the end of ``a``'s chain of bases: two arrays share memory only if
    this is the same object for both (a view's base is the array it views)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def fingerprint(pass_, x, out):
    """Fingerprint every cached array of the pass that shares memory with ``x`` or ``out``
    (or, for an output its layer copies, put a copy in the cache in its place)."""
    reachable = [(_owner_of_memory(a), a, what) for a, what in ((x, "input"), (out, "output"))
                 if isinstance(a, np.ndarray)]
    for record in pass_.records:
        for a in _arrays(record.cache):
            root = _owner_of_memory(a)
            for user_root, user, what in reachable:
                if root is user_root and np.may_share_memory(a, user):
                    if what == "output" and record.owner.copies_reachable_output:
                        record.cache = _replaced(record.cache, a, a.copy())
                    else:
                        record.prints = (record.prints or []) + [(a, checksum(a), what)]
                    break


def _replaced(cache, old, new):
    """``cache`` with the array ``old`` replaced by ``new`` (a cache is an array or a tuple,
    a named one included)."""
    if cache is old:
        return new
    items = [new if a is old else a for a in cache]
    return type(cache)._make(items) if hasattr(cache, "_make") else type(cache)(items)


def changed(record):
    """"input" or "output" if an array fingerprinted in ``record`` has changed, else None."""
    for a, stamp, what in record.prints or ():
        if checksum(a) != stamp:
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
    """Who watches every ``layer(x)`` call of this thread (summary, layer_output):
    ``Watchers.active()`` is None or an object with ``enter(layer, x) -> row`` and
    ``leave(row, out)``; ``Watchers.set(w)`` replaces it and returns the one before."""

    @staticmethod
    def active():
        return getattr(_local, "watcher", None)

    @staticmethod
    def set(watcher):
        previous = getattr(_local, "watcher", None)
        _local.watcher = watcher
        return previous
