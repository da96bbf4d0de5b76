"""Tests for minicnn.data: CIFAR-10 reading/downloading, synthetic data, preprocessing."""
import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.data import (
    SYNTHETIC_CLASSES,
    Cifar10,
    DataLoader,
    cifar10,
    fit_normalizer,
    load_cifar10,
    normalize,
    random_crop,
    random_flip,
    synthetic_cifar,
    train_val_split,
)

FOLDER = "cifar-10-batches-py"
NAMES = [f"label{i}" for i in range(10)]


# ---------------------------------------------------------------- CIFAR-10 files

def batch_bytes(data, labels, protocol=2, str_keys=False):
    """A batch pickled like the real files (bytes keys, uint8 (n, 3072) data, list labels)."""
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    return pickle.dumps({key("batch_label"): b"testing", key("data"): data,
                         key("labels"): list(labels)}, protocol=protocol)


def fake_batches(n=4, seed=0, **kw):
    """File name -> bytes for a complete tiny CIFAR folder, and the (data, labels) used."""
    rng = np.random.default_rng(seed)
    files, arrays = {}, {}
    for name in cifar10.TRAIN_FILES + [cifar10.TEST_FILE]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        files[name], arrays[name] = batch_bytes(data, labels, **kw), (data, labels)
    files[cifar10.META_FILE] = pickle.dumps({b"label_names": [s.encode() for s in NAMES],
                                            b"num_vis": 3072}, protocol=2)
    return files, arrays


def write_folder(root, files):
    folder = os.path.join(root, FOLDER)
    os.makedirs(folder, exist_ok=True)
    for name, blob in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(blob)
    return folder


def test_reads_red_then_green_then_blue_planes_row_major(tmp_path):
    files, _ = fake_batches()
    red, green, blue = np.arange(1024) % 256, np.full(1024, 7), np.full(1024, 9)
    row = np.concatenate([red, green, blue]).astype(np.uint8)
    files["test_batch"] = batch_bytes(row[None], [3])
    write_folder(tmp_path, files)
    data = load_cifar10(tmp_path)
    image = data.x_test[0]
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8
    assert image[0, 0, :3].tolist() == [0, 1, 2] and image[0, 1, 0] == 32  # red, rows of 32
    assert (image[1] == 7).all() and (image[2] == 9).all()
    assert data.y_test.tolist() == [3] and data.y_test.dtype == np.int64


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("str_keys", [False, True])
def test_loads_all_batches_in_order(tmp_path, protocol, str_keys):
    files, arrays = fake_batches(n=3, protocol=protocol, str_keys=str_keys)
    write_folder(tmp_path, files)
    data = load_cifar10(tmp_path)
    assert isinstance(data, Cifar10) and data.classes == NAMES
    expected_x = np.concatenate([arrays[n][0] for n in cifar10.TRAIN_FILES])
    expected_y = sum((arrays[n][1] for n in cifar10.TRAIN_FILES), [])
    assert data.x_train.shape == (15, 3, 32, 32)
    np.testing.assert_array_equal(data.x_train.reshape(15, -1), expected_x)
    assert data.y_train.dtype == np.int64 and data.y_train.tolist() == expected_y
    np.testing.assert_array_equal(data.x_test.reshape(3, -1), arrays["test_batch"][0])


def python2_batch_bytes(data, labels):
    """A batch pickled opcode for opcode as Python 2 + numpy 1 wrote the real files."""
    n, raw = len(data), data.tobytes()
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
             b"(K\x01M" + struct.pack("<H", n) + b"M\x00\x0c\x86"
             b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
             b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
             b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([k]) for k in labels) + b"e"
    return b"\x80\x02}(U\x04data" + array + b"U\x06labels" + label_list + b"u."


def test_loads_python2_pickles_like_the_real_files(tmp_path):
    files, arrays = fake_batches()
    data = np.random.default_rng(1).integers(0, 256, (3, 3072), dtype=np.uint8)
    files["test_batch"] = python2_batch_bytes(data, [4, 0, 9])
    write_folder(tmp_path, files)
    loaded = load_cifar10(tmp_path)
    np.testing.assert_array_equal(loaded.x_test.reshape(3, -1), data)
    assert loaded.y_test.tolist() == [4, 0, 9]


def test_root_defaults_to_env_variable(tmp_path, monkeypatch):
    write_folder(tmp_path, fake_batches()[0])
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    assert load_cifar10().x_train.shape == (20, 3, 32, 32)


def test_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        load_cifar10(tmp_path)


def test_missing_file_is_named(tmp_path):
    files, _ = fake_batches()
    del files["data_batch_3"]
    write_folder(tmp_path, files)
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path)


