"""Files: atomic writes, finite-only saving and pickle-free, bounded .npz reading.

Reading is bounded. :func:`load_npz` first reads the .npy header of every member of the
archive (dtype and shape, a few hundred bytes each) and checks them: no object, complex,
structured or date arrays; the shapes and kinds a caller expects (``expected``); at most
``max_bytes`` in all. Only then does it decompress, each member straight into an array of
the announced size, so a small file that inflates to gigabytes (a "zip bomb") or a header
announcing a huge shape is refused before any memory is spent on it.

Writing refuses non-finite values: :func:`save_npz` raises :class:`NonFiniteError` for
any float array holding NaN or inf, so no model or checkpoint file with a broken value is
ever written (``Layer.save`` and the training checkpoints all go through it).
"""
import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import zipfile

import numpy as np

#: The most :func:`load_npz` decompresses from one file unless told otherwise (1 GiB).
MAX_BYTES = 1 << 30
#: The most members :func:`load_npz` accepts in one archive.
MAX_MEMBERS = 100_000
#: Returned by an ``expected`` callable of :func:`load_npz`: leave this member unread.
SKIP = "skip"
#: The entry that marks an .npz written by ``Layer.save`` as a model file.
MODEL_MARKER = "__minicnn_model__"
#: The ``format`` field of a training checkpoint's ``meta`` entry.
CHECKPOINT_FORMAT = "minicnn-checkpoint-1"
_KINDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "U": "text"}


class NonFiniteError(ValueError):
    """An array that must hold finite numbers holds NaN or inf."""


def non_finite_entries(arrays):
    """Names of the float (or complex) arrays of the dict ``arrays`` that hold NaN or inf."""
    return [k for k, v in arrays.items()
            if np.asarray(v).dtype.kind in "fc" and not np.isfinite(v).all()]


def check_finite(arrays, what):
    """Raise :class:`NonFiniteError` if a float array of the dict ``arrays`` holds NaN or inf.

    ``what`` starts the message, e.g. ``"refusing to write 'runs/x/best.npz'"``; the
    message names at most five of the offending entries.
    """
    bad = non_finite_entries(arrays)
    if bad:
        shown = ", ".join(repr(k) for k in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteError(f"{what}: {shown} hold{'s' if len(bad) == 1 else ''} NaN or "
                             f"infinite values")


def error_message(error):
    """One line for an error: an OSError from :func:`atomic_path` without its "[Errno n]"."""
    if isinstance(error, OSError) and error.strerror and error.filename is None \
            and error.strerror.startswith("cannot write"):
        return error.strerror
    return str(error)


def _named(error, path):
    """``error`` (an OSError from writing ``path`` or its temp file) restated with ``path``."""
    reason = error.strerror or str(error) or type(error).__name__
    message = f"cannot write {os.fspath(path)!r}: {reason}"
    return OSError(error.errno, message) if error.errno else OSError(message)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    A crash or exception leaves ``path`` as it was (or absent) and removes the temp file.
    Works for files and directories. An OSError (a full disk, a read-only folder, ...)
    is raised again as ``OSError(errno, "cannot write '<path>': <reason>")``, naming
    ``path`` rather than the temp file.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise _named(e, path) from e
    try:
        yield tmp
        if os.path.isfile(tmp):  # on disk before the rename, so a crash leaves old or new
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise _named(e, path) from e
    finally:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)


def remove_stale_temps(folder, names):
    """Delete the temp files :func:`atomic_path` left in ``folder`` for the file ``names``
    (``.<name>.<8 random characters>.tmp``) when a process was killed mid-write.

    Returns the removed file names. Call it only when no other process writes there.
    """
    pattern = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in sorted(entries):
        match = pattern.fullmatch(entry)
        full = os.path.join(folder, entry)
        if match and match.group(1) in names and not os.path.isdir(full):
            try:
                os.unlink(full)
            except FileNotFoundError:
                continue
            removed.append(entry)
    return removed


