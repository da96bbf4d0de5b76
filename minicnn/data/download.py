"""Helpers shared by the data set downloaders: a bounded, checked HTTP fetch and file digests.

A download is bounded in bytes and in time. In bytes: a file of known size (published, or
the Content-Length the server announces when no size is published) is read up to that size
and one byte more, which is an error; a server that announces nothing is read up to a hard
cap, the most the file could take. In time: no byte for ``STALL_SECONDS``, or fewer than
``MIN_RATE`` bytes a second over that long, stops it (the rule of curl's ``--speed-limit``).
"""
import hashlib
import time
import urllib.request
from http.client import HTTPException

from tqdm import tqdm

CHUNK = 1 << 20
STALL_SECONDS = 30.0
MIN_RATE = 1024  # bytes per second, averaged over STALL_SECONDS


def gzip_limit(raw_bytes):
    """The most bytes a gzip file of ``raw_bytes`` of content can take: incompressible data
    is stored in blocks of at most 64 KiB with 5 bytes of framing (zlib's ``deflateBound``),
    plus the gzip header (with a file name) and trailer."""
    return raw_bytes + 5 * (raw_bytes // 16_383 + 1) + 4096


def fetch(url, path, md5, advice, desc, *, limit, size=None):
    """Stream ``url`` into ``path`` with a progress bar labelled ``desc``; check its length
    and its MD5 against ``md5``.

    ``size`` is the file's published size in bytes, if known: a server announcing another
    Content-Length is refused before a byte is read. Otherwise the Content-Length is the
    size, and ``limit`` (bytes) caps it and caps a download of no announced length. Raises
    ``ConnectionError`` (network or HTTP error, a stall) or ``ValueError`` (too long, cut
    short, wrong MD5), each message naming the URL and ending with ``advice``. The caller
    removes ``path`` on failure (write it inside :func:`minicnn.serialization.atomic_path`
    or a temporary directory).
    """
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=STALL_SECONDS) as response, \
                open(path, "wb") as f:
            expected, cap = _expected_size(url, response.headers.get("Content-Length"),
                                           size, limit, advice)
            read = getattr(response, "read1", response.read)
            with tqdm(total=expected, unit="B", unit_scale=True, desc=desc) as bar:
                received, window_start, window_bytes = 0, time.monotonic(), 0
                while chunk := read(min(CHUNK, cap + 1 - received)):
                    received += len(chunk)
                    if received > cap:
                        raise ValueError(f"download of {url} stopped: the server sent more "
                                         f"than {_bound(cap, size, expected)}; {advice}")
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    window_bytes += len(chunk)
                    if time.monotonic() - window_start >= STALL_SECONDS:
                        if window_bytes < MIN_RATE * STALL_SECONDS:
                            raise ConnectionError(
                                f"download of {url} stalled: {window_bytes} bytes in the last "
                                f"{STALL_SECONDS:g} s (less than {MIN_RATE} bytes/s); {advice}")
                        window_start, window_bytes = time.monotonic(), 0
    except TimeoutError as e:
        raise ConnectionError(f"download of {url} stalled: no data for {STALL_SECONDS:g} s "
                              f"({e}); {advice}") from None
    except (OSError, HTTPException) as e:
        raise ConnectionError(f"downloading {url} failed ({e}); {advice}") from e
    if expected is not None and received != expected:
        raise ValueError(f"download of {url} was cut short ({received} of {expected} bytes); "
                         f"{advice}")
    if digest.hexdigest() != md5:
        raise ValueError(f"download of {url} has MD5 {digest.hexdigest()}, expected {md5}: "
                         f"the file is corrupt or not {desc}; {advice}")


def _expected_size(url, content_length, size, limit, advice):
    """``(size the file must have or None, most bytes to read)`` from the published size,
    the server's Content-Length and the hard cap."""
    announced = None
    if content_length is not None:
        try:
            announced = int(content_length)
            if announced < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"download of {url}: the server announces a Content-Length of "
                             f"{content_length!r}, not a size; {advice}") from None
    if size is not None:
        if announced is not None and announced != size:
            raise ValueError(f"download of {url}: the server announces {announced} bytes, but "
                             f"the published file has {size}; it is not the file expected. "
                             f"{advice}")
        return size, size
    if announced is not None and announced > limit:
        raise ValueError(f"download of {url}: the server announces {announced} bytes, more "
                         f"than the {limit} the file can take; it is not the file expected. "
                         f"{advice}")
    if announced is not None:
        return announced, announced
    return None, limit


def _bound(cap, size, expected):
    if size is not None:
        return f"the {cap} bytes of the published file"
    if expected is not None:
        return f"the {cap} bytes it announced"
    return f"{cap} bytes, the most the file can take (the server did not say its size)"


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file at ``path`` (``algorithm`` as in :mod:`hashlib`)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
