"""Take a minicnn network to PyTorch (and back) or to an ONNX file.

``to_torch(model)`` builds a ``torch.nn.Sequential`` whose state-dict keys and values
equal ``model.state_dict()``; ``from_torch(module)`` goes the other way for the layers
minicnn has. ``to_onnx(model, path, input_shape)`` writes the network in eval mode
(BatchNorm uses its running statistics, Dropout is the identity) as an ONNX graph
with a dynamic batch dimension, built with ``onnx.helper`` alone.

torch and onnx are optional: they are imported only when these functions run
(``pip install minicnn[export]`` for onnx and onnxruntime).

Two rules differ only in the backward pass: ``MaxPool2D(ties="split")`` shares a tied
window's gradient among its maxima, while ``nn.MaxPool2d`` gives it to one of them.
The forward outputs are identical.
"""
import copy

import numpy as np

from . import layers as L
from .functional.geometry import pool_geometry
from .grad_mode import no_grad
from .models.sequential import Sequential
from .serialization import atomic_path

ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # the IR of opset 17: readable by onnxruntime >= 1.14


def _require(module, extra_hint):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"minicnn.export needs the optional package {module!r}; "
                          f"install it with {extra_hint}") from None


def _torch():
    return _require("torch", "pip install torch (see https://pytorch.org)")


# -- PyTorch -------------------------------------------------------------------------

def _tensor(torch, a):
    return torch.from_numpy(np.array(a, copy=True))


def to_torch(model):
    """A ``torch.nn.Sequential`` with the layers, weights and mode of ``model``.

    Parameters keep their dtype (float32 stays float32, float64 stays float64).
    GlobalAvgPool2D becomes ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())``
    at the same index, so the state-dict keys stay aligned; a :class:`Residual` becomes a
    small ``nn.Module`` with the same ``body``/``shortcut`` children, so nested keys
    ("3.body.0.weight") are equal too. Raises TypeError naming any layer without a
    PyTorch counterpart.
    """
    torch = _torch()
    unsupported = [f"({name or 0}) {layer._describe()}" for name, layer in model.named_modules()
                   if not _known(layer)]
    if unsupported:
        raise TypeError(f"to_torch: no PyTorch counterpart for {', '.join(unsupported)}")
    net = _to_torch_module(torch, model)
    if not isinstance(net, torch.nn.Sequential) or isinstance(model, L.GlobalAvgPool2D):
        net = torch.nn.Sequential(net)
    return net.train(model.training)


def _torch_residual_class(torch):
    """``nn.Module`` computing body(x) + shortcut(x) (identity when there is no shortcut)."""
    global _TorchResidual
    if _TorchResidual is None:
        class Residual(torch.nn.Module):
            def __init__(self, body, shortcut=None):
                super().__init__()
                self.body = body
                if shortcut is not None:
                    self.shortcut = shortcut

            def forward(self, x):
                skip = self.shortcut(x) if hasattr(self, "shortcut") else x
                return self.body(x) + skip

        Residual.__module__ = __name__
        _TorchResidual = Residual
    return _TorchResidual


_TorchResidual = None


def _to_torch_module(torch, layer):
    nn = torch.nn
    if isinstance(layer, Sequential):
        return nn.Sequential(*(_to_torch_module(torch, c) for c in layer))
    if isinstance(layer, L.Residual):
        shortcut = None if layer.shortcut is None else _to_torch_module(torch, layer.shortcut)
        return _torch_residual_class(torch)(_to_torch_module(torch, layer.body), shortcut)
    dtype = getattr(torch, str(layer.dtype)) if layer.dtype is not None else None
    if isinstance(layer, L.Conv2D):
        m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                      layer.stride, layer.padding, bias=layer.bias is not None, dtype=dtype)
    elif isinstance(layer, L.Linear):
        m = nn.Linear(layer.in_features, layer.out_features,
                      bias=layer.bias is not None, dtype=dtype)
    elif isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
        cls = nn.BatchNorm2d if isinstance(layer, L.BatchNorm2D) else nn.BatchNorm1d
        m = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, dtype=dtype)
    elif isinstance(layer, L.MaxPool2D):
        m = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding,
                         ceil_mode=layer.ceil_mode)
    elif isinstance(layer, L.AvgPool2D):
        m = nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding,
                         ceil_mode=layer.ceil_mode, count_include_pad=layer.count_include_pad)
    elif isinstance(layer, L.GlobalAvgPool2D):
        m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    elif isinstance(layer, L.LeakyReLU):
        m = nn.LeakyReLU(layer.negative_slope)
    elif isinstance(layer, L.ReLU):
        m = nn.ReLU()
    elif isinstance(layer, L.Dropout):
        m = nn.Dropout(layer.p)
    else:  # Flatten
        m = nn.Flatten()
    if layer.state_dict():
        m.load_state_dict({k: _tensor(torch, v) for k, v in layer.state_dict().items()})
    return m.train(layer.training)


