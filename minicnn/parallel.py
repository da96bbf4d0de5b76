"""minicnn's own threads: the kernels split their work into chunks that run side by side.

numpy releases the GIL inside its copies, ufunc loops and BLAS calls, so plain Python
threads can keep every core busy with array work. The kernels cut an array into chunks
(bands of output rows for a convolution, blocks of channels for batch-norm and pooling,
slices of memory for ReLU) and hand them to :func:`run`, which runs them on a small pool
of threads, the calling thread included.

Two rules keep this fast and exact:

- **BLAS runs on one thread.** Each chunk's matrix product uses a one-thread BLAS
  (set once, through threadpoolctl, the first time a kernel runs), so all parallelism
  is minicnn's: no BLAS thread busy-waits for work, which is what makes a multi-threaded
  BLAS crawl as soon as another process wants a core.
- **The chunks depend on the array's shape only, never on the thread count** (see
  :func:`split`), and sums over chunks (a weight gradient, a bias gradient) add the
  chunks' partial results in chunk order. So the numbers are bit-identical for any
  number of threads, one included.

``set_num_threads(n)`` sets the number of threads (default: the CPUs this process may run
on, or the environment variable ``MINICNN_NUM_THREADS``); ``get_num_threads()`` reads it.

On a shared machine a helper thread may lose its core to another process in the middle
of a chunk, and the caller then waits for it. When one :func:`run` took longer than its
calling thread alone would have taken for all the chunks, the next ones run in the caller
only, for :data:`SOLO_SECONDS`; then the helpers are tried again. (Which thread runs a
chunk never changes the numbers.)
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, Sequence, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")
ENV = "MINICNN_NUM_THREADS"
#: About how many bytes of an array one chunk of element-wise work covers.
CHUNK_BYTES = 1 << 20
#: How long the kernels keep to the calling thread after the helpers were late.
SOLO_SECONDS = 1.0
#: A wait for the helpers longer than this, after the caller ran out of chunks, is late.
LATE_SECONDS = 1e-3

_lock = threading.Lock()
_state = {"threads": None, "pool": None, "blas": None, "solo_until": 0.0}
_clock = time.perf_counter
_local = threading.local()  # .busy: this thread is running chunks (nested runs stay inline)


def _check(n, what):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return n


def default_num_threads() -> int:
    """``MINICNN_NUM_THREADS`` if set, else the CPUs this process may run on."""
    env = os.environ.get(ENV)
    if env is not None:
        try:
            return _check(int(env), ENV)
        except ValueError:
            raise ValueError(f"{ENV} must be a positive int, got {env!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads minicnn's kernels use."""
    if _state["threads"] is None:
        set_num_threads(default_num_threads())
    return _state["threads"]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (the calling one included) for minicnn's kernels from now on.

    Results do not depend on ``n``: the same numbers, bit for bit, for any thread count.
    """
    _check(n, "set_num_threads: n")
    with _lock:
        old, _state["pool"] = _state["pool"], None
        _state["threads"] = n
    if old is not None:
        old.shutdown(wait=True)


def _mark_busy():
    _local.busy = True


def _pool(threads):
    """The helper threads (one fewer than ``threads``: the caller works too)."""
    with _lock:
        if _state["pool"] is None:
            _state["pool"] = ThreadPoolExecutor(threads - 1, thread_name_prefix="minicnn",
                                                initializer=_mark_busy)
        return _state["pool"]


def limit_blas() -> None:
    """Give BLAS one thread, once per process (threadpoolctl; a no-op without a BLAS it
    knows). Called by :func:`run`, so by every kernel before its first matrix product."""
    if _state["blas"] is None:
        with _lock:
            if _state["blas"] is None:
                from threadpoolctl import threadpool_limits
                _state["blas"] = threadpool_limits(limits=1, user_api="blas")


def split(n: int, parts: int) -> List[Tuple[int, int]]:
    """``range(n)`` cut into ``min(n, parts)`` near-equal ranges (start, stop), in order."""
    parts = max(1, min(n, parts))
    per, extra = divmod(n, parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(bounds[-1] + per + (k < extra))
    return list(zip(bounds[:-1], bounds[1:]))


def split_bytes(n: int, nbytes: int, chunk_bytes: int) -> List[Tuple[int, int]]:
    """``range(n)`` (n items of ``nbytes`` in all) cut into ranges of about ``chunk_bytes``."""
    return split(n, -(-nbytes // chunk_bytes))


def blocks(a, axis: int) -> List[slice]:
    """Slices cutting axis ``axis`` of ``a`` into blocks of about CHUNK_BYTES of ``a``, e.g.
    blocks of channels (axis 1) for work that is independent channel by channel."""
    return [slice(i, j) for i, j in split_bytes(a.shape[axis], a.nbytes, CHUNK_BYTES)]


def outer_blocks(a) -> List[tuple]:
    """Index tuples cutting ``a`` into :func:`blocks` along its outermost axis in memory
    (the largest stride): for element-wise work, each block is one stretch of memory when
    ``a`` is contiguous in any axis order."""
    if a.ndim == 0:
        return [()]
    axis = max(range(a.ndim), key=lambda k: abs(a.strides[k]) * (a.shape[k] > 1))
    return [(slice(None),) * axis + (s,) for s in blocks(a, axis)]


def run(fn: Callable[[T], R], items: Sequence[T] | Iterable[T]) -> List[R]:
    """``[fn(item) for item in items]``, the calls spread over minicnn's threads.

    The calling thread takes items too; the results come back in the items' order, and
    an exception in any call is raised here once the others have finished. Inside a call
    (or with one thread, or one item) the items run one after another in this thread.
    """
    items = list(items)
    limit_blas()
    threads = get_num_threads()
    if (threads == 1 or len(items) < 2 or getattr(_local, "busy", False)
            or _clock() < _state["solo_until"]):
        return [fn(item) for item in items]
    results = [None] * len(items)
    order = iter(range(len(items)))
    take = threading.Lock()

    def work():
        done = 0
        while True:
            with take:
                i = next(order, None)
            if i is None:
                return done
            results[i] = fn(items[i])
            done += 1

    helpers = [_pool(threads).submit(work) for _ in range(min(threads, len(items)) - 1)]
    _local.busy = True
    start = _clock()
    try:
        mine = work()
    finally:
        worked = _clock()
        _local.busy = False
        errors = [f.exception() for f in helpers]
    _note_lateness(start, worked, _clock(), mine, len(items))
    for e in errors:
        if e is not None:
            raise e
    return results


def _note_lateness(start, worked, end, mine, n):
    """After a run: if it took longer than the calling thread alone would have taken
    (its own time per chunk times all the chunks) and the caller waited more than
    LATE_SECONDS for the helpers (a lost core costs milliseconds; waking a thread, tens
    of microseconds), keep the next runs in the calling thread for SOLO_SECONDS.
    ``mine`` of the ``n`` chunks ran in the calling thread between ``start`` and
    ``worked``; the helpers were waited for until ``end``."""
    if mine and end - worked > LATE_SECONDS and end - start > (worked - start) / mine * n:
        _state["solo_until"] = end + SOLO_SECONDS
