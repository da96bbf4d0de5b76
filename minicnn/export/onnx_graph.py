"""minicnn -> ONNX: one small converter per layer type, the containers walked here.

``ONNX_NODES[type(layer)](helper, name, layer, x, in_shape)`` returns the ONNX nodes
computing a built-in leaf layer on tensor ``x`` (of shape ``in_shape``), the
initialisers they read ({name: array}) and the name of their output.
"""
import copy

import numpy as np

from .. import layers as L
from ..functional.geometry import pool_geometry
from ..grad_mode import no_grad
from ..models.sequential import Sequential
from ..serialization import atomic_path
from .common import LEAVES, require, unsupported

ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # the IR of opset 17: readable by onnxruntime >= 1.14


def _weights(name, layer):
    arrays = {f"{name}.weight": layer.weight.data}
    if layer.bias is not None:
        arrays[f"{name}.bias"] = layer.bias.data
    return arrays


def _conv(helper, name, layer, x, in_shape):
    (ph, pw), arrays = layer.padding, _weights(name, layer)
    node = helper.make_node("Conv", [x, *arrays], [f"{name}.out"], name, pads=[ph, pw, ph, pw],
                            kernel_shape=list(layer.kernel_size), strides=list(layer.stride))
    return [node], arrays, f"{name}.out"


def _linear(helper, name, layer, x, in_shape):
    arrays = _weights(name, layer)
    return [helper.make_node("Gemm", [x, *arrays], [f"{name}.out"], name, transB=1)], arrays, \
        f"{name}.out"


def _batchnorm(helper, name, layer, x, in_shape):
    arrays = {f"{name}.{k}": v for k, v in (("weight", layer.weight.data),
                                             ("bias", layer.bias.data),
                                             ("running_mean", layer.running_mean),
                                             ("running_var", layer.running_var))}
    node = helper.make_node("BatchNormalization", [x, *arrays], [f"{name}.out"], name,
                            epsilon=layer.eps)
    return [node], arrays, f"{name}.out"


def _pool_attrs(layer, in_shape):
    """kernel, strides and pads [top, left, bottom, right], ceil_mode as explicit extra
    bottom/right padding: ONNX shape inference rounds ceil_mode output sizes differently
    from PyTorch (which drops a last window starting in the padding), so the graph never
    uses ceil_mode."""
    (ph, pw) = layer.padding
    _, (eh, ew) = pool_geometry(in_shape, layer.kernel_size, layer.stride, layer.padding,
                                layer.ceil_mode)
    return {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
            "pads": [ph, pw, ph + eh, pw + ew]}


def _maxpool(helper, name, layer, x, in_shape):
    attrs = _pool_attrs(layer, in_shape)
    return [helper.make_node("MaxPool", [x], [f"{name}.out"], name, **attrs)], {}, f"{name}.out"


def _avgpool(helper, name, layer, x, in_shape):
    attrs = _pool_attrs(layer, in_shape)
    ph, pw, bottom, right = attrs["pads"]
    nodes, arrays = [], {}
    if layer.count_include_pad and (bottom, right) != (ph, pw):
        # Padding counts in the divisor but ceil_mode's extra cells do not:
        # pad with real zeros first, then count only real cells.
        arrays[f"{name}.pads"] = np.array([0, 0, ph, pw, 0, 0, ph, pw], np.int64)
        nodes.append(helper.make_node("Pad", [x, f"{name}.pads"], [f"{name}.padded"],
                                      name + ".pad"))
        x, attrs["pads"] = f"{name}.padded", [0, 0, bottom - ph, right - pw]
    include = int(layer.count_include_pad and not nodes)
    nodes.append(helper.make_node("AveragePool", [x], [f"{name}.out"], name,
                                  count_include_pad=include, **attrs))
    return nodes, arrays, f"{name}.out"


def _global_avgpool(helper, name, layer, x, in_shape):
    return [helper.make_node("GlobalAveragePool", [x], [f"{name}.gap"], name),
            helper.make_node("Flatten", [f"{name}.gap"], [f"{name}.out"], name + ".flatten",
                             axis=1)], {}, f"{name}.out"


