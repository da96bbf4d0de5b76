"""Benchmark minicnn on the CPU against PyTorch (and the naive loops), side by side in one run.

    python benchmarks/run.py --no-naive --rounds 3   # the targets' run, about 15 minutes quiet
    python benchmarks/run.py --quick                 # fewer repeats, one round, a Fashion subset
    python benchmarks/run.py --threads 1             # both sides on one thread
    python benchmarks/run.py --contention            # another process keeps one core busy

Prints markdown tables: the time of each operation (forward + backward) and of a
training step (forward, loss, backward, SGD update) for minicnn and PyTorch, with their
ratio and its spread; with the naive loops of minicnn.functional.reference (run on a few
images, scaled linearly to the batch) unless --no-naive; training throughput over an
epoch of synthetic data; two Fashion-MNIST epochs through ``fit`` (vgg_small, and a
four-conv net) against the same nets and recipe in PyTorch (when the data files are
installed: /usr/share/datasets/fashion-mnist, or --fashion-dir; --quick trains on a
subset); the peak memory of a training step; and met/missed for every target.

How it measures:
- Every framework runs in its own subprocess, never two at once, alternating between
  rounds (minicnn, PyTorch, PyTorch, minicnn, ...), so that neither side's idle threads
  slow the other down.
- Times are medians over ``--repeats`` calls per round, pooled over ``--rounds`` rounds,
  after two warm-up calls. Beside every ratio, its spread: the lowest and highest of the
  rounds' ratios (minicnn's round median over PyTorch's).
- Threads: both sides get ``--threads`` (default: the CPUs this process may use).
  minicnn through ``MINICNN_NUM_THREADS`` (its kernels run on its own threads, BLAS on
  one thread each), PyTorch through ``torch.set_num_threads``. The report names each
  side's BLAS library, its kernel and its threads.
- OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines to work around old
  OpenBLAS builds, make a current OpenBLAS run a slower kernel: the workers run without
  them (--keep-blas-env keeps them) and the report names the kernel that ran.
- Peak memory: each (framework, model) in a fresh subprocess builds the model and the
  batch, then runs three training steps; the figure is the growth of the process's
  resident set (peak RSS during the steps minus RSS just before them).
- The CPU use of other processes during the run is reported. Above BUSY of the CPU the
  machine was not quiet: the report prints the numbers but no met/missed.
- ``--contention`` starts a busy loop pinned to one core for the whole run and times the
  training steps with minicnn's default threads, minicnn on one thread and PyTorch's
  default threads: minicnn's default should be no slower than its one-thread run and
  faster than PyTorch. Calls slowed by the busy loop are the point here, so none is set
  aside.
- ``--clock cpu`` times with the process's CPU time instead of the wall clock, for
  comparisons on a shared machine with ``--threads 1`` (where it leaves out the time
  spent waiting for a CPU); with more threads it adds theirs up, so it is refused there.
"""
import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# -- what is measured ----------------------------------------------------------------
# name -> description. Shapes leave out the batch size B. "naive": the naive loops run
# on that many images and channels (pooling) or filters (conv), and their time is
# scaled linearly to B images and all channels. "torch_max": the target ratio
# minicnn / PyTorch at two or more threads (at one thread every target is 1.0);
# "naive_min": the target speed-up over the naive loops. "layout": "nchw" hands the
# layer a plain C-contiguous array, "batch_last" the layout a minicnn conv or pooling
# layer hands the next layer inside a network.
OPS = {
    "maxpool2_nchw": dict(op="MaxPool2D 2x2/2 fwd+bwd, plain NCHW array", shape=(32, 32, 32),
                          layout="nchw", torch_max=1.0),
    "maxpool3_nchw": dict(op="MaxPool2D 3x3/2 fwd+bwd, plain NCHW array", shape=(32, 32, 32),
                          layout="nchw", torch_max=1.0),
    "maxpool2": dict(op="MaxPool2D 2x2/2 fwd+bwd, inside a network", shape=(32, 32, 32),
                     naive=(1, 8), naive_min=1000),
    "maxpool3": dict(op="MaxPool2D 3x3/2 fwd+bwd, inside a network", shape=(32, 32, 32),
                     naive=(1, 8), naive_min=1000),
    "conv7": dict(op="Conv2D 7x7 3->32 pad 3 fwd+bwd (no dx)", shape=(3, 32, 32), filters=32,
                  layout="nchw", naive=(1, 4), torch_max=1.2),
    "conv3": dict(op="Conv2D 3x3 32->64 pad 1 fwd+bwd", shape=(32, 16, 16), filters=64,
                  naive=(1, 4), torch_max=1.0),
    "relu": dict(op="ReLU fwd+bwd", shape=(32, 32, 32)),
}
STEPS = {
    "three_layer_convnet": dict(
        op="train step: three_layer_convnet", torch_max=1.0, shape=(3, 32, 32),
        about="conv7x7 3->32 pad 3, ReLU, maxpool 2, linear 8192->100, ReLU, linear 10"),
    "vgg_style": dict(
        op="train step: VGG-style", torch_max=1.0, shape=(3, 32, 32),
        about="conv3x3 3->32, ReLU, conv3x3 32->32, ReLU, maxpool 2, conv3x3 32->64, ReLU, "
              "maxpool 2, linear 4096->10"),
    "vgg_small": dict(
        op="train step: vgg_small", torch_max=1.0, shape=(3, 32, 32),
        about="minicnn.models.vgg_small: 3 stages of 2x[conv3x3-BN-ReLU] + maxpool, "
              "global avg pool, linear"),
    "vgg_small_gray": dict(
        op="train step: vgg_small, 1x28x28", torch_max=1.0, shape=(1, 28, 28),
        about="vgg_small(in_channels=1) on Fashion-MNIST-sized images"),
}
#: The Fashion-MNIST epochs: the model, Adam(lr=1e-3), batch --batch-size, one epoch
#: through minicnn.training.fit (shuffle, batches, steps, evaluation on the test images)
#: against the same net, weights and recipe in PyTorch.
FASHION = {
    "fashion": dict(op="Fashion-MNIST epoch through fit: vgg_small, Adam", model="vgg_small_gray",
                    torch_max=1.1),
    "fashion4": dict(op="Fashion-MNIST epoch through fit: four conv-BN-ReLU (16-16-32-32), Adam",
                     model="four_conv", torch_max=1.1),
}
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FASHION_SIZES = dict(full=(60000, 10000), quick=(2048, 1000))
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MEMORY_MAX = 1.5
#: What a target cell says when PyTorch was not run (not installed, or --no-torch).
NEEDS_TORCH = "needs torch"
LR = 0.01
#: A call whose threads waited for a CPU this fraction of its time or more was slowed
#: by another process (the machine may be shared); such calls are set aside.
CONTENDED = 0.05
#: Other processes above this share of the CPU make the run "busy": no met/missed.
BUSY = 0.10
#: Set on some machines for old OpenBLAS builds; they slow a current one (see the docstring).
BLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def build_model(name, seed=0):
    """A minicnn Sequential for one of STEPS; the ready-made ones from minicnn.models."""
    from minicnn import layers as L
    from minicnn.models import Sequential
    try:
        from minicnn.models import three_layer_convnet, vgg_small
    except ImportError:  # the model zoo is optional here
        three_layer_convnet = vgg_small = None
    rng = np.random.default_rng(seed)
    if name == "three_layer_convnet" and three_layer_convnet is not None:
        return three_layer_convnet(seed=rng)
    if name == "three_layer_convnet":
        return Sequential(L.Conv2D(3, 32, 7, padding=3, seed=rng), L.ReLU(), L.MaxPool2D(2),
                          L.Flatten(), L.Linear(32 * 16 * 16, 100, seed=rng), L.ReLU(),
                          L.Linear(100, 10, seed=rng))
    if name == "vgg_style":
        return Sequential(L.Conv2D(3, 32, 3, padding=1, seed=rng), L.ReLU(),
                          L.Conv2D(32, 32, 3, padding=1, seed=rng), L.ReLU(), L.MaxPool2D(2),
                          L.Conv2D(32, 64, 3, padding=1, seed=rng), L.ReLU(), L.MaxPool2D(2),
                          L.Flatten(), L.Linear(64 * 8 * 8, 10, seed=rng))
    if name == "vgg_small" and vgg_small is not None:
        return vgg_small(seed=rng)
    if name == "vgg_small_gray" and vgg_small is not None:
        return vgg_small(in_channels=1, seed=rng)
    if name == "four_conv" and vgg_small is not None:  # conv-BN-ReLU 16-16-pool-32-32-pool
        return vgg_small(in_channels=1, widths=(16, 32), seed=rng)
    raise ValueError(f"model {name!r} is not available")


