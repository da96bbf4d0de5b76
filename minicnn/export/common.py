"""What both directions of export share: optional imports and the exact-type rule."""
from .. import layers as L
from ..models.sequential import Sequential

LEAVES = (L.Conv2D, L.Linear, L.BatchNorm1D, L.BatchNorm2D, L.MaxPool2D, L.AvgPool2D,
          L.GlobalAvgPool2D, L.ReLU, L.LeakyReLU, L.Dropout, L.Flatten)
CONTAINERS = (Sequential, L.Residual)


def require(module, extra_hint):
    """Import an optional package, or an ImportError saying how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"minicnn.export needs the optional package {module!r}; "
                          f"install it with {extra_hint}") from None


def unsupported(model, kinds=LEAVES + CONTAINERS):
    """"(name) layer" for every layer inside ``model`` whose exact type is not in ``kinds``
    (a subclass of a built-in layer is named with its parent: it may compute otherwise)."""
    found = []
    for name, layer in model.named_modules():
        if type(layer) in kinds:
            continue
        parent = next((k.__name__ for k in kinds if isinstance(layer, k)), None)
        why = f", a subclass of {parent}: only minicnn's own layer types are exported" \
            if parent else ""
        found.append(f"({name or 0}) {layer._describe()} ({type(layer).__module__}."
                     f"{type(layer).__qualname__}{why})")
    return found
