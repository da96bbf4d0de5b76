"""The Layer base class: parameters, buffers, the cache of the last forward, modes."""
import numpy as np



def pair(v, name="value"):
    """Normalise an int or (h, w) pair to a tuple of two ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {v!r}")
        h, w = v
    else:
        h = w = v
    for t in (h, w):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(h), int(w)


def short(p):
    """(3, 3) -> 3 for a readable repr; (3, 5) stays a pair."""
    return p[0] if p[0] == p[1] else p


def as_generator(seed):
    """A numpy Generator from a seed, an existing Generator, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class Layer:
    """Base of every layer.

    A layer owns its :class:`Parameter` objects (attributes ``weight``, ``bias``, ...)
    and named non-trainable buffers, and keeps the cache of its last ``forward`` for
    ``backward``. Subclasses implement ``forward(x)`` and ``backward(dout) -> dx``;
    ``backward`` adds parameter gradients into ``p.grad``.
    """

    #: Names of trainable parameters, in state-dict order.
    param_names = ()
    #: Names of non-trainable arrays saved in the state dict (e.g. running statistics).
    buffer_names = ()
    #: Built-in layers that can skip computing dL/dx when they are first in a network.
    can_skip_input_grad = False

    def __init__(self):
        self.training = True
        self.cache = None

    # -- calling -----------------------------------------------------------------
    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def _output(self, out):
        """Return ``out``, noting its shape and dtype, which backward's dout must match."""
        self._out_spec = (out.shape, out.dtype)
        return out

    def _take_cache(self, dout):
        """The cache of the last forward and ``dout`` checked against its output.

        Raises a clear error if there was no forward or ``dout`` has the wrong shape; a
        dout of another float dtype is cast to the output's (float32 stays float32).
        """
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward (or twice after "
                               "one forward)")
        if not isinstance(dout, np.ndarray):
            raise TypeError(f"{self!r}: dout must be a numpy array, got {type(dout).__name__}")
        shape, dtype = self._out_spec
        if dout.shape != shape:
            raise ValueError(f"{self!r}: dout must have the shape of the last output, "
                             f"{shape}, got {dout.shape}")
        return self.cache, dout.astype(dtype, copy=False)

    # -- parameters and state ----------------------------------------------------
    def named_parameters(self):
        for name in self.param_names:
            p = getattr(self, name, None)
            if p is not None:
                yield name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def _accumulate(self, *grads):
        """Add the gradients, given in ``param_names`` order, into the parameters' ``.grad``."""
        for name, g in zip(self.param_names, grads):
            p = getattr(self, name)
            if p is not None:
                p.accumulate(g)

    def named_buffers(self):
        for name in self.buffer_names:
            yield name, getattr(self, name)

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].dtype if params else None

    def astype(self, dtype):
        """Cast parameters and floating buffers to ``dtype`` in place; returns self."""
        for p in self.parameters():
            p.astype(dtype)
        for name, b in self.named_buffers():
            if np.issubdtype(b.dtype, np.floating):
                setattr(self, name, b.astype(dtype))
        self.cache = None
        return self

    def state_dict(self):
        sd = {name: p.data.copy() for name, p in self.named_parameters()}
        sd.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return sd

    def load_state_dict(self, state, prefix=""):
        """Check every entry first; nothing is changed unless all of them fit."""
        expected = {name: p.data for name, p in self.named_parameters()}
        expected.update(dict(self.named_buffers()))
        problems = check_state(self, expected, state, prefix)
        if problems:
            raise ValueError("; ".join(problems))
        self._assign_state(state)

    def _assign_state(self, state):
        for name, p in self.named_parameters():
            p.data = np.asarray(state[name]).astype(p.dtype, copy=True)
            p.grad = np.zeros_like(p.data)
        for name, b in self.named_buffers():
            setattr(self, name, np.asarray(state[name]).astype(b.dtype, copy=True))

    # -- description -------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    # -- input checks ------------------------------------------------------------
    def _check_input(self, x, ndim, channels=None, layout=None):
        """Raise a clear error for a non-array, wrong rank or wrong channel count."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, got {type(x).__name__}")
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
        return self._as_float(x)

    @staticmethod
    def _as_float(x):
        return x if x.dtype.kind == "f" else x.astype(np.float32)

    def _as_param_dtype(self, a):
        """Cast an input to the layer's parameter dtype (float32 stays float32)."""
        return a.astype(self.dtype, copy=False)


def check_state(owner, expected, state, prefix=""):
    """List what is missing, extra or mis-shaped in ``state`` against ``expected``."""
    problems = []
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing:
        problems.append(f"{owner!r}: missing entries {[prefix + k for k in missing]}")
    if extra:
        problems.append(f"{owner!r}: unexpected entries {[prefix + k for k in extra]}")
    for k, ref in expected.items():
        if k in state and np.shape(state[k]) != np.shape(ref):
            problems.append(f"{owner!r}: entry {prefix + k!r} should have shape "
                            f"{np.shape(ref)}, got {np.shape(state[k])}")
    return problems