def available_steps():
    names = []
    for name in STEPS:
        try:
            build_model(name)
            names.append(name)
        except ValueError:
            pass
    return names


def op_shapes(name, B):
    """The input shape of an operation case for batch size B."""
    return (B,) + OPS[name]["shape"]


# -- timing --------------------------------------------------------------------------
def waited_seconds():
    """Time this process's threads have spent runnable but waiting for a CPU, so far
    (Linux /proc/self/task/*/schedstat), or None where that is not available."""
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except FileNotFoundError:  # a thread that just ended
                pass
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
now = time.perf_counter  # set by the worker from --clock


def time_calls(fn, repeats, warmup=2, attempts=3):
    """[(seconds, waited), ...] for calls of fn, where ``waited`` is the fraction of the
    call its threads spent waiting for a CPU that another process held. Calls go on until
    ``repeats`` of them waited less than CONTENDED, or ``attempts * repeats`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    while len(samples) < attempts * repeats and \
            sum(w < CONTENDED for _, w in samples) < repeats:
        w0, t0 = waited_seconds(), now()
        fn()
        t, w1 = now() - t0, waited_seconds()
        samples.append((t, (w1 - w0) / t if w0 is not None else 0.0))
    return samples


def batch(B, seed=0, shape=(3, 32, 32)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B,) + tuple(shape), dtype=np.float32),
            rng.integers(0, 10, size=B))


# -- minicnn (numpy) ---------------------------------------------------------------------
def batch_last(a):
    """The same (N, C, H, W) values in (C, H, W, N) memory: the layout minicnn's conv,
    ReLU and pooling layers hand to the next layer inside a network."""
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def numpy_op(name, B):
    """Inputs come in the case's layout: batch last (as inside a minicnn network, for the
    layers that follow a conv) unless the case says "nchw" (the first conv, conv7, as the
    data loader gives it; the plain-array pooling cases, as a user calls the layer)."""
    from minicnn import layers as L
    rng = np.random.default_rng(1)
    x = rng.standard_normal(op_shapes(name, B), dtype=np.float32)
    if OPS[name].get("layout") != "nchw":
        x = batch_last(x)
    if name.startswith("maxpool"):
        k = int(name[len("maxpool")])
        layer, ig = L.MaxPool2D(k, 2), None
    elif name == "conv7":
        layer, ig = L.Conv2D(3, 32, 7, padding=3, seed=0), False
    elif name == "conv3":
        layer, ig = L.Conv2D(32, 64, 3, padding=1, seed=0), True
    else:
        layer, ig = L.ReLU(), None
    out = layer.forward(x)  # the upstream gradient comes in the layout of the output,
    g = np.empty_like(out)  # as the next minicnn layer would hand it back
    g[...] = rng.standard_normal(out.shape, dtype=np.float32)
    kwargs = {} if ig is None else {"input_grad": ig}

    def run():
        layer.forward(x)
        layer.backward(g, **kwargs)
    return run


def numpy_step(name, B):
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.optim import SGD
    model, (x, y) = build_model(name), batch(B, shape=STEPS[name]["shape"])
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(model.parameters(), lr=LR)

    def step(x=x, y=y):
        model.zero_grad()
        loss = loss_fn(model.forward(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        return loss
    return step


# -- PyTorch -------------------------------------------------------------------------
def torch_op(name, B):
    import torch
    import torch.nn.functional as TF
    torch.manual_seed(1)
    shape = op_shapes(name, B)
    if name.startswith("maxpool"):
        k = int(name[len("maxpool")])
        x = torch.randn(shape, requires_grad=True)
        f = lambda: TF.max_pool2d(x, k, 2)
    elif name.startswith("conv"):
        cin, cout, k, p, ig = (3, 32, 7, 3, False) if name == "conv7" else (32, 64, 3, 1, True)
        conv = torch.nn.Conv2d(cin, cout, k, padding=p)
        x = torch.randn(shape, requires_grad=ig)

        def f():
            conv.zero_grad(set_to_none=True)
            return conv(x)
    else:
        x = torch.randn(shape, requires_grad=True)
        f = lambda: torch.relu(x)
    g = torch.randn(f().shape)

    def run():
        x.grad = None
        f().backward(g)
    return run


def torch_step(name, B):
    import torch

    from minicnn.export import to_torch
    model = to_torch(build_model(name)).train()
    x, y = batch(B, shape=STEPS[name]["shape"])
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x=x, y=y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def epoch_run(step, B, n_images, seed=0, shape=(3, 32, 32)):
    """Time one epoch over n_images synthetic images: shuffle, slice batches, train."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_images,) + tuple(shape), dtype=np.float32)
    Y = rng.integers(0, 10, size=n_images)

    def epoch():
        order = rng.permutation(n_images)
        for i in range(0, n_images - B + 1, B):
            idx = order[i:i + B]
            step(*convert(X[idx], Y[idx]))
    return epoch


