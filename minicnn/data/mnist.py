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

from minicnn.data.download import fetch, gzip_limit
from minicnn.data.idx import idx_magic, idx_type_code, read_idx, read_idx_header
from minicnn.data.paths import check_readable, data_root, default_root
from minicnn.serialization import atomic_path

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NUM_CLASSES = 10
IMAGE_SIZE = 28
SPLITS = {"train": 60_000, "t10k": 10_000}  # split -> images in it


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
    gz_bytes: Dict[str, int]   # FILES name -> published size of the .gz ({}: unknown)


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
    system_dir="/usr/share/datasets/fashion-mnist", package="dataset-fashion-mnist",
    gz_bytes={"train-images-idx3-ubyte": 26_421_880, "train-labels-idx1-ubyte": 29_515,
              "t10k-images-idx3-ubyte": 4_422_102, "t10k-labels-idx1-ubyte": 5_148})

MNIST = IdxDataset(
    name="MNIST", folder="mnist",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",  # the mirror torchvision uses
    md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    sha256={}, classes=tuple(str(d) for d in range(10)), system_dir=None, package=None,
    gz_bytes={"train-images-idx3-ubyte": 9_912_422, "train-labels-idx1-ubyte": 28_881,
              "t10k-images-idx3-ubyte": 1_648_877, "t10k-labels-idx1-ubyte": 4_542})


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
    bases = ([data_root(root)] if root is not None else []) + \
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
        check_readable(folder, f"{spec.name} folder")
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
#
# Every file's header is read and checked first (kind, image size, count within the data
# set's split, images and labels of a split agreeing), so that no byte of a body is inflated
# before the size it will have is known to be right; then each body is read once, its
# checksums computed as it streams.

def _load(spec, root, download, base_url, md5, sha256):
    md5, sha256 = _sums(spec, md5, "md5"), _sums(spec, sha256, "sha256")
    paths, folders, partial = _locate(spec, root)
    if paths is None and download:
        folder = _download(spec, root, base_url, md5)
        paths = {name: _file_in(folder, name) for name in FILES}
    if paths is None:
        raise _not_found(spec, root, folders, partial)
    headers = {name: _checked_header(spec, name, paths[name]) for name in FILES}
    for split in SPLITS:
        _check_pair(headers, paths, split)
    arrays = {name: _read_checked(spec, name, paths[name], md5, sha256, headers[name])
              for name in FILES}
    x_train, y_train = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    x_test, y_test = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    return Mnist(x_train[:, None], y_train.astype(np.int64), x_test[:, None],
                 y_test.astype(np.int64), list(spec.classes))


def _sums(spec, given, kind):
    """The checksums to use (``kind`` "md5" or "sha256"): the recorded ones, or ``given``,
    which may name fewer files (those are checked) but no other names."""
    if given is None:
        return getattr(spec, kind)
    if not isinstance(given, dict):
        raise TypeError(f"{kind}= must be a dict from file name to hex digest, got "
                        f"{type(given).__name__}")
    unknown = sorted(set(given) - set(FILES))
    if unknown:
        raise ValueError(f"{kind}= names {', '.join(map(repr, unknown))}, which is not one of "
                         f"{spec.name}'s files; the names are {', '.join(FILES)} (no .gz)")
    return given


def _checked_header(spec, name, path):
    """The header of one of the four files, checked: its kind and, for images, their size;
    the count no more than the data set's split holds."""
    header = read_idx_header(path)
    images = "images" in name
    magic = idx_magic(0x08, 3 if images else 1)
    got = idx_magic(idx_type_code(header.dtype), len(header.shape))
    if got != magic:
        kind = "images: unsigned bytes in 3 dimensions" if images else \
            "labels: unsigned bytes in 1 dimension"
        raise ValueError(f"{path}: expected IDX magic number {magic} (0x{magic:08x}, "
                         f"{kind}), got {got} (0x{got:08x}, {header.dtype} with "
                         f"{len(header.shape)} dimension(s))")
    if images and header.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{path}: expected {IMAGE_SIZE}x{IMAGE_SIZE} images, got "
                         f"{header.shape[1]}x{header.shape[2]}")
    split = name.split("-")[0]
    if header.shape[0] > SPLITS[split]:
        raise ValueError(f"{path}: the header announces {header.shape[0]} "
                         f"{'images' if images else 'labels'}, more than {spec.name}'s "
                         f"{split} split holds ({SPLITS[split]}); the file is corrupt or not "
                         f"{spec.name}: delete it and get it again")
    return header


