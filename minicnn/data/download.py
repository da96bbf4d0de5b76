"""Helpers shared by the data set downloaders: a checked HTTP fetch and file digests."""
import hashlib
import urllib.request
from http.client import HTTPException

from tqdm import tqdm

CHUNK = 1 << 20


def fetch(url, path, md5, advice, desc):
    """Stream ``url`` into ``path`` with a progress bar labelled ``desc``; check its length
    against Content-Length and its MD5 against ``md5``.

    Raises ``ConnectionError`` (network or HTTP error) or ``ValueError`` (cut short, wrong
    MD5), each message ending with ``advice``. The caller removes ``path`` on failure
    (write it inside :func:`minicnn.serialization.atomic_path` or a temporary directory).
    """
    digest = hashlib.md5(usedforsecurity=False)
    total = None
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc) as bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            received = f.tell()
    except (OSError, HTTPException) as e:
        raise ConnectionError(f"downloading {url} failed ({e}); {advice}") from e
    if total is not None and received != total:
        raise ValueError(f"download of {url} was cut short ({received} of {total} bytes); "
                         f"{advice}")
    if digest.hexdigest() != md5:
        raise ValueError(f"download of {url} has MD5 {digest.hexdigest()}, expected {md5}: "
                         f"the file is corrupt or not {desc}; {advice}")


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file at ``path`` (``algorithm`` as in :mod:`hashlib`)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
