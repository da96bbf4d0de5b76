"""The run folder: one writer at a time, never a stranger's folder, and reading a run back.

**One writer.** A run (``train.py``, ``--resume``, ``fit(out_dir=...)``) holds an exclusive
lock on its folder for its whole life: :func:`claim_run_folder` takes an ``fcntl.flock``
on the file ``run.lock`` in it (holding the process id, for the message a second writer
gets). The operating system releases the lock when the process ends, however it ends
(``kill -9`` included), so a lock is never stale; a second writer is refused at once.
Readers (``minicnn-plot``, ``minicnn-report``, ``--evaluate``, :func:`load_run`) take no
lock: every file is written atomically (``minicnn.serialization.atomic_path``), so they
see the old file or the new one, never half of one.

**New or a run's.** A new run needs a folder that does not exist yet or is empty; a
folder that holds a run is continued with ``--resume`` (``fit(..., resume=True)``);
anything else (a file, ``''``, a folder of other files, a broken symbolic link) is refused
in one line before anything in it is touched.

**Reading back.** :func:`load_run` rebuilds the model, config and history of a folder.
"""
import contextlib
import errno
import json
import os
import re
import threading

from ..serialization import atomic_path, remove_stale_temps
from .build import build_model_for
from .checkpoint import BEST, CHECKPOINT, FINAL_MODELS, load_weights
from .config import RunConfig
from .history import History

try:
    import fcntl
except ImportError:  # not on Windows: runs there are not protected from each other
    fcntl = None

#: The files a run writes into its folder (their stale temp files are removed when a run
#: claims the folder).
RUN_FILES = ("config.json", "history.json", "history.csv", CHECKPOINT, BEST, "loss.png",
             "report.png")
LOCK = "run.lock"
_TEMP = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")
_HELD = {}  # real path of a folder -> the thread of this process that holds its lock


class RunFolderBusyError(ValueError):
    """Another process is writing the run folder."""


def _leftovers(entries):
    """The entries a killed run may leave in a folder that never got a file of its own."""
    return [e for e in entries
            if e != LOCK and not (_TEMP.fullmatch(e) and _TEMP.fullmatch(e).group(1) in RUN_FILES)]


