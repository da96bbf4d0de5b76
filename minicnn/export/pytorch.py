"""minicnn <-> PyTorch: one small converter per layer type in each direction.

``TO_TORCH[type(layer)](nn, layer, dtype)`` builds the ``torch.nn`` module of a built-in
leaf layer (its state is copied afterwards); ``from_torch_table(nn)`` maps a ``torch.nn``
module type to a converter returning the minicnn layer, or a string saying why minicnn
cannot represent that module. Containers (Sequential, Residual) are walked here, once per
distinct layer, so a layer used twice becomes one module used twice.
"""
import numpy as np

from .. import layers as L
from ..layers.state import state_entries
from ..models.sequential import Sequential
from .common import require, unsupported

_TorchResidual = None


def torch_residual_class(torch):
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


# -- minicnn -> torch ----------------------------------------------------------------

def _batchnorm(cls_name):
    return lambda nn, m, dt: getattr(nn, cls_name)(m.num_features, eps=m.eps,
                                                   momentum=m.momentum, dtype=dt)


TO_TORCH = {
    L.Conv2D: lambda nn, m, dt: nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                          m.stride, m.padding, bias=m.bias is not None, dtype=dt),
    L.Linear: lambda nn, m, dt: nn.Linear(m.in_features, m.out_features,
                                          bias=m.bias is not None, dtype=dt),
    L.BatchNorm1D: _batchnorm("BatchNorm1d"),
    L.BatchNorm2D: _batchnorm("BatchNorm2d"),
    L.MaxPool2D: lambda nn, m, dt: nn.MaxPool2d(m.kernel_size, m.stride, m.padding,
                                                ceil_mode=m.ceil_mode),
    L.AvgPool2D: lambda nn, m, dt: nn.AvgPool2d(m.kernel_size, m.stride, m.padding,
                                                ceil_mode=m.ceil_mode,
                                                count_include_pad=m.count_include_pad),
    L.GlobalAvgPool2D: lambda nn, m, dt: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    L.LeakyReLU: lambda nn, m, dt: nn.LeakyReLU(m.negative_slope),
    L.ReLU: lambda nn, m, dt: nn.ReLU(),
    L.Dropout: lambda nn, m, dt: nn.Dropout(m.p),
    L.Flatten: lambda nn, m, dt: nn.Flatten(),
}


def _to_module(torch, layer, done):
    """The torch module of ``layer``; ``done`` maps id(layer) -> module, so a layer met
    twice gives the same module."""
    if id(layer) in done:
        return done[id(layer)]
    if type(layer) is Sequential:
        m = torch.nn.Sequential(*(_to_module(torch, c, done) for c in layer))
    elif type(layer) is L.Residual:
        shortcut = None if layer.shortcut is None else _to_module(torch, layer.shortcut, done)
        m = torch_residual_class(torch)(_to_module(torch, layer.body, done), shortcut)
    else:
        dtype = None if layer.dtype is None else getattr(torch, str(layer.dtype))
        m = TO_TORCH[type(layer)](torch.nn, layer, dtype)
        state = layer.state_dict()
        if state:
            m.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()})
    done[id(layer)] = m.train(layer.training)
    return m


def _tie(root, groups, get_parameter):
    """Make every name of each group of state keys point at the parameter of its first
    name (``get_parameter(key)``), by setting the attribute on the owning submodule."""
    for keys in groups:
        first = get_parameter(keys[0])
        for key in keys[1:]:
            path, _, attr = key.rpartition(".")
            owner = root.get_submodule(path)
            if getattr(owner, attr) is not first:
                setattr(owner, attr, first)


def _tied_groups(named):
    """Lists of names that share one parameter object, from (name, parameter) pairs."""
    groups = {}
    for name, p in named:
        groups.setdefault(id(p), []).append(name)
    return [keys for keys in groups.values() if len(keys) > 1]


def to_torch(model):
    """The same network built from ``torch.nn`` modules, with the weights and mode of
    ``model``: ``nn.Sequential`` for a Sequential, the module itself for a single layer.

    Its state-dict keys and values equal ``model.state_dict()``; parameters keep their
    dtype (float32 stays float32, float64 stays float64). GlobalAvgPool2D becomes
    ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())`` and a :class:`Residual` a
    small ``nn.Module`` with the same ``body``/``shortcut`` children, so nested keys
    ("3.body.0.weight") are equal too. A layer used twice becomes one module used twice
    and tied parameters stay tied. Raises TypeError naming every layer without a PyTorch
    counterpart, a subclass of a built-in layer included.
    """
    torch = require("torch", "pip install torch (see https://pytorch.org)")
    bad = unsupported(model)
    if bad:
        raise TypeError(f"to_torch: no PyTorch counterpart for {', '.join(bad)}")
    net = _to_module(torch, model, {})
    entries = [(k, p) for k, p in state_entries(model) if not isinstance(p, tuple)]
    _tie(net, _tied_groups(entries), net.get_parameter)
    return net.train(model.training)


# -- torch -> minicnn ----------------------------------------------------------------

def _conv(m, ties, kw):
    if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros" \
            or isinstance(m.padding, str):
        return "minicnn's Conv2D has groups=1, dilation=1 and integer zero padding only"
    return L.Conv2D(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                    bias=m.bias is not None, **kw)


