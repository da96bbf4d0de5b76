"""``no_grad()``: run forwards that keep nothing for a backward (inference).

Every layer stores the cache its backward needs as ``self.cache``; while a ``no_grad()``
block is active that assignment stores nothing, so predicting on a large set holds no
activations. As in PyTorch, ``no_grad()`` works as a ``with`` block and as a decorator
(``@no_grad()`` or ``@no_grad``). The mode belongs to the thread, and every entered
block remembers the mode it found (a stack per thread), so nested blocks, recursive
decorated functions and one decorated function running in several threads all restore
the mode that was on before.
"""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """False inside a ``no_grad()`` block (of this thread)."""
    return getattr(_state, "enabled", True)


class no_grad(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Within the block, layers keep no forward cache; a backward afterwards is an error."""

    def __new__(cls, func=None):
        if func is None:
            return super().__new__(cls)
        if not callable(func):
            raise TypeError(f"no_grad takes no arguments (use no_grad() or @no_grad), "
                            f"got {func!r}")
        return cls()(func)  # @no_grad without parentheses

    def __enter__(self):
        stack = _state.__dict__.setdefault("previous", [])
        stack.append(is_grad_enabled())
        _state.enabled = False
        return self

    def __exit__(self, *exc):
        _state.enabled = _state.previous.pop()
        return False