def check_new_folder(path, name="--out", resume_hint=None):
    """Raise a one-line ValueError unless ``path`` may receive a new run: a folder that
    does not exist or is empty. ``name`` is what the caller calls the folder (``--out``,
    ``out_dir``); ``resume_hint`` says how to continue a folder that holds a run."""
    shown = f"{name} {path!r}"
    if path == "":
        raise ValueError(f"{name} '' names no folder (it would write into the current one); "
                         f"give a new folder, e.g. runs/first")
    if os.path.islink(path) and not os.path.exists(path):
        raise ValueError(f"{shown} is a broken symbolic link (to {os.readlink(path)!r}); "
                         f"remove it or choose another folder")
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise ValueError(f"{shown} is a file, not a folder; a run needs a new or empty folder")
    try:
        entries = sorted(os.listdir(path))
    except OSError as e:
        raise ValueError(f"{shown} cannot be read ({e.strerror})") from None
    others = _leftovers(entries)
    if any(e in RUN_FILES for e in others):
        hint = resume_hint or f"continue it with --resume {path}"
        raise ValueError(f"{path!r} already holds a run; {hint} or choose another {name}")
    if others:
        listed = ", ".join(repr(e) for e in others[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(f"{shown} is not empty (it holds {listed}) and is not a run folder; "
                         f"a run needs a new or empty folder, so nothing was written")


class RunFolderLock:
    """The exclusive lock of one process on a run folder (see the module docstring)."""

    def __init__(self, folder, fd, created):
        self.folder, self.fd, self.created = folder, fd, created

    def release(self):
        """Give the folder up: remove run.lock (and the folder itself if this run created
        it and wrote nothing into it), then unlock."""
        if self.fd is None:
            return
        _HELD.pop(os.path.realpath(self.folder), None)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, LOCK))  # unlinked while still locked
            if self.created and not os.listdir(self.folder):
                os.rmdir(self.folder)
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _holder(lock_path):
    """``"process 1234"`` from the lock file, or ``"another process"``."""
    try:
        with open(lock_path) as f:
            pid = f.read(32).strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def _lock(folder):
    """An open descriptor of ``folder/run.lock`` holding its exclusive flock; RunFolderBusyError
    if another process holds it."""
    path = os.path.join(folder, LOCK)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise RunFolderBusyError(_busy_message(folder, path)) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder unlinked while we waited for it
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def check_not_busy(path):
    """Raise :class:`RunFolderBusyError` if another process holds the lock of the run folder
    ``path`` (probed with a shared lock on its run.lock, creating nothing)."""
    lock_path = os.path.join(os.fspath(path), LOCK)
    if fcntl is None or holds(path):
        return
    try:
        fd = os.open(lock_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return  # no lock file (or not one we can open): nobody to wait for
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise RunFolderBusyError(_busy_message(os.fspath(path), lock_path)) from None
    finally:
        os.close(fd)


def _busy_message(folder, lock_path):
    return (f"{folder!r} is in use by another run ({_holder(lock_path)} is writing it); "
            f"wait for it to end or choose another folder")


def claim_run_folder(path, resume=False, name="--out", resume_hint=None):
    """Lock the run folder ``path`` for this process and return its :class:`RunFolderLock`
    (a context manager that releases it). A new run (``resume=False``) needs a folder that
    does not exist or is empty (:func:`check_new_folder`, checked again once locked); a
    resumed one a folder. Stale temp files of killed writes are removed once locked.

    Raises a one-line ValueError (:class:`RunFolderBusyError` when another process holds the
    lock, checked first) and leaves the folder untouched when it is refused.
    """
    path = os.fspath(path)
    if path and os.path.isdir(path):
        check_not_busy(path)  # a running run's folder: say so, not "holds a run"
    if not resume:
        check_new_folder(path, name, resume_hint)
    elif not os.path.isdir(path):
        raise ValueError(f"{name} {path!r} is not a folder; resuming needs the run's folder")
    created = not os.path.exists(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the run folder {path!r} ({e.strerror})") from None
    lock = RunFolderLock(path, _lock(path), created)
    try:
        if not resume:
            check_new_folder(path, name, resume_hint)  # a run may have ended just before
        remove_stale_temps(path, RUN_FILES)
    except BaseException:
        lock.created = False  # it may hold another run's files now: leave the folder
        lock.release()
        raise
    _HELD[os.path.realpath(path)] = threading.get_ident()
    return lock


def holds(path):
    """True if this thread holds the lock on the run folder ``path`` (another thread of the
    same process is a second writer like any other)."""
    return _HELD.get(os.path.realpath(os.fspath(path))) == threading.get_ident()


def hold_run_folder(out_dir, resume=False):
    """The context in which ``fit(..., out_dir=out_dir, resume=resume)`` writes: holding the
    folder's lock (:func:`claim_run_folder`, which also decides which folder is acceptable),
    or nothing to hold when ``out_dir`` is None or this process holds the lock already
    (``train.py`` claims the folder before it writes config.json)."""
    if out_dir is None or holds(out_dir):
        return contextlib.nullcontext()
    return claim_run_folder(out_dir, resume, "out_dir", "pass resume=True to continue it")


# -- reading a run back --------------------------------------------------------------

def save_config(run_dir, config):
    """Write ``config.json`` (a :class:`RunConfig` or its dict) into ``run_dir``, atomically."""
    record = config.to_dict() if isinstance(config, RunConfig) else config
    with atomic_path(os.path.join(run_dir, "config.json")) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=2)


def load_config(run_dir):
    """The :class:`RunConfig` of a run folder's ``config.json`` (ValueError naming the file
    and field)."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            record = json.load(f, parse_constant=lambda c: float("nan"))
    except OSError as e:
        raise ValueError(f"cannot read {path!r} ({e.strerror}); is {run_dir!r} a run folder?") from None
    except ValueError as e:
        raise ValueError(f"{path!r} is not valid JSON ({e})") from None
    return RunConfig.from_dict(record, path)


def missing_config_message(run_dir):
    """Why a run folder without config.json cannot be rebuilt, and what to do instead."""
    here = sorted(f for f in ("history.json", BEST, CHECKPOINT)
                  if os.path.exists(os.path.join(run_dir, f)))
    if not here:
        return (f"{run_dir!r} holds none of config.json, history.json, {BEST}, {CHECKPOINT}: "
                f"is it a run folder (written by train.py or fit(out_dir=...))?")
    return (f"{run_dir!r} has {', '.join(here)} but no config.json, so the network's "
            f"architecture and its data are unknown: a folder written by fit(out_dir=...) has "
            f"no config.json (train.py / minicnn-train write one).")


def final_weights(config):
    """The weights file of a run's result: ``best.npz``, or ``checkpoint.npz`` (the last
    epoch's) when its config says ``final_model: "last"``; ``best.npz`` without a config."""
    return FINAL_MODELS[config.get("final_model", "best")] if config is not None else BEST


def load_run(run_dir, weights=None, model=None):
    """``(model, config, history)`` of a run folder: the model with ``weights`` loaded, in
    eval mode. ``weights`` None: the run's result (:func:`final_weights`: ``best.npz``, or
    ``checkpoint.npz`` for ``final_model: "last"``); ``checkpoint.npz`` if there is no
    ``best.npz`` yet.

    A folder written by ``train.py`` is rebuilt from its ``config.json`` (``config`` is its
    :class:`RunConfig`). Given ``model``, the weights are loaded into ``model`` itself (and
    it is returned): a folder written by ``fit(out_dir=...)`` has no config.json, so it
    needs a network of the same architecture, and ``config`` is None.
    """
    has_config = os.path.exists(os.path.join(run_dir, "config.json"))
    if model is None and not has_config:
        raise ValueError(f"{missing_config_message(run_dir)} Pass the network to load the "
                         f"weights into: load_run({run_dir!r}, model=my_network).")
    config = load_config(run_dir) if has_config else None
    weights = final_weights(config) if weights is None else weights
    path = os.path.join(run_dir, weights)
    if not os.path.exists(path):
        path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.exists(path):
        raise ValueError(f"{run_dir!r} has neither {weights} nor {CHECKPOINT}: no trained "
                         f"weights to load")
    model = load_weights(model if model is not None else build_model_for(config), path).eval()
    history_path = os.path.join(run_dir, "history.json")
    history = History.load(history_path) if os.path.exists(history_path) else History()
    return model, config, history