def save_npz(path, arrays):
    """Write a dict of arrays to ``path`` (.npz) atomically.

    Raises :class:`NonFiniteError` (and writes nothing) if a float array holds NaN or inf.
    """
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    check_finite(arrays, f"refusing to write {os.fspath(path)!r}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def array_spec(arrays, prefix=""):
    """``{prefix + name: (shape, kinds)}`` of a dict of arrays, for ``load_npz(expected=...)``.

    ``kinds`` are the numpy dtype kinds accepted for that entry: "f" for floats (any
    width), "iu" for integers, "b" for booleans, "U" for text.
    """
    spec = {}
    for k, v in arrays.items():
        kind = np.asarray(v).dtype.kind
        spec[prefix + k] = (np.shape(v), "iu" if kind in "iu" else kind)
    return spec


def check_spec(spec_entry, shape, dtype):
    """The problem with an array of ``shape`` and ``dtype`` where ``spec_entry`` =
    ``(shape, kinds)`` is expected, or None."""
    want_shape, kinds = spec_entry
    if dtype.kind not in kinds:
        want = " or ".join(sorted({_KINDS.get(k, k) for k in kinds}))
        return f"holds {dtype} values, expected {want}"
    if tuple(shape) != tuple(want_shape):
        return f"has shape {tuple(shape)}, expected {tuple(want_shape)}"
    return None


def _read_header(member):
    """``(shape, fortran_order, dtype, header_size)`` of an open .npy member stream."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return shape, fortran, dtype


def _check_entry(name, shape, dtype, expected):
    """None to read the member, SKIP to leave it, or a string saying what is wrong."""
    if dtype.hasobject:
        return "pickle"
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        return f"holds {dtype} values; only booleans, integers, floats and text are read"
    if expected is None:
        return None
    if callable(expected):
        return expected(name, shape, dtype)
    if name not in expected:
        return "is not expected in this file"
    return check_spec(expected[name], shape, dtype)


def _read_data(member, shape, fortran, dtype, name):
    """Read exactly the array's bytes from the member stream into a new array."""
    count = math.prod(shape)
    flat = np.empty(count, dtype)
    view = memoryview(flat.view(np.uint8)) if count else memoryview(b"")
    done = 0
    while done < len(view):
        got = member.readinto(view[done:done + (1 << 20)])
        if not got:
            raise ValueError(f"entry {name!r} is truncated ({done} of {len(view)} bytes)")
        done += got
    if member.read(1):  # also makes zipfile check the member's CRC
        raise ValueError(f"entry {name!r} has bytes after its {count} values")
    return flat.reshape(shape, order="F" if fortran else "C")


def load_npz(path, what="file", expected=None, max_bytes=MAX_BYTES,
             mismatch="does not hold what was expected"):
    """Read a dict of arrays from an .npz written by :func:`save_npz`; never unpickles.

    Every member's .npy header (dtype and shape) is read and checked before anything is
    decompressed:

    - object (pickled), complex, structured and date arrays are refused;
    - ``expected``, if given, is a dict ``{name: (shape, kinds)}`` (see
      :func:`array_spec`) that the file must match exactly (no missing, extra, mis-shaped
      or wrongly typed entry), or a callable ``expected(name, shape, dtype)`` returning
      None (read the member), :data:`SKIP` (leave it out of the result) or a string
      saying what is wrong with it;
    - the members to read may hold at most ``max_bytes`` bytes in all.

    Then each member is decompressed into an array of exactly its announced size.
    Raises ``ValueError`` naming ``what`` and the file (and the entry) when the file is
    missing, not an .npz archive, truncated or corrupt, or fails a check (then the
    message reads "<what> '<path>' <mismatch>: <the first three problems>").
    """
    path = os.fspath(path)
    where = f"{what} {path!r}"
    if not os.path.isfile(path):
        raise ValueError(f"{where} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{where} is not a readable .npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            return _load_members(archive, where, expected, max_bytes, mismatch)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError, SyntaxError, ValueError) as e:
        if isinstance(e, _RefusedError):
            raise ValueError(str(e)) from None
        raise ValueError(f"{where} is not a readable .npz archive ({type(e).__name__}: {e})") from None


class _RefusedError(ValueError):
    """A well-formed archive that fails a check (the message is final)."""


def _load_members(archive, where, expected, max_bytes, mismatch):
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _RefusedError(f"{where} has {len(infos)} members, more than the {MAX_MEMBERS} "
                       f"an .npz of minicnn may hold")
    headers, problems, seen = [], [], set()
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise _RefusedError(f"{where} is not an .npz archive of arrays: member "
                           f"{info.filename!r} is not a .npy file")
        name = info.filename[:-4]
        if name in seen:
            raise _RefusedError(f"{where} holds entry {name!r} twice")
        seen.add(name)
        with archive.open(info) as member:
            shape, fortran, dtype = _read_header(member)
        verdict = _check_entry(name, shape, dtype, expected)
        if verdict == "pickle":
            raise _RefusedError(f"{where} could not be read safely: it holds pickled objects "
                           f"(entry {name!r}), which minicnn never loads")
        if verdict == SKIP:
            continue
        if verdict is not None:
            problems.append(f"entry {name!r} {verdict}")
        headers.append((info, name, shape, fortran, dtype))
    if isinstance(expected, dict):
        missing = [k for k in expected if k not in seen]
        if missing:
            problems.append(f"missing entries {missing}")
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise _RefusedError(f"{where} {mismatch}: " + "; ".join(problems[:3]) + more)
    total = sum(math.prod(shape) * dtype.itemsize for _, _, shape, _, dtype in headers)
    if total > max_bytes:
        big = max(headers, key=lambda h: math.prod(h[2]) * h[4].itemsize)
        raise _RefusedError(f"{where} would decompress to {_size(total)}, more than the "
                       f"{_size(max_bytes)} allowed (entry {big[1]!r} has shape {big[2]} "
                       f"of {big[4]}); refusing to read it")
    arrays = {}
    for info, name, shape, fortran, dtype in headers:
        with archive.open(info) as member:
            _read_header(member)
            arrays[name] = _read_data(member, shape, fortran, dtype, name)
    return arrays


def _size(n):
    """8,080 bytes; 1.9 GiB."""
    if n < 1 << 20:
        return f"{n:,} bytes"
    for unit, scale in (("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)):
        if n < scale * 1024 or unit == "TiB":
            return f"{n / scale:.1f} {unit}"


def _weight_entries(spec, unknown):
    """The ``expected`` callable of :func:`load_npz` for the weights of a model whose state
    has the :func:`array_spec` ``spec``: model-file entries, or a checkpoint's ``model.*``
    entries and ``meta``; optimizer entries are left unread, unknown ones listed."""
    def check(name, shape, dtype):
        if name == "meta":
            return check_spec(((), "U"), shape, dtype)
        if name == MODEL_MARKER:
            return check_spec(((), "iu"), shape, dtype)
        if name.startswith("optimizer."):
            return SKIP
        key = name[len("model."):] if name.startswith("model.") else name
        if key not in spec:
            unknown.append(name)
            return SKIP
        return check_spec(spec[key], shape, dtype)
    return check


def _checkpoint_meta(array, path):
    """The parsed ``meta`` of a checkpoint: a JSON object with the checkpoint format."""
    try:
        meta = json.loads(str(array))
    except ValueError as e:
        raise ValueError(f"checkpoint {path!r} (meta): not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path!r} is not a minicnn training checkpoint")
    return meta


def load_weights(model, path, parse_meta=None):
    """Load weights into ``model`` from a model file (``Layer.save``) or a training
    checkpoint; returns ``model``.

    The file is read once, and only its model entries, each checked against the model's
    own state (shape and kind) before it is decompressed; non-finite weights are refused
    and nothing changes unless everything fits. A checkpoint's ``meta`` is checked by
    ``parse_meta(array, path)`` when given (the training package passes its full check),
    else only for being a checkpoint's.
    """
    path = os.fspath(path)
    unknown = []
    arrays = load_npz(path, "model file", mismatch="does not fit this model",
                      expected=_weight_entries(array_spec(model.state_dict()), unknown))
    if arrays.pop(MODEL_MARKER, None) is not None:
        state, what = arrays, "model file"
    elif "meta" in arrays:
        (parse_meta or _checkpoint_meta)(arrays.pop("meta"), path)
        state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
        what = "checkpoint"
    else:
        raise ValueError(f"{path!r} is not a saved minicnn model (no {MODEL_MARKER} entry) "
                         f"nor a training checkpoint (no meta entry)")
    if unknown:
        shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
        raise ValueError(f"{what} {path!r} does not fit this model: unexpected entries {shown}")
    check_finite(state, f"{what} {path!r}")
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{what} {path!r} does not fit this model: {e}") from None
    return model
