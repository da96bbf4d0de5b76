"""Sequential: a chain of layers that passes arrays forward and gradients back."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..layers.base import Layer


class Sequential(Layer):
    """Layers applied in order. Children are named "0", "1", ..., so state-dict keys are
    those of PyTorch's ``nn.Sequential`` with the same layers ("0.weight", "4.running_mean",
    "3.body.0.weight" for a layer nested inside the fourth)."""

    can_skip_input_grad = True

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers = []
        for layer in layers:
            self.append(layer)

    # -- container ---------------------------------------------------------------
    def append(self, layer: Layer) -> Sequential:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: expected a Layer, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """("0", first layer), ("1", second layer), ...; a layer kept anywhere else on a
        Sequential (``seq.extra = Linear(...)``) is an error, since forward would not run it."""
        for name, value in self._members():
            if isinstance(value, Layer) and not name.startswith("layers."):
                raise TypeError(
                    f"Sequential: attribute {name!r} holds a layer that forward does not run "
                    f"(a Sequential runs only its list of layers); add it with append(), or "
                    f"write a Layer of your own that holds both")
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Layer:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    # -- passes ------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer(x)
        return self.record_output(x)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate dL/dout through every layer, filling each parameter's ``.grad``.

        Every layer is checked to hold the cache of a forward before any gradient changes.
        Returns dL/dx; with ``input_grad=False`` the first layer may skip it (returns None).
        An empty Sequential is the identity: it returns ``dout``.
        """
        _, dout = self.take_cache(dout)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if i == 0 and not input_grad and layer.can_skip_input_grad:
                return layer.backward(dout, input_grad=False)
            dout = layer.backward(dout)
        return dout