def _simple(op, attrs=lambda layer: {}):
    def convert(helper, name, layer, x, in_shape):
        return [helper.make_node(op, [x], [f"{name}.out"], name, **attrs(layer))], {}, \
            f"{name}.out"
    return convert


ONNX_NODES = {
    L.Conv2D: _conv, L.Linear: _linear, L.BatchNorm1D: _batchnorm, L.BatchNorm2D: _batchnorm,
    L.MaxPool2D: _maxpool, L.AvgPool2D: _avgpool, L.GlobalAvgPool2D: _global_avgpool,
    L.LeakyReLU: _simple("LeakyRelu", lambda layer: {"alpha": layer.negative_slope}),
    L.ReLU: _simple("Relu"), L.Dropout: _simple("Identity"),
    L.Flatten: _simple("Flatten", lambda layer: {"axis": 1}),
}
assert set(ONNX_NODES) == set(LEAVES)


class _Graph:
    """The nodes and initialisers of a graph under construction."""

    def __init__(self, helper):
        self.helper, self.nodes, self.arrays = helper, [], {}

    def add(self, layer, name, x, sample):
        """Add the nodes computing ``layer`` on tensor ``x``; ``sample`` is an input of the
        right shape. Returns (output tensor name, output sample)."""
        if type(layer) is Sequential:
            for i, child in enumerate(layer):
                x, sample = self.add(child, f"{name}.{i}" if name else str(i), x, sample)
            return x, sample
        if type(layer) is L.Residual:
            return self._residual(layer, name, x, sample)
        label = name or "0"
        nodes, arrays, out = ONNX_NODES[type(layer)](self.helper, label, layer, x, sample.shape)
        self.nodes += nodes
        self.arrays.update(arrays)
        return out, layer.forward(sample)

    def _residual(self, layer, name, x, sample):
        body_out, out_sample = self.add(layer.body, f"{name}.body", x, sample)
        skip = x
        if layer.shortcut is not None:
            skip, _ = self.add(layer.shortcut, f"{name}.shortcut", x, sample)
        out = f"{name}.out"
        self.nodes.append(self.helper.make_node("Add", [body_out, skip], [out], f"{name}.add"))
        return out, out_sample


def _input_shape(input_shape):
    ok = isinstance(input_shape, (tuple, list)) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in input_shape)
    if not ok:
        raise TypeError(f"to_onnx: input_shape must be one sample's shape, a tuple of positive "
                        f"ints such as (3, 32, 32), got {input_shape!r}")
    return tuple(int(s) for s in input_shape)


def to_onnx(model, path, input_shape):
    """Write ``model`` in eval mode to ``path`` as an ONNX model (opset 17), atomically.

    ``input_shape`` is one sample's shape, e.g. (3, 32, 32); the graph's input
    ``"input"`` is float32 ``(N, *input_shape)`` with a dynamic batch size ``N`` and its
    output is ``"output"``. Raises TypeError naming every layer ONNX export does not
    know (only minicnn's own layer types are exported, not subclasses of them).
    Returns the ``onnx.ModelProto``.
    """
    input_shape = _input_shape(input_shape)
    onnx = require("onnx", 'pip install "minicnn[export]"')
    bad = unsupported(model)
    if bad:
        raise TypeError(f"to_onnx: cannot export {', '.join(bad)}; supported layers are "
                        f"Sequential, Residual, {', '.join(t.__name__ for t in LEAVES)}")
    helper = onnx.helper
    model = copy.deepcopy(model).astype(np.float32).eval()
    graph = _Graph(helper)
    with no_grad():
        x, sample = graph.add(model, "", "input", np.zeros((1, *input_shape), np.float32))
    initialisers = [onnx.numpy_helper.from_array(a if a.dtype == np.int64 else a.astype(np.float32), k)
                    for k, a in graph.arrays.items()]
    graph.nodes.append(helper.make_node("Identity", [x], ["output"], "output"))
    float32 = onnx.TensorProto.FLOAT
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes, "minicnn",
            [helper.make_tensor_value_info("input", float32, ["N", *input_shape])],
            [helper.make_tensor_value_info("output", float32, ["N", *sample.shape[1:]])],
            initialisers),
        producer_name="minicnn", opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    proto.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    return proto
