"""A restricted unpickler for the CIFAR-10 batch files: plain data and numpy arrays, nothing else.

Unpickling runs whatever the file names, so :func:`safe_load` allows only the few globals
numpy's own pickles use to rebuild a plain array, and each only the way numpy uses it:
``_reconstruct`` of an empty ``ndarray`` whose contents then come from the file, or
``_frombuffer`` of bytes that are in the file. So what is built is bounded by the file's size
(which the caller bounds first): no global can allocate memory the file does not hold, and
no code runs. A nested list that shares itself is still small here; the reader checks a
value's structure before converting it (see ``cifar10._check_labels``).
"""
import codecs
import pickle

import numpy as np

_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
_FROMBUFFER = np.empty(1).__reduce_ex__(5)[0]


class _NdarrayType:
    """What the name ``numpy.ndarray`` unpickles to: only a marker for :func:`_reconstruct`,
    so a pickle cannot call ``ndarray(shape)`` to allocate memory the file does not hold."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("refusing to call numpy.ndarray(...): it would allocate "
                                     "memory that the file does not hold")


def _reconstruct(subtype, shape, dtype):
    if subtype is not _NdarrayType or tuple(shape) != (0,):
        raise pickle.UnpicklingError(f"refusing numpy _reconstruct({subtype!r}, {shape!r}): "
                                     f"numpy's own pickles start from an empty ndarray")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


def _frombuffer(buffer, dtype, shape, order):
    if not isinstance(buffer, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"refusing numpy _frombuffer of a {type(buffer).__name__}")
    return _FROMBUFFER(buffer, dtype, shape, order)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers, numbers, strings and numpy arrays."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def safe_load(f):
    """Unpickle the open binary file ``f`` with :class:`SafeUnpickler` (Python 2's strings
    as bytes, as the CIFAR-10 files need)."""
    return SafeUnpickler(f, encoding="bytes").load()