_BUILT_IN = (L.Conv2D, L.Linear, L.BatchNorm1D, L.BatchNorm2D, L.MaxPool2D, L.AvgPool2D,
             L.GlobalAvgPool2D, L.ReLU, L.LeakyReLU, L.Dropout, L.Flatten)
_CONTAINERS = (Sequential, L.Residual)


def _known(layer):
    """Built-in layers only: a subclass may compute something else."""
    return type(layer) in _BUILT_IN + _CONTAINERS


def _is_global_avg_pool(torch, m):
    nn = torch.nn
    return (isinstance(m, nn.Sequential) and len(m) == 2
            and isinstance(m[0], nn.AdaptiveAvgPool2d) and m[0].output_size in (1, (1, 1))
            and isinstance(m[1], nn.Flatten) and m[1].start_dim == 1 and m[1].end_dim == -1)


def _from_torch_module(torch, m, ties):
    """One torch module -> one minicnn layer, or a message saying why not."""
    nn = torch.nn
    dtype = next((p.detach().cpu().numpy().dtype for p in m.parameters()), None)
    kw = {} if dtype is None else {"dtype": dtype}
    if _is_global_avg_pool(torch, m):
        return L.GlobalAvgPool2D()
    if isinstance(m, nn.Sequential):
        return _from_torch_sequential(torch, m, ties)
    if isinstance(m, _torch_residual_class(torch)):
        parts = [_from_torch_module(torch, c, ties) for c in m.children()]
        problems = [why for why in parts if isinstance(why, str)]
        return problems[0] if problems else L.Residual(*parts)
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros" \
                or isinstance(m.padding, str):
            return "minicnn's Conv2D has groups=1, dilation=1 and integer zero padding only"
        return L.Conv2D(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                        bias=m.bias is not None, **kw)
    if isinstance(m, nn.Linear):
        return L.Linear(m.in_features, m.out_features, bias=m.bias is not None, **kw)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not (m.affine and m.track_running_stats) or m.momentum is None:
            return "minicnn's BatchNorm needs affine=True, track_running_stats=True, a float momentum"
        cls = L.BatchNorm2D if isinstance(m, nn.BatchNorm2d) else L.BatchNorm1D
        return cls(m.num_features, eps=m.eps, momentum=m.momentum, **kw)
    if isinstance(m, nn.MaxPool2d):
        if m.dilation not in (1, (1, 1)) or m.return_indices:
            return "minicnn's MaxPool2D has dilation=1 and no return_indices"
        return L.MaxPool2D(m.kernel_size, m.stride, m.padding, m.ceil_mode, ties=ties)
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override is not None:
            return "minicnn's AvgPool2D has no divisor_override"
        return L.AvgPool2D(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    if isinstance(m, nn.LeakyReLU):
        return L.LeakyReLU(m.negative_slope)
    if isinstance(m, nn.ReLU):
        return L.ReLU()
    if isinstance(m, nn.Dropout):
        return L.Dropout(m.p)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            return "minicnn's Flatten keeps axis 0 and flattens the rest (start_dim=1, end_dim=-1)"
        return L.Flatten()
    return "minicnn has no such layer"


def _from_torch_sequential(torch, module, ties):
    children = list(module.children())
    converted = [_from_torch_module(torch, m, ties) for m in children]
    problems = [f"({i}) {m}: {why}" for i, (m, why) in enumerate(zip(children, converted))
                if isinstance(why, str)]
    if problems:
        raise TypeError("from_torch: cannot convert " + "; ".join(problems))
    model = Sequential(*converted)
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    model.load_state_dict(state)
    return model.train(module.training)


def from_torch(module, ties="split"):
    """A minicnn :class:`Sequential` with the layers, weights and mode of a torch module.

    ``module`` is an ``nn.Sequential`` (nested ones allowed; the pair
    ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())`` becomes GlobalAvgPool2D, and
    the residual modules :func:`to_torch` makes become :class:`Residual`) or a single
    supported module. MaxPool2D layers get the tie rule ``ties``.
    Raises TypeError naming every module that minicnn cannot represent.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Sequential) or _is_global_avg_pool(torch, module):
        module = torch.nn.Sequential(module).train(module.training)
    return _from_torch_sequential(torch, module, ties)


# -- ONNX ----------------------------------------------------------------------------

def _pool_pads(layer, in_shape):
    """ONNX pads [top, left, bottom, right]: ceil_mode as explicit extra bottom/right padding.

    ONNX shape inference rounds ceil_mode output sizes differently from PyTorch (which
    drops a last window starting in the padding), so the graph never uses ceil_mode.
    """
    (ph, pw) = layer.padding
    _, (eh, ew) = pool_geometry(in_shape, layer.kernel_size, layer.stride, layer.padding,
                                layer.ceil_mode)
    return [ph, pw, ph + eh, pw + ew]


def _onnx_nodes(helper, name, layer, x, in_shape):
    """ONNX nodes and initialisers computing ``layer`` on tensor ``x`` of shape ``in_shape``.

    Returns (nodes, {initialiser name: array}, output name).
    """
    out, P = f"{name}.out", lambda k: f"{name}.{k}"
    arrays = {}
    if isinstance(layer, L.Conv2D):
        (ph, pw) = layer.padding
        arrays = {P("weight"): layer.weight.data}
        if layer.bias is not None:
            arrays[P("bias")] = layer.bias.data
        node = helper.make_node("Conv", [x, *arrays], [out], name, pads=[ph, pw, ph, pw],
                                kernel_shape=list(layer.kernel_size), strides=list(layer.stride))
        return [node], arrays, out
    if isinstance(layer, (L.MaxPool2D, L.AvgPool2D)):
        attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
                 "pads": _pool_pads(layer, in_shape)}
        if isinstance(layer, L.MaxPool2D):
            return [helper.make_node("MaxPool", [x], [out], name, **attrs)], arrays, out
        ph, pw, bottom, right = attrs["pads"]
        nodes = []
        if layer.count_include_pad and (bottom, right) != (ph, pw):
            # Padding counts in the divisor but ceil_mode's extra cells do not:
            # pad with real zeros first, then count only real cells.
            arrays[P("pads")] = np.array([0, 0, ph, pw, 0, 0, ph, pw], np.int64)
            nodes.append(helper.make_node("Pad", [x, P("pads")], [P("padded")], name + ".pad"))
            x, attrs["pads"] = P("padded"), [0, 0, bottom - ph, right - pw]
        include = int(layer.count_include_pad and not nodes)
        nodes.append(helper.make_node("AveragePool", [x], [out], name,
                                      count_include_pad=include, **attrs))
        return nodes, arrays, out
    if isinstance(layer, L.GlobalAvgPool2D):
        return [helper.make_node("GlobalAveragePool", [x], [P("gap")], name),
                helper.make_node("Flatten", [P("gap")], [out], name + ".flatten", axis=1)], {}, out
    if isinstance(layer, L.Linear):
        arrays = {P("weight"): layer.weight.data}
        if layer.bias is not None:
            arrays[P("bias")] = layer.bias.data
        return [helper.make_node("Gemm", [x, *arrays], [out], name, transB=1)], arrays, out
    if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
        arrays = {P(k): v for k, v in (("weight", layer.weight.data), ("bias", layer.bias.data),
                                       ("running_mean", layer.running_mean),
                                       ("running_var", layer.running_var))}
        node = helper.make_node("BatchNormalization", [x, *arrays], [out], name, epsilon=layer.eps)
        return [node], arrays, out
    simple = {L.LeakyReLU: ("LeakyRelu", lambda: {"alpha": layer.negative_slope}),
              L.ReLU: ("Relu", dict), L.Dropout: ("Identity", dict),
              L.Flatten: ("Flatten", lambda: {"axis": 1})}
    op, make_attrs = simple[type(layer)]
    return [helper.make_node(op, [x], [out], name, **make_attrs())], {}, out


def _onnx_graph(helper, layer, name, x, sample):
    """ONNX nodes computing ``layer`` (any nesting) on tensor ``x``; ``sample`` is an input
    of the right shape. Returns (nodes, {initialiser: array}, output name, output sample,
    unsupported layers)."""
    if isinstance(layer, Sequential) and type(layer) is Sequential:
        nodes, arrays, bad = [], {}, []
        for i, child in enumerate(layer):
            n, a, x, sample, b = _onnx_graph(helper, child, f"{name}.{i}" if name else str(i),
                                             x, sample)
            nodes, bad = nodes + n, bad + b
            arrays.update(a)
        return nodes, arrays, x, sample, bad
    if type(layer) is L.Residual:
        nodes, arrays, body_out, out_sample, bad = _onnx_graph(
            helper, layer.body, f"{name}.body", x, sample)
        skip = x
        if layer.shortcut is not None:
            n, a, skip, _, b = _onnx_graph(helper, layer.shortcut, f"{name}.shortcut", x, sample)
            nodes, bad = nodes + n, bad + b
            arrays.update(a)
        out = f"{name}.out"
        nodes.append(helper.make_node("Add", [body_out, skip], [out], f"{name}.add"))
        return nodes, arrays, out, out_sample, bad
    label = name or "0"
    out_sample = layer.forward(sample)
    if not _known(layer):
        return [], {}, x, out_sample, [f"({label}) {layer!r} ({type(layer).__module__}."
                                       f"{type(layer).__qualname__})"]
    nodes, arrays, out = _onnx_nodes(helper, label, layer, x, sample.shape)
    return nodes, arrays, out, out_sample, []


def to_onnx(model, path, input_shape):
    """Write ``model`` in eval mode to ``path`` as an ONNX model (opset 17), atomically.

    ``input_shape`` is one sample's shape, e.g. (3, 32, 32); the graph's input
    ``"input"`` is float32 ``(N, *input_shape)`` with a dynamic batch size ``N`` and its
    output is ``"output"``. Raises TypeError naming every layer ONNX export does not
    know (only minicnn's built-in layers are exported). Returns the ``onnx.ModelProto``.
    """
    onnx = _require("onnx", 'pip install "minicnn[export]"')
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    model = copy.deepcopy(model).astype(np.float32).eval()
    sample = np.zeros((1, *input_shape), np.float32)  # carries each layer's input shape
    with no_grad():
        nodes, arrays, x, sample, unsupported = _onnx_graph(helper, model, "", "input", sample)
    if unsupported:
        raise TypeError(f"to_onnx: cannot export {', '.join(unsupported)}; supported layers "
                        f"are Sequential, Residual, {', '.join(t.__name__ for t in _BUILT_IN)}")
    initialisers = [numpy_helper.from_array(a if a.dtype == np.int64 else a.astype(np.float32), k)
                    for k, a in arrays.items()]
    nodes.append(helper.make_node("Identity", [x], ["output"], "output"))
    out_shape = sample.shape[1:]
    float32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "minicnn", [helper.make_tensor_value_info("input", float32, ["N", *input_shape])],
        [helper.make_tensor_value_info("output", float32, ["N", *out_shape])], initialisers)
    proto = helper.make_model(graph, producer_name="minicnn",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    proto.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    return proto
