"""Watching the layers of a forward pass: :func:`summary` and ``viz.layer_output``.

While a :class:`CallRecorder` is active, every ``layer(x)`` call inside the model is noted
with its input shape and output, in the order the calls start, so the rows of a summary
come out parents first, as in ``named_modules()``. The model is only used through its
methods, so this module sits below :mod:`.base` (``Layer.summary`` calls it).
"""
import numpy as np

from .calls import Watchers, preserved_state


class CallRecorder:
    """``with CallRecorder() as rec: model(x)``, then ``rec.calls``: [layer, in shape, out]
    per call, and ``rec.parents``: for each call, the index of the call it ran inside
    (None for the outermost)."""

    def __init__(self):
        self.calls, self.parents, self._open = [], [], []

    def enter(self, layer, x):
        call = [layer, getattr(x, "shape", None), None]
        self.parents.append(self._open[-1] if self._open else None)
        self._open.append(len(self.calls))
        self.calls.append(call)
        return call

    def leave(self, call, out):
        call[2] = out
        self._open.pop()

    def __enter__(self):
        self.previous = Watchers.set(self)
        return self

    def __exit__(self, *exc):
        Watchers.set(self.previous)
        return False


def _rows_names(recorder):
    """(name within its parent, dotted name, depth, seen before) for every recorded call:
    a layer used twice in one parent gets the name of each of its places in turn."""
    names, uses, seen = [], {}, set()
    for i, (layer, _, _) in enumerate(recorder.calls):
        parent = recorder.parents[i]
        if parent is None:
            names.append(("", "", 0, False))
            continue
        places = [n for n, c in recorder.calls[parent][0].named_children() if c is layer]
        k = uses.get((parent, id(layer)), 0)
        uses[(parent, id(layer))] = k + 1
        local = places[min(k, len(places) - 1)] if places else "?"
        _, parent_name, depth, _ = names[parent]
        full = f"{parent_name}.{local}" if parent_name else local
        names.append((local, full, depth + 1, id(layer) in seen))
        seen.add(id(layer))
    return names


def run_recorded(model, x):
    """Run ``model(x)`` leaving no trace (see ``preserved_state``); returns the recorded
    calls and the exception that stopped the forward, if any."""
    recorder, error = _record(model, x)
    return recorder.calls, error


def _record(model, x):
    recorder, error = CallRecorder(), None
    with preserved_state(model), recorder:
        try:
            model(x)
        except Exception as e:  # noqa: BLE001 - reported by the caller with the rows so far
            error = e
    return recorder, error


def _sample_shape(input_shape):
    """``input_shape`` as a tuple of Python ints, or a one-line TypeError."""
    ok = isinstance(input_shape, (tuple, list)) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in input_shape)
    if not ok:
        raise TypeError(f"summary: input_shape must be one sample's shape, a tuple of positive "
                        f"ints such as (3, 32, 32), got {input_shape!r}")
    return tuple(int(s) for s in input_shape)


def summary(model, input_shape):
    """Print one row per sub-layer call (indented by depth): output shape and parameter
    count, for one input of ``input_shape`` (one sample's shape, e.g. (3, 32, 32)); then
    the total. If a layer fails, the rows computed so far are printed, then a ValueError
    names the layer and the shape it got. Modes and pending caches are left as they were."""
    x = np.zeros((1,) + _sample_shape(input_shape), dtype=model.dtype or np.float32)
    recorder, error = _record(model, x)
    rows, failed = [], None
    for (layer, in_shape, out), (local, full, depth, again) in zip(recorder.calls,
                                                                    _rows_names(recorder)):
        if depth == 0:
            continue
        if out is None:
            failed = (full, layer, in_shape)
            continue
        n = "(shared)" if again else f"{sum(p.size for p in layer.parameters()):,}"
        rows.append((f"{'  ' * (depth - 1)}({local}) {layer._describe()}",
                     str((None,) + out.shape[1:]), n))
    total = sum(p.size for p in model.parameters())
    header = ("Layer", "Output shape", "Params")
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(3)]
    line = "-" * (sum(widths) + 4)

    def fmt(r):
        return f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"

    print("\n".join([fmt(header), line] + [fmt(r) for r in rows]))
    if error is not None:
        where = (f"layer ({failed[0]}) {failed[1]._describe()} got input of shape {failed[2]}"
                 if failed else f"{model._describe()} got input of shape {x.shape}")
        print(f"... stopped: {where}")
        raise ValueError(f"summary: {where}: {error}") from error
    print("\n".join([line, f"Total parameters: {total:,}"]))


print_summary = summary  # the name before summary() became a function of its own
