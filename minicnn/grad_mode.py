"""``no_grad()``: run forwards that keep nothing for a backward (inference).

Every layer stores the cache its backward needs as ``self.cache``; while a ``no_grad()``
block is active that assignment stores nothing, so predicting on a large set holds no
activations. As in PyTorch, ``no_grad()`` works as a ``with`` block and as a decorator.
"""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """False inside a ``no_grad()`` block (of this thread)."""
    return getattr(_state, "enabled", True)


class no_grad(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Within the block, layers keep no forward cache; a backward afterwards is an error."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.enabled = False
        return self

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False