def _with_batch(tmp_path, blob, name="data_batch_2"):
    files, _ = fake_batches()
    files[name] = blob
    write_folder(tmp_path, files)


@pytest.mark.parametrize("blob, message", [
    (batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 2, 3])[:-20], "not a readable"),
    (b"this is not a pickle", "not a readable"),
    (pickle.dumps([1, 2, 3]), "not a CIFAR-10 batch dict"),
    (batch_bytes(np.zeros((4, 3000), np.uint8), [0, 1, 2, 3]), r"uint8 \(N, 3072\)"),
    (batch_bytes(np.zeros((4, 3072), np.float32), [0, 1, 2, 3]), r"uint8 \(N, 3072\)"),
    (batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 2]), "4 integers"),
    (batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 2, 10]), r"0\.\.9"),
    (batch_bytes(np.zeros((4, 3072), np.uint8), [0, -1, 2, 3]), r"0\.\.9"),
    (batch_bytes(np.zeros((4, 3072), np.uint8), [0, [1], 2, 3]), "4 integers"),
    (batch_bytes(np.zeros((4, 3072), np.uint8), ["a", "b", "c", "d"]), "4 integers"),
])
def test_bad_batches_raise_clear_errors(tmp_path, blob, message):
    _with_batch(tmp_path, blob)
    with pytest.raises(ValueError, match=message) as info:
        load_cifar10(tmp_path)
    assert "data_batch_2" in str(info.value)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


def test_pickle_calling_os_system_is_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    blob = pickle.dumps({b"data": _Exploit(target), b"labels": []}, protocol=2)
    _with_batch(tmp_path, blob, name="data_batch_1")
    with pytest.raises(ValueError, match="refusing to load global"):
        load_cifar10(tmp_path)
    assert not target.exists()


def test_object_arrays_are_rejected(tmp_path):
    data = np.empty((1, 3072), dtype=object)
    _with_batch(tmp_path, batch_bytes(data, [0]))
    with pytest.raises(ValueError, match="uint8"):
        load_cifar10(tmp_path)


# ---------------------------------------------------------------- download

