"""Where the data sets live: the default data folder and the checks every data path passes.

A data folder (``root``, the ``--data-dir`` of ``train.py``) defaults to ``$MINICNN_DATA``, else
``./data``. Before a loader looks inside one or a downloader writes into one, the folder is
checked here, so that a mistake is reported as one line naming the folder and what to do
rather than as whatever the operating system says two calls later ("File exists", "Can't mix
strings and bytes") or, worse, as a silent fall-back to another folder.
"""
from __future__ import annotations

import os


def default_root():
    """``$MINICNN_DATA`` if set, else ``./data``."""
    return os.environ.get("MINICNN_DATA") or "data"


def data_root(root=None, what="data folder"):
    """``root`` as a ``str`` (``None``: :func:`default_root`), checked.

    Raises ``TypeError`` for a folder name given as bytes (or anything not a path),
    ``FileNotFoundError`` for a broken symbolic link and ``NotADirectoryError`` for a file. A
    folder that does not exist yet is fine (a download creates it).
    """
    if root is None:
        return default_root()
    try:
        path = os.fspath(root)
    except TypeError:
        raise TypeError(f"{what} (root, --data-dir) must be a folder name (str or "
                        f"pathlib.Path), got {type(root).__name__} {root!r}") from None
    if isinstance(path, bytes):
        raise TypeError(f"{what} (root, --data-dir) must be a folder name as str, got bytes "
                        f"{path!r}; pass os.fsdecode(root) instead")
    check_not_broken(path, what)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{what} {path} is a file, not a folder; choose another "
                                 f"root (--data-dir, $MINICNN_DATA) or move the file away")
    return path


def check_not_broken(path, what):
    """Raise ``FileNotFoundError`` if ``path`` is a symbolic link to nothing."""
    if os.path.islink(path) and not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path} is a broken symbolic link (to "
                                f"{os.readlink(path)!r}, which does not exist); fix the link "
                                f"or remove it")


def check_readable(folder, what="data folder"):
    """Raise ``PermissionError`` if ``folder`` exists but its files cannot be listed or
    opened (it lacks read or search permission), instead of looking past it."""
    if os.path.isdir(folder) and not os.access(folder, os.R_OK | os.X_OK):
        raise PermissionError(f"{what} {folder} exists but cannot be read (permission "
                              f"denied); give yourself access (chmod u+rx {folder}) or "
                              f"choose another --data-dir")
