"""Files: finite-only saving, atomic writes that name the path, bounded and checked loading."""
import errno
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

from minicnn import serialization
from minicnn.layers import BatchNorm2D, Conv2D, Flatten, Linear, ReLU
from minicnn.models import Sequential
from minicnn.serialization import (
    SKIP,
    NonFiniteError,
    array_spec,
    load_npz,
    remove_stale_temps,
    save_npz,
)
from minicnn.training.checkpoint import load_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 1 << 24  # 16 MiB of zeros per repeated deflate block


def small_net():
    return Sequential(Conv2D(3, 4, 3, seed=0), BatchNorm2D(4), ReLU(), Flatten(),
                      Linear(4 * 30 * 30, 10, seed=1))


def write_npz_bomb(path, name, dtype, shape, zero_chunks=0):
    """An .npz with one member ``name`` whose header says ``shape`` of ``dtype`` and whose
    deflated data is the header then ``zero_chunks`` * 16 MiB of zeros, with a correct
    CRC: 120 chunks (2 GB) take 2 MB on disk. Written by hand, since deflating 2 GB of
    zeros takes seconds: after a full flush, a block of zeros compresses to the same
    bytes every time, so one compressed block is repeated."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    header = header.getvalue()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(CHUNK)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    data = head + block * zero_chunks + c.flush()
    crc = zlib.crc32(header)
    for _ in range(zero_chunks):
        crc = zlib.crc32(zeros, crc)
    size = len(header) + CHUNK * zero_chunks
    fname = (name + ".npy").encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size,
                        len(fname), 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc,
                          len(data), size, len(fname), 0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    with open(path, "wb") as f:
        f.write(local + data + central + end)


def test_bomb_writer_makes_a_real_archive(tmp_path):
    """The hand-made archive is what it claims: numpy reads it back, CRC and all."""
    path = tmp_path / "small.npz"
    write_npz_bomb(path, "w", "<f8", (3 * CHUNK // 8,), 3)
    with np.load(path) as z:
        w = z["w"]
    assert w.shape == (3 * CHUNK // 8,) and not w.any()
    assert load_npz(path)["w"].shape == w.shape


# -- writing ---------------------------------------------------------------------------

def test_save_npz_refuses_non_finite_and_writes_nothing(tmp_path):
    path = tmp_path / "a.npz"
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(NonFiniteError, match=r"refusing to write .*a\.npz.*'w' holds NaN or infinite"):
            save_npz(path, {"ok": np.ones(3), "w": np.array([1.0, bad], np.float32)})
        assert os.listdir(tmp_path) == []
    save_npz(path, {"n": np.array(7), "text": np.array("x"), "w": np.ones(2)})  # finite: fine
    assert sorted(load_npz(path)) == ["n", "text", "w"]


def test_model_save_refuses_non_finite_weights(tmp_path):
    net = small_net()
    net.save(tmp_path / "good.npz")
    good = (tmp_path / "good.npz").read_bytes()
    net[1].running_var[2] = np.inf  # a buffer, not only parameters
    with pytest.raises(NonFiniteError, match=r"'1\.running_var'"):
        net.save(tmp_path / "good.npz")
    assert (tmp_path / "good.npz").read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["good.npz"]


def test_atomic_write_errors_name_the_path_not_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoint.npz"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError) as info:
        save_npz(path, {"w": np.ones(2)})
    assert info.value.errno == errno.ENOSPC
    assert serialization.error_message(info.value) == \
        f"cannot write {str(path)!r}: No space left on device"
    assert os.listdir(tmp_path / "run") == []  # the temp file is gone

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".x.tmp"))
    monkeypatch.setattr(serialization.tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError, match=r"cannot write .*checkpoint\.npz.: Permission denied"):
        save_npz(path, {"w": np.ones(2)})


def test_remove_stale_temps_removes_only_run_file_temps(tmp_path):
    stale = [".checkpoint.npz.ab12cd_9.tmp", ".history.json.zzzzzzzz.tmp"]
    keep = ["checkpoint.npz", ".notes.txt.abcdefgh.tmp", ".checkpoint.npz.tmp", "x.tmp"]
    for name in stale + keep:
        (tmp_path / name).write_text("x")
    assert remove_stale_temps(tmp_path, ("checkpoint.npz", "history.json")) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


# -- reading ---------------------------------------------------------------------------

def test_load_npz_checks_kind_and_shape_against_expected(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, w=np.ones((2, 3), np.int64), b=np.zeros(3, np.float32))
    expected = {"w": ((2, 3), "f"), "b": ((3,), "f")}
    with pytest.raises(ValueError, match=r"file .*m\.npz. does not hold what was expected: "
                                         r"entry 'w' holds int64 values, expected floats"):
        load_npz(path, expected=expected)
    np.savez(path, w=np.ones((3, 2), np.float32), b=np.zeros(3, np.float32), c=np.ones(1))
    with pytest.raises(ValueError, match=r"entry 'w' has shape \(3, 2\), expected \(2, 3\); "
                                         r"entry 'c' is not expected"):
        load_npz(path, expected=expected)
    np.savez(path, w=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"missing entries \['b'\]"):
        load_npz(path, expected=expected)
    np.savez(path, w=np.ones((2, 3), np.float64), b=np.zeros(3, np.float32))
    got = load_npz(path, expected=expected)  # float64 where floats are expected: fine
    assert got["w"].dtype == np.float64 and got["w"].shape == (2, 3)


@pytest.mark.parametrize("array, match", [
    (np.array([1 + 2j]), r"complex128"),
    (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), r"only booleans, integers, floats"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), r"datetime64"),
])
def test_load_npz_refuses_arrays_that_are_not_plain_numbers(tmp_path, array, match):
    path = tmp_path / "x.npz"
    np.savez(path, x=array)
    with pytest.raises(ValueError, match=match):
        load_npz(path)


def test_load_npz_refuses_pickles_before_reading_them(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"could not be read safely: it holds pickled objects "
                                         r"\(entry 'obj'\)"):
        load_npz(path)


def test_load_npz_caps_the_bytes_and_skips_what_it_is_told(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, a=np.zeros(1000), b=np.zeros(10))
    with pytest.raises(ValueError, match=r"would decompress to 8,080 bytes, more than the "
                                         r"8,000 bytes allowed \(entry 'a'"):
        load_npz(path, max_bytes=8000)
    got = load_npz(path, max_bytes=100, expected=lambda n, s, d: SKIP if n == "a" else None)
    assert list(got) == ["b"]


def test_load_npz_catches_truncated_and_corrupted_members(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, w=np.arange(1000, dtype=np.float64))
    blob = bytearray(good.read_bytes())
    start = blob.index(b"\x93NUMPY") + 128  # inside the stored (uncompressed) data
    blob[start + 100] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"bad\.npz. is not a readable .npz archive .*CRC"):
        load_npz(bad)
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w") as z:  # a header promising more than the member holds
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (100,)})
        z.writestr("w.npy", header.getvalue() + bytes(80))
    with pytest.raises(ValueError, match=r"entry 'w' is truncated \(80 of 800 bytes\)"):
        load_npz(short)


def test_load_npz_refuses_bytes_after_an_entrys_values(tmp_path):
    def member(extra):
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (100,)})
        return header.getvalue() + np.arange(100, dtype="<f8").tobytes() + bytes(extra)
    exact, longer = tmp_path / "exact.npz", tmp_path / "longer.npz"
    with zipfile.ZipFile(exact, "w") as z:
        z.writestr("w.npy", member(0))
    with zipfile.ZipFile(longer, "w") as z:  # one stray byte after the 800 the header promises
        z.writestr("w.npy", member(1))
    np.testing.assert_array_equal(load_npz(exact)["w"], np.arange(100.0))
    with pytest.raises(ValueError, match=r"entry 'w' has bytes after its 100 values"):
        load_npz(longer)


def test_load_npz_reads_fortran_order_and_text(tmp_path):
    path = tmp_path / "f.npz"
    a = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.savez(path, a=a, t=np.array('{"k": 1}'))
    got = load_npz(path)
    assert np.array_equal(got["a"], a) and json.loads(str(got["t"])) == {"k": 1}


def test_array_spec_kinds(tmp_path):
    spec = array_spec(small_net().state_dict())
    assert spec["0.weight"] == ((4, 3, 3, 3), "f") and spec["1.num_batches_tracked"] == ((), "iu")


def test_load_weights_refuses_integer_arrays_and_wrong_shapes(tmp_path):
    net = small_net()
    state = net.state_dict()
    path = tmp_path / "best.npz"
    np.savez(path, __minicnn_model__=np.array(1),
             **{**state, "0.weight": state["0.weight"].astype(np.int32)})
    with pytest.raises(ValueError, match=r"model file .*best\.npz. does not fit this model: "
                                         r"entry '0\.weight' holds int32 values, expected floats"):
        load_weights(small_net(), path)
    np.savez(path, __minicnn_model__=np.array(1), **{**state, "4.bias": np.zeros(11, np.float32)})
    with pytest.raises(ValueError, match=r"entry '4\.bias' has shape \(11,\), expected \(10,\)"):
        load_weights(small_net(), path)
    np.savez(path, __minicnn_model__=np.array(1),
             **{**state, "0.bias": np.array([0, np.nan, 0, 0], np.float32)})
    with pytest.raises(ValueError, match=r"'0\.bias' holds NaN or infinite values"):
        load_weights(small_net(), path)
    np.savez(path, **state)  # the right arrays, but no marker and no checkpoint meta
    with pytest.raises(ValueError, match="is not a saved minicnn model .* nor a training checkpoint"):
        load_weights(small_net(), path)
    write_npz_bomb(path, "junk", "<f8", (120 * CHUNK // 8,), 120)  # an unknown entry: never read
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("__minicnn_model__.npy", _npy(np.array(1)))
        for k, v in state.items():
            z.writestr(k + ".npy", _npy(v))
    with pytest.raises(ValueError, match=r"model file .* does not fit this model: unexpected "
                                         r"entries \['junk'\]"):
        load_weights(small_net(), path)


def _npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def _run_limited(code, cwd, timeout=120):
    """Run ``code`` in a fresh Python whose address space is capped at 1 GiB; returns
    (stdout, stderr, peak resident MiB)."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux's /proc to measure peak memory")
    prelude = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    """)
    # VmHWM, the peak resident memory of this process image (ru_maxrss would include the
    # pytest process it was forked from)
    epilogue = textwrap.dedent("""
        peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        print("maxrss_mib", int(peak.split()[1]) / 1024)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1",
               MINICNN_DATA=os.path.join(str(cwd), "no-data"))
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code) + epilogue],
                            capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, result.stderr
    peak = float(result.stdout.split("maxrss_mib")[-1])
    return result.stdout, result.stderr, peak