def make_archive(files, extra=()):
    """A .tar.gz laid out like cifar-10-python.tar.gz; ``extra`` adds (name, bytes) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo(FOLDER)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        members = [(f"{FOLDER}/{name}", blob) for name, blob in files.items()]
        for name, blob in members + [(f"{FOLDER}/readme.html", b"<html/>")] + list(extra):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def md5(blob):
    return hashlib.md5(blob).hexdigest()


def test_download_verifies_extracts_and_writes_manifest(tmp_path, server):
    files, arrays = fake_batches()
    archive = make_archive(files)
    root = tmp_path / "data"
    data = load_cifar10(root, download=True, url=server("/good.tar.gz", archive), md5=md5(archive))
    assert sorted(os.listdir(root)) == [FOLDER]
    np.testing.assert_array_equal(data.x_test.reshape(4, -1), arrays["test_batch"][0])
    manifest = (root / FOLDER / ".minicnn-verified").read_text()
    assert md5(archive) in manifest
    assert hashlib.sha256(files["data_batch_1"]).hexdigest() in manifest
    # present data is used as is: no second download from a dead address
    again = load_cifar10(root, download=True, url="http://127.0.0.1:9/nothing", md5="0" * 32)
    np.testing.assert_array_equal(again.x_train, data.x_train)


def test_manifest_catches_files_changed_after_download(tmp_path, server):
    files, _ = fake_batches()
    archive = make_archive(files)
    load_cifar10(tmp_path, download=True, url=server("/good2.tar.gz", archive), md5=md5(archive))
    other = batch_bytes(np.zeros((4, 3072), np.uint8), [0, 0, 0, 0])
    (tmp_path / FOLDER / "data_batch_4").write_bytes(other)
    with pytest.raises(ValueError, match="data_batch_4.*checksum"):
        load_cifar10(tmp_path)


def _assert_failed_cleanly(root, error, match, **kw):
    with pytest.raises(error, match=match) as info:
        load_cifar10(root, download=True, **kw)
    assert os.listdir(root) == []  # no archive, no temp dir, no partial folder
    return str(info.value)


def test_wrong_checksum_leaves_nothing_behind(tmp_path, server):
    archive = make_archive(fake_batches()[0])
    url = server("/checksum.tar.gz", archive)
    message = _assert_failed_cleanly(tmp_path, ValueError, "MD5", url=url, md5="0" * 32)
    assert "extract it into" in message  # says what to do


def test_truncated_archive_leaves_nothing_behind(tmp_path, server):
    archive = make_archive(fake_batches()[0])
    cut = archive[: len(archive) // 2]
    url = server("/truncated.tar.gz", cut)
    _assert_failed_cleanly(tmp_path, ValueError, "truncated or corrupt", url=url, md5=md5(cut))


def test_connection_cut_short_leaves_nothing_behind(tmp_path, server):
    archive = make_archive(fake_batches()[0])
    url = server("/short.tar.gz", archive[:1000], length=len(archive))
    _assert_failed_cleanly(tmp_path, (ValueError, ConnectionError), "cut short|IncompleteRead",
                           url=url, md5=md5(archive))


def test_http_error_leaves_nothing_behind(tmp_path, server):
    url = server("/exists", b"").replace("/exists", "/missing.tar.gz")
    _assert_failed_cleanly(tmp_path, ConnectionError, "404", url=url)


def test_archive_escaping_the_directory_is_refused(tmp_path, server):
    archive = make_archive(fake_batches()[0], extra=[("../evil.txt", b"gotcha")])
    url = server("/evil.tar.gz", archive)
    _assert_failed_cleanly(tmp_path / "data", ValueError, "escape", url=url, md5=md5(archive))
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_archive_without_batches_is_refused(tmp_path, server):
    files, _ = fake_batches()
    del files["test_batch"]
    archive = make_archive(files)
    url = server("/incomplete.tar.gz", archive)
    _assert_failed_cleanly(tmp_path, ValueError, "test_batch", url=url, md5=md5(archive))


# ---------------------------------------------------------------- synthetic data

def test_synthetic_shapes_balance_and_determinism():
    x, y = synthetic_cifar(1003, seed=5)
    assert x.shape == (1003, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (1003,) and y.dtype == np.int64 and len(SYNTHETIC_CLASSES) == 10
    counts = np.bincount(y, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert x.min() == 0 and x.max() == 255
    x2, y2 = synthetic_cifar(1003, seed=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = synthetic_cifar(1003, seed=6)
    assert (x != x3).mean() > 0.5


def test_synthetic_colour_does_not_reveal_the_class():
    x, y = synthetic_cifar(3000, seed=1)
    class_means = np.stack([x[y == k].mean(axis=(0, 2, 3)) for k in range(10)])
    assert np.ptp(class_means, axis=0).max() < 15  # every class averages to the same colour


def softmax_regression(x_train, y_train, x_val, y_val, steps=60, lr=0.01, reg=1e-3):
    """Full-batch momentum gradient descent on standardised pixels -> (train, val) accuracy."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    w = np.zeros((x_train.shape[1], 10), np.float32)
    b = np.zeros(10, np.float32)
    velocity_w, velocity_b = np.zeros_like(w), np.zeros_like(b)
    onehot = np.eye(10, dtype=np.float32)[y_train]
    for _ in range(steps):
        scores = x_train @ w + b
        p = np.exp(scores - scores.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(x_train)
        velocity_w = 0.9 * velocity_w - lr * (x_train.T @ grad + reg * w)
        velocity_b = 0.9 * velocity_b - lr * grad.sum(0)
        w += velocity_w
        b += velocity_b
    accuracy = lambda x, y: ((x @ w + b).argmax(1) == y).mean()
    return accuracy(x_train, y_train), accuracy(x_val, y_val)


def test_linear_model_on_raw_pixels_cannot_solve_synthetic():
    x, y = synthetic_cifar(3000, seed=2)
    x = x.reshape(3000, -1).astype(np.float32) / 255
    train_acc, val_acc = softmax_regression(x[:2000], y[:2000], x[2000:], y[2000:])
    assert train_acc > 0.5  # it fits the training set ...
    assert val_acc < 0.4    # ... but finds nothing that generalises


# ---------------------------------------------------------------- preprocessing

def test_normalizer_uses_training_split_only():
    rng = np.random.default_rng(0)
    x_train = rng.normal([10, 20, 30], [1, 2, 3], (50, 4, 4, 3)).transpose(0, 3, 1, 2)
    x_val = x_train + 100
    mean, std = fit_normalizer(x_train, chunk=7)
    np.testing.assert_allclose(mean, x_train.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, x_train.std(axis=(0, 2, 3)), rtol=1e-5)
    z = normalize(x_train, mean, std)
    assert z.dtype == np.float32 and z.shape == x_train.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert (normalize(x_val, mean, std).mean(axis=(0, 2, 3)) > 10).all()


def test_normalize_uint8_constant_channel_and_errors():
    x = np.zeros((2, 3, 4, 4), np.uint8)
    x[:, 0] = 255
    mean, std = fit_normalizer(x)
    assert mean.dtype == np.float32 and mean.tolist() == [255, 0, 0]
    assert np.isfinite(normalize(x, mean, std)).all()
    assert normalize(x, mean, std, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="shape"):
        normalize(x, mean[:2], std[:2])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fit_normalizer(np.zeros((3, 4, 4)))


def test_train_val_split():
    x, y = np.arange(100)[:, None, None, None], np.arange(100)
    x_tr, y_tr, x_va, y_va = train_val_split(x, y, val_fraction=0.2, seed=3)
    assert len(x_va) == 20 and len(x_tr) == 80
    assert sorted(np.concatenate([y_tr, y_va]).tolist()) == list(range(100))
    assert (x_tr.ravel() == y_tr).all() and (x_va.ravel() == y_va).all()
    assert (train_val_split(x, y, val_fraction=0.2, seed=3)[3] == y_va).all()
    assert not (train_val_split(x, y, val_fraction=0.2, seed=4)[3] == y_va).all()
    assert len(train_val_split(x, y, val_fraction=0.2, num_val=7)[3]) == 7
    for bad in [dict(num_val=0), dict(num_val=100), dict(val_fraction=1.0)]:
        with pytest.raises(ValueError):
            train_val_split(x, y, **bad)
    with pytest.raises(ValueError, match="same length"):
        train_val_split(x, y[:-1])


def test_random_crop_matches_manual_offsets():
    x = np.random.default_rng(0).integers(1, 256, (20, 3, 8, 8)).astype(np.uint8)
    out = random_crop(x, padding=2, rng=np.random.default_rng(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    dy, dx = np.random.default_rng(7).integers(0, 5, (2, 20))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(20):
        np.testing.assert_array_equal(out[i], padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8])
    np.testing.assert_array_equal(out, random_crop(x, padding=2, rng=7))
    np.testing.assert_array_equal(random_crop(x, padding=0, rng=1), x)
    assert len({(a, b) for a, b in zip(dy, dx)}) > 5  # images really get their own offsets


def test_random_flip_mirrors_each_image_or_not():
    x = np.random.default_rng(0).normal(size=(200, 3, 5, 5))
    out = random_flip(x, rng=11)
    flipped = (out == x[..., ::-1]).all(axis=(1, 2, 3))
    kept = (out == x).all(axis=(1, 2, 3))
    assert (flipped ^ kept).all() and 60 < flipped.sum() < 140
    np.testing.assert_array_equal(random_flip(out, rng=11), x)  # same choices again: identity


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 50), batch_size=st.integers(1, 20), drop_last=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_loader_visits_every_sample_once_per_epoch(n, batch_size, drop_last, seed):
    y = np.arange(n)
    loader = DataLoader(y[:, None] * 2, y, batch_size, drop_last=drop_last, rng=seed,
                        check_inputs=False)  # x traces the labels: not images to normalise
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        assert all(len(yb) == batch_size for _, yb in batches[:-1] if batches)
        seen = np.concatenate([yb for _, yb in batches]) if batches else np.array([], int)
        assert all((xb[:, 0] == 2 * yb).all() for xb, yb in batches)
        if drop_last:
            assert len(seen) == n - n % batch_size and len(set(seen.tolist())) == len(seen)
        else:
            assert sorted(seen.tolist()) == list(range(n))


def test_loader_is_deterministic_per_seed_and_reshuffles_each_epoch():
    x, y = np.zeros((100, 1, 2, 2)), np.arange(100)
    order = lambda loader: np.concatenate([yb for _, yb in loader])
    a, b = DataLoader(x, y, 16, rng=5), DataLoader(x, y, 16, rng=5)
    first = order(a)
    assert (first == order(b)).all()
    assert (order(a) != first).any()  # a new epoch, a new order
    assert (order(DataLoader(x, y, 16, rng=6)) != first).any()
    assert (order(DataLoader(x, y, 16, shuffle=False)) == y).all()
    assert len(DataLoader(x, y, 16)) == 7 and len(DataLoader(x, y, 16, drop_last=True)) == 6


def test_loader_augments_batches_keeping_labels():
    y = np.arange(40)
    x = np.broadcast_to((y + 1.0)[:, None, None, None], (40, 3, 32, 32)).copy()
    for xb, yb in DataLoader(x, y, 8, augment=True, rng=0, check_inputs=False):
        assert xb.shape == (8, 3, 32, 32)
        assert (xb.max(axis=(1, 2, 3)) == yb + 1).all()
        assert (xb == 0).any()  # padding shows up somewhere
    calls = []
    custom = DataLoader(x, y, 8, augment=lambda xb, rng: calls.append(len(xb)) or xb,
                        check_inputs=False)
    list(custom)
    assert calls == [8] * 5


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_loader_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros((4, 1, 1, 1)), np.zeros(4), batch_size)


def test_loader_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        DataLoader(np.zeros((4, 1, 1, 1)), np.zeros(5), 2)
