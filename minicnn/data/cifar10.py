"""CIFAR-10 (python version): a safe reader and a verified, atomic downloader.

Pickle safety. The batch files are pickles, and unpickling runs whatever code the file
names. So every batch is read with :func:`minicnn.data.safe_pickle.safe_load`, which refuses
every global except the few numpy needs to rebuild a plain array, used as numpy uses them;
a file larger than a batch is refused before it is unpickled, and the labels' structure is
checked before they are converted. That makes a hand-placed folder as safe to read as a
downloaded one. A download additionally writes a manifest
(``cifar-10-batches-py/.minicnn-verified``: the archive MD5 and each file's SHA-256);
when the manifest is present, each file is checked against it before it is read, which
catches files that were corrupted or swapped after the download.
"""
from __future__ import annotations

import json
import os
import tarfile
import tempfile
import zlib
from typing import List, NamedTuple

import numpy as np

from minicnn.data.download import fetch, file_digest, gzip_limit
from minicnn.data.paths import check_not_broken, check_readable, data_root
from minicnn.data.paths import default_root as default_root  # its old home: still importable
from minicnn.data.safe_pickle import safe_load
from minicnn.serialization import atomic_path

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_BYTES = 170_498_071  # the published archive's size
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ALL_FILES = TRAIN_FILES + [TEST_FILE, META_FILE]
MANIFEST = ".minicnn-verified"
NUM_CLASSES = 10
#: The largest batch file read: a real one holds 10,000 images (30,720,000 bytes) and about
#: 0.3 MB of labels and names; a bigger file is refused before it is unpickled.
MAX_BATCH_BYTES = 32 << 20


class UnsafeArchiveError(ValueError):
    """The archive holds a member that would be written outside the target folder, or
    something other than plain files and folders (a link, a device)."""


class Cifar10(NamedTuple):
    """CIFAR-10 arrays: images uint8 ``(N, 3, 32, 32)`` (RGB planes), labels int64 ``(N,)``."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: List[str]


def load_cifar10(root: str | os.PathLike | None = None, download: bool = False,
                 url: str | None = None, md5: str | None = None) -> Cifar10:
    """Load CIFAR-10 from ``<root>/cifar-10-batches-py`` as a :class:`Cifar10`.

    ``x_train`` is uint8 ``(50000, 3, 32, 32)``, ``x_test`` ``(10000, 3, 32, 32)``, labels
    int64 in ``0..9``, ``classes`` the 10 class names. With ``download=True`` and the folder
    absent, fetch the archive first (see :func:`download_cifar10`; ``url`` and ``md5``
    default to ``CIFAR10_URL`` and ``CIFAR10_MD5``). Batches are read with a restricted
    unpickler and checked against the download manifest if there is one (module docstring).
    Raises ``FileNotFoundError`` when files are missing and ``ValueError`` when a file is
    corrupt, fails its checksum, or holds data of the wrong shape, dtype or range.
    """
    root = data_root(root)
    folder = os.path.join(root, FOLDER)
    if download and not os.path.isdir(folder):
        download_cifar10(root, url=url, md5=md5)
    _check_present(folder, root)
    expected = _read_manifest(folder)
    train = [_load_batch(folder, name, expected) for name in TRAIN_FILES]
    x_test, y_test = _load_batch(folder, TEST_FILE, expected)
    classes = _load_classes(folder, expected)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Cifar10(x_train, y_train, x_test, y_test, classes)


def download_cifar10(root=None, url=None, md5=None):
    """Download, verify and extract CIFAR-10 into ``<root>/cifar-10-batches-py``.

    Everything happens in a temporary directory inside ``root``; the finished folder
    (with its manifest) is renamed into place in one step. On any failure (network error,
    wrong MD5, truncated or malformed archive) the temporary files are removed, nothing
    new is left in ``root``, and the error says what to do.
    """
    root = data_root(root)
    url, md5 = url or CIFAR10_URL, md5 or CIFAR10_MD5
    folder = os.path.join(root, FOLDER)
    check_not_broken(folder, "CIFAR-10 folder")
    if os.path.exists(folder):
        raise FileExistsError(f"{folder} already exists; delete it and download again, "
                              f"or complete it by hand")
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar-10-download-", dir=root) as tmp:
        archive = os.path.join(tmp, "cifar-10-python.tar.gz")
        _fetch(url, archive, md5, root)
        extracted = os.path.join(tmp, "extracted")
        _extract(archive, extracted, url)
        batches = os.path.join(extracted, FOLDER)
        missing = [n for n in ALL_FILES if not os.path.isfile(os.path.join(batches, n))]
        if missing:
            raise ValueError(f"archive from {url} lacks {FOLDER}/{missing[0]}; "
                             f"it is not the CIFAR-10 python archive")
        _write_manifest(batches, md5)
        with atomic_path(folder) as final:
            os.rename(batches, final)
    return folder


def _fetch(url, path, md5, root):
    """Stream ``url`` into ``path``; check length and MD5 (see :func:`.download.fetch`)."""
    advice = (f"check your connection and retry, or download {url} yourself and "
              f"extract it into {root} so that {os.path.join(root, FOLDER)} exists")
    fetch(url, path, md5, advice, desc="CIFAR-10",
          size=CIFAR10_BYTES if md5 == CIFAR10_MD5 else None,
          limit=gzip_limit(len(ALL_FILES) * MAX_BATCH_BYTES + (1 << 20)))


def _extract(archive, dest, source=None):
    """Extract a .tar.gz into ``dest``, refusing links, devices and paths leaving ``dest``.

    ``source`` (the URL) names the archive in messages: ``archive`` is a temp file that
    is gone by the time the user reads them.
    """
    source = source or archive
    unsafe = getattr(tarfile, "FilterError", ())  # data_filter's refusals
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                _check_member(member, source)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)
    except unsafe as e:
        raise UnsafeArchiveError(f"the archive from {source} is unsafe to extract ({e}); "
                                 f"nothing was kept. It is not the CIFAR-10 archive") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(f"the archive from {source} is truncated or corrupt ({e}); it was "
                         f"deleted: download it again") from None


def _check_member(member, source):
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise UnsafeArchiveError(f"the archive from {source} holds member {member.name!r}, "
                                 f"which would escape the folder it is extracted into; "
                                 f"nothing was extracted or kept. It is not the CIFAR-10 "
                                 f"archive")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"the archive from {source} holds member {member.name!r}, "
                                 f"which is not a regular file or folder (a link or device); "
                                 f"nothing was extracted or kept")


def _write_manifest(folder, archive_md5):
    manifest = {"archive_md5": archive_md5,
                "sha256": {name: file_digest(os.path.join(folder, name)) for name in ALL_FILES}}
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)


def _read_manifest(folder):
    """Map file name -> expected SHA-256, or ``{}`` when the folder has no manifest."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            sums = json.load(f)["sha256"]
        assert all(isinstance(sums[name], str) for name in ALL_FILES)
        return sums
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise ValueError(f"manifest {path} is unreadable ({e!r}); delete {folder} "
                         f"and download again") from None


