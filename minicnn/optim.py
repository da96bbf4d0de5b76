"""Optimizers with the update rules of ``torch.optim``: SGD, Adam, AdamW, RMSprop.

Hyper-parameters must be finite numbers in range (``lr``, ``momentum`` and
``weight_decay`` >= 0, ``eps`` > 0, ``alpha`` and each of ``betas`` in [0, 1)); a bad one
raises an error naming the optimizer and the argument, e.g. ``SGD: lr must be finite, got
inf``.

Each update reads like its equation, on ``w = p.data`` (updated in place, so float32
parameters stay float32) and ``dw = p.grad``. Hyper-parameters are plain Python numbers
kept as attributes (``opt.lr`` may be changed between steps, e.g. by a schedule);
per-parameter buffers live in ``opt.state[i][name]`` with the shape and dtype of parameter i.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Iterable

import numpy as np

from .parameter import Parameter

# What each hyper-parameter must satisfy: (test, description for the error message).
_RULES = {
    "lr": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "eps": (lambda v: v > 0, "> 0"),
    "alpha": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "a pair of numbers in [0, 1)"),
    "nesterov": (lambda v: True, "a bool"),
}


def _check_entries(sd, expected, exact=False):
    """Raise ValueError naming the entries of ``expected`` that ``sd`` lacks or mis-shapes
    (and, if ``exact``, those it has beyond them)."""
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected] if exact else []
    problems = [f"missing entries {missing}"] if missing else []
    problems += [f"unexpected entries {extra}"] if extra else []
    problems += [f"entry {k!r} should have shape {np.shape(v)}, got {np.shape(sd[k])}"
                 for k, v in expected.items() if k in sd and np.shape(sd[k]) != np.shape(v)]
    if problems:
        raise ValueError("; ".join(problems))


def _read_only(a):
    """A read-only view of ``a``: ``update`` computes from the gradient and must not change
    it (``dw = dw + wd * w``, never ``dw += wd * w``, which would raise here)."""
    view = a.view()
    view.flags.writeable = False
    return view


class Optimizer:
    """Base of every optimizer.

    Holds the parameter list, the hyper-parameters, the step count and the per-parameter
    buffers, and implements ``step``, ``zero_grad``, ``state_dict`` and ``load_state_dict``.
    A subclass passes its hyper-parameters to ``__init__``, names its buffers
    (``buffer_names``, zero-initialised) and writes ``update(w, dw, s)``, the rule for one
    parameter ``w`` with gradient ``dw`` and buffers ``s``.
    """

    buffer_names = ()

    def __init__(self, params: Iterable[Parameter], **hypers: Any) -> None:
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(f"{self._name}: params must be a list of Parameters, "
                            f"got a single {type(params).__name__}")
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{self._name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{self._name}: params[{i}] is a {type(p).__name__}, not a Parameter")
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"{self._name}: params[{i}] has dtype {p.dtype}, expected floats")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{self._name}: a Parameter appears more than once in params")
        self.hyper_names = tuple(hypers)
        for name, value in self._checked(hypers).items():
            setattr(self, name, value)
        self.step_count = 0
        self.state = [{} for _ in self.params]

    # -- the update ----------------------------------------------------------------
    def step(self) -> None:
        """Update every parameter in place from its ``grad`` (never changed here); a
        parameter whose ``grad`` is None is skipped, as in PyTorch."""
        self.step_count += 1
        for p, s in zip(self.params, self._buffers()):
            if p.grad is not None:
                self.update(p.data, _read_only(p.grad), s)

    def update(self, w: np.ndarray, dw: np.ndarray, s: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(f"{self._name} does not define update")

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    # -- hyper-parameters ----------------------------------------------------------
    @property
    def _name(self):
        return type(self).__name__

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = self._clean("lr", value)  # a Python float, so float32 updates stay float32

    def hypers(self) -> dict[str, Any]:
        """The hyper-parameters as a dict {name: Python value}."""
        return {name: getattr(self, name) for name in self.hyper_names}

    def _clean(self, name, value):
        """``value`` as a Python float (tuple of floats for betas, bool for nesterov), checked."""
        try:
            if name == "betas":
                value = tuple(float(b) for b in value)
            else:
                value = bool(value) if name == "nesterov" else float(value)
        except (TypeError, ValueError):
            kind = "a pair of numbers" if name == "betas" else "a number"
            raise TypeError(f"{self._name}: {name} must be {kind}, got {value!r}") from None
        ok, allowed = _RULES[name]
        if not ok(value):
            raise ValueError(f"{self._name}: {name} must be {allowed}, got {value!r}")
        if name != "nesterov" and not all(map(math.isfinite, value if name == "betas" else [value])):
            raise ValueError(f"{self._name}: {name} must be finite, got {value!r}")
        return value

    def _checked(self, hypers):
        """Cleaned copies of all hyper-parameters; subclasses add checks across them."""
        return {name: self._clean(name, value) for name, value in hypers.items()}

    def _buffer_names(self, hypers):
        """Names of the per-parameter buffers these hyper-parameters need."""
        return self.buffer_names

    def _buffers(self):
        """Per-parameter dicts of the buffers the current hyper-parameters need (zeros when new)."""
        names = self._buffer_names(self.hypers())
        for p, s in zip(self.params, self.state):
            for name in names:
                if name not in s:
                    s[name] = np.zeros_like(p.data)
        return [{name: s[name] for name in names} for s in self.state]

    # -- saving and loading --------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat {str: numpy array} dict, storable in an .npz without pickle.

        Hyper-parameters, ``"step"`` and ``"num_params"`` as 0-d arrays (``"betas"`` of
        shape (2,)); buffer ``name`` of parameter i (its position in params) as ``"name.i"``.
        """
        sd = self._head()
        for i, s in enumerate(self._buffers()):
            sd.update({f"{name}.{i}": b.copy() for name, b in s.items()})
        return sd

    def _head(self):
        """The state-dict entries that are not buffers."""
        sd = {name: np.array(value) for name, value in self.hypers().items()}
        sd["step"] = np.array(self.step_count, dtype=np.int64)
        sd["num_params"] = np.array(len(self.params), dtype=np.int64)
        return sd

    def load_state_dict(self, state_dict: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`state_dict` exactly, so training resumes as if never stopped.

        Every entry is checked first (missing, unexpected or mis-shaped entries, invalid
        values, a different number of parameters raise ``ValueError``); nothing changes
        unless all of them fit.
        """
        try:
            hypers, step, state = self._parse(dict(state_dict))
        except (TypeError, ValueError) as e:
            reason = str(e).removeprefix(f"{self._name}: ")
            raise ValueError(f"{self._name}: cannot load state dict: {reason}") from None
        for name, value in hypers.items():
            setattr(self, name, value)
        self.step_count, self.state = step, state

    def _parse(self, sd):
        """The checked (hyper-parameters, step, buffers) held by a state dict."""
        head = self._head()
        _check_entries(sd, head)
        hypers = self._checked({name: sd[name] for name in self.hyper_names})
        step, n = int(sd["step"]), int(sd["num_params"])
        if n != len(self.params):
            raise ValueError(f"it was saved for {n} parameters, this optimizer has {len(self.params)}")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        names = self._buffer_names(hypers)
        buffers = {f"{name}.{i}": p.data for name in names for i, p in enumerate(self.params)}
        _check_entries(sd, {**head, **buffers}, exact=True)
        state = [{name: np.array(sd[f"{name}.{i}"], dtype=p.dtype) for name in names}
                 for i, p in enumerate(self.params)]
        return hypers, step, state

    def __repr__(self):
        defaults = {k: v.default for k, v in inspect.signature(type(self)).parameters.items()}
        shown = [f"{k}={v!r}" for k, v in self.hypers().items() if k == "lr" or v != defaults.get(k)]
        return f"{self._name}({', '.join(shown)})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    g = dw + weight_decay * w;  b = momentum * b + g;  w -= lr * (g + momentum * b if nesterov else b)
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)

    def _checked(self, hypers):
        hypers = super()._checked(hypers)
        if hypers["nesterov"] and hypers["momentum"] == 0:
            raise ValueError(f"{self._name}: nesterov=True requires momentum > 0")
        return hypers

    def _buffer_names(self, hypers):
        return ("momentum_buffer",) if hypers["momentum"] else ()

    def update(self, w, dw, s):
        if self.weight_decay:
            dw = dw + self.weight_decay * w
        if self.momentum:
            b = s["momentum_buffer"]
            b *= self.momentum  # b = momentum * b + dw; b starts at 0, so step 1 gives b = dw
            b += dw
            dw = dw + self.momentum * b if self.nesterov else b
        w -= self.lr * dw


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay added to the gradient.

    g = dw + weight_decay * w;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    w -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
    """

    buffer_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def update(self, w, dw, s):
        if self.weight_decay:
            dw = dw + self.weight_decay * w
        self._adam_step(w, dw, s)

    def _adam_step(self, w, dw, s):
        (b1, b2), t = self.betas, self.step_count
        m, v = s["exp_avg"], s["exp_avg_sq"]
        m[...] = b1 * m + (1 - b1) * dw
        v[...] = b2 * v + (1 - b2) * dw * dw
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        w -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay: w -= lr * weight_decay * w, then the Adam step on dw."""

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def update(self, w, dw, s):
        w *= 1 - self.lr * self.weight_decay  # w -= lr * weight_decay * w
        self._adam_step(w, dw, s)


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root-mean-square of recent gradients.

    g = dw + weight_decay * w;  v = alpha v + (1 - alpha) g^2;  u = g / (sqrt(v) + eps)
    b = momentum * b + u;  w -= lr * (b if momentum else u)
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                         weight_decay=weight_decay)

    def _buffer_names(self, hypers):
        return ("square_avg", "momentum_buffer") if hypers["momentum"] else ("square_avg",)

    def update(self, w, dw, s):
        if self.weight_decay:
            dw = dw + self.weight_decay * w
        v = s["square_avg"]
        v[...] = self.alpha * v + (1 - self.alpha) * dw * dw
        u = dw / (np.sqrt(v) + self.eps)
        if self.momentum:
            b = s["momentum_buffer"]
            b[...] = self.momentum * b + u
            u = b
        w -= self.lr * u