convert = None  # set by the worker: numpy arrays -> the framework's batch


# -- Fashion-MNIST through fit -----------------------------------------------------------
def fashion_files(folder):
    """The four IDX files in ``folder``, or None if any is missing."""
    paths = [os.path.join(folder, f) for f in FASHION_FILES]
    return paths if all(os.path.isfile(p) for p in paths) else None


def read_idx_gz(path):
    """A gzipped IDX file (MNIST's format) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_data(folder, n_train, n_val):
    """(x_train, y_train), (x_val, y_val): the first n_train training and n_val test images,
    float32 (N, 1, 28, 28) standardised with the training subset's mean and std."""
    xtr, ytr, xte, yte = (read_idx_gz(p) for p in fashion_files(folder))
    xtr, ytr, xte, yte = xtr[:n_train], ytr[:n_train], xte[:n_val], yte[:n_val]
    mean, std = xtr.mean() / 255, xtr.std() / 255
    prep = lambda x: ((x.astype(np.float32) / 255 - mean) / std).astype(np.float32)[:, None]
    return (prep(xtr), ytr.astype(np.int64)), (prep(xte), yte.astype(np.int64))


def numpy_fashion_epoch(model_name, train, val, B):
    """One more epoch of the model on the data through minicnn.training.fit (no progress
    bar); returns the validation accuracy."""
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.optim import Adam
    from minicnn.training import fit
    model = build_model(model_name)
    opt, loss_fn, seeds = Adam(model.parameters(), lr=1e-3), SoftmaxCrossEntropy(), iter(range(10**6))

    def epoch():
        history = fit(model, loss_fn, opt, train, val, 1, B, seed=next(seeds), progress=False)
        return history["val_acc"][-1]
    return epoch


def torch_fashion_epoch(model_name, train, val, B):
    """The same epoch in PyTorch: same net and initial weights, Adam(lr=1e-3), a fresh
    shuffle per epoch, full batches only (fit's drop_last), the training loss and
    accuracy read every step (as fit records them), evaluation in batches of 500."""
    import torch

    from minicnn.export import to_torch
    model = to_torch(build_model(model_name))
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    (x, y), (xv, yv) = (tuple(torch.from_numpy(a) for a in pair) for pair in (train, val))
    rng = np.random.default_rng(0)

    def epoch():
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x) - B + 1, B):
            idx = order[i:i + B]
            opt.zero_grad()
            scores = model(x[idx])
            loss = loss_fn(scores, y[idx])
            loss.backward()
            opt.step()
            loss.item(), int((scores.argmax(1) == y[idx]).sum())
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(xv[i:i + 500]) for i in range(0, len(xv), 500)])
        return float((scores.argmax(1) == yv).float().mean())
    return epoch


