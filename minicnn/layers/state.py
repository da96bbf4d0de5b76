"""Names and state of a layer tree: which attributes are members, the state-dict entries
under every name (tied parameters included) and the all-or-nothing check of a state dict.

Only duck typing here (``named_children``, ``_own_parameters``, ``_buffer_names``), so
this module sits below :mod:`.base`.
"""
import numpy as np

from ..parameter import Parameter


def _hides(value, kinds, depth=0):
    """Whether a list/tuple/dict/set ``value`` holds an instance of ``kinds`` anywhere."""
    if isinstance(value, kinds):
        return True
    if depth > 20 or not isinstance(value, (list, tuple, dict, set, frozenset)):
        return False
    items = value.values() if isinstance(value, dict) else value
    return any(_hides(v, kinds, depth + 1) for v in items)


def _hidden(layer, where):
    return TypeError(
        f"{type(layer).__name__}: {where} holds a layer or parameter that minicnn cannot find "
        "(it looks only in an attribute itself or directly inside a list, tuple or dict "
        "attribute); move it up one level, e.g. flatten the nested list or wrap the inner "
        "list in a Sequential")


def walk_members(layer, internal, kinds):
    """(name, value) for every attribute of ``layer`` that is one of ``kinds`` (Layer,
    Parameter), and ``name.i`` / ``name.key`` for those directly inside a list, tuple or
    dict attribute. Raises for one nested deeper or in a set, and for a dict key that is
    not a string or holds a dot (such names would collide in the state dict)."""
    for name, value in vars(layer).items():
        if name in internal:
            continue
        if isinstance(value, kinds):
            yield name, value
        elif isinstance(value, (list, tuple, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, v in items:
                if isinstance(v, kinds):
                    if isinstance(value, dict) and (not isinstance(key, str) or not key or "." in key):
                        raise TypeError(
                            f"{type(layer).__name__}: attribute {name!r} holds a layer or "
                            f"parameter under key {key!r}; keys must be non-empty strings "
                            "without a dot, since they become state-dict names")
                    yield f"{name}.{key}", v
                elif _hides(v, kinds):
                    raise _hidden(layer, f"attribute {name!r}[{key!r}]")
        elif isinstance(value, (set, frozenset)) and _hides(value, kinds):
            raise _hidden(layer, f"attribute {name!r} (a set)")


def names_of(model):
    """id(layer) -> its dotted name inside ``model`` ("" for the model)."""
    return {id(m): n for n, m in model.named_modules()}


def state_entries(model):
    """``(key, owner)`` for every parameter and buffer under every name it has, in
    PyTorch's order (a layer's parameters, its buffers, then its children's); ``owner`` is
    the Parameter or a (layer, buffer name) pair (see :func:`read` and :func:`write`). A
    layer or parameter used in two places appears under both names, as in PyTorch."""
    def walk(module, prefix, path):
        if any(module is m for m in path):
            raise ValueError(f"{type(model).__name__}: layer {prefix[:-1]!r} contains itself")
        for name, p in module._own_parameters():
            yield prefix + name, p
        for name in module.__dict__.get("_buffer_names", ()):
            if getattr(module, name) is not None:
                yield prefix + name, (module, name)
        for name, child in module.named_children():
            yield from walk(child, f"{prefix}{name}.", path + (module,))
    return walk(model, "", ())


def read(owner):
    """The array a state entry's owner holds."""
    return owner.data if isinstance(owner, Parameter) else getattr(*owner)


def write(owner, a):
    """Replace a state entry's array (a parameter's gradient restarts at zero)."""
    if isinstance(owner, Parameter):
        owner.data, owner.grad = a, np.zeros_like(a)
    else:
        setattr(*owner, a)


def _identity(owner):
    return id(owner) if isinstance(owner, Parameter) else (id(owner[0]), owner[1])


def _converted(key, value, ref):
    """``(array of ref's dtype, None)`` or ``(None, problem)`` for one state entry."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        return None, f"entry {key!r} cannot be read as an array ({e})"
    if a.dtype.kind not in "biuf":
        return None, f"entry {key!r} holds {a.dtype} values, expected numbers"
    if a.shape != ref.shape:
        return None, f"entry {key!r} should have shape {ref.shape}, got {a.shape}"
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return None, f"entry {key!r} holds NaN or infinite values"
    if ref.dtype.kind in "iu" and a.dtype.kind == "f" and not (a == np.round(a)).all():
        return None, f"entry {key!r} should hold whole numbers ({ref.dtype}), got {a.dtype} fractions"
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(a, dtype=ref.dtype, copy=True)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        return None, f"entry {key!r} overflows {ref.dtype}"
    return out, None


def check_state(model, state):
    """``{key: array}`` converted to the model's dtypes, or ValueError naming every wrong
    entry (missing, unexpected, not numbers, non-finite, mis-shaped, or two copies of a
    tied parameter that differ). Nothing is changed here."""
    where = f"{type(model).__name__}.load_state_dict"
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"{where}: expected a dict of arrays, got {type(state).__name__}")
    entries = list(state_entries(model))
    keys = [k for k, _ in entries]
    problems = []
    missing = [k for k in keys if k not in state]
    extra = [k for k in state if k not in set(keys)]
    if missing:
        problems.append(f"missing entries {missing}")
    if extra:
        problems.append(f"unexpected entries {extra}")
    values, first = {}, {}
    for key, owner in entries:
        if key not in state:
            continue
        value, problem = _converted(key, state[key], np.asarray(read(owner)))
        if problem:
            problems.append(problem)
            continue
        values[key] = value
        same = first.setdefault(_identity(owner), key)
        if same != key and not np.array_equal(values[same], value):
            problems.append(f"entries {same!r} and {key!r} are one tied parameter "
                            "(or shared buffer) and must be equal")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return values

