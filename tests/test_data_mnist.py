"""Tests for minicnn.data.idx and minicnn.data.mnist: the IDX reader, Fashion-MNIST / MNIST
loading, lookup order, checksum verification and the download."""
import gzip
import hashlib
import os
import struct
import tracemalloc

import numpy as np
import pytest

from minicnn.data import (
    FASHION_MNIST,
    MNIST,
    Mnist,
    find_fashion_mnist,
    load_fashion_mnist,
    load_mnist,
    mnist,
    read_idx,
)
from minicnn.data.idx import idx_bytes

FILES = mnist.FILES
SYSTEM_DIR = FASHION_MNIST.system_dir
HAVE_REAL = all(os.path.isfile(os.path.join(SYSTEM_DIR, f + ".gz")) for f in FILES)
needs_real = pytest.mark.skipif(
    not HAVE_REAL, reason=f"the Fashion-MNIST files are not in {SYSTEM_DIR}: install Debian's "
                          f"package with 'apt-get install dataset-fashion-mnist' to run this test")


# ---------------------------------------------------------------- helpers

def fake_arrays(n_train=6, n_test=4, seed=0, label=None):
    """name -> array for a tiny data set; ``label`` fixes every label (to tell copies apart)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n) if label is None else np.full(n, label)
        arrays[f"{split}-labels-idx1-ubyte"] = labels.astype(np.uint8)
    return arrays


def write_files(folder, arrays, gz=True, blobs=None):
    """Write each array as an IDX file (gzipped or raw) into ``folder``; ``blobs`` replaces
    some files' bytes. Returns name -> the bytes written."""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name, array in arrays.items():
        blob = (blobs or {}).get(name)
        if blob is None:
            blob = idx_bytes(array)
            blob = gzip.compress(blob, mtime=0) if gz else blob
        with open(os.path.join(folder, name + (".gz" if gz else "")), "wb") as f:
            f.write(blob)
        written[name] = blob
    return written


def sha256s(arrays):
    return {name: hashlib.sha256(idx_bytes(a)).hexdigest() for name, a in arrays.items()}


def md5(blob):
    return hashlib.md5(blob).hexdigest()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $MINICNN_DATA, the working directory an empty folder and no system folder, so
    only what a test writes is found."""
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(mnist, "FASHION_MNIST",
                        FASHION_MNIST._replace(system_dir=str(tmp_path / "system")))
    return tmp_path


def load(root, arrays=None, **kw):
    """load_fashion_mnist checked by structure only, or against ``arrays``' checksums."""
    sums = sha256s(arrays) if arrays is not None else {}
    return load_fashion_mnist(root, md5={}, sha256=sums, **kw)


# ---------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([3, 1, 4], dtype=np.uint8),
    np.array([-5, 7], dtype=np.int8),
    np.array([[-300, 2], [5, 32000]], dtype=np.int16),
    np.array([1 << 30, -7], dtype=np.int32),
    np.array([0.5, -2.25], dtype=np.float32),
    np.array([[1e300]], dtype=np.float64),
    np.zeros((0, 28, 28), dtype=np.uint8),
])
def test_read_idx_round_trips_every_type(tmp_path, gz, array):
    blob = idx_bytes(array)
    path = tmp_path / "file"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    out = read_idx(path)
    assert out.shape == array.shape and out.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_idx_header_is_big_endian_as_in_the_format():
    blob = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    assert blob[:16] == bytes.fromhex("00000803" "00000002" "0000001c" "0000001c")
    assert idx_bytes(np.array([258], np.int16))[-2:] == b"\x01\x02"


def _check_error(tmp_path, blob, match, gz=False):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


GOOD = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("blob, match", [
    (b"", "too short for the 4-byte"),
    (b"\x00\x00", "too short for the 4-byte"),
    (b"\x01\x00\x08\x01" + GOOD[4:], "not an IDX file: magic number 0x01000801"),
    (b"\x00\x00\x07\x03" + GOOD[4:], "not an IDX file"),  # no type 0x07
    (b"\x00\x00\x08\x00", "not an IDX file"),  # zero dimensions
    (b"PK\x03\x04" + GOOD[4:], "not an IDX file"),
    (GOOD[:10], "announces 3 dimensions .12 bytes of sizes. but only 6"),
    (GOOD[:-1], "truncated: the header announces 3x4x5 items.*= 60 bytes.*holds 59"),
    (GOOD[:16], "truncated.*holds 0"),
    (GOOD + b"\x00", "more follows"),
])
def test_read_idx_refuses_broken_files_naming_them(tmp_path, gz, blob, match):
    _check_error(tmp_path, blob, match, gz=gz)