# -- workers (each run in its own subprocess) ---------------------------------------
def worker(args):
    global convert, now
    now = CLOCK[args.clock]
    fw = args.worker
    out = {"times": {}, "info": {}}
    if args.contention:
        global CONTENDED
        CONTENDED = float("inf")  # the busy loop's slowdown is what is measured
    if fw == "torch":
        import torch
        torch.set_num_threads(args.threads)
        make_op, make_step = torch_op, torch_step
        convert = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))
    else:
        make_op, make_step = numpy_op, numpy_step
        convert = lambda x, y: (x, y)
    if args.mode == "ops":
        for name in args.cases.split(","):
            if name in OPS:
                fn = make_op(name, args.batch_size)
                out["times"][name] = time_calls(fn, args.repeats)
            else:
                fn = make_step(name, args.batch_size)
                out["times"][name] = time_calls(fn, args.repeats)
                if args.epoch_images:
                    ep = epoch_run(fn, args.batch_size, args.epoch_images,
                                   shape=STEPS[name]["shape"])
                    out["times"]["epoch:" + name] = time_calls(ep, 1, warmup=0, attempts=2)
                del fn
    elif args.mode == "fashion":
        train, val = fashion_data(args.fashion_dir, *fashion_sizes(args))
        make = torch_fashion_epoch if fw == "torch" else numpy_fashion_epoch
        epoch, acc = make(FASHION[args.cases]["model"], train, val, args.batch_size), []
        out["times"][args.cases] = time_calls(lambda: acc.append(epoch()), 1, warmup=0,
                                              attempts=1)
        out["accuracy"] = acc[-1]
    elif args.mode == "memory":
        fn = make_step(args.cases, args.batch_size)
        out["memory"] = measure_step_memory(fn)
    out["info"] = torch_info() if fw == "torch" else numpy_info()  # after the work ran
    print(json.dumps(out))


def numpy_info():
    """minicnn's threads and its BLAS (library, version, kernel, threads)."""
    import minicnn
    return {"threads": minicnn.get_num_threads(), "blas": blas_info()}


def torch_info():
    """PyTorch's threads, its BLAS and OpenMP libraries (threadpoolctl) and oneDNN."""
    import re

    import torch
    built = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "built_blas": built.group(1) if built else "?", "blas": blas_info(any_api=True)}


def fashion_sizes(args):
    """(training images, test images) of the Fashion-MNIST epoch."""
    n_train, n_val = FASHION_SIZES["quick" if args.quick else "full"]
    return (args.fashion_images or n_train), n_val


def naive_worker(args):
    """Time the naive loops (minicnn.functional.reference) on a few images and
    channels/filters, scaled to the batch."""
    from minicnn.functional import reference as naive
    out = {"times": {}}
    for name in args.cases.split(","):
        spec = OPS[name]
        images, part = spec["naive"]
        images = min(images, args.batch_size)
        rng = np.random.default_rng(1)
        if name.startswith("maxpool"):
            C = spec["shape"][0]
            x = rng.standard_normal((images, part) + spec["shape"][1:], dtype=np.float32)
            k = int(name[-1])

            def fn():
                o, cache = naive.max_pool2d_forward(x, (k, k), (2, 2))
                naive.max_pool2d_backward(np.ones_like(o), cache)
            scale = args.batch_size / images * C / part
        else:
            cin, cout, k, p = (3, 32, 7, 3) if name == "conv7" else (32, 64, 3, 1)
            x = rng.standard_normal((images,) + spec["shape"], dtype=np.float32)
            w = rng.standard_normal((part, cin, k, k), dtype=np.float32)
            b = np.zeros(part, dtype=np.float32)

            def fn():  # dx included, also for the first-layer conv7 (an over-estimate there)
                o, cache = naive.conv2d_forward(x, w, b, (1, 1), (p, p))
                naive.conv2d_backward(np.ones_like(o), cache)
            scale = args.batch_size / images * cout / part
        out["times"][name] = [(t * scale, w) for t, w in time_calls(fn, 3, warmup=0, attempts=3)]
    print(json.dumps(out))


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_step_memory(step, steps=3):
    """Peak RSS growth over ``steps`` training steps, from the RSS just before them.

    Resets the kernel's peak-RSS mark first (``/proc/self/clear_refs`` = 5) so that
    allocations made while setting up do not hide the step's own; where that is not
    possible, falls back to ru_maxrss and says so.
    """
    import gc
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss"
    before = rss_bytes()
    if method == "ru_maxrss" and peak_rss_bytes() > before:
        method = "ru_maxrss (setup peak may hide part of the step)"
    for _ in range(steps):
        step()
    return {"peak_bytes": peak_rss_bytes() - before, "method": method}


