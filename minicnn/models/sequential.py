"""Sequential: a chain of layers that passes arrays forward and gradients back."""
import numpy as np

from ..layers.base import Layer, check_state
from ..serialization import load_npz, save_npz

_MARKER = "__minicnn_model__"


def leaf_layers(model, prefix=""):
    """(dotted name, layer) for every layer inside nested Sequentials; ("", model) for a
    single layer. Names are the state-dict prefixes: "0", "3.1", ..."""
    if not isinstance(model, Sequential):
        yield prefix.rstrip("."), model
        return
    for i, layer in enumerate(model.layers):
        yield from leaf_layers(layer, f"{prefix}{i}.")


class Sequential(Layer):
    """Layers applied in order. State-dict keys are those of PyTorch's ``nn.Sequential``
    with the same layers ("0.weight", "0.bias", "4.running_mean", ...)."""

    can_skip_input_grad = True

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers = []
        for layer in layers:
            self.append(layer)

    # -- container ---------------------------------------------------------------
    def append(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: expected a Layer, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    # -- passes ------------------------------------------------------------------
    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dout, input_grad=True):
        """Back-propagate dL/dout through every layer, filling each parameter's ``.grad``.

        Returns dL/dx; with ``input_grad=False`` the first layer may skip it (returns None).
        """
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if i == 0 and not input_grad and layer.can_skip_input_grad:
                return layer.backward(dout, input_grad=False)
            dout = layer.backward(dout)
        return dout

    # -- parameters, modes, dtype ------------------------------------------------
    def named_parameters(self):
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                yield f"{i}.{name}", p

    def named_buffers(self):
        for i, layer in enumerate(self.layers):
            for name, b in layer.named_buffers():
                yield f"{i}.{name}", b

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        return self

    # -- state -------------------------------------------------------------------
    def state_dict(self):
        """Each layer's parameters then buffers, keys prefixed by its index, as in PyTorch."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.state_dict().items()}

    def load_state_dict(self, state, prefix=""):
        """Load PyTorch-style keys; checks everything first, so nothing is half-loaded."""
        problems = []
        for i, layer in enumerate(self.layers):
            expected = {n: p.data for n, p in layer.named_parameters()}
            expected.update(dict(layer.named_buffers()))
            mine = {k[len(f"{i}."):]: v for k, v in state.items() if k.startswith(f"{i}.")}
            problems += check_state(layer, expected, mine, f"{prefix}{i}.")
        known = {f"{i}." for i in range(len(self.layers))}
        stray = [k for k in state if not any(k.startswith(p) for p in known)]
        if stray:
            problems.append(f"Sequential: unexpected entries {[prefix + k for k in stray]}")
        if problems:
            raise ValueError("; ".join(problems))
        self._assign_state(state)

    def _assign_state(self, state):
        for i, layer in enumerate(self.layers):
            layer._assign_state({k[len(f"{i}."):]: v for k, v in state.items()
                                 if k.startswith(f"{i}.")})

    def save(self, path):
        """Write the state dict to an .npz file atomically."""
        save_npz(path, {**self.state_dict(), _MARKER: np.array(1)})

    def load(self, path):
        """Load weights saved by :meth:`save` (never unpickles); returns self."""
        arrays = load_npz(path, "model file")
        if arrays.pop(_MARKER, None) is None:
            raise ValueError(f"{path!r} is not a saved minicnn model (no {_MARKER} entry)")
        self.load_state_dict(arrays)
        return self

    # -- description -------------------------------------------------------------
    def summary(self, input_shape):
        """Print each layer's output shape and parameter count for one input of ``input_shape``."""
        x = np.zeros((1,) + tuple(input_shape), dtype=self.dtype or np.float32)
        saved = [(layer.training, layer.cache, getattr(layer, "_out_spec", None))
                 for layer in self.layers]
        was_training, rows = self.training, []
        try:
            self.eval()
            for i, layer in enumerate(self.layers):
                x = layer(x)
                n = sum(p.size for p in layer.parameters())
                rows.append((f"({i}) {layer!r}", str((None,) + x.shape[1:]), f"{n:,}"))
        finally:
            for layer, (training, cache, spec) in zip(self.layers, saved):
                layer.train(training)
                layer.cache, layer._out_spec = cache, spec
            self.training = was_training
        total = sum(p.size for p in self.parameters())
        header = ("Layer", "Output shape", "Params")
        widths = [max(len(r[k]) for r in rows + [header]) for k in range(3)]
        line = "-" * (sum(widths) + 4)
        fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"
        print("\n".join([fmt(header), line] + [fmt(r) for r in rows] +
                        [line, f"Total parameters: {total:,}"]))

    def __repr__(self):
        if not self.layers:
            return "Sequential()"
        inner = "\n".join(f"  ({i}): " + repr(layer).replace("\n", "\n  ")
                          for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
