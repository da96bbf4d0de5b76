"""minicnn's threads (minicnn.parallel): the setting, the pool, and results that are
bit-identical for any thread count, because the chunks depend on the shapes only and
sums over chunks are added in chunk order."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minicnn
from minicnn import functional as F
from minicnn import layers as L
from minicnn import parallel
from minicnn.functional import conv as conv_mod
from minicnn.models import Sequential

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def threads(monkeypatch):
    """Restores the thread count a test changes; late helpers (another process on the
    machine) do not send the runs to the calling thread."""
    monkeypatch.setitem(parallel._state, "solo_until", 0.0)
    monkeypatch.setattr(parallel, "SOLO_SECONDS", 0.0)
    before = parallel.get_num_threads()
    yield
    parallel.set_num_threads(before)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks and bands small enough that small inputs are cut into many of them."""
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 512)
    monkeypatch.setattr(conv_mod, "BAND_BYTES", 4096)


# -- the setting -------------------------------------------------------------------------
def test_set_and_get_num_threads(threads):
    minicnn.set_num_threads(3)
    assert minicnn.get_num_threads() == parallel.get_num_threads() == 3
    minicnn.set_num_threads(1)
    assert minicnn.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_set_num_threads_refuses_anything_but_a_positive_int(bad, threads):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive int, got"):
        minicnn.set_num_threads(bad)


def test_default_is_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv(parallel.ENV, raising=False)
    assert parallel.default_num_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(parallel.ENV, "5")
    assert parallel.default_num_threads() == 5
    for bad in ("0", "two", ""):
        monkeypatch.setenv(parallel.ENV, bad)
        with pytest.raises(ValueError, match=f"MINICNN_NUM_THREADS must be a positive int, got '{bad}'"):
            parallel.default_num_threads()


