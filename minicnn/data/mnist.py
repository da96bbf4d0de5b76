"""Fashion-MNIST and MNIST: find the four IDX files, read and verify them, or download them.

Where the files are looked for, in this order (the first folder that holds all four wins):

1. ``root`` (the ``--data-dir`` of ``train.py``), if given;
2. ``$MINICNN_DATA``, if set;
3. ``./data``;
4. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist``, where Debian's and Ubuntu's
   package ``dataset-fashion-mnist`` installs them (there is no such package for MNIST).

In each of the first three the files may sit in a ``fashion-mnist/`` (or ``mnist/``)
subfolder, looked at first, or directly in the folder. Each file may be gzipped
(``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``).

How a file is verified. The published checksums are MD5s of the original ``.gz`` files;
a copy that was re-compressed (Debian's are) has other ``.gz`` bytes but the same
content. So a download is checked against the published MD5, and every file, downloaded
or found, against the SHA-256 of its decompressed content recorded here (measured on
Debian's package, whose decompressed files are the data). For MNIST no content checksum
is recorded (no copy of MNIST was at hand to measure), so a gzipped MNIST file must have
the published MD5 and an uncompressed one is checked by its structure alone. A file
whose content is another data set's (Fashion-MNIST's files where MNIST's are expected,
or the other way round) is refused.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from minicnn.data.cifar10 import default_root
from minicnn.data.download import fetch, file_digest
from minicnn.data.idx import idx_bytes, idx_magic, idx_type_code, read_idx
from minicnn.serialization import atomic_path

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NUM_CLASSES = 10
IMAGE_SIZE = 28


class Mnist(NamedTuple):
    """An MNIST-style data set: images uint8 ``(N, 1, 28, 28)``, labels int64 ``(N,)`` in
    ``0..9`` and the 10 class names; the same fields as :class:`~minicnn.data.Cifar10`."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: List[str]


class IdxDataset(NamedTuple):
    """Where a data set of four IDX files comes from and how its files are checked."""
    name: str                  # for messages, e.g. "Fashion-MNIST"
    folder: str                # the subfolder looked in and downloaded to
    base_url: str              # the four files are base_url + FILES[i] + ".gz"
    md5: Dict[str, str]        # FILES name -> published MD5 of the .gz
    sha256: Dict[str, str]     # FILES name -> SHA-256 of the decompressed file ({}: unknown)
    classes: Tuple[str, ...]
    system_dir: Optional[str]  # where a system package installs the files
    package: Optional[str]     # that package's name