def test_compressed_bomb_and_huge_header_are_refused_within_1_gib(tmp_path):
    """A 2 MB file inflating to 2 GB of zeros and a header announcing shape (1e11,): each
    refused from its header, in a process that cannot allocate 1 GiB. numpy's own
    np.load, in the same process, runs out of memory on both: the limit is real."""
    write_npz_bomb(tmp_path / "bomb.npz", "w", "<f8", (120 * CHUNK // 8,), 120)
    write_npz_bomb(tmp_path / "huge.npz", "w", "<f4", (10 ** 11,), 0)
    assert os.path.getsize(tmp_path / "bomb.npz") < 3 * 2 ** 20
    out, _, peak = _run_limited("""
        import numpy as np
        from minicnn.serialization import load_npz
        for name in ("bomb.npz", "huge.npz"):
            try:
                load_npz(name)
                print(name, "LOADED")
            except ValueError as e:
                print(name, "refused:", e)
            try:
                np.load(name)["w"]
                print(name, "np.load read it")
            except MemoryError:
                print(name, "np.load: MemoryError")
    """, tmp_path)
    assert "bomb.npz refused: file 'bomb.npz' would decompress to 1.9 GiB, more than the " \
           "1.0 GiB allowed (entry 'w' has shape (251658240,) of float64)" in out
    assert "huge.npz refused: file 'huge.npz' would decompress to 372.5 GiB" in out
    assert "bomb.npz np.load: MemoryError" in out and "huge.npz np.load: MemoryError" in out
    assert peak < 200  # the refusals read headers only


def test_evaluate_refuses_a_bomb_best_npz_reading_it_once(tmp_path):
    """train.py --evaluate on a bomb that looks like a model file (right names, one entry
    inflating to 2 GB): refused from the header with the file and entry named; the
    process stays small and reads the file once (no checkpoint fallback)."""
    run = tmp_path / "run"
    run.mkdir()
    config = dict(dataset="synthetic", data_dir=None, model="linear", epochs=1, batch_size=16,
                  lr=0.001, optimizer="adam", weight_decay=0.0, schedule="none", augment=False,
                  num_train=32, num_val=16, num_test=16, dtype="float32", seed=0)
    (run / "config.json").write_text(json.dumps(config))
    write_npz_bomb(run / "best.npz", "1.weight", "<f4", (120 * CHUNK // 4,), 120)
    out, _, peak = _run_limited(f"""
        import sys
        from minicnn.serialization import load_npz
        calls = []
        import minicnn.serialization as ser
        import minicnn.training.checkpoint as ck
        real = ser.load_npz
        ser.load_npz = ck.load_npz = lambda *a, **k: calls.append(a[0]) or real(*a, **k)
        from minicnn.cli.train_command import main
        try:
            main(["--evaluate", {str(run / "best.npz")!r}])
        except SystemExit as e:
            print("exit:", e.code)
        print("reads:", len(calls))
    """, tmp_path)
    assert f"exit: train.py: error: model file {str(run / 'best.npz')!r} does not fit this " \
           f"model: entry '1.weight' has shape (503316480,), expected (10, 3072)" in out
    assert "reads: 1" in out
    assert peak < 400