def test_environment_sets_the_default_in_a_fresh_process():
    code = "import minicnn; print(minicnn.get_num_threads())"
    env = dict(os.environ, MINICNN_NUM_THREADS="3", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "3"


# -- splitting ----------------------------------------------------------------------------
@pytest.mark.parametrize("n, parts", [(10, 3), (3, 10), (7, 1), (1, 1), (8, 4), (5, 0)])
def test_split_covers_the_range_in_order_near_equally(n, parts):
    ranges = parallel.split(n, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [j - i for i, j in ranges]
    assert len(sizes) == max(1, min(n, parts)) and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_outer_blocks_cut_along_the_outermost_axis_in_memory(monkeypatch):
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 64)
    a = np.zeros((4, 8, 3, 2), np.float32)  # 768 bytes: 12 blocks wanted, 4 rows there
    assert all(b[0] != slice(None) for b in parallel.outer_blocks(a)) and len(parallel.outer_blocks(a)) == 4
    t = np.zeros((8, 3, 2, 4), np.float32).transpose(3, 0, 1, 2)  # batch-last: axis 1 outermost
    blocks = parallel.outer_blocks(t)
    assert len(blocks) == 8 and all(len(b) == 2 and b[0] == slice(None) for b in blocks)
    assert parallel.outer_blocks(np.float32(1.0)) == [()]


# -- running ----------------------------------------------------------------------------
def test_run_returns_results_in_order_and_uses_the_threads(threads):
    parallel.set_num_threads(3)
    seen, barrier = set(), threading.Barrier(3, timeout=10)

    def f(i):
        if i < 3:
            barrier.wait()  # only passes if three threads run calls at the same time
        seen.add(threading.get_ident())
        return i * i

    assert parallel.run(f, range(12)) == [i * i for i in range(12)]
    assert len(seen) == 3


def test_run_with_one_thread_stays_in_the_caller(threads):
    parallel.set_num_threads(1)
    idents = parallel.run(lambda i: threading.get_ident(), range(5))
    assert set(idents) == {threading.get_ident()}


def test_run_raises_the_error_of_a_call_after_the_others_finish(threads):
    parallel.set_num_threads(2)
    done = []

    def f(i):
        if i == 1:
            raise KeyError("chunk 1")
        done.append(i)

    with pytest.raises(KeyError, match="chunk 1"):
        parallel.run(f, range(6))
    assert sorted(done) == [0, 2, 3, 4, 5]


def test_nested_runs_stay_inline(threads):
    parallel.set_num_threads(2)
    inner = parallel.run(lambda i: parallel.run(lambda j: (i, j, threading.get_ident()), range(3)),
                         range(4))
    for i, calls in enumerate(inner):
        assert [c[:2] for c in calls] == [(i, 0), (i, 1), (i, 2)]
        assert len({c[2] for c in calls}) == 1  # all calls of one inner run on one thread


# -- a helper that loses its core ---------------------------------------------------------
def test_after_a_late_helper_the_runs_stay_in_the_caller_for_a_while(threads, monkeypatch):
    parallel.set_num_threads(2)
    monkeypatch.setattr(parallel, "SOLO_SECONDS", 60.0)
    caller = threading.get_ident()

    def late_helper(i):  # as if the helper's core went to another process mid-chunk
        if threading.get_ident() != caller:
            threading.Event().wait(0.05)
        return threading.get_ident()

    parallel.run(late_helper, range(4))
    assert parallel._state["solo_until"] > parallel._clock()
    assert set(parallel.run(lambda i: threading.get_ident(), range(8))) == {caller}
    # once SOLO_SECONDS have passed, the helpers work again
    later = parallel._state["solo_until"] + 1
    monkeypatch.setattr(parallel, "_clock", lambda: later)
    barrier = threading.Barrier(2, timeout=10)
    assert len(set(parallel.run(lambda i: (barrier.wait(), threading.get_ident())[1],
                                range(2)))) == 2


def test_helpers_that_keep_pace_keep_working(threads, monkeypatch):
    parallel.set_num_threads(2)
    monkeypatch.setattr(parallel, "SOLO_SECONDS", 60.0)
    parallel.run(lambda i: threading.Event().wait(0.02), range(4))  # two chunks each
    assert parallel._state["solo_until"] == 0.0


@pytest.mark.parametrize("worked,end,mine,n,solo", [
    (1.0, 2.0, 1, 2, False),       # the caller ran 1 of 2 chunks in 1 s; alone: 2 s
    (1.0, 2.001, 1, 2, True),      # slower than the caller alone
    (0.01, 0.0109, 2, 2, False),   # the caller ran both; waited 0.9 ms for an idle helper
    (0.01, 0.0111, 2, 2, True),    # ... 1.1 ms: the helper lost its core
])
def test_late_means_slower_than_the_caller_alone_after_a_real_wait(threads, monkeypatch,
                                                                    worked, end, mine, n, solo):
    monkeypatch.setattr(parallel, "SOLO_SECONDS", 5.0)
    parallel._note_lateness(start=0.0, worked=worked, end=end, mine=mine, n=n)
    assert parallel._state["solo_until"] == (end + 5.0 if solo else 0.0)


def test_blas_is_limited_to_one_thread_once_a_kernel_ran():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    F.relu_forward(np.ones(3))
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)


def test_fit_in_a_fresh_process_runs_blas_on_one_thread_and_minicnn_on_all_cpus():
    """Outside train.py too (a user's script calling fit, with no BLAS variable set), BLAS
    gets one thread and minicnn's kernels the CPUs the process may use."""
    pytest.importorskip("threadpoolctl")
    code = (
        "import json, os, numpy as np, minicnn\n"
        "from threadpoolctl import threadpool_info\n"
        "from minicnn import layers as L\n"
        "from minicnn.losses import SoftmaxCrossEntropy\n"
        "from minicnn.models import Sequential\n"
        "from minicnn.optim import SGD\n"
        "from minicnn.training import fit\n"
        "m = Sequential(L.Conv2D(1, 2, 3, seed=0), L.Flatten(), L.Linear(8, 3, seed=0))\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((8, 1, 4, 4), dtype=np.float32)\n"
        "y = rng.integers(0, 3, 8)\n"
        "fit(m, SoftmaxCrossEntropy(), SGD(m.parameters(), lr=0.1), (x, y), (x, y), 1, 4,"
        " progress=False)\n"
        "print(json.dumps([[p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'],"
        " minicnn.get_num_threads(), len(os.sched_getaffinity(0))]))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MINICNN_NUM_THREADS")}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip().splitlines()[-1]
    blas, mine, cpus = json.loads(out)
    assert blas and set(blas) == {1}, out
    assert mine == cpus, out