def _check_pair(headers, paths, split):
    images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
    if headers[images].shape[0] != headers[labels].shape[0]:
        raise ValueError(f"{paths[images]} holds {headers[images].shape[0]} images but "
                         f"{paths[labels]} holds {headers[labels].shape[0]} labels; they "
                         f"must match")


def _read_checked(spec, name, path, md5, sha256, header=None):
    """Read one of the four files (its header checked first, unless ``header`` is the
    checked one), check its labels and verify its checksums (module docstring)."""
    header = header or _checked_header(spec, name, path)
    content = hashlib.sha256()
    gz_md5 = hashlib.md5(usedforsecurity=False) if name in md5 and _is_gzip(path) else None
    array = read_idx(path, max_bytes=header.nbytes, header=header, digest=content,
                     file_digest=gz_md5)
    if "labels" in name and len(array) and array.max() >= NUM_CLASSES:
        raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found "
                         f"{int(array.max())}")
    _verify(spec, name, path, content.hexdigest(), gz_md5 and gz_md5.hexdigest(), md5, sha256)
    return array


def _verify(spec, name, path, content, gz_md5, md5, sha256):
    """Check the content's SHA-256 where one is recorded, else a .gz file's MD5 where one
    is published (module docstring); refuse another data set's file."""
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
    elif gz_md5 is not None and gz_md5 != md5[name]:
        raise ValueError(f"{path}: MD5 {gz_md5}, expected the published {md5[name]} "
                         f"({spec.name}'s {name}.gz): the file is corrupt or not "
                         f"{spec.name}; {advice}")


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


# -- download ------------------------------------------------------------------------

def _download(spec, root, base_url, md5):
    root = data_root(root)
    base_url = base_url or spec.base_url
    md5 = _sums(spec, md5, "md5")
    folder = os.path.join(root, spec.folder)
    missing = [name for name in FILES if _file_in(folder, name) is None]
    if not missing:
        return folder
    unchecked = [name for name in missing if name not in md5]
    if unchecked:
        raise ValueError(f"md5= has no checksum for {', '.join(unchecked)}, which must be "
                         f"downloaded; give the MD5 of every file to download, or leave md5 "
                         f"out to use the published ones")
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{spec.folder}-download-", dir=root) as tmp:
        for name in missing:
            url = base_url.rstrip("/") + "/" + name + ".gz"
            advice = (f"check your connection and retry, or put {name}.gz from {url} "
                      f"into {folder} yourself")
            published = md5[name] == spec.md5[name]
            fetch(url, os.path.join(tmp, name + ".gz"), md5[name], advice,
                  desc=f"{spec.name} {name}.gz", size=spec.gz_bytes[name] if published else None,
                  limit=gzip_limit(_largest_file(name)))
        fetched = {name: os.path.join(tmp, name + ".gz") for name in missing}
        for name, path in fetched.items():
            _read_checked(spec, name, path, md5, {})  # complete, well-formed IDX
        os.makedirs(folder, exist_ok=True)
        for name, path in fetched.items():
            with atomic_path(os.path.join(folder, name + ".gz")) as final:
                os.replace(path, final)
    return folder


def _largest_file(name):
    """Bytes of the largest well-formed file ``name`` (header and data, uncompressed)."""
    count = SPLITS[name.split("-")[0]]
    return 16 + count * IMAGE_SIZE ** 2 if "images" in name else 8 + count
