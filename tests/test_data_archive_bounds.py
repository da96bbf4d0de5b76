"""Archives bounded before they are inflated: IDX gzip bombs, oversized or mismatched headers,
and CIFAR batches whose labels explode when converted. Time and memory are measured in a
fresh interpreter (peak resident memory above what it held after imports; time
as the CPU seconds the interpreter spent, which a busy machine does not inflate as it does
wall time)."""
import gzip
import os
import pickle
import struct
import time
import zlib

import numpy as np
import pytest
from memory_checks import peak_above_start

from minicnn.data import FASHION_MNIST, load_cifar10, load_fashion_mnist, mnist, read_idx
from minicnn.data.cifar10 import MAX_BATCH_BYTES
from minicnn.data.idx import idx_bytes

FILES = mnist.FILES
MB = 1 << 20


def gzip_bomb(header, zeros):
    """A gzip stream of ``header`` followed by ``zeros`` zero bytes (about 1000x smaller)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(header)]
    block = bytes(16 * MB)
    for start in range(0, zeros, len(block)):
        parts.append(z.compress(block[:min(len(block), zeros - start)]))
    return b"".join(parts) + z.flush()


def idx_header(shape):
    return struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def write_set(folder, n_train=5, n_test=3, replace=None):
    """A tiny Fashion-MNIST-layout folder of gzipped files; ``replace`` name -> bytes."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in FILES:
        n = n_train if name.startswith("train") else n_test
        shape = (n, 28, 28) if "images" in name else (n,)
        blob = (replace or {}).get(name)
        if blob is None:
            high = 256 if "images" in name else 10
            blob = gzip.compress(idx_bytes(rng.integers(0, high, shape).astype(np.uint8)))
        with open(os.path.join(folder, name + ".gz"), "wb") as f:
            f.write(blob)


def load_measured(root):
    """Load the Fashion-MNIST layout under ``root`` in a fresh interpreter; returns
    peak_above_start's (bytes added, seconds, output), "REFUSED <message>" on a ValueError."""
    return peak_above_start(f"""
        try:
            minicnn.data.load_fashion_mnist({str(root)!r}, md5={{}}, sha256={{}})
        except ValueError as e:
            print("REFUSED", e)
    """)


# ---------------------------------------------------------------- IDX bombs

def test_a_labels_bomb_is_refused_by_its_header_fast_and_small(tmp_path):
    # 256 MiB of labels announced and held (a 0.26 MB file), beside 5 images
    bomb = gzip_bomb(idx_header((1 << 28,)), 1 << 28)
    assert len(bomb) < MB
    write_set(tmp_path / "fashion-mnist", replace={"train-labels-idx1-ubyte": bomb})
    added, seconds, out = load_measured(tmp_path)
    assert "REFUSED" in out and "announces 268435456 labels, more than Fashion-MNIST's train " \
                                "split holds (60000)" in out
    assert added <= 100 * MB and seconds < 2, (added / MB, seconds)


def test_a_bomb_with_an_honest_header_is_cut_at_the_announced_size(tmp_path):
    # 5 labels announced, as many as images, then 256 MiB more: inflation stops at 5 + 1 bytes
    bomb = gzip_bomb(idx_header((5,)) + bytes(5), 1 << 28)
    write_set(tmp_path / "fashion-mnist", replace={"train-labels-idx1-ubyte": bomb})
    added, seconds, out = load_measured(tmp_path)
    assert "REFUSED" in out and "train-labels-idx1-ubyte.gz: the header announces 5 items " \
                                "of 1 byte(s) = 5 bytes of data, but more follows" in out
    assert added <= 100 * MB and seconds < 2, (added / MB, seconds)


