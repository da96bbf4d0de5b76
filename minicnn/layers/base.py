"""The Layer base class: a module that finds its parameters, buffers and sub-layers.

As in PyTorch's ``nn.Module`` (and tinygrad's ``get_parameters``), nothing is declared:
a layer's parameters are its :class:`Parameter` attributes, its children are its
``Layer`` attributes (also inside a list, tuple or dict attribute), and non-trainable
state is named with :meth:`Layer.register_buffer`. What stays explicit is the math:
``forward(x)`` keeps in ``self.cache`` what ``backward(dout)`` needs, and ``backward``
adds parameter gradients into ``.grad`` and returns dL/dx.

The protocol a layer follows (every built-in layer does):

- ``forward`` stores its cache in ``self.cache`` and returns ``self.record_output(out)``;
- ``backward`` starts with ``cache, dout = self.take_cache(dout)``, which raises a clear
  error, before any gradient changes, when there was no forward since the last backward,
  or the forward ran under :func:`minicnn.no_grad`, or ``dout`` does not match the output,
  or an array that backward reads was changed in place (see :mod:`.calls`).

A layer may run several times in one forward: each call keeps its own cache (a stack,
see :mod:`.calls`), each backward takes the latest, and parameter gradients of all
uses add up. A layer built from others calls them as ``self.body(x)`` in forward, and
its backward starts with ``_, dout = self.take_cache(dout)`` too (it has no cache of its
own, but the check covers every sub-layer that ran inside it), then calls their
``backward`` in the reverse order.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Iterator

import numpy as np
from numpy.typing import DTypeLike

from ..grad_mode import is_grad_enabled
from ..parameter import Parameter
from ..serialization import MODEL_MARKER, load_weights, save_npz
from . import calls as C
from .calls import preserved_state  # noqa: F401 - its old home, kept for one release
from .checks import as_generator, float_dtype, short  # noqa: F401 - as_generator, short: their old home
from .state import check_state, names_of, read, state_entries, walk_members, write
from .summary import print_summary

_INTERNAL = {"_calls", "_buffer_names", "_start", "training"}


class BufferNameError(KeyError, ValueError):
    """A buffer name that is taken or not an identifier (a KeyError, as in PyTorch)."""

    def __str__(self):
        return str(self.args[0])


def _tracked(forward):
    """``forward`` run as a pass of its own when no other forward is running (see
    :mod:`.calls`): ``layer(x)`` and ``layer.forward(x)`` behave the same. Each call notes
    where its sub-layers' records begin in the pass (``_start``)."""
    @functools.wraps(forward)
    def tracked(self, x, *args, **kwargs):
        pass_ = C.current_pass()
        if pass_ is not None:
            self.__dict__["_start"] = len(pass_.records)
            return forward(self, x, *args, **kwargs)
        if not is_grad_enabled():
            return forward(self, x, *args, **kwargs)
        self.__dict__["_start"] = 0
        return C.run_pass(forward, self, x, args, kwargs)
    tracked.tracked = True
    return tracked


