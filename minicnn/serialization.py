"""Files: atomic writes and pickle-free, bounded .npz reading."""
import contextlib
import os
import tempfile
import zipfile

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    A crash or exception leaves ``path`` as it was (or absent) and removes the temp file.
    Works for files and directories.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield tmp
        if os.path.isfile(tmp):  # on disk before the rename, so a crash leaves old or new
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path, arrays):
    """Write a dict of arrays to ``path`` (.npz) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_npz(path, what="file"):
    """Read a dict of arrays from an .npz written by :func:`save_npz`; never unpickles.

    Raises ``ValueError`` naming the file when it is missing, not an .npz archive,
    truncated, or holds object arrays.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{what} {path!r} is not a readable .npz archive")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{what} {path!r} is not a readable .npz archive ({e})") from None
    except ValueError as e:
        if "pickle" not in str(e):
            raise ValueError(f"{what} {path!r} is not a readable .npz archive ({e})") from None
        raise ValueError(f"{what} {path!r} could not be read safely: it holds pickled "
                         "objects, which minicnn never loads") from None