FASHION_MNIST = IdxDataset(
    name="Fashion-MNIST", folder="fashion-mnist",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Zalando's own
    md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    # measured: zcat /usr/share/datasets/fashion-mnist/<file>.gz | sha256sum
    sha256={"train-images-idx3-ubyte":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"),
    system_dir="/usr/share/datasets/fashion-mnist", package="dataset-fashion-mnist")

MNIST = IdxDataset(
    name="MNIST", folder="mnist",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",  # the mirror torchvision uses
    md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    sha256={}, classes=tuple(str(d) for d in range(10)), system_dir=None, package=None)


def load_fashion_mnist(root: str | os.PathLike | None = None, download: bool = False,
                       base_url: str | None = None, md5: Dict[str, str] | None = None,
                       sha256: Dict[str, str] | None = None) -> Mnist:
    """Load Fashion-MNIST (Zalando) as a :class:`Mnist`: 60,000 training and 10,000 test
    images, uint8 ``(N, 1, 28, 28)``, labels int64 ``0..9``, and the class names.

    The files are looked for as the module docstring says; with ``download=True`` and no
    folder holding all four, the missing ones are fetched into ``<root>/fashion-mnist``
    (``root`` defaulting to ``$MINICNN_DATA`` or ``./data``; see :func:`download_fashion_mnist`).
    ``base_url``, ``md5`` and ``sha256`` replace the official location and checksums
    (for a mirror, or for tests). Raises ``FileNotFoundError`` saying where it looked
    and how to get the data, and ``ValueError`` naming the file that is truncated,
    corrupt, of the wrong shape or fails its checksum.
    """
    return _load(FASHION_MNIST, root, download, base_url, md5, sha256)


def load_mnist(root: str | os.PathLike | None = None, download: bool = False,
               base_url: str | None = None, md5: Dict[str, str] | None = None,
               sha256: Dict[str, str] | None = None) -> Mnist:
    """Load MNIST (LeCun, Cortes and Burges' handwritten digits) as a :class:`Mnist`;
    arguments and errors as :func:`load_fashion_mnist`. Downloads from a mirror of the
    original files, checked against the published MD5s."""
    return _load(MNIST, root, download, base_url, md5, sha256)


def download_fashion_mnist(root=None, base_url=None, md5=None):
    """Fetch the Fashion-MNIST files missing from ``<root>/fashion-mnist``; returns that folder.

    Each file is checked against its published MD5 and read in full (structure, lengths,
    labels) in a temporary folder inside ``root`` before any is moved into place, each
    with an atomic rename. On any failure nothing new is left in ``root`` and the error
    says what to do.
    """
    return _download(FASHION_MNIST, root, base_url, md5)


def download_mnist(root=None, base_url=None, md5=None):
    """As :func:`download_fashion_mnist`, for MNIST into ``<root>/mnist``."""
    return _download(MNIST, root, base_url, md5)


def find_fashion_mnist(root=None):
    """The first folder in the lookup order that holds all four Fashion-MNIST files, or None.
    Only checks that the files exist (cheap); loading verifies them."""
    found = _locate(FASHION_MNIST, root)[0]
    return found and os.path.dirname(found[FILES[0]])


def find_mnist(root=None):
    """As :func:`find_fashion_mnist`, for MNIST."""
    found = _locate(MNIST, root)[0]
    return found and os.path.dirname(found[FILES[0]])


# -- lookup --------------------------------------------------------------------------

def _folders(spec, root):
    """The folders looked in, in order, without repeats."""
    bases = ([os.fspath(root)] if root is not None else []) + \
        ([os.environ["MINICNN_DATA"]] if os.environ.get("MINICNN_DATA") else []) + ["data"]
    folders = [d for base in bases for d in (os.path.join(base, spec.folder), base)]
    folders += [spec.system_dir] if spec.system_dir else []
    seen, unique = set(), []
    for folder in folders:
        if os.path.abspath(folder) not in seen:
            seen.add(os.path.abspath(folder))
            unique.append(folder)
    return unique


def _file_in(folder, name):
    """``folder/name.gz`` or ``folder/name``, whichever exists first, else None."""
    for candidate in (name + ".gz", name):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _locate(spec, root):
    """``({name: path}, folders looked in, {folder: names missing})`` for the first
    folder holding all four files; the dict is None if no folder does."""
    folders, partial = _folders(spec, root), {}
    for folder in folders:
        paths = {name: _file_in(folder, name) for name in FILES}
        missing = [name for name, path in paths.items() if path is None]
        if not missing:
            return paths, folders, partial
        if len(missing) < len(FILES):
            partial[folder] = missing
    return None, folders, partial


def _not_found(spec, root, folders, partial):
    target = os.path.join(root if root is not None else default_root(), spec.folder)
    lines = [f"{spec.name} not found: no folder holds all four files "
             f"({', '.join(FILES)}, each gzipped or not). Looked in, in order:"]
    for folder in folders:
        note = (f" (has some, lacks {', '.join(partial[folder])})" if folder in partial else "")
        lines.append(f"  {os.path.abspath(folder)}{note}")
    how = [f"download them into {os.path.abspath(target)} with download=True "
           f"(python train.py --dataset {spec.folder} --download)"]
    if spec.package:
        how.insert(0, f"install them with 'apt-get install {spec.package}' (Debian, Ubuntu), "
                      f"which puts them in {spec.system_dir}")
    lines.append("To get them: " + ", or ".join(how) + ".")
    return FileNotFoundError("\n".join(lines))


# -- loading and checking ------------------------------------------------------------

def _load(spec, root, download, base_url, md5, sha256):
    paths, folders, partial = _locate(spec, root)
    if paths is None and download:
        folder = _download(spec, root, base_url, md5)
        paths = {name: _file_in(folder, name) for name in FILES}
    if paths is None:
        raise _not_found(spec, root, folders, partial)
    md5 = spec.md5 if md5 is None else md5
    sha256 = spec.sha256 if sha256 is None else sha256
    arrays = {name: _read_checked(spec, name, paths[name], md5, sha256) for name in FILES}
    x_train, y_train = _pair(arrays, paths, "train")
    x_test, y_test = _pair(arrays, paths, "t10k")
    return Mnist(x_train, y_train, x_test, y_test, list(spec.classes))


def _read_checked(spec, name, path, md5, sha256):
    """Read one of the four files, check its kind and verify its checksum."""
    array = read_idx(path)
    images = "images" in name
    magic = idx_magic(0x08, 3 if images else 1)
    got = idx_magic(idx_type_code(array.dtype), array.ndim)
    if got != magic:
        kind = "images: unsigned bytes in 3 dimensions" if images else \
            "labels: unsigned bytes in 1 dimension"
        raise ValueError(f"{path}: expected IDX magic number {magic} (0x{magic:08x}, "
                         f"{kind}), got {got} (0x{got:08x}, {array.dtype} with "
                         f"{array.ndim} dimension(s))")
    if images and array.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{path}: expected {IMAGE_SIZE}x{IMAGE_SIZE} images, got "
                         f"{array.shape[1]}x{array.shape[2]}")
    if not images and len(array) and array.max() >= NUM_CLASSES:
        raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found "
                         f"{int(array.max())}")
    _verify(spec, name, path, array, md5, sha256)
    return array


