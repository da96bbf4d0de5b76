"""One clear line for each mistake a user makes with a data folder or a loader's argument, and
the preprocessing never writes into the caller's arrays."""
import gzip
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

from minicnn.data import (
    FASHION_MNIST,
    download_cifar10,
    download_fashion_mnist,
    fit_normalizer,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    mnist,
    normalize,
    read_idx,
)
from minicnn.data.idx import MAX_NDIM, idx_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = mnist.FILES


def one_line(info):
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mnist, "FASHION_MNIST", FASHION_MNIST._replace(system_dir=None))
    return tmp_path


def write_set(folder, n=3):
    os.makedirs(folder, exist_ok=True)
    for name in FILES:
        shape = (n, 28, 28) if "images" in name else (n,)
        with open(os.path.join(folder, name + ".gz"), "wb") as f:
            f.write(gzip.compress(idx_bytes(np.zeros(shape, np.uint8))))


# ---------------------------------------------------------------- data folders

@pytest.mark.parametrize("call", [
    lambda root: load_fashion_mnist(root),
    lambda root: load_fashion_mnist(root, download=True, base_url="http://127.0.0.1:9/"),
    lambda root: download_fashion_mnist(root, base_url="http://127.0.0.1:9/"),
    lambda root: load_mnist(root),
    lambda root: load_cifar10(root),
    lambda root: download_cifar10(root, url="http://127.0.0.1:9/x"),
])
def test_a_data_folder_that_is_a_file(isolated, call):
    root = isolated / "data.txt"
    root.write_text("mine")
    with pytest.raises(NotADirectoryError) as info:
        call(root)
    assert one_line(info) == (f"data folder {root} is a file, not a folder; choose another root "
                              f"(--data-dir, $MINICNN_DATA) or move the file away")
    assert root.read_text() == "mine"


@pytest.mark.parametrize("call", [load_fashion_mnist, load_cifar10, download_fashion_mnist,
                                  lambda root: download_cifar10(root, url="http://127.0.0.1:9/")])
def test_a_data_folder_given_as_bytes(isolated, call):
    with pytest.raises(TypeError) as info:
        call(b"data")
    assert one_line(info) == ("data folder (root, --data-dir) must be a folder name as str, got "
                              "bytes b'data'; pass os.fsdecode(root) instead")
    with pytest.raises(TypeError, match=r"must be a folder name \(str or pathlib.Path\), got "
                                        r"int 3"):
        call(3)


def test_a_data_folder_as_a_path_object_works(isolated):
    write_set(isolated / "fm" / "fashion-mnist")
    assert load_fashion_mnist(pathlib.Path(isolated / "fm"), md5={}, sha256={}).x_train.shape[0] == 3


def test_an_unreadable_subfolder_is_named_not_skipped():
    """Run as an ordinary user (root reads everything): the files in <root>/fashion-mnist
    cannot be read, so loading must say so rather than take the next folder in the
    lookup (for Fashion-MNIST, the system's copy)."""
    base = tempfile.mkdtemp(prefix="minicnn-unreadable-")
    try:
        os.chmod(base, 0o755)
        folder = os.path.join(base, "data", "fashion-mnist")
        write_set(folder)
        os.chmod(folder, 0o000)
        code = textwrap.dedent(f"""
            import os
            from minicnn.data import load_fashion_mnist
            if os.geteuid() == 0:  # imports done as root (the interpreter may be root's), then
                os.setgid(65534)   # become 'nobody', for whom permissions hold
                os.setuid(65534)
            try:
                load_fashion_mnist({os.path.join(base, "data")!r})
            except PermissionError as e:
                print("REFUSED", e)
            else:
                print("LOADED")
        """)
        env = dict(os.environ, PYTHONPATH=ROOT)
        env.pop("MINICNN_DATA", None)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, cwd=base, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            f"REFUSED Fashion-MNIST folder {folder} exists but cannot be read (permission "
            f"denied); give yourself access (chmod u+rx {folder}) or choose another --data-dir")
    finally:
        os.chmod(os.path.join(base, "data", "fashion-mnist"), 0o755)
        shutil.rmtree(base)


# ---------------------------------------------------------------- IDX headers

def _header(ndim):
    return struct.pack(">HBB", 0, 0x08, ndim) + struct.pack(f">{ndim}I", *[1] * ndim) + b"\x07"


@pytest.mark.parametrize("gz", [False, True])
def test_an_idx_header_with_too_many_dimensions(tmp_path, gz):
    path = tmp_path / ("many.gz" if gz else "many")
    blob = _header(255)
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(ValueError) as info:
        read_idx(path)
    assert one_line(info) == (f"{path}: its IDX header announces 255 dimensions, more than the "
                              f"{MAX_NDIM} an array may have; the file is corrupt or not IDX: "
                              f"delete it and get it again")


def test_the_dimension_limit_is_inclusive(tmp_path):
    path = tmp_path / "at-limit"
    path.write_bytes(_header(MAX_NDIM))
    assert read_idx(path).shape == (1,) * MAX_NDIM
    path.write_bytes(_header(MAX_NDIM + 1))
    with pytest.raises(ValueError, match=f"announces {MAX_NDIM + 1} dimensions"):
        read_idx(path)


# ---------------------------------------------------------------- checksum mappings

def test_an_md5_mapping_missing_a_file_to_download(isolated):
    md5 = {name: "0" * 32 for name in FILES[1:]}
    with pytest.raises(ValueError) as info:
        load_fashion_mnist(isolated / "data", download=True, base_url="http://127.0.0.1:9/",
                           md5=md5)
    assert one_line(info) == ("md5= has no checksum for train-images-idx3-ubyte, which must be "
                              "downloaded; give the MD5 of every file to download, or leave md5 "
                              "out to use the published ones")
    assert not (isolated / "data").exists()  # checked before anything was created


@pytest.mark.parametrize("kind", ["md5", "sha256"])
def test_a_checksum_mapping_with_an_unknown_name(isolated, kind):
    write_set(isolated / "fashion-mnist")
    with pytest.raises(ValueError) as info:
        load_fashion_mnist(isolated, **{kind: {"train-images-idx3-ubyte.gz": "0" * 32}})
    assert one_line(info) == (f"{kind}= names 'train-images-idx3-ubyte.gz', which is not one of "
                              f"Fashion-MNIST's files; the names are {', '.join(FILES)} (no .gz)")
    with pytest.raises(TypeError, match=f"{kind}= must be a dict from file name to hex digest, "
                                        f"got list"):
        load_fashion_mnist(isolated, **{kind: ["0" * 32]})


# ---------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_normalize_leaves_the_callers_array_alone(dtype):
    x = (np.random.default_rng(0).random((4, 3, 5, 5)) * 200).astype(dtype)
    before = x.copy()
    mean, std = fit_normalizer(x)
    out = normalize(x, mean, std, dtype=np.float32)
    np.testing.assert_array_equal(x, before)  # an in-place normalise would have changed it
    assert not np.shares_memory(out, x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