def run_worker(kind, mode, cases, args, repeats=None, threads=None):
    """Run a worker subprocess; its JSON answer. ``threads`` overrides --threads."""
    threads = threads or args.threads
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--mode", mode,
           "--cases", cases, "--batch-size", str(args.batch_size),
           "--repeats", str(repeats or args.repeats), "--threads", str(threads),
           "--epoch-images", str(args.epoch_images), "--clock", args.clock,
           "--fashion-dir", args.fashion_dir, "--fashion-images", str(args.fashion_images or 0)]
    cmd += ["--quick"] * args.quick + ["--contention"] * args.contention
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if not args.keep_blas_env:
        for name in BLAS_PINS:
            env.pop(name, None)
    # minicnn gives BLAS one thread itself; PyTorch keeps its own setting
    env.pop("OPENBLAS_NUM_THREADS", None)
    env["MINICNN_NUM_THREADS"] = str(threads)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"worker {kind}/{mode} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the machine -----------------------------------------------------------------------
def cpu_busy_seconds():
    """Seconds of CPU time all processes used, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    r = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in r)


def blas_info(any_api=False):
    """The BLAS libraries loaded in this process: library, version, kernel and threads
    (threadpoolctl; with ``any_api`` the OpenMP runtimes too), else numpy's build
    configuration."""
    try:
        from threadpoolctl import threadpool_info
        libs = [p for p in threadpool_info() if any_api or p.get("user_api") == "blas"]
        return ", ".join(
            f"{p['internal_api']} {p.get('version') or ''} "
            f"({os.path.basename(p.get('filepath', ''))}"
            f"{', ' + str(p['architecture']) + ' kernel' if p.get('architecture') else ''}, "
            f"{p['num_threads']} threads)" for p in libs)
    except ImportError:
        try:
            cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
            return f"{cfg['name']} {cfg['version']} ({threads} threads)"
        except Exception:
            return "unknown"


def machine_info(args_keep_blas_env=False):
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    info["env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                   if k in os.environ}
    if args_keep_blas_env:
        info["env"].update({k: os.environ[k] for k in BLAS_PINS if k in os.environ})
    return info


def have_torch():
    try:
        import importlib.util
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


# -- the report ----------------------------------------------------------------------
def fmt_time(t):
    if t is None:
        return "—"
    if t >= 1:
        return f"{t:.2f} s"
    return f"{t * 1e3:.1f} ms" if t >= 1e-3 else f"{t * 1e6:.0f} µs"


def median(samples):
    """Median time of the calls that did not wait for a CPU (all calls if fewer than
    three did, or if there are fewer than three calls in all and none was clean)."""
    if not samples:
        return None
    clean = [t for t, w in samples if w < CONTENDED]
    if len(clean) >= min(3, len(samples)):
        return float(np.median(clean))
    return float(np.median([t for t, _ in samples]))


def contended(samples):
    """True when the median had to include calls slowed by other processes."""
    clean = [t for t, w in samples if w < CONTENDED] if samples else []
    return bool(samples) and len(clean) < min(3, len(samples))


def flat(rounds):
    """The samples of all rounds ([[(t, waited), ...], ...]) in one list."""
    return [s for r in rounds or [] for s in r]


def pooled(rounds):
    """Median over the samples of all rounds."""
    return median(flat(rounds))


def ratio_spread(a_rounds, b_rounds):
    """(ratio of the pooled medians, lowest round ratio, highest round ratio), or Nones."""
    a, b = pooled(a_rounds), pooled(b_rounds)
    if not a or not b:
        return None, None, None
    per_round = [median(x) / median(y) for x, y in zip(a_rounds, b_rounds) if x and y]
    return a / b, min(per_round), max(per_round)


def fmt_ratio(r, lo, hi):
    if r is None:
        return "—"
    return f"{r:.2f} ({lo:.2f}–{hi:.2f})" if lo is not None and hi - lo >= 0.005 else f"{r:.2f}"


def mark(rounds):
    return "†" if contended(flat(rounds)) else ""


class Judge:
    """met/missed for a value against a limit, or why it is not judged."""

    def __init__(self, busy):
        self.busy = busy

    def __call__(self, value, limit, higher_is_better=False, strict=False):
        if value is None or limit is None:
            return ""
        if self.busy:
            return "not judged (machine busy)"
        if higher_is_better:
            ok = value >= limit
        else:
            ok = value < limit if strict else value <= limit
        return "met" if ok else "**missed**"


def torch_limit(spec, args):
    """The target ratio minicnn / PyTorch: the case's, or 1.0 for every case at one thread."""
    if spec.get("torch_max") is None:
        return None
    return 1.0 if args.threads == 1 else spec["torch_max"]


def load_line(other_load, wall, loadavg, busy):
    return (f"The run took {wall:.0f} s; other processes used {other_load:.0%} of the CPU "
            f"meanwhile (load average at the start and the end: {loadavg[0]} / {loadavg[1]})."
            + (f" **The machine was busy (more than {BUSY:.0%} of the CPU taken by other "
               f"processes): the numbers are shown, the targets are not judged.**" if busy else ""))


def threads_line(results, info, args):
    n, t = results.get("numpy_info") or {}, results.get("torch_info")
    text = (f"Machine: {info.get('cpu', '?')}, {info['cores']} cores; Python {info['python']}, "
            f"numpy {info['numpy']}. minicnn: {n.get('threads', '?')} threads of its own, "
            f"BLAS {n.get('blas', '?')}.")
    if t:
        text += (f" PyTorch {t['torch']}: {t['threads']} threads, BLAS {t.get('built_blas', '?')} "
                 f"(built in), oneDNN {'on' if t['mkldnn'] else 'off'}; libraries loaded in its "
                 f"process: {t.get('blas', '?')}.")
    else:
        text += " PyTorch not run (not installed or --no-torch)."
    pins = "kept" if args.keep_blas_env else "unset in the workers"
    text += f" {' and '.join(BLAS_PINS)}: {pins}."
    if info["env"]:
        text += f" Environment: {info['env']}."
    return text