def _verify(spec, name, path, array, md5, sha256):
    """Check the content's SHA-256 where one is recorded, else a .gz file's MD5 where one
    is published (module docstring); refuse another data set's file."""
    content = hashlib.sha256(idx_bytes(array)).hexdigest()
    for other in (FASHION_MNIST, MNIST):
        if other.name != spec.name and content == other.sha256.get(name):
            raise ValueError(f"{path} is {other.name}'s {name}, not {spec.name}'s; "
                             f"keep each data set in its own folder ({spec.folder}/)")
    advice = f"delete {path} and get the file again"
    if name in sha256:
        if content != sha256[name]:
            raise ValueError(f"{path}: the SHA-256 of its decompressed content is {content}, "
                             f"expected {sha256[name]} ({spec.name}'s {name}): the file is "
                             f"corrupt or not {spec.name}; {advice}")
    elif _is_gzip(path) and name in md5 and file_digest(path, "md5") != md5[name]:
        raise ValueError(f"{path}: MD5 {file_digest(path, 'md5')}, expected the published "
                         f"{md5[name]} ({spec.name}'s {name}.gz): the file is corrupt or "
                         f"not {spec.name}; {advice}")


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _pair(arrays, paths, split):
    images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
    if len(images) != len(labels):
        raise ValueError(f"{paths[f'{split}-images-idx3-ubyte']} holds {len(images)} images "
                         f"but {paths[f'{split}-labels-idx1-ubyte']} holds {len(labels)} "
                         f"labels; they must match")
    return images[:, None], labels.astype(np.int64)


# -- download ------------------------------------------------------------------------

def _download(spec, root, base_url, md5):
    root = os.fspath(root if root is not None else default_root())
    base_url = base_url or spec.base_url
    md5 = spec.md5 if md5 is None else md5
    folder = os.path.join(root, spec.folder)
    missing = [name for name in FILES if _file_in(folder, name) is None]
    if not missing:
        return folder
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{spec.folder}-download-", dir=root) as tmp:
        for name in missing:
            url = base_url.rstrip("/") + "/" + name + ".gz"
            advice = (f"check your connection and retry, or put {name}.gz from {url} "
                      f"into {folder} yourself")
            fetch(url, os.path.join(tmp, name + ".gz"), md5[name], advice,
                  desc=f"{spec.name} {name}.gz")
        fetched = {name: os.path.join(tmp, name + ".gz") for name in missing}
        for name, path in fetched.items():
            _read_checked(spec, name, path, md5, {})  # complete, well-formed IDX
        os.makedirs(folder, exist_ok=True)
        for name, path in fetched.items():
            with atomic_path(os.path.join(folder, name + ".gz")) as final:
                os.replace(path, final)
    return folder
