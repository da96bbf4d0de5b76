"""A bounded reader for the IDX format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number, one 4-byte size per dimension and the data:

    magic   0x00 0x00 TYPE NDIM    TYPE 0x08 = unsigned byte (the MNIST files), 0x09 signed
                                   byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    sizes   NDIM big-endian unsigned 32-bit integers
    data    prod(sizes) items, big-endian, row-major

Reads are bounded: the reader never asks for more than ``max_bytes`` at once and never
trusts a size in the header beyond what the file actually holds, so a corrupt or hostile
header cannot make it allocate gigabytes, and a gzip file cannot inflate past what the
header announces plus one byte.
"""
import contextlib
import gzip
import math
import os
import struct
import zlib

import numpy as np

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MAX_BYTES = 1 << 31  # 2 GiB of data: 40x the largest MNIST file
_CHUNK = 1 << 24
_GZIP_MAGIC = b"\x1f\x8b"


def idx_magic(type_code, ndim):
    """The magic number of an IDX file of ``type_code`` with ``ndim`` dimensions
    (``idx_magic(0x08, 3) == 2051``, MNIST's images; ``idx_magic(0x08, 1) == 2049``, labels)."""
    return (type_code << 8) | ndim


def read_idx(path, max_bytes=MAX_BYTES):
    """Read one IDX file (raw or gzip, told apart by content) as a numpy array.

    Returns an array of the shape the header gives, in native byte order (uint8 for the
    MNIST files), writable and owning its memory. Raises ``ValueError`` naming the file
    when the magic number is not IDX, the header is cut off, the data is shorter or
    longer than the header announces (or than ``max_bytes``), or the gzip stream is
    truncated or corrupt; ``FileNotFoundError`` when there is no such file.
    """
    path = os.fspath(path)
    try:
        with _open(path) as (f, compressed):
            return _read(f, path, compressed, max_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: the gzip stream is truncated or corrupt ({e}); delete the "
                         f"file and get it again") from None


@contextlib.contextmanager
def _open(path):
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw, False
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as f:
            yield f, True


def _read(f, path, compressed, max_bytes):
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{path}: truncated: {len(head)} bytes, too short for the 4-byte "
                         f"IDX magic number")
    zero, type_code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or type_code not in IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file: magic number 0x{head.hex()}, expected "
                         f"0x0000TTNN (two zero bytes, a type code TT in "
                         f"{', '.join(f'{t:02x}' for t in IDX_TYPES)}, NN >= 1 dimensions)")
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: truncated: the header announces {ndim} dimensions "
                         f"({4 * ndim} bytes of sizes) but only {len(sizes)} bytes follow")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = IDX_TYPES[type_code]
    nbytes = math.prod(shape) * dtype.itemsize
    where = f"the header announces {'x'.join(map(str, shape))} items of {dtype.itemsize} byte(s)"
    if nbytes > max_bytes:
        raise ValueError(f"{path}: {where} = {nbytes} bytes, more than the {max_bytes} "
                         f"this reader accepts; the header is corrupt")
    if not compressed:
        held = os.fstat(f.fileno()).st_size - f.tell()
        if held < nbytes:
            raise ValueError(f"{path}: truncated: {where} = {nbytes} bytes of data, "
                             f"but the file holds {held}")
    data = bytearray()
    while len(data) < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) < nbytes:
        raise ValueError(f"{path}: truncated: {where} = {nbytes} bytes of data, but the "
                         f"{'decompressed ' if compressed else ''}file holds {len(data)}")
    if f.read(1):
        raise ValueError(f"{path}: {where} = {nbytes} bytes of data, but more follows; "
                         f"the file is corrupt or not a single IDX array")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def idx_type_code(dtype):
    """The IDX type code of ``dtype`` in either byte order (0x08 for uint8), or None."""
    dtype = np.dtype(dtype).newbyteorder("=")
    return next((code for code, d in IDX_TYPES.items() if d.newbyteorder("=") == dtype), None)


def idx_bytes(array):
    """``array`` encoded as an IDX file (the inverse of :func:`read_idx` for raw files)."""
    array = np.asarray(array)
    code = idx_type_code(array.dtype)
    if code is None or array.ndim == 0:
        raise ValueError(f"IDX stores arrays of at least one dimension of "
                         f"{', '.join(str(d) for d in IDX_TYPES.values())}; "
                         f"got {array.dtype} {array.shape}")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