def test_headers_of_both_files_are_checked_before_a_body_is_inflated(tmp_path, monkeypatch):
    # the images of the training split hold 5, the labels 6: refused without reading a body
    write_set(tmp_path / "fashion-mnist", replace={
        "train-labels-idx1-ubyte": gzip.compress(idx_header((6,)) + bytes(6))})
    monkeypatch.setattr(mnist, "read_idx", lambda *a, **kw: pytest.fail("a body was read"))
    with pytest.raises(ValueError, match="holds 5 images but .*train-labels.* holds 6 labels"):
        load_fashion_mnist(tmp_path, md5={}, sha256={})


@pytest.mark.parametrize("count, fits", [(10_000, True), (10_001, False)])
def test_counts_must_lie_within_the_data_set(tmp_path, monkeypatch, count, fits):
    monkeypatch.setattr(mnist, "FASHION_MNIST", FASHION_MNIST._replace(system_dir=None))
    images = gzip.compress(idx_header((count, 28, 28)) + bytes(count * 784), 1)
    labels = gzip.compress(idx_header((count,)) + bytes(count), 1)
    write_set(tmp_path / "fashion-mnist", replace={"t10k-images-idx3-ubyte": images,
                                                   "t10k-labels-idx1-ubyte": labels})
    if fits:
        assert load_fashion_mnist(tmp_path, md5={}, sha256={}).x_test.shape == (count, 1, 28, 28)
    else:
        with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: the header announces "
                                             "10001 images, more than Fashion-MNIST's t10k "
                                             r"split holds \(10000\)"):
            load_fashion_mnist(tmp_path, md5={}, sha256={})


@pytest.mark.parametrize("shape", [(5, 28, 27), (5, 27, 28), (5, 28, 29)])
def test_images_must_be_28_by_28(tmp_path, shape):
    images = gzip.compress(idx_header(shape) + bytes(int(np.prod(shape))))
    write_set(tmp_path / "fashion-mnist", replace={"train-images-idx3-ubyte": images})
    with pytest.raises(ValueError, match=rf"train-images-idx3-ubyte.gz: expected 28x28 images, "
                                         rf"got {shape[1]}x{shape[2]}"):
        load_fashion_mnist(tmp_path, md5={}, sha256={})


def test_read_idx_stops_a_gzip_stream_at_its_announced_size(tmp_path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip_bomb(idx_header((3, 4)) + bytes(12), 64 * MB))
    with pytest.raises(ValueError, match="bomb.gz: .*12 bytes of data, but more follows"):
        read_idx(path)


FASHION = "/usr/share/datasets/fashion-mnist"
HAVE_REAL = all(os.path.isfile(os.path.join(FASHION, f + ".gz")) for f in FILES)


@pytest.mark.skipif(not HAVE_REAL, reason="Debian's dataset-fashion-mnist is not installed")
def test_a_real_load_peaks_at_most_one_and_a_half_times_its_arrays():
    added, seconds, out = peak_above_start(f"""
        data = minicnn.data.load_fashion_mnist({FASHION!r})
        print("ARRAYS", sum(a.nbytes for a in data[:4]))
    """)
    arrays = int(next(x for x in out.splitlines() if x.startswith("ARRAYS")).split()[1])
    assert arrays == 60_000 * 784 + 10_000 * 784 + 70_000 * 8
    assert added <= 1.5 * arrays, (added / MB, arrays / MB)


# ---------------------------------------------------------------- CIFAR batches

def _cifar_folder(root, labels, n=4, extra=None):
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n}
        if name == "data_batch_1":
            batch[b"labels"] = labels
            batch.update(extra or {})
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f, protocol=2)
    return folder


def self_sharing(levels):
    """A list of two that is ``levels`` deep, each level the same list twice: 2**levels
    leaves in a file of a few hundred bytes."""
    x = [0, 1]
    for _ in range(levels):
        x = [x, x]
    return x


