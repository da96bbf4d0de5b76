"""Keep freed memory in the process, so a training step's big arrays cost no page faults.

A training step allocates the same arrays every time: each layer's output, its cache,
its input gradient, a few MB each. By default glibc hands blocks that large straight to
the operating system with ``mmap`` and returns them with ``munmap`` when freed, and it
gives the top of its heap back once more than 128 KiB there is free; the next step then
touches fresh pages, one page fault per 4 KiB, every step. Raising two thresholds with
``mallopt`` once, when the kernels are imported, lets glibc serve those blocks from its
heap and keep what is freed for the next step: plain ``np.empty`` then costs what a
recycled array would. Elsewhere (not glibc) this does nothing.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's largest allowed value on 64 bits).
MMAP_THRESHOLD = 32 << 20
#: Free memory glibc keeps at the top of its heap rather than returning it.
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True if it took effect (glibc only)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