def report(results, naive, memory, info, args, load, fashion=None):
    B = args.batch_size
    judge = Judge(load["busy"])
    np_t, th_t = results["numpy"], results.get("torch", {})
    all_samples = [flat(v) for r in (np_t, th_t) for v in r.values()]
    n_calls = sum(len(v) for v in all_samples)
    n_slow = sum(w >= CONTENDED for v in all_samples for _, w in v)
    lines = [f"Batch {B}, float32, {args.threads} thread(s) on each side. Times: medians over "
             f"{args.rounds} alternating round(s) of {args.repeats} calls each that did not "
             f"wait for a CPU (a call whose threads waited {CONTENDED:.0%} of its time or more "
             f"for a CPU held by another process is set aside: {n_slow} of {n_calls} calls "
             f"were); † marks a median that had to include such calls. Ratios: minicnn / "
             f"PyTorch, in brackets the lowest and highest round's ratio. "
             + load_line(load["other"], load["wall"], load["loadavg"], load["busy"])]
    rows = [(n, OPS[n], str((B,) + OPS[n]["shape"])) for n in OPS if n in np_t]
    rows += [(n, STEPS[n], str((B,) + STEPS[n]["shape"])) for n in STEPS if n in np_t]
    if rows:
        lines += ["", "| case | input | naive loops | minicnn | PyTorch | naive / minicnn "
                      "| minicnn / PyTorch | target |", "|---|---|---|---|---|---|---|---|"]
    summary = []
    for name, spec, shape in rows:
        m, t, nv = pooled(np_t.get(name)), pooled(th_t.get(name)), median(naive.get(name))
        speed = nv / m if nv and m else None
        ratio, lo, hi = ratio_spread(np_t.get(name), th_t.get(name))
        target = []
        if spec.get("naive_min"):
            v = judge(speed, spec["naive_min"], True) or \
                ("needs the naive loops (no --no-naive)" if not naive else "not measured")
            target.append(f"≥ {spec['naive_min']}x naive: {v}")
            summary.append((spec["op"], "naive / minicnn", f"{speed:,.0f}x" if speed else "—",
                            f"≥ {spec['naive_min']}", v))
        limit = torch_limit(spec, args)
        if limit:
            v = judge(ratio, limit) or (NEEDS_TORCH if not th_t else "not measured")
            target.append(f"≤ {limit}x torch: {v}")
            summary.append((spec["op"], "minicnn / PyTorch", fmt_ratio(ratio, lo, hi),
                            f"≤ {limit}", v))
        lines.append(f"| {spec['op']} | {shape} | {fmt_time(nv)}{'†' if contended(naive.get(name)) else ''} "
                     f"| {fmt_time(m)}{mark(np_t.get(name))} | {fmt_time(t)}{mark(th_t.get(name))} | "
                     f"{f'{speed:,.0f}x' if speed else '—'} | {fmt_ratio(ratio, lo, hi)} | "
                     f"{'; '.join(target)} |")
    if any(("epoch:" + n) in np_t for n in STEPS):
        n_img = args.epoch_images - args.epoch_images % B
        lines += ["", f"Training throughput in images/s, batch {B}: from the median step time "
                      f"above, and over whole epochs of {n_img} synthetic images (shuffle, "
                      f"batch slicing, steps; one epoch per round, so more exposed to other "
                      f"processes: † marks epochs that waited for a CPU).", "",
                  "| model | minicnn (step) | PyTorch (step) | minicnn (epoch) | PyTorch (epoch) |",
                  "|---|---|---|---|---|"]
        rate = lambda n, t: f"{n / t:,.0f}" if t else "—"
        for name in STEPS:
            if name not in np_t:
                continue
            eps = [rate(n_img, pooled(r.get("epoch:" + name))) + mark(r.get("epoch:" + name))
                   if r.get("epoch:" + name) else "—" for r in (np_t, th_t)]
            lines.append(f"| {name} | {rate(B, pooled(np_t[name]))} | "
                         f"{rate(B, pooled(th_t.get(name)))} | {eps[0]} | {eps[1]} |")
    if fashion is not None:
        lines += ["", fashion_report(fashion, args, summary, judge)]
    if memory:
        lines += ["", "Peak memory of a training step (growth of the resident set over three "
                      "steps, each framework in a fresh process):", "",
                  "| model | minicnn | PyTorch | minicnn / PyTorch | target |",
                  "|---|---|---|---|---|"]
        for name in STEPS:
            if name not in memory.get("numpy", {}):
                continue
            m = memory["numpy"][name]["peak_bytes"]
            t = memory.get("torch", {}).get(name, {}).get("peak_bytes")
            ratio = m / t if t else None
            v = judge(ratio, MEMORY_MAX) or (
                NEEDS_TORCH if not memory.get("torch") else "not measured")
            lines.append(f"| {name} | {m / 2**20:.0f} MiB | "
                         f"{f'{t / 2**20:.0f} MiB' if t else '—'} | "
                         f"{f'{ratio:.2f}' if ratio else '—'} | ≤ {MEMORY_MAX}: {v} |")
            summary.append((f"peak memory: {name}", "minicnn / PyTorch",
                            fmt_ratio(ratio, None, None), f"≤ {MEMORY_MAX}", v))
    lines += ["", threads_line(results, info, args)]
    if summary:
        lines += ["", "Targets:", ""] + [
            f"- {what}: {kind} = {value} (target {limit}): {v or 'not measured'}"
            for what, kind, value, limit, v in summary]
    return "\n".join(lines), summary


