"""CIFAR-10 (python version): a safe reader and a verified, atomic downloader.

Pickle safety. The batch files are pickles, and unpickling runs whatever code the file
names. So every batch is read with :class:`_SafeUnpickler`, which refuses every global
except the few numpy needs to rebuild a plain array. That makes a hand-placed folder as
safe to read as a downloaded one. A download additionally writes a manifest
(``cifar-10-batches-py/.minicnn-verified``: the archive MD5 and each file's SHA-256);
when the manifest is present, each file is checked against it before it is read, which
catches files that were corrupted or swapped after the download.
"""
from __future__ import annotations

import codecs
import json
import os
import pickle
import tarfile
import tempfile
import zlib
from typing import List, NamedTuple

import numpy as np

from minicnn.data.download import fetch, file_digest
from minicnn.serialization import atomic_path

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ALL_FILES = TRAIN_FILES + [TEST_FILE, META_FILE]
MANIFEST = ".minicnn-verified"
NUM_CLASSES = 10


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


def default_root():
    """``$MINICNN_DATA`` if set, else ``./data``."""
    return os.environ.get("MINICNN_DATA") or "data"


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
    root = os.fspath(root if root is not None else default_root())
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
    root = os.fspath(root if root is not None else default_root())
    url, md5 = url or CIFAR10_URL, md5 or CIFAR10_MD5
    folder = os.path.join(root, FOLDER)
    check_not_broken(root, "data folder")
    check_not_broken(folder, "CIFAR-10 folder")
    if os.path.exists(folder):
        raise FileExistsError(f"{folder} already exists; delete it and download again, "
                              f"or complete it by hand")
    if os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(f"data folder {root} is a file, not a folder; choose "
                                 f"another --data-dir (or $MINICNN_DATA)")
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
    fetch(url, path, md5, advice, desc="CIFAR-10")


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


def check_not_broken(path, what):
    """Raise FileNotFoundError if ``path`` is a symbolic link to nothing."""
    if os.path.islink(path) and not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path} is a broken symbolic link (to "
                                f"{os.readlink(path)!r}, which does not exist); fix the link "
                                f"or remove it")


def _check_present(folder, root):
    advice = (f"run with download=True (e.g. python train.py --dataset cifar10 --download) or put "
              f"{FOLDER} in {os.path.abspath(root)}")
    check_not_broken(root, "data folder")
    check_not_broken(folder, "CIFAR-10 folder")
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


_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
_FROMBUFFER = np.empty(1).__reduce_ex__(5)[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers, numbers, strings and numpy arrays."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _unpickle(path, expected_sha256):
    """Read a CIFAR pickle as a dict with str keys, checking its SHA-256 when one is known."""
    folder = os.path.dirname(path)
    if expected_sha256 is not None and file_digest(path) != expected_sha256:
        raise ValueError(f"{path} does not match the checksum recorded when it was downloaded; "
                         f"delete {folder} and download again")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
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
    try:
        labels = np.asarray(labels)
    except ValueError:  # ragged nested lists
        labels = np.asarray(None)
    if labels.shape != (n,) or (n and labels.dtype.kind not in "iu"):
        raise ValueError(f"{path}: 'labels' must be {n} integers, "
                         f"got {labels.dtype} {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, "
                         f"found {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def _load_classes(folder, expected):
    path = os.path.join(folder, META_FILE)
    names = _unpickle(path, expected.get(META_FILE)).get("label_names")
    if not (isinstance(names, list) and len(names) == NUM_CLASSES
            and all(isinstance(n, (bytes, str)) for n in names)):
        raise ValueError(f"{path}: 'label_names' must be a list of {NUM_CLASSES} names")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