class Layer:
    """Base of every layer and network.

    Subclasses implement ``forward(x)`` and ``backward(dout) -> dx``. Parameters,
    children and buffers are found by looking at the attributes, so a layer built from
    other layers needs no registration: ``self.body = Sequential(...)`` is enough for
    ``parameters()``, ``state_dict()``, ``train()``/``eval()``, ``astype()`` and ``gradcheck``
    to include it. Call children as ``self.body(x)``.
    """

    #: Built-in layers that can skip computing dL/dx when they are first in a network.
    can_skip_input_grad = False
    #: True for a layer whose backward reads its own output only where PyTorch keeps
    #: something else (MaxPool2D: the winners' indices). When a caller can reach that
    #: output, the record keeps a copy of it instead of a fingerprint, so changing the
    #: output in place leaves the gradient as it was, as in PyTorch (see layers/calls.py).
    copies_reachable_output = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "tracked", False):
            cls.forward = _tracked(forward)

    def __init__(self) -> None:
        self.training = True
        self._buffer_names = []
        self._calls = []

    # -- calling -----------------------------------------------------------------
    def __call__(self, x: np.ndarray) -> np.ndarray:
        watcher = C.Watchers.active()  # summary() and layer_output() watch every call
        if watcher is None:
            return self.forward(x)
        row = watcher.enter(self, x)
        out = self.forward(x)
        watcher.leave(row, out)
        return out

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    # -- the cache protocol ------------------------------------------------------
    def _stack(self):
        return self.__dict__.setdefault("_calls", [])

    def _pass(self):
        return C.current_pass() or C.Pass()  # a forward called outside a pass is one

    @property
    def cache(self) -> Any:
        """What the latest forward kept for backward; None when nothing is pending.

        Assigning stores a new record for this call; assigning None, or any assignment
        inside a ``no_grad()`` block, drops every pending record instead.
        """
        calls = self.__dict__.get("_calls")
        return calls[-1].cache if calls else None

    @cache.setter
    def cache(self, value: Any) -> None:
        if value is None or not is_grad_enabled():
            self._stack().clear()
            return
        C.push(self._stack(), C.Record(self, value, self._pass(), open_=True))

    def record_output(self, out: np.ndarray) -> np.ndarray:
        """Return ``out``, noting its shape and dtype (backward's dout must match) and, for a
        layer with sub-layers, the last record each of them pushed during this call (they
        must still be on top of their stacks when backward starts)."""
        calls = self._stack()
        if not is_grad_enabled():
            calls.clear()
            return out
        top = calls[-1] if calls else None
        pass_ = self._pass()
        if top is None or not top.open or top.pass_ is not pass_:
            top = C.Record(self, None, pass_, open_=False)
            C.push(calls, top)
        top.open, top.spec = False, (out.shape, out.dtype)
        top.inside = C.inside(pass_, self.__dict__.get("_start", 0), self) or None
        return out

    def check_ready(self) -> None:
        """Raise a clear error, changing nothing, unless this layer and every layer inside
        hold the records of the forward that backward is about to undo."""
        calls = self.__dict__.get("_calls")
        if not calls:
            self._not_ready(None)
        top = calls[-1]
        records = [top] + list(top.inside or ())
        for record in records:
            held = record.owner.__dict__.get("_calls")
            if not held or held[-1] is not record:
                self._not_ready(record.owner, ran_since=bool(held))
        for record in records:
            what = C.changed(record)
            if what is not None:
                m = record.owner
                where = f"its layer {names_of(self)[id(m)]}: {m._describe()}, " if m is not self else ""
                raise RuntimeError(
                    f"{self._describe()}: {where}the {what} that backward reads was modified "
                    f"by an in-place operation after forward (e.g. out *= 2); change a copy "
                    f"instead (out = out * 2), or run forward again")
        for record in records:  # checked: the sub-layers' own backward need not read them again
            record.prints = None

    def _not_ready(self, m, ran_since=False):
        where = ""
        if m is not None and m is not self:
            where = f" (its layer {names_of(self).get(id(m), '?')}: {m._describe()})"
        if ran_since:
            raise RuntimeError(f"{self._describe()}{where}: that layer ran forward or backward "
                               "on its own since this forward; run forward again")
        raise RuntimeError(
            f"{self._describe()}{where}: backward called before forward, twice after "
            "one forward, or after a forward under no_grad() (predict, evaluate), "
            "which keeps no cache; run forward first")

    def check_dout(self, dout: np.ndarray) -> np.ndarray:
        """``dout`` checked against the latest recorded output: a numpy array of its shape;
        another float dtype is cast to the output's (float32 stays float32)."""
        if not isinstance(dout, np.ndarray):
            raise TypeError(f"{self._describe()}: dout must be a numpy array, "
                            f"got {type(dout).__name__}")
        calls = self.__dict__.get("_calls")
        spec = calls[-1].spec if calls else None
        if spec is None:
            return dout
        shape, dtype = spec
        if dout.shape != shape:
            raise ValueError(f"{self._describe()}: dout must have the shape of the last "
                             f"output, {shape}, got {dout.shape}")
        return dout.astype(dtype, copy=False)

    def take_cache(self, dout: np.ndarray) -> tuple[Any, np.ndarray]:
        """The cache of the latest forward and ``dout`` checked by :meth:`check_dout`, after
        :meth:`check_ready`; the record is released, so the next backward undoes the call
        before (or, if there is none, is an error)."""
        self.check_ready()
        dout = self.check_dout(dout)
        return self.__dict__["_calls"].pop().cache, dout

    def _describe(self):
        return repr(self) if next(self.children(), None) is None else type(self).__name__

    # -- what a layer holds --------------------------------------------------------
    def _members(self):
        """(name, value) for every Layer or Parameter attribute, in assignment order; a list,
        tuple or dict attribute contributes ``name.i`` / ``name.key`` entries. A Layer or
        Parameter anywhere else in an attribute (a list in a list, a set) is an error."""
        return walk_members(self, _INTERNAL, (Layer, Parameter))

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """(name, layer) for each direct sub-layer."""
        return ((n, v) for n, v in self._members() if isinstance(v, Layer))

    def children(self) -> Iterator[Layer]:
        return (layer for _, layer in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """(dotted name, layer) for this layer ("") and every layer inside it, parents
        first, each once. The names are the state-dict prefixes: "1.body.0", ..."""
        seen = set()

        def walk(module, name):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield name, module
            for child_name, child in module.named_children():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        return walk(self, prefix)

    def modules(self) -> Iterator[Layer]:
        return (m for _, m in self.named_modules())

    def get_submodule(self, target: str) -> Layer:
        """The sub-layer with dotted name ``target`` ("" is this layer), e.g. "1.body.0";
        a layer used in several places is found under each of its names."""
        module = self
        for i, part in enumerate(target.split(".") if target else ()):
            child = dict(module.named_children()).get(part)
            if child is None:
                where = ".".join(target.split(".")[:i]) or "the model"
                raise KeyError(f"{type(self).__name__} has no layer named {target!r}: "
                               f"{where} has no child {part!r}")
            module = child
        return module

    def _own_parameters(self):
        return ((n, v) for n, v in self._members() if isinstance(v, Parameter))

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter of this layer and its sub-layers,
        each once (a tied parameter under its first name), in state-dict order."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, p in module._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Keep ``value`` (an array, or None) as attribute ``name``, saved in the state dict
        but not trained (e.g. batch-norm's running statistics); a None buffer is skipped by
        the state dict, as in PyTorch. Reassigning the attribute keeps it registered."""
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: buffer name must be a string, "
                            f"got {type(name).__name__}")
        buffers = self.__dict__.setdefault("_buffer_names", [])
        taken = (name in _INTERNAL or hasattr(type(self), name)
                 or (name in self.__dict__ and name not in buffers))
        if not name.isidentifier() or taken:
            why = "an attribute, method, parameter or sub-layer" if name.isidentifier() \
                else "not a Python identifier"
            raise BufferNameError(f"{type(self).__name__}: invalid buffer name {name!r}: it is "
                                  f"{why}; choose another name")
        if name not in buffers:
            buffers.append(name)
        setattr(self, name, None if value is None else np.asarray(value))

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name in module.__dict__.get("_buffer_names", ()):
                if getattr(module, name) is not None:
                    yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    def buffers(self) -> list[np.ndarray]:
        return [b for _, b in self.named_buffers()]

    # -- modes and dtype -----------------------------------------------------------
    def train(self, mode: bool = True) -> Layer:
        """Set training mode (``mode=True``) or eval mode here and in every sub-layer."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the first parameter (None for a layer without parameters)."""
        p = next(self.named_parameters(), None)
        return None if p is None else p[1].dtype

    def astype(self, dtype: DTypeLike) -> Layer:
        """Cast every parameter and floating buffer to ``dtype`` (a floating type) in place;
        pending caches are dropped. Returns self."""
        dtype = float_dtype(f"{type(self).__name__}.astype", dtype)
        for p in self.parameters():
            p.astype(dtype)
        for m in self.modules():
            for name in m.__dict__.get("_buffer_names", ()):
                b = getattr(m, name)
                if b is not None and np.issubdtype(b.dtype, np.floating):
                    setattr(m, name, b.astype(dtype))
            m._stack().clear()
        return self

    def _add_weight_bias_grads(self, dw, db):
        """weight.grad += dw and, when the layer has a bias, bias.grad += db."""
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)

    def _as_param_dtype(self, a):
        """Cast an input to the layer's parameter dtype (float32 stays float32)."""
        return a.astype(self.dtype, copy=False)

    # -- state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat dict of copies of every parameter and buffer, keys nested as in PyTorch
        ("0.weight", "3.body.1.running_mean", ...). A layer or parameter used in several
        places is listed under every name it has, as in PyTorch."""
        return {key: np.array(read(owner), copy=True) for key, owner in state_entries(self)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> Layer:
        """Load a state dict, all or nothing: every entry is converted to its target's dtype
        and checked (a number, finite, the exact shape; copies of a tied parameter equal)
        before any is assigned; the error names the entries that are wrong."""
        values = check_state(self, state)
        for key, owner in state_entries(self):
            write(owner, values[key])
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the state dict to an .npz file atomically (loadable with :meth:`load`)."""
        save_npz(path, {**self.state_dict(), MODEL_MARKER: np.array(1)})

    def load(self, path: str | os.PathLike) -> Layer:
        """Load weights saved by :meth:`save` (or a training checkpoint); returns self.

        The file is read once and never unpickled; every entry's shape and kind are checked
        against this model's before it is decompressed, and NaN/inf weights are refused
        (see :func:`minicnn.serialization.load_weights`).
        """
        return load_weights(self, path)

    # -- description -------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [self.extra_repr()] if self.extra_repr() else []
        lines += [f"({name}): " + repr(child).replace("\n", "\n  ")
                  for name, child in self.named_children()]
        if not any(True for _ in self.named_children()):
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...]) -> None:
        """Print every sub-layer's output shape and parameter count (indented by depth) for
        one input of ``input_shape``, and the total (see :func:`minicnn.layers.summary.summary`)."""
        print_summary(self, input_shape)