def test_read_idx_refuses_a_cut_or_corrupt_gzip_stream(tmp_path):
    packed = gzip.compress(GOOD)
    _check_error(tmp_path, packed[:-4], "gzip stream is truncated or corrupt", gz=False)
    corrupt = bytearray(gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32))))
    corrupt[len(corrupt) // 2] ^= 0xFF
    _check_error(tmp_path, bytes(corrupt), "truncated or corrupt", gz=False)


def test_read_idx_never_trusts_the_header_size(tmp_path):
    huge = struct.pack(">HBBII", 0, 0x08, 2, 0xFFFFFFFF, 0xFFFFFFFF) + b"\x00" * 8
    _check_error(tmp_path, huge, "more than the .* this reader accepts; the header is corrupt")
    # 1 GiB announced, a few bytes held: refused by size (raw), or after reading what the
    # gzip stream holds (a few bytes), never by allocating what the header claims
    claim = struct.pack(">HBBI", 0, 0x08, 1, 1 << 30) + b"\x01" * 100
    _check_error(tmp_path, claim, "truncated.*1073741824 bytes of data, but the file holds 100")
    path = tmp_path / "claims.gz"
    path.write_bytes(gzip.compress(claim))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="decompressed file holds 100"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing")


# ---------------------------------------------------------------- loading fake files

@pytest.mark.parametrize("gz", [True, False])
def test_loads_gzipped_or_raw_files(isolated, gz):
    arrays = fake_arrays()
    write_files(isolated / "fashion-mnist", arrays, gz=gz)
    data = load(isolated, arrays)
    assert isinstance(data, Mnist) and data.classes == list(FASHION_MNIST.classes)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert data.x_train.shape == (6, 1, 28, 28) and data.x_test.shape == (4, 1, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("change, match, culprit", [
    (dict(images=np.zeros((5, 28, 28), np.uint8)), "holds 5 images but .* holds 6 labels",
     "train-labels-idx1-ubyte"),
    (dict(labels=np.array([0, 1, 2, 3, 4, 10], np.uint8)), r"0\.\.9, found 10",
     "train-labels-idx1-ubyte"),
    (dict(images=np.zeros((6, 32, 32), np.uint8)), "expected 28x28 images, got 32x32",
     "train-images-idx3-ubyte"),
    (dict(images=np.zeros(6, np.uint8)), r"expected IDX magic number 2051 \(0x00000803.*got 2049",
     "train-images-idx3-ubyte"),
    (dict(labels=np.zeros((6, 1), np.uint8)), "expected IDX magic number 2049.*got 2050",
     "train-labels-idx1-ubyte"),
    (dict(labels=np.zeros(6, np.int32)), "expected IDX magic number 2049.*got 3073",
     "train-labels-idx1-ubyte"),
])
def test_wrong_contents_are_named(isolated, change, match, culprit):
    arrays = fake_arrays()
    for key, array in change.items():
        arrays[f"train-{key}-idx{3 if key == 'images' else 1}-ubyte"] = array
    write_files(isolated, arrays)
    with pytest.raises(ValueError, match=match) as info:
        load(isolated)
    assert culprit in str(info.value)


def test_truncated_real_layout_file_is_named(isolated):
    arrays = fake_arrays()
    blob = gzip.compress(idx_bytes(arrays["t10k-images-idx3-ubyte"]))
    write_files(isolated, arrays, blobs={"t10k-images-idx3-ubyte": blob[: len(blob) // 2]})
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: the gzip stream is trunc"):
        load(isolated)


# ---------------------------------------------------------------- checksums

def test_content_checksum_verifies_a_recompressed_copy(isolated):
    arrays = fake_arrays()
    written = write_files(isolated, arrays)
    # the .gz MD5s are not the "published" ones, but the content is: it loads (Debian's case)
    published = {name: "0" * 32 for name in FILES}
    data = load_fashion_mnist(isolated, md5=published, sha256=sha256s(arrays))
    assert data.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    # a .gz with the published MD5 passes without a content checksum
    load_fashion_mnist(isolated, md5={n: md5(b) for n, b in written.items()}, sha256={})


@pytest.mark.parametrize("gz", [True, False])
def test_content_that_differs_from_the_recorded_checksum_is_refused(isolated, gz):
    arrays = fake_arrays()
    sums = sha256s(arrays)
    arrays["train-labels-idx1-ubyte"][0] ^= 1
    write_files(isolated, arrays, gz=gz)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*SHA-256 of its decompressed "
                                         "content .* expected .* corrupt or not Fashion-MNIST"):
        load_fashion_mnist(isolated, sha256=sums)


def test_mnist_without_content_checksums_checks_the_published_gz_md5(isolated):
    arrays = fake_arrays()
    written = write_files(isolated / "mnist", arrays)
    with pytest.raises(ValueError, match="MD5 .*expected the published f68b3c2d"):
        load_mnist(isolated)
    load_mnist(isolated, md5={n: md5(b) for n, b in written.items()})
    write_files(isolated / "mnist-raw", arrays, gz=False)  # raw: checked by structure only
    assert load_mnist(isolated / "mnist-raw").y_train.dtype == np.int64


def test_one_data_set_is_not_taken_for_the_other(isolated, monkeypatch):
    arrays = fake_arrays()
    write_files(isolated, arrays, gz=False)
    monkeypatch.setattr(mnist, "FASHION_MNIST", mnist.FASHION_MNIST._replace(sha256=sha256s(arrays)))
    with pytest.raises(ValueError, match="is Fashion-MNIST's train-images-idx3-ubyte, not MNIST's"):
        load_mnist(isolated)


# ---------------------------------------------------------------- lookup order

def _labelled_copies(isolated, monkeypatch):
    """Copies told apart by their labels: root 1, $MINICNN_DATA 2, ./data 3, system 4."""
    places = {1: isolated / "root", 2: isolated / "env", 3: isolated / "cwd" / "data",
              4: isolated / "system"}
    for label, folder in places.items():
        write_files(folder, fake_arrays(label=label))
    monkeypatch.setenv("MINICNN_DATA", str(places[2]))
    return places


def test_lookup_order_root_env_cwd_data_then_system(isolated, monkeypatch):
    places = _labelled_copies(isolated, monkeypatch)

    def label(root=None):
        return int(load(root).y_train[0])
    assert label(root=places[1]) == 1
    assert label() == 2
    monkeypatch.delenv("MINICNN_DATA")
    assert label() == 3
    os.rename(places[3], isolated / "elsewhere")
    assert label() == 4 and find_fashion_mnist() == str(places[4])
    assert label(root=isolated / "empty") == 4  # a root without the files falls through


def test_subfolder_first_then_the_folder_itself(isolated, monkeypatch):
    root = isolated / "root"
    write_files(root, fake_arrays(label=1))
    assert int(load(root).y_train[0]) == 1
    write_files(root / "fashion-mnist", fake_arrays(label=2))
    assert int(load(root).y_train[0]) == 2
    assert find_fashion_mnist(root) == str(root / "fashion-mnist")
    write_files(root / "mnist", fake_arrays(label=3), gz=False)
    assert int(load_mnist(root, md5={}).y_train[0]) == 3


def test_incomplete_folder_is_skipped_and_named(isolated):
    arrays = fake_arrays(label=5)
    write_files(isolated / "root" / "fashion-mnist", {n: arrays[n] for n in FILES[:2]})
    write_files(isolated / "system", arrays)
    assert int(load(isolated / "root").y_train[0]) == 5
    os.rename(isolated / "system", isolated / "gone")
    with pytest.raises(FileNotFoundError) as info:
        load(isolated / "root")
    message = str(info.value)
    assert f"{isolated / 'root' / 'fashion-mnist'} (has some, lacks t10k-images" in message


def test_not_found_says_where_it_looked_and_how_to_get_the_data(isolated, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "env"))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(isolated / "root")
    message = str(info.value)
    looked = [str(isolated / "root" / "fashion-mnist"), str(isolated / "root"),
              str(isolated / "env" / "fashion-mnist"), str(isolated / "env"),
              str(isolated / "cwd" / "data" / "fashion-mnist"), str(isolated / "cwd" / "data"),
              str(isolated / "system")]
    positions = [message.index(f"  {folder}\n") for folder in looked]
    assert positions == sorted(positions)
    assert "apt-get install dataset-fashion-mnist" in message and "download=True" in message
    assert "--download" in message
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(isolated / "root")
    assert "apt-get" not in str(info.value) and "download=True" in str(info.value)


# ---------------------------------------------------------------- download

def _serve(server, prefix, arrays, blobs=None):
    """Serve the arrays as .gz files under ``prefix``; returns (base_url, md5s, bytes)."""
    blobs = blobs or {}
    data = {n: blobs.get(n, gzip.compress(idx_bytes(a), mtime=0)) for n, a in arrays.items()}
    for name, blob in data.items():
        url = server(f"{prefix}/{name}.gz", blob)
    return url.rsplit("/", 1)[0] + "/", {n: md5(b) for n, b in data.items()}, data


def test_download_fetches_verifies_and_loads(isolated, server):
    arrays = fake_arrays()
    base, sums, blobs = _serve(server, "/fm1", arrays)
    root = isolated / "data"
    data = load_fashion_mnist(root, download=True, base_url=base, md5=sums,
                              sha256=sha256s(arrays))
    assert os.listdir(root) == ["fashion-mnist"]
    assert sorted(os.listdir(root / "fashion-mnist")) == sorted(n + ".gz" for n in FILES)
    assert (root / "fashion-mnist" / (FILES[0] + ".gz")).read_bytes() == blobs[FILES[0]]
    np.testing.assert_array_equal(data.x_test[:, 0], arrays["t10k-images-idx3-ubyte"])
    # present files are used as they are: no second download from a dead address
    again = load_fashion_mnist(root, download=True, base_url="http://127.0.0.1:9/", md5=sums,
                               sha256=sha256s(arrays))
    np.testing.assert_array_equal(again.x_train, data.x_train)
    # and the content is checked against the recorded SHA-256 even when the MD5 is right
    with pytest.raises(ValueError, match="SHA-256 of its decompressed content"):
        load_fashion_mnist(root, md5=sums)


def test_download_defaults_to_minicnn_data_and_fetches_only_missing_files(isolated, server,
                                                                         monkeypatch):
    arrays = fake_arrays()
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "env"))
    write_files(isolated / "env" / "mnist", {n: arrays[n] for n in FILES[:2]})
    base, sums, _ = _serve(server, "/mn1", {n: arrays[n] for n in FILES[2:]})
    sums.update({n: md5(gzip.compress(idx_bytes(arrays[n]), mtime=0)) for n in FILES[:2]})
    data = load_mnist(download=True, base_url=base, md5=sums)  # the first two would 404
    assert data.classes == [str(d) for d in range(10)]
    assert sorted(os.listdir(isolated / "env" / "mnist")) == sorted(n + ".gz" for n in FILES)


def _assert_failed_cleanly(root, error, match, **kw):
    root.mkdir()
    with pytest.raises(error, match=match) as info:
        load_fashion_mnist(root, download=True, **kw)
    assert os.listdir(root) == []  # no file, no temp dir, no folder
    return str(info.value)


def test_checksum_mismatch_leaves_nothing_half_written(isolated, server):
    arrays = fake_arrays()
    base, sums, _ = _serve(server, "/fm2", arrays)
    sums["t10k-images-idx3-ubyte"] = "0" * 32  # the third of four files fails
    message = _assert_failed_cleanly(isolated / "data", ValueError,
                                     "t10k-images-idx3-ubyte.gz has MD5 .* expected 0000",
                                     base_url=base, md5=sums)
    assert "put t10k-images-idx3-ubyte.gz from" in message  # says what to do


def test_well_formed_checksum_but_bad_content_leaves_nothing(isolated, server):
    arrays = fake_arrays()
    arrays["train-labels-idx1-ubyte"][2] = 11
    base, sums, _ = _serve(server, "/fm3", arrays)
    _assert_failed_cleanly(isolated / "data", ValueError, r"0\.\.9, found 11",
                           base_url=base, md5=sums)


def test_connection_cut_short_leaves_nothing(isolated, server):
    arrays = fake_arrays()
    base, sums, blobs = _serve(server, "/fm4", arrays)
    blob = blobs["train-labels-idx1-ubyte"]
    server("/fm4/train-labels-idx1-ubyte.gz", blob[:10], length=len(blob))
    _assert_failed_cleanly(isolated / "data", (ValueError, ConnectionError),
                           "cut short|IncompleteRead", base_url=base, md5=sums)


def test_http_error_leaves_nothing(isolated, server):
    base = server("/exists", b"").replace("/exists", "/nothing/")
    _assert_failed_cleanly(isolated / "data", ConnectionError, "404", base_url=base)


def test_default_location_is_official():
    assert FASHION_MNIST.base_url == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert FASHION_MNIST.md5["train-images-idx3-ubyte"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert MNIST.md5["t10k-labels-idx1-ubyte"] == "ec29112dd5afa0611ce80d1b7f02629c"


# ---------------------------------------------------------------- the real files

@needs_real
def test_real_files_shapes_dtypes_and_label_histogram(tmp_path, monkeypatch):
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_fashion_mnist() == SYSTEM_DIR
    data = load_fashion_mnist()
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.bincount(data.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [1000] * 10
    assert data.x_train.min() == 0 and data.x_train.max() == 255
    assert 0.28 < data.x_train.mean() / 255 < 0.29  # the mean pixel of Fashion-MNIST, 0.286


@needs_real
def test_real_files_match_the_recorded_content_checksums():
    for name in FILES:
        with gzip.open(os.path.join(SYSTEM_DIR, name + ".gz")) as f:
            assert hashlib.sha256(f.read()).hexdigest() == FASHION_MNIST.sha256[name], name


@needs_real
def test_real_copy_with_one_changed_pixel_is_refused(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in FILES[:2] + FILES[3:]:
        os.symlink(os.path.join(SYSTEM_DIR, name + ".gz"), folder / (name + ".gz"))
    with gzip.open(os.path.join(SYSTEM_DIR, FILES[2] + ".gz")) as f:
        blob = bytearray(f.read())
    blob[-1] ^= 1
    (folder / FILES[2]).write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: the SHA-256"):
        load_fashion_mnist(tmp_path)
