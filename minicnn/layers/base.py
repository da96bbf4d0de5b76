"""The Layer base class: a module that finds its parameters, buffers and sub-layers.

As in PyTorch's ``nn.Module`` (and tinygrad's ``get_parameters``), nothing is declared:
a layer's parameters are its :class:`Parameter` attributes, its children are its
``Layer`` attributes (also inside a list, tuple or dict attribute), and non-trainable
state is named with :meth:`Layer.register_buffer`. What stays explicit is the math:
``forward(x)`` keeps in ``self.cache`` what ``backward(dout)`` needs, and ``backward``
adds parameter gradients into ``.grad`` and returns dL/dx.

The protocol a layer follows (every built-in layer does):

- ``forward`` stores its cache in ``self.cache`` and returns ``self.record_output(out)``;
- ``backward`` starts with ``cache, dout = self.take_cache(dout)`` (a leaf layer) or with
  ``self.check_ready(); dout = self.check_dout(dout)`` (a layer built from children),
  which raise a clear error, before any gradient changes, when there was no forward since
  the last backward, or the forward ran under :func:`minicnn.no_grad`, or ``dout`` does not
  match the output. The cache lives until one backward takes it.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
from numpy.typing import DTypeLike

from ..grad_mode import is_grad_enabled, no_grad
from ..parameter import Parameter
from ..serialization import save_npz

_MARKER = "__minicnn_model__"
_INTERNAL = {"_cache", "_out_spec", "_buffer_names", "training"}


def short(p):
    """(3, 3) -> 3 for a readable repr; (3, 5) stays a pair."""
    return p[0] if p[0] == p[1] else p


def as_generator(seed):
    """A numpy Generator from a seed, an existing Generator, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


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

    def __init__(self) -> None:
        self.training = True
        self._buffer_names = []
        self._out_spec = None
        self.cache = None

    # -- calling -----------------------------------------------------------------
    def __call__(self, x: np.ndarray) -> np.ndarray:
        recorder = Layer._recorder
        if recorder is None:
            return self.forward(x)
        row = recorder.enter(self, x)
        out = self.forward(x)
        recorder.leave(row, out)
        return out

    _recorder = None  # set by summary() and layer_output() to watch every call

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    # -- the cache protocol ------------------------------------------------------
    @property
    def cache(self) -> Any:
        """What the last forward kept for backward; None after a backward took it.

        Inside a ``no_grad()`` block an assignment stores nothing (and drops an older cache).
        """
        return self.__dict__.get("_cache")

    @cache.setter
    def cache(self, value: Any) -> None:
        self.__dict__["_cache"] = value if is_grad_enabled() else None

    def record_output(self, out: np.ndarray) -> np.ndarray:
        """Return ``out``, noting its shape and dtype, which backward's dout must match."""
        self._out_spec = (out.shape, out.dtype) if is_grad_enabled() else None
        return out

    def check_dout(self, dout: np.ndarray) -> np.ndarray:
        """``dout`` checked against the recorded output: a numpy array of its shape; another
        float dtype is cast to the output's (float32 stays float32)."""
        if not isinstance(dout, np.ndarray):
            raise TypeError(f"{self._describe()}: dout must be a numpy array, "
                            f"got {type(dout).__name__}")
        spec = self.__dict__.get("_out_spec")
        if spec is None:
            return dout
        shape, dtype = spec
        if dout.shape != shape:
            raise ValueError(f"{self._describe()}: dout must have the shape of the last "
                             f"output, {shape}, got {dout.shape}")
        return dout.astype(dtype, copy=False)

    def check_ready(self) -> None:
        """Raise a clear error unless every leaf layer inside holds the cache of a forward."""
        for name, m in self.named_modules():
            if m.cache is None and next(m.children(), None) is None:
                where = f" (its layer {name}: {m._describe()})" if name else ""
                raise RuntimeError(
                    f"{self._describe()}{where}: backward called before forward, twice after "
                    "one forward, or after a forward under no_grad() (predict, evaluate), "
                    "which keeps no cache; run forward first")

    def take_cache(self, dout: np.ndarray) -> tuple[Any, np.ndarray]:
        """The cache of the last forward and ``dout`` checked by :meth:`check_dout`; the cache
        is released, so a second backward without a new forward is an error."""
        self.check_ready()
        dout = self.check_dout(dout)
        cache, self.cache, self._out_spec = self.cache, None, None
        return cache, dout

    def _describe(self):
        return repr(self) if next(self.children(), None) is None else type(self).__name__

    # -- what a layer holds --------------------------------------------------------
    def _members(self):
        """(name, value) for every Layer or Parameter attribute, in assignment order; a list,
        tuple or dict attribute contributes ``name.i`` / ``name.key`` entries."""
        for name, value in vars(self).items():
            if name in _INTERNAL:
                continue
            if isinstance(value, (Layer, Parameter)):
                yield name, value
            elif isinstance(value, (list, tuple, dict)):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                for key, v in items:
                    if isinstance(v, (Layer, Parameter)):
                        yield f"{name}.{key}", v

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
        """The sub-layer with dotted name ``target`` ("" is this layer), e.g. "1.body.0"."""
        if target == "":
            return self
        modules = dict(self.named_modules())
        if target not in modules:
            raise KeyError(f"{type(self).__name__} has no layer named {target!r}; its layers "
                           f"are {[n for n in modules if n]}")
        return modules[target]

    def _own_parameters(self):
        return ((n, v) for n, v in self._members() if isinstance(v, Parameter))

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter of this layer and its sub-layers,
        each once, in state-dict order."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, p in module._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Keep ``value`` (an array) as attribute ``name``, saved in the state dict but not
        trained (e.g. batch-norm's running statistics). Reassigning the attribute keeps it
        registered."""
        if not isinstance(name, str) or not name.isidentifier() or name in _INTERNAL:
            raise ValueError(f"{type(self).__name__}: invalid buffer name {name!r}")
        buffers = self.__dict__.setdefault("_buffer_names", [])
        if name not in buffers:
            buffers.append(name)
        setattr(self, name, np.asarray(value))

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name in module.__dict__.get("_buffer_names", ()):
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
        """Cast every parameter and floating buffer to ``dtype`` in place; returns self."""
        for p in self.parameters():
            p.astype(dtype)
        for m in self.modules():
            for name in m.__dict__.get("_buffer_names", ()):
                b = getattr(m, name)
                if np.issubdtype(b.dtype, np.floating):
                    setattr(m, name, b.astype(dtype))
            m.cache, m._out_spec = None, None
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
    def _state_entries(self):
        """(key, Parameter) or (key, (layer, buffer name)) in PyTorch's state-dict order:
        each layer's parameters, then its buffers, then its children's."""
        seen = set()
        for prefix, module in self.named_modules():
            pre = prefix + "." if prefix else ""
            for name, p in module._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield pre + name, p
            for name in module.__dict__.get("_buffer_names", ()):
                yield pre + name, (module, name)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat dict of copies of every parameter and buffer, keys nested as in PyTorch
        ("0.weight", "3.body.1.running_mean", ...)."""
        return {key: (np.array(e.data, copy=True) if isinstance(e, Parameter)
                      else np.array(getattr(*e), copy=True))
                for key, e in self._state_entries()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> Layer:
        """Load a state dict; every entry is checked first, so nothing is half-loaded."""
        entries = dict(self._state_entries())
        current = {k: (e.data if isinstance(e, Parameter) else getattr(*e))
                   for k, e in entries.items()}
        problems = state_problems(current, state)
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for key, e in entries.items():
            if isinstance(e, Parameter):
                e.data = np.array(state[key], dtype=e.dtype, copy=True)
                e.grad = np.zeros_like(e.data)
            else:
                module, name = e
                setattr(module, name, np.array(state[key], dtype=getattr(module, name).dtype))
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the state dict to an .npz file atomically (loadable with :meth:`load`)."""
        save_npz(path, {**self.state_dict(), _MARKER: np.array(1)})

    def load(self, path: str | os.PathLike) -> Layer:
        """Load weights saved by :meth:`save` (or a training checkpoint); returns self.

        The file is read once and never unpickled; every entry's shape and kind are checked
        against this model's before it is decompressed, and NaN/inf weights are refused
        (see :func:`minicnn.training.checkpoint.load_weights`).
        """
        from ..training.checkpoint import load_weights  # here: training imports layers
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
        one input of ``input_shape``, and the total. If a layer fails, the rows computed so
        far are printed, then the error names the layer and the shape it got."""
        from .summary import print_summary
        print_summary(self, input_shape)

    # -- input checks ------------------------------------------------------------
    def _check_input(self, x, ndim, channels=None, layout=None):
        """Raise a clear error for a non-array, wrong rank or wrong channel count."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, got {type(x).__name__}")
        self._check_real(x)
        layout = layout or ("(N, C, H, W)" if ndim == 4 else "(N, D)")
        if x.ndim != ndim:
            raise ValueError(
                f"{self!r}: expected input of shape {layout} ({ndim}-D), got shape {x.shape}")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(
                f"{self!r}: expected {channels} channels/features on axis 1, "
                f"got input of shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{self!r}: got an empty batch, shape {x.shape}")

    def _check_window(self, x, kernel, padding):
        """Raise a clear error when the kernel does not fit in the padded input."""
        if any(s + 2 * p < k for s, p, k in zip(x.shape[2:], padding, kernel)):
            raise ValueError(f"{self!r}: kernel {kernel} is larger than the padded input; "
                             f"input shape {x.shape}, padding {padding}")

    def _check_any(self, x):
        """An element-wise layer's input: any shape, floats (integers become float32)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, got {type(x).__name__}")
        self._check_real(x)
        return self._as_float(x)

    def _check_real(self, x):
        """Raise TypeError unless ``x`` holds real numbers: a complex input would be cast to
        floats, silently dropping its imaginary part; strings and objects are refused too."""
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self!r}: expected real numbers (floats, integers or booleans), "
                            f"got an array of {x.dtype}")

    @staticmethod
    def _as_float(x):
        return x if x.dtype.kind == "f" else x.astype(np.float32)


class preserved_state:  # noqa: N801 - used like a function: with preserved_state(model):
    """Run forwards that leave no trace: eval mode and ``no_grad`` inside, and afterwards
    every sub-layer's mode, cache and recorded output exactly as before."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = [(m, m.training, m.__dict__.get("_cache"), m.__dict__.get("_out_spec"))
                      for m in self.model.modules()]
        self.model.eval()
        self.grad = no_grad()
        self.grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        for m, training, cache, spec in self.saved:
            m.training = training
            m.__dict__["_cache"], m.__dict__["_out_spec"] = cache, spec
        return False


def state_problems(current, state):
    """What is missing, extra or mis-shaped in ``state`` against ``current`` (key -> array)."""
    problems = []
    missing = [k for k in current if k not in state]
    extra = [k for k in state if k not in current]
    if missing:
        problems.append(f"missing entries {missing}")
    if extra:
        problems.append(f"unexpected entries {extra}")
    for k, ref in current.items():
        if k in state and np.shape(state[k]) != np.shape(ref):
            problems.append(f"entry {k!r} should have shape {np.shape(ref)}, "
                            f"got {np.shape(state[k])}")
    return problems
