"""A bounded reader for the IDX format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number, one 4-byte size per dimension and the data:

    magic   0x00 0x00 TYPE NDIM    TYPE 0x08 = unsigned byte (the MNIST files), 0x09 signed
                                   byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    sizes   NDIM big-endian unsigned 32-bit integers
    data    prod(sizes) items, big-endian, row-major

Reads are bounded: :func:`read_idx_header` inflates only the first bytes of a file, so a
caller can check the shape (against the other file of a pair, against the data set's size)
before anything large is read; :func:`read_idx` then fills an array of exactly the announced
size in chunks, stops there (one byte more is an error, so a gzip file cannot inflate past
what its header announces) and never trusts a size beyond ``max_bytes`` or beyond what a raw
file holds. Checksums are computed on the way through, not on copies.
"""
import contextlib
import gzip
import math
import os
import struct
import zlib
from typing import NamedTuple, Tuple

import numpy as np

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MAX_BYTES = 1 << 31  # 2 GiB of data: 40x the largest MNIST file
MAX_NDIM = 32  # numpy's limit (numpy 1; numpy 2 allows 64); the MNIST files have 1 or 3
_CHUNK = 1 << 20
_FIRST_BYTES = 48 << 20  # more than the largest MNIST file holds (44.9 MiB of data)
_GZIP_MAGIC = b"\x1f\x8b"


class IdxHeader(NamedTuple):
    """What an IDX header says: the array's shape and dtype, and the header's own length."""
    shape: Tuple[int, ...]
    dtype: np.dtype
    size: int  # bytes: 4 + 4 * len(shape)

    @property
    def nbytes(self):
        """Bytes of data that follow the header."""
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self):
        return (f"the header announces {'x'.join(map(str, self.shape))} items of "
                f"{self.dtype.itemsize} byte(s)")


def idx_magic(type_code, ndim):
    """The magic number of an IDX file of ``type_code`` with ``ndim`` dimensions
    (``idx_magic(0x08, 3) == 2051``, MNIST's images; ``idx_magic(0x08, 1) == 2049``, labels)."""
    return (type_code << 8) | ndim


def read_idx_header(path):
    """The :class:`IdxHeader` of the IDX file at ``path`` (raw or gzip), reading (inflating)
    only the header's bytes. Raises ``ValueError`` naming the file when the magic number is
    not IDX or announces more than ``MAX_NDIM`` dimensions, or the header is cut off."""
    path = os.fspath(path)
    with _errors(path), _open(path) as (f, _):
        return _header(f, path)


def read_idx(path, max_bytes=MAX_BYTES, header=None, digest=None, file_digest=None):
    """Read one IDX file (raw or gzip, told apart by content) as a numpy array.

    Returns an array of the shape the header gives, in native byte order (uint8 for the
    MNIST files), writable. ``header``, from :func:`read_idx_header`, is what the caller
    checked: the file must still announce it. ``digest`` (a :mod:`hashlib` object) is fed
    the decompressed file, header included, and ``file_digest`` the file's own bytes, as
    they are read. Raises ``ValueError`` naming the file when the magic number is not IDX,
    the header is cut off, the data is shorter or longer than the header announces (or
    than ``max_bytes``), or the gzip stream is truncated or corrupt; ``FileNotFoundError``
    when there is no such file.
    """
    path = os.fspath(path)
    with _errors(path), _open(path, file_digest) as (f, compressed):
        found = _header(f, path, digest)
        if header is not None and found != header:
            raise ValueError(f"{path} changed while it was read: {found.describe()}, "
                             f"not what it announced before")
        return _body(f, path, found, compressed, max_bytes, digest)


@contextlib.contextmanager
def _errors(path):
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: the gzip stream is truncated or corrupt ({e}); delete the "
                         f"file and get it again") from None


class _Tee:
    """A binary file that feeds every byte read through it to ``digest``."""

    def __init__(self, f, digest):
        self.f, self.digest = f, digest

    def read(self, n=-1):
        data = self.f.read(n)
        self.digest.update(data)
        return data

    def readinto(self, buffer):
        n = self.f.readinto(buffer)
        self.digest.update(memoryview(buffer)[:n])
        return n

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()


@contextlib.contextmanager
def _open(path, file_digest=None):
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        f = raw if file_digest is None else _Tee(raw, file_digest)
        if not compressed:
            yield f, False
        else:
            with gzip.GzipFile(fileobj=f, mode="rb") as inflated:
                yield inflated, True
        while file_digest is not None and f.read(_CHUNK):
            pass  # the rest of the file (a gzip trailer), for the file's digest


def _header(f, path, digest=None):
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{path}: truncated: {len(head)} bytes, too short for the 4-byte "
                         f"IDX magic number")
    zero, type_code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or type_code not in IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file: magic number 0x{head.hex()}, expected "
                         f"0x0000TTNN (two zero bytes, a type code TT in "
                         f"{', '.join(f'{t:02x}' for t in IDX_TYPES)}, NN >= 1 dimensions)")
    if ndim > MAX_NDIM:
        raise ValueError(f"{path}: its IDX header announces {ndim} dimensions, more than the "
                         f"{MAX_NDIM} an array may have; the file is corrupt or not IDX: delete "
                         f"it and get it again")
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: truncated: the header announces {ndim} dimensions "
                         f"({4 * ndim} bytes of sizes) but only {len(sizes)} bytes follow")
    if digest is not None:
        digest.update(head + sizes)
    return IdxHeader(struct.unpack(f">{ndim}I", sizes), IDX_TYPES[type_code], 4 + 4 * ndim)


def _body(f, path, header, compressed, max_bytes, digest):
    """Fill an array of the announced size in chunks; refuse more data or less."""
    nbytes, where = header.nbytes, header.describe()
    if nbytes > max_bytes:
        raise ValueError(f"{path}: {where} = {nbytes} bytes, more than the {max_bytes} "
                         f"this reader accepts; the header is corrupt")
    if not compressed:
        held = os.fstat(f.fileno()).st_size - f.tell()
        if held < nbytes:
            raise ValueError(f"{path}: truncated: {where} = {nbytes} bytes of data, "
                             f"but the file holds {held}")
    # A raw file holds what it announces (checked above); a gzip stream may not, so its
    # buffer starts at most _FIRST_BYTES long and doubles as the data keeps coming.
    data = np.empty(nbytes if not compressed else min(nbytes, _FIRST_BYTES), np.uint8)
    got = 0
    while got < nbytes:
        if got == len(data):
            data = np.concatenate([data, np.empty(min(len(data), nbytes - len(data)), np.uint8)])
        n = f.readinto(memoryview(data)[got:min(len(data), got + _CHUNK)])
        if not n:
            break
        if digest is not None:
            digest.update(memoryview(data)[got:got + n])
        got += n
    if got < nbytes:
        raise ValueError(f"{path}: truncated: {where} = {nbytes} bytes of data, but the "
                         f"{'decompressed ' if compressed else ''}file holds {got}")
    if f.read(1):
        raise ValueError(f"{path}: {where} = {nbytes} bytes of data, but more follows; "
                         f"the file is corrupt or not a single IDX array")
    array = data.view(header.dtype).reshape(header.shape)
    if header.dtype.isnative:
        return array
    return array.byteswap(inplace=True).view(header.dtype.newbyteorder("="))


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