def _batchnorm_from(cls):
    def convert(m, ties, kw):
        if not (m.affine and m.track_running_stats) or m.momentum is None:
            return "minicnn's BatchNorm needs affine=True, track_running_stats=True, a float momentum"
        return cls(m.num_features, eps=m.eps, momentum=m.momentum, **kw)
    return convert


def _maxpool(m, ties, kw):
    if m.dilation not in (1, (1, 1)) or m.return_indices:
        return "minicnn's MaxPool2D has dilation=1 and no return_indices"
    return L.MaxPool2D(m.kernel_size, m.stride, m.padding, m.ceil_mode, ties=ties)


def _avgpool(m, ties, kw):
    if m.divisor_override is not None:
        return "minicnn's AvgPool2D has no divisor_override"
    return L.AvgPool2D(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)


def _flatten(m, ties, kw):
    if m.start_dim != 1 or m.end_dim != -1:
        return "minicnn's Flatten keeps axis 0 and flattens the rest (start_dim=1, end_dim=-1)"
    return L.Flatten()


def from_torch_table(nn):
    """torch module type -> converter(module, ties, dtype keywords) -> layer or reason."""
    return {
        nn.Conv2d: _conv,
        nn.Linear: lambda m, ties, kw: L.Linear(m.in_features, m.out_features,
                                                bias=m.bias is not None, **kw),
        nn.BatchNorm1d: _batchnorm_from(L.BatchNorm1D),
        nn.BatchNorm2d: _batchnorm_from(L.BatchNorm2D),
        nn.MaxPool2d: _maxpool,
        nn.AvgPool2d: _avgpool,
        nn.LeakyReLU: lambda m, ties, kw: L.LeakyReLU(m.negative_slope),
        nn.ReLU: lambda m, ties, kw: L.ReLU(),
        nn.Dropout: lambda m, ties, kw: L.Dropout(m.p),
        nn.Flatten: _flatten,
    }


def _is_global_avg_pool(nn, m):
    return (type(m) is nn.Sequential and len(m) == 2
            and type(m[0]) is nn.AdaptiveAvgPool2d and m[0].output_size in (1, (1, 1))
            and type(m[1]) is nn.Flatten and m[1].start_dim == 1 and m[1].end_dim == -1)


class _FromTorch:
    """One conversion: the table, the tie rule and the modules already converted."""

    def __init__(self, torch, ties):
        self.torch, self.ties = torch, ties
        self.table = from_torch_table(torch.nn)
        self.done, self.problems = {}, []

    def convert(self, m, name):
        if id(m) not in self.done:
            self.done[id(m)] = self._convert(m, name)
        return self.done[id(m)]

    def _children(self, m, name):
        """Every child under every name (``named_children`` lists a reused one once)."""
        return [self.convert(c, f"{name}.{n}" if name else n) for n, c in m._modules.items()
                if c is not None]

    def _convert(self, m, name):
        nn = self.torch.nn
        if _is_global_avg_pool(nn, m):
            return L.GlobalAvgPool2D()
        if type(m) is nn.Sequential:
            return Sequential(*self._children(m, name))
        if type(m) is torch_residual_class(self.torch):
            return L.Residual(*self._children(m, name))
        dtype = next((p.dtype for p in m.parameters()), None)
        kw = {} if dtype is None else {"dtype": np.dtype(str(dtype).replace("torch.", ""))}
        make = self.table.get(type(m))
        layer = "minicnn has no such layer" if make is None else make(m, self.ties, kw)
        if isinstance(layer, str):
            self.problems.append(f"({name or 0}) {m}: {layer}")
            return L.ReLU()  # a stand-in; the conversion fails once every module is seen
        return layer.train(m.training)


def _numpy_state(torch, module):
    """The module's state dict as numpy arrays; a dtype numpy lacks is refused by name."""
    state = {}
    for k, v in module.state_dict().items():
        if v.dtype in (torch.bfloat16,) or v.is_complex() or v.is_quantized:
            raise TypeError(f"from_torch: entry {k!r} is {v.dtype}, which minicnn cannot "
                            "hold; convert the module first, e.g. module.float()")
        state[k] = v.detach().cpu().numpy()
    return state


def from_torch(module, ties="split"):
    """The minicnn network of a torch module, with its layers, weights and mode.

    ``module`` is an ``nn.Sequential`` (nested ones allowed; the pair
    ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())`` becomes GlobalAvgPool2D, and
    the residual modules :func:`to_torch` makes become :class:`Residual`) or a single
    supported module, which gives the single layer. A module used twice becomes one layer
    used twice, and tied parameters stay tied. MaxPool2D layers get the tie rule ``ties``.
    Raises TypeError naming every module that minicnn cannot represent.
    """
    torch = require("torch", "pip install torch (see https://pytorch.org)")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    state = _numpy_state(torch, module)
    conversion = _FromTorch(torch, ties)
    model = conversion.convert(module, "")
    if conversion.problems:
        raise TypeError("from_torch: cannot convert " + "; ".join(conversion.problems))
    _tie(model, _tied_groups(module.named_parameters(remove_duplicate=False)),
         lambda key: dict(state_entries(model))[key])
    model.load_state_dict(state)
    return model.train(module.training)