def _check_present(folder, root):
    advice = (f"run with download=True (e.g. python train.py --dataset cifar10 --download) or put "
              f"{FOLDER} in {os.path.abspath(root)}")
    check_readable(root, "data folder")
    check_not_broken(folder, "CIFAR-10 folder")
    check_readable(folder, "CIFAR-10 folder")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"CIFAR-10 folder {folder} is a file, not a folder; "
                                 f"delete it and {advice}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"CIFAR-10 not found: {folder} does not exist; {advice}")
    for name in ALL_FILES:
        check_not_broken(os.path.join(folder, name), "CIFAR-10 file")
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"CIFAR-10 file {os.path.join(folder, name)} is missing; "
                                    f"delete {folder} and {advice}")


def _unpickle(path, expected_sha256):
    """Read a CIFAR pickle as a dict with str keys, checking its SHA-256 when one is known."""
    folder = os.path.dirname(path)
    size = os.path.getsize(path)
    if size > MAX_BATCH_BYTES:
        raise ValueError(f"{path} is {size} bytes, more than a CIFAR-10 batch file takes "
                         f"({MAX_BATCH_BYTES}); it is not one: delete {folder} and download again")
    if expected_sha256 is not None and file_digest(path) != expected_sha256:
        raise ValueError(f"{path} does not match the checksum recorded when it was downloaded; "
                         f"delete {folder} and download again")
    try:
        with open(path, "rb") as f:
            obj = safe_load(f)
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise ValueError(f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
                         f"delete {folder} and download again") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a CIFAR-10 batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _load_batch(folder, name, expected):
    """One batch file -> (uint8 ``(n, 3, 32, 32)``, int64 ``(n,)``), validated."""
    path = os.path.join(folder, name)
    batch = _unpickle(path, expected.get(name))
    data = _check_data(batch.get("data"), path)
    labels = _check_labels(batch.get("labels"), len(data), path)
    return data.reshape(-1, 3, 32, 32), labels  # row-major: 1024 R, then G, then B


def _check_data(data, path):
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.ndim == 2 and data.shape[1] == 3 * 32 * 32):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be uint8 (N, 3072), got {got}")
    return data


def _check_labels(labels, n, path):
    """``labels`` as int64 ``(n,)``. Only a flat list of ints or a 1-D integer array is
    taken, checked before anything is converted: a nested list (which may share itself and
    so stand for far more items than the file holds) is refused as it is."""
    if isinstance(labels, np.ndarray):
        fits = labels.ndim == 1 and (labels.dtype.kind in "iu" or labels.size == 0)
        got = f"{labels.dtype} {labels.shape}"
    elif isinstance(labels, list):
        odd = next((i for i, v in enumerate(labels) if type(v) is not int), None)
        fits = odd is None
        got = f"a list of {len(labels)}" + ("" if fits else f" whose item {odd} is a "
                                                            f"{type(labels[odd]).__name__}")
    else:
        fits, got = False, type(labels).__name__
    if not fits or len(labels) != n:
        raise ValueError(f"{path}: 'labels' must be {n} integers (a flat list or 1-D integer "
                         f"array), got {got}")
    low, high = (min(labels), max(labels)) if n else (0, 0)
    if low < 0 or high >= NUM_CLASSES:
        raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found {low}..{high}")
    return np.asarray(labels, dtype=np.int64)


def _load_classes(folder, expected):
    path = os.path.join(folder, META_FILE)
    names = _unpickle(path, expected.get(META_FILE)).get("label_names")
    if not (isinstance(names, list) and len(names) == NUM_CLASSES
            and all(isinstance(n, (bytes, str)) for n in names)):
        raise ValueError(f"{path}: 'label_names' must be a list of {NUM_CLASSES} names")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
