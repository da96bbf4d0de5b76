"""Take a minicnn network to PyTorch (and back) or to an ONNX file.

``to_torch(model)`` builds the same network from ``torch.nn`` modules, whose state-dict
keys and values equal ``model.state_dict()``; ``from_torch(module)`` goes the other way
for the layers minicnn has. A layer used twice stays one module used twice, and tied
parameters stay tied, both ways. ``to_onnx(model, path, input_shape)`` writes the
network in eval mode (BatchNorm uses its running statistics, Dropout is the identity) as
an ONNX graph with a dynamic batch dimension, built with ``onnx.helper`` alone.

Each direction is a table with one small converter per layer type
(:mod:`.pytorch`, :mod:`.onnx_graph`). Only minicnn's own layer types are exported:
a subclass may compute something else, so it is refused by name rather than exported
as its parent.

torch and onnx are optional: they are imported only when these functions run
(``pip install minicnn[export]`` for onnx and onnxruntime).

Two rules differ only in the backward pass: ``MaxPool2D(ties="split")`` shares a tied
window's gradient among its maxima, while ``nn.MaxPool2d`` gives it to one of them.
The forward outputs are identical.
"""
from .onnx_graph import ONNX_IR_VERSION, ONNX_OPSET, to_onnx
from .pytorch import from_torch, to_torch

__all__ = ["ONNX_IR_VERSION", "ONNX_OPSET", "from_torch", "to_onnx", "to_torch"]