def fashion_report(fashion, args, summary, judge):
    """The Fashion-MNIST epochs' lines (or why they did not run); adds their targets to summary."""
    if "skipped" in fashion:
        for spec in FASHION.values():
            summary.append((spec["op"], "minicnn / PyTorch", "—", f"≤ {spec['torch_max']}", ""))
        return f"Fashion-MNIST epochs: not run ({fashion['skipped']})."
    n_train, n_val = fashion_sizes(args)
    lines = [f"Fashion-MNIST epochs through fit: {n_train // args.batch_size} steps of "
             f"{args.batch_size} of the first {n_train} training images, then evaluation on "
             f"{n_val} test images; one epoch per round, the same model training on from round "
             f"to round; median over {args.rounds} round(s).", "",
             "| model | minicnn | PyTorch | minicnn / PyTorch | target | test accuracy, last epoch |",
             "|---|---|---|---|---|---|"]
    for name, res in fashion["cases"].items():
        spec, times = FASHION[name], res["times"]
        ratio, lo, hi = ratio_spread(times.get("numpy"), times.get("torch"))
        limit = torch_limit(spec, args)
        v = judge(ratio, limit) or (NEEDS_TORCH if "torch" not in times else "not measured")
        summary.append((spec["op"], "minicnn / PyTorch", fmt_ratio(ratio, lo, hi), f"≤ {limit}", v))
        acc = " / ".join(f"{res['accuracy'][fw]:.3f}" for fw in ("numpy", "torch")
                         if fw in res["accuracy"])
        lines.append(f"| {spec['op']} | {fmt_time(pooled(times.get('numpy')))}"
                     f"{mark(times.get('numpy'))} | {fmt_time(pooled(times.get('torch')))}"
                     f"{mark(times.get('torch'))} | {fmt_ratio(ratio, lo, hi)} | ≤ {limit}: {v} "
                     f"| {acc} |")
    return "\n".join(lines)


def contention_report(results, info, args, load):
    """The contended run: minicnn's default threads against its one thread and PyTorch."""
    judge = Judge(load["busy"])
    T = args.threads
    lines = [f"Under contention: a busy loop pinned to CPU {load['spinner_cpu']} ran all along. "
             f"Batch {args.batch_size}, float32, wall clock, medians over {args.rounds} "
             f"alternating round(s) of {args.repeats} calls (none set aside); in brackets the "
             f"lowest and highest round's ratio. "
             + load_line(load["other"], load["wall"], load["loadavg"], load["busy"])
             + " (the busy loop is not counted as another process).", "",
             f"| case | minicnn, {T} threads (default) | minicnn, 1 thread | PyTorch, {T} threads "
             f"| default / 1 thread | minicnn / PyTorch | targets |",
             "|---|---|---|---|---|---|---|"]
    summary = []
    d, one, th = results["numpy"], results["numpy1"], results.get("torch", {})
    for name in [n for n in STEPS if n in d]:
        r1 = ratio_spread(d.get(name), one.get(name))
        rt = ratio_spread(d.get(name), th.get(name))
        v1, vt = judge(r1[0], 1.0), judge(rt[0], 1.0, strict=True) or NEEDS_TORCH
        summary += [(f"contention, {STEPS[name]['op']}", "default / one thread", fmt_ratio(*r1),
                     "≤ 1.0", v1),
                    (f"contention, {STEPS[name]['op']}", "minicnn / PyTorch", fmt_ratio(*rt),
                     "< 1.0", vt)]
        lines.append(f"| {STEPS[name]['op']} | {fmt_time(pooled(d.get(name)))} | "
                     f"{fmt_time(pooled(one.get(name)))} | {fmt_time(pooled(th.get(name)))} | "
                     f"{fmt_ratio(*r1)} | {fmt_ratio(*rt)} | ≤ 1.0: {v1}; < 1.0: {vt} |")
    lines += ["", threads_line(results, info, args), "", "Targets:", ""] + [
        f"- {what}: {kind} = {value} (target {limit}): {v or 'not measured'}"
        for what, kind, value, limit, v in summary]
    return "\n".join(lines), summary


def run_fashion(frameworks, args, names):
    """The Fashion-MNIST epochs, alternating frameworks round by round, or why they can't run."""
    if not fashion_files(args.fashion_dir):
        return {"skipped": f"the Fashion-MNIST files are not in {args.fashion_dir}"}
    res = {"cases": {}, "info": {}}
    for name in names:
        case = res["cases"][name] = {"times": {}, "accuracy": {}}
        for r in range(args.rounds):
            for fw in frameworks if r % 2 == 0 else frameworks[::-1]:
                print(f"round {r + 1}/{args.rounds}: {name}, {fw} ...", file=sys.stderr,
                      flush=True)
                out = run_worker(fw, "fashion", name, args)
                case["times"].setdefault(fw, []).append(out["times"][name])
                case["accuracy"][fw] = out["accuracy"]
                res["info"][fw] = out["info"]
    return res