def test_self_sharing_nested_labels_are_refused_fast_and_small(tmp_path):
    labels = [self_sharing(23)] * 4  # 4 items, each 2**24 leaves deep down
    folder = _cifar_folder(tmp_path, labels)
    assert os.path.getsize(os.path.join(folder, "data_batch_1")) < 20_000
    added, seconds, out = peak_above_start(f"""
        try:
            minicnn.data.load_cifar10({str(tmp_path)!r})
        except ValueError as e:
            print("REFUSED", e)
    """)
    assert "data_batch_1: 'labels' must be 4 integers (a flat list or 1-D integer array), got " \
           "a list of 4 whose item 0 is a list" in out
    assert added <= 100 * MB and seconds < 2, (added / MB, seconds)


@pytest.mark.parametrize("labels, got", [
    ([0, 1, 2, True], "item 3 is a bool"),
    ([0, 1, 2, [3]], "item 3 is a list"),
    ([0, 1, "2", 3], "item 2 is a str"),
    ([0, 1, 2, 3.0], "item 3 is a float"),
    ((0, 1, 2, 3), "tuple"),
    (np.zeros((4, 1), np.int64), r"int64 \(4, 1\)"),
    (np.zeros(4, np.float32), r"float32 \(4,\)"),
])
def test_labels_other_than_a_flat_list_or_array_of_ints_are_refused(tmp_path, labels, got):
    _cifar_folder(tmp_path, labels)
    with pytest.raises(ValueError, match=rf"data_batch_1: 'labels' must be 4 integers .*{got}"):
        load_cifar10(tmp_path)


def test_flat_labels_as_list_or_array_load(tmp_path):
    _cifar_folder(tmp_path / "a", [3, 1, 4, 1])
    _cifar_folder(tmp_path / "b", np.array([3, 1, 4, 1], np.uint8))
    for root in ("a", "b"):
        assert load_cifar10(tmp_path / root).y_train[:4].tolist() == [3, 1, 4, 1]


class _Allocates:
    """Pickles as numpy.ndarray((n, 3072), uint8): memory the file does not hold."""

    def __init__(self, n):
        self.n = n

    def __reduce__(self):
        return (np.ndarray, ((self.n, 3072), "u1"))


def test_the_unpickler_builds_no_array_the_file_does_not_hold(tmp_path):
    folder = _cifar_folder(tmp_path, [0] * 4)
    with open(os.path.join(folder, "data_batch_2"), "wb") as f:
        pickle.dump({b"data": _Allocates(10 ** 6), b"labels": [0] * 4}, f, protocol=2)
    start = time.process_time()
    with pytest.raises(ValueError, match=r"data_batch_2 is not a readable CIFAR-10 batch "
                                         r"\(UnpicklingError: refusing to call numpy.ndarray"):
        load_cifar10(tmp_path)
    assert time.process_time() - start < 2  # CPU seconds: building it takes more


def test_reconstruct_other_than_numpys_own_is_refused(tmp_path):
    from minicnn.data.safe_pickle import _NdarrayType, _reconstruct
    with pytest.raises(pickle.UnpicklingError, match="refusing numpy _reconstruct"):
        _reconstruct(_NdarrayType, (10 ** 9,), b"b")
    assert _reconstruct(_NdarrayType, (0,), b"b").shape == (0,)


@pytest.mark.parametrize("extra, refused", [(0, False), (1, True)])
def test_a_batch_file_larger_than_a_batch_is_refused_unread(tmp_path, extra, refused):
    folder = _cifar_folder(tmp_path, [0] * 4)
    with open(os.path.join(folder, "data_batch_3"), "r+b") as f:
        f.truncate(MAX_BATCH_BYTES + extra)  # sparse: the pickle then zeros
    if not refused:  # the pickle ends before the padding, which is never read
        assert load_cifar10(tmp_path).x_train.shape == (20, 3, 32, 32)
        return
    with pytest.raises(ValueError, match=rf"data_batch_3 is {MAX_BATCH_BYTES + 1} bytes, more "
                                         rf"than a CIFAR-10 batch file takes "
                                         rf"\({MAX_BATCH_BYTES}\)"):
        load_cifar10(tmp_path)