# -- bit-identical for any thread count ----------------------------------------------------
def network(seed):
    rng = np.random.default_rng(seed)
    return Sequential(
        L.Conv2D(3, 8, 3, padding=1, seed=rng), L.BatchNorm2D(8), L.ReLU(),
        L.Conv2D(8, 8, 3, padding=1, seed=rng), L.BatchNorm2D(8), L.ReLU(),  # gather route
        L.MaxPool2D(3, 2, 1),
        L.Conv2D(8, 16, 5, padding=2, seed=rng), L.ReLU(),  # scatter route, bands >= 4 rows
        L.Conv2D(16, 16, 3, stride=2, padding=1, seed=rng), L.BatchNorm2D(16), L.ReLU(),
        L.MaxPool2D(2), L.Flatten(), L.Linear(16 * 2 * 2, 12, seed=rng), L.BatchNorm1D(12),
        L.ReLU(), L.Linear(12, 5, seed=rng))


def run_network(dtype):
    model = network(0).astype(dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 15, 14)).astype(dtype)
    out = model(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = model.backward(dout)
    return [out, dx] + [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_step_is_bit_identical_for_1_2_3_threads(small_chunks, threads, dtype):
    results = {}
    for n in (1, 2, 3):
        parallel.set_num_threads(n)
        results[n] = run_network(dtype)
    for n in (2, 3):
        for got, want in zip(results[n], results[1]):
            np.testing.assert_array_equal(got, want)


def test_conv_backward_sums_bands_in_a_fixed_order(small_chunks, threads):
    """Many bands of the scatter and the gather route: dw adds many partial sums, whose
    order would show in float32 if it followed the threads."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, 20, 9)).astype(np.float32)
    cases = [(rng.standard_normal(shape).astype(np.float32), stride)
             for shape, stride in (((6, 6, 3, 3), (1, 1)),    # gather
                                   ((9, 6, 7, 3), (1, 1)),    # scatter, F > C
                                   ((6, 6, 3, 3), (2, 1)))]   # scatter, strided
    results = {}
    for n in (1, 2, 3):
        parallel.set_num_threads(n)
        results[n] = []
        for w, stride in cases:
            out, cache = F.conv2d_forward(x, w, None, stride, (1, 1))
            results[n] += [out, *F.conv2d_backward(np.cos(out), cache)]
    for n in (2, 3):
        for got, want in zip(results[n], results[1]):
            np.testing.assert_array_equal(got, want)
    assert len(conv_mod._bands(6 * 9, 20, 9 * 4, 4)) > 3  # the case really has many bands


def test_scatter_bands_are_tall_enough_for_even_and_odd_passes(small_chunks):
    """A band of R rows of a kh x kh, stride s conv reads kh - s input rows beyond its
    own: every band has R >= ceil(kh / s) - 1, so two even bands never share a row."""
    for kh, s in ((7, 1), (5, 2), (3, 1), (3, 3)):
        bands = conv_mod._bands(100, 23, 50, 4, -(-kh // s) - 1)
        assert len(bands) > 2 and min(b1 - b0 for b0, b1 in bands) >= -(-kh // s) - 1
        for (_, a1), (c0, _) in zip(bands[0::2], bands[2::2]):
            assert (a1 - 1) * s + kh <= c0 * s  # last row read by one < first row of the next