def start_spinner():
    """A busy loop on the last CPU this process may use, in its own process: (Popen, cpu)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    cpu = cpus[-1]
    code = (f"import os\nif hasattr(os, 'sched_setaffinity'): os.sched_setaffinity(0, {{{cpu}}})\n"
            "while True: pass\n")
    return subprocess.Popen([sys.executable, "-c", code]), cpu


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="3 repeats, 1 round, short epochs, a Fashion-MNIST subset")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=None, help="timed calls per round (default 7; quick 3)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; quick 1)")
    default_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count()
    p.add_argument("--threads", type=int, default=default_threads,
                   help="threads on each side (default: the CPUs this process may use)")
    p.add_argument("--epoch-images", type=int, default=None,
                   help="images in the throughput epoch (default 4 batches; quick 2; 0 skips)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop references")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--only", default=None,
                   help="comma-separated case names (default: all; 'fashion' and 'fashion4' are "
                        "the Fashion-MNIST epochs)")
    p.add_argument("--fashion-dir", default=os.environ.get("MINICNN_FASHION_DIR", FASHION_DIR),
                   help="folder with the four Fashion-MNIST .gz files (default: $MINICNN_FASHION_DIR "
                        f"or {FASHION_DIR})")
    p.add_argument("--fashion-images", type=int, default=None,
                   help=f"training images in the Fashion-MNIST epochs (default "
                        f"{FASHION_SIZES['full'][0]}; quick {FASHION_SIZES['quick'][0]})")
    p.add_argument("--no-fashion", action="store_true", help="skip the Fashion-MNIST epochs")
    p.add_argument("--contention", action="store_true",
                   help="keep one core busy with a busy loop and time the training steps with "
                        "minicnn's default threads, one thread, and PyTorch's default")
    p.add_argument("--keep-blas-env", action="store_true",
                   help=f"keep {' and '.join(BLAS_PINS)} in the workers' environment")
    p.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                   help="wall (default) or cpu: the process's CPU time, for --threads 1 on a "
                        "shared machine")
    p.add_argument("--output", default=None, help="also write the report to this file")
    # internal: the subprocess workers
    p.add_argument("--worker", choices=["numpy", "torch", "naive"], help=argparse.SUPPRESS)
    p.add_argument("--mode", default="ops", help=argparse.SUPPRESS)
    p.add_argument("--cases", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.epoch_images is None:
        args.epoch_images = 0 if args.contention else args.batch_size * (2 if args.quick else 4)
    if args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if args.clock == "cpu" and (args.threads != 1 or args.contention):
        p.error("--clock cpu adds up the CPU time of all threads: use it with --threads 1 "
                "and without --contention")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker == "naive":
        return naive_worker(args)
    if args.worker:
        return worker(args)

    only = args.only.split(",") if args.only else None
    cases = [c for c in list(OPS) + available_steps() if not only or c in only]
    if args.contention:
        cases = [c for c in cases if c in STEPS]
    has_torch = not args.no_torch and have_torch()
    frameworks = ["numpy"] + ["torch"] * has_torch
    # (name in the results, worker, threads)
    sides = [("numpy", "numpy", args.threads)] + \
        ([("numpy1", "numpy", 1)] if args.contention else []) + \
        [("torch", "torch", args.threads)] * has_torch
    spinner, spinner_cpu = start_spinner() if args.contention else (None, None)
    t0, busy0, own0, load0 = time.perf_counter(), cpu_busy_seconds(), own_cpu_seconds(), loadavg()
    results = {name: {} for name, _, _ in sides}
    try:
        for r in range(args.rounds if cases else 0):
            for name, kind, threads in sides if r % 2 == 0 else sides[::-1]:
                print(f"round {r + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                res = run_worker(kind, "ops", ",".join(cases), args, threads=threads)
                for case, ts in res["times"].items():
                    results[name].setdefault(case, []).append(ts)
                results.setdefault(kind + "_info", res["info"])
        naive, fashion, memory = {}, None, {}
        naive_cases = [c for c in cases if c in OPS and "naive" in OPS[c]]
        if not args.contention and not args.no_naive and naive_cases:
            print("naive loops ...", file=sys.stderr, flush=True)
            naive = run_worker("naive", "ops", ",".join(naive_cases), args)["times"]
        fashion_cases = [c for c in FASHION if not only or c in only]
        if not args.contention and not args.no_fashion and fashion_cases:
            fashion = run_fashion(frameworks, args, fashion_cases)
            for fw, fw_info in fashion.pop("info", {}).items():
                results.setdefault(fw + "_info", fw_info)
        if not args.contention and not args.no_memory:
            for name in [c for c in cases if c in STEPS]:
                for fw in frameworks:
                    print(f"memory: {fw} {name} ...", file=sys.stderr, flush=True)
                    memory.setdefault(fw, {})[name] = run_worker(fw, "memory", name, args)["memory"]
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()  # reaped: its CPU time counts as ours below
    wall = time.perf_counter() - t0
    other = 0.0
    if busy0 is not None:
        used = cpu_busy_seconds() - busy0 - (own_cpu_seconds() - own0)
        other = max(0.0, used / (wall * os.cpu_count()))
    load = dict(other=other, wall=wall, loadavg=(load0, loadavg()), busy=other > BUSY,
                spinner_cpu=spinner_cpu)
    info = machine_info(args.keep_blas_env)
    if args.contention:
        text, _ = contention_report(results, info, args, load)
    else:
        text, _ = report(results, naive, memory, info, args, load, fashion)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
