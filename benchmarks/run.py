"""Benchmark minicnn on the CPU against naive loops and, when installed, PyTorch.

    python benchmarks/run.py            # the full run, a few minutes on 2 cores
    python benchmarks/run.py --quick    # fewer repeats, one round: 1 to 2.5 minutes (see --help)

Prints markdown tables: the time of each operation (forward + backward) and of a
training step (forward, loss, backward, SGD update), with the naive loops of
minicnn.functional.reference (run on a few images, scaled linearly to the batch), minicnn,
PyTorch and their ratios;
training throughput in images/second over one epoch of synthetic data; an epoch of
Fashion-MNIST through ``fit`` against the same net and recipe in PyTorch (when the data
files are installed: /usr/share/datasets/fashion-mnist, or --fashion-dir; --quick
trains on a subset); the peak memory of a training step; and met/missed for every
target of issue 14.

How it measures:
- Every framework runs in its own subprocess, never two at once, alternating between
  rounds (numpy, torch, torch, numpy, ...): OpenBLAS and PyTorch both keep their
  threads spinning for a while after work, which would slow the other side down.
- Times are medians over ``--repeats`` calls per round, pooled over ``--rounds``
  rounds, after two warm-up calls (so buffers a layer keeps are already allocated).
- Both sides get ``--threads`` threads (default: all cores): PyTorch through
  ``torch.set_num_threads``, numpy's OpenBLAS through OPENBLAS_NUM_THREADS. minicnn's
  own element-wise work (im2col, pooling, ReLU) is single-threaded numpy.
- Peak memory: each (framework, model) in a fresh subprocess builds the model and the
  batch, then runs three training steps; the figure is the growth of the process's
  resident set (peak RSS during the steps minus RSS just before them). It counts the
  buffers a framework keeps between steps and the memory its allocator holds on to,
  measured the same way on both sides.
- The background CPU use of other processes during the run is reported: the machine
  may be shared, and other work slows both sides.
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
# minicnn / PyTorch; "naive_min": the target speed-up over the naive loops.
OPS = {
    "maxpool2": dict(op="MaxPool2D 2x2/2 fwd+bwd", shape=(32, 32, 32), naive=(1, 8),
                     naive_min=1000, torch_max=1.0),
    "maxpool3": dict(op="MaxPool2D 3x3/2 fwd+bwd", shape=(32, 32, 32), naive=(1, 8),
                     naive_min=1000, torch_max=1.3),
    "conv7": dict(op="Conv2D 7x7 3->32 pad 3 fwd+bwd (no dx)", shape=(3, 32, 32), filters=32,
                  naive=(1, 4), torch_max=1.5),
    "conv3": dict(op="Conv2D 3x3 32->64 pad 1 fwd+bwd", shape=(32, 16, 16), filters=64,
                  naive=(1, 4), torch_max=1.2),
    "relu": dict(op="ReLU fwd+bwd", shape=(32, 32, 32)),
    "maxpool2_nchw": dict(op="MaxPool2D 2x2/2 fwd+bwd, C-contiguous NCHW input",
                          shape=(32, 32, 32)),
}
STEPS = {
    "three_layer_convnet": dict(
        op="train step: three_layer_convnet", torch_max=1.2, shape=(3, 32, 32),
        about="conv7x7 3->32 pad 3, ReLU, maxpool 2, linear 8192->100, ReLU, linear 10"),
    "vgg_style": dict(
        op="train step: VGG-style", torch_max=1.3, shape=(3, 32, 32),
        about="conv3x3 3->32, ReLU, conv3x3 32->32, ReLU, maxpool 2, conv3x3 32->64, ReLU, "
              "maxpool 2, linear 4096->10"),
    "vgg_small": dict(
        op="train step: vgg_small", torch_max=1.3, shape=(3, 32, 32),
        about="minicnn.models.vgg_small: 3 stages of 2x[conv3x3-BN-ReLU] + maxpool, "
              "global avg pool, linear"),
    "vgg_small_gray": dict(
        op="train step: vgg_small, 1x28x28", torch_max=1.3, shape=(1, 28, 28),
        about="vgg_small(in_channels=1) on Fashion-MNIST-sized images"),
}
#: The Fashion-MNIST epoch: vgg_small(in_channels=1), Adam(lr=1e-3), batch --batch-size,
#: one epoch through minicnn.training.fit (shuffle, batches, steps, evaluation on the
#: test images) against the same net, weights and recipe in PyTorch.
FASHION = dict(op="Fashion-MNIST epoch through fit (vgg_small, Adam)", torch_max=1.5,
               files=("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
               full=(60000, 10000), quick=(2048, 1000))
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MEMORY_MAX = 1.5
#: What a target cell says when PyTorch was not run (not installed, or --no-torch).
NEEDS_TORCH = "needs torch"
LR = 0.01
#: A call whose threads waited for a CPU this fraction of its time or more was slowed
#: by another process (the machine may be shared); such calls are set aside.
CONTENDED = 0.05


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
    """Inputs come in the layout they have inside a minicnn network: batch last for the
    layers that follow a conv, C-contiguous NCHW for the first conv (conv7), as the data
    loader gives it; "maxpool2_nchw" shows pooling on a plain NCHW array."""
    from minicnn import layers as L
    rng = np.random.default_rng(1)
    x = rng.standard_normal(op_shapes(name, B), dtype=np.float32)
    if name not in ("conv7", "maxpool2_nchw"):
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
    paths = [os.path.join(folder, f) for f in FASHION["files"]]
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


def numpy_fashion_epoch(train, val, B):
    """One more epoch of vgg_small on the data through minicnn.training.fit (no progress
    bar); returns the validation accuracy."""
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.optim import Adam
    from minicnn.training import fit
    model = build_model("vgg_small_gray")
    opt, loss_fn, seeds = Adam(model.parameters(), lr=1e-3), SoftmaxCrossEntropy(), iter(range(10**6))

    def epoch():
        history = fit(model, loss_fn, opt, train, val, 1, B, seed=next(seeds), progress=False)
        return history["val_acc"][-1]
    return epoch


def torch_fashion_epoch(train, val, B):
    """The same epoch in PyTorch: same net and initial weights, Adam(lr=1e-3), a fresh
    shuffle per epoch, full batches only (fit's drop_last), the training loss and
    accuracy read every step (as fit records them), evaluation in batches of 500."""
    import torch

    from minicnn.export import to_torch
    model = to_torch(build_model("vgg_small_gray"))
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
    if fw == "torch":
        import torch
        torch.set_num_threads(args.threads)
        out["info"] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                       "mkldnn": bool(torch.backends.mkldnn.is_available())}
        make_op, make_step = torch_op, torch_step
        convert = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))
    else:
        out["info"] = {"blas": blas_info()}
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
        epoch, acc = make(train, val, args.batch_size), []
        out["times"]["fashion"] = time_calls(lambda: acc.append(epoch()), 1, warmup=0,
                                             attempts=1)
        out["accuracy"] = acc[-1]
    elif args.mode == "memory":
        fn = make_step(args.cases, args.batch_size)
        out["memory"] = measure_step_memory(fn)
    print(json.dumps(out))


def fashion_sizes(args):
    """(training images, test images) of the Fashion-MNIST epoch."""
    n_train, n_val = FASHION["quick" if args.quick else "full"]
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


def run_worker(kind, mode, cases, args, repeats=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--mode", mode,
           "--cases", cases, "--batch-size", str(args.batch_size),
           "--repeats", str(repeats or args.repeats), "--threads", str(args.threads),
           "--epoch-images", str(args.epoch_images), "--clock", args.clock,
           "--fashion-dir", args.fashion_dir, "--fashion-images", str(args.fashion_images or 0)]
    if args.quick:
        cmd.append("--quick")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if kind != "torch":
        env["OPENBLAS_NUM_THREADS"] = str(args.threads)
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


def blas_info():
    """The BLAS numpy runs on: library, version, kernel and threads (threadpoolctl if
    installed, else numpy's build configuration)."""
    try:
        from threadpoolctl import threadpool_info
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        return ", ".join(f"{p['internal_api']} {p['version']} ({p.get('architecture')} "
                         f"kernel, {p['num_threads']} threads)" for p in blas)
    except ImportError:
        try:
            cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
            return f"{cfg['name']} {cfg['version']} ({threads} threads)"
        except Exception:
            return "unknown"


def machine_info():
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    info["env"] = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                              "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                   if k in os.environ}
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


def verdict(value, limit, higher_is_better=False):
    if value is None or limit is None:
        return ""
    ok = value >= limit if higher_is_better else value <= limit
    return "met" if ok else "**missed**"


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


def report(results, naive, memory, info, args, other_load, wall, fashion=None):
    B = args.batch_size
    np_t, th_t = results["numpy"], results.get("torch", {})
    all_samples = [v for r in (np_t, th_t) for k, v in r.items() if not k.endswith("_info")]
    n_calls = sum(len(v) for v in all_samples)
    n_slow = sum(w >= CONTENDED for v in all_samples for _, w in v)
    lines = [f"Batch {B}, float32. Times: medians over {args.rounds} alternating round(s) of "
             f"{args.repeats} calls each that did not wait for a CPU (a call whose threads "
             f"waited {CONTENDED:.0%} of its time or more for a CPU held by another process is "
             f"set aside: {n_slow} of {n_calls} calls were); † marks a median that had to "
             f"include such calls. The run took {wall:.0f} s; other processes used "
             f"{other_load:.0%} of the CPU meanwhile.",
             "",
             "| operation | input | naive loops | minicnn | PyTorch | naive / minicnn "
             "| minicnn / PyTorch | target |",
             "|---|---|---|---|---|---|---|---|"]
    rows = [(n, OPS[n]["op"], str((B,) + OPS[n]["shape"])) for n in OPS if n in np_t]
    rows += [(n, STEPS[n]["op"], str((B,) + STEPS[n]["shape"])) for n in STEPS if n in np_t]
    summary = []
    for name, op, shape in rows:
        spec = OPS.get(name) or STEPS[name]
        m, t, nv = median(np_t.get(name)), median(th_t.get(name)), median(naive.get(name))
        mark = lambda r: "†" if contended(r.get(name)) else ""
        speed = nv / m if nv and m else None
        ratio = m / t if m and t else None
        target = []
        if spec.get("naive_min"):
            v = verdict(speed, spec["naive_min"], True) or \
                ("needs the naive loops (no --no-naive)" if not naive else "not measured")
            target.append(f"≥ {spec['naive_min']}x naive: {v}")
            summary.append((op, "naive / minicnn", speed, f"≥ {spec['naive_min']}", v))
        if spec.get("torch_max"):
            v = verdict(ratio, spec["torch_max"]) or (NEEDS_TORCH if not th_t else "not measured")
            target.append(f"≤ {spec['torch_max']}x torch: {v}")
            summary.append((op, "minicnn / PyTorch", ratio, f"≤ {spec['torch_max']}", v))
        lines.append(f"| {op} | {shape} | {fmt_time(nv)}{mark(naive)} | {fmt_time(m)}{mark(np_t)} | "
                     f"{fmt_time(t)}{mark(th_t)} | "
                     f"{f'{speed:,.0f}x' if speed else '—'} | "
                     f"{f'{ratio:.2f}' if ratio else '—'} | {'; '.join(target)} |")
    if any(n in np_t for n in STEPS):
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
            ep = [(r.get("epoch:" + name), median(r.get("epoch:" + name))) for r in (np_t, th_t)]
            eps = [rate(n_img, t) + ("†" if contended(smp) else "") if smp else "—"
                   for smp, t in ep]
            lines.append(f"| {name} | {rate(B, median(np_t[name]))} | "
                         f"{rate(B, median(th_t.get(name)))} | {eps[0]} | {eps[1]} |")
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
            v = verdict(ratio, MEMORY_MAX) or (
                NEEDS_TORCH if not memory.get("torch") else "not measured")
            lines.append(f"| {name} | {m / 2**20:.0f} MiB | "
                         f"{f'{t / 2**20:.0f} MiB' if t else '—'} | "
                         f"{f'{ratio:.2f}' if ratio else '—'} | "
                         f"{f'≤ {MEMORY_MAX}: {v}' if v else ''} |")
            if v:
                summary.append((f"peak memory: {name}", "minicnn / PyTorch", ratio,
                                f"≤ {MEMORY_MAX}", v))
    if fashion is not None:
        lines += ["", fashion_report(fashion, args, summary)]
    tinfo = results.get("torch_info")
    lines += ["", f"Machine: {info.get('cpu', '?')}, {info['cores']} cores; Python "
                  f"{info['python']}, numpy {info['numpy']}, BLAS "
                  f"{results.get('numpy_info', {}).get('blas', '?')}"
                  + (f"; torch {tinfo['torch']} ({tinfo['threads']} threads, mkldnn "
                     f"{'on' if tinfo['mkldnn'] else 'off'})" if tinfo
                     else "; PyTorch not run (not installed or --no-torch)")
                  + (f"; environment {info['env']}" if info["env"] else "") + "."]
    if summary:
        lines += ["", "Targets:", ""] + [
            f"- {what}: {kind} = {f'{value:,.2f}' if value is not None else '—'} "
            f"(target {limit}): {v or 'not measured'}" for what, kind, value, limit, v in summary]
    return "\n".join(lines), summary


def fashion_report(fashion, args, summary):
    """The Fashion-MNIST epoch's lines (or why it did not run); adds its target to summary."""
    if "skipped" in fashion:
        summary.append((FASHION["op"], "minicnn / PyTorch", None, f"≤ {FASHION['torch_max']}",
                        ""))
        return f"{FASHION['op']}: not run ({fashion['skipped']})."
    n_train, n_val = fashion_sizes(args)
    n_steps = n_train // args.batch_size
    m, t = median(fashion["times"].get("numpy")), median(fashion["times"].get("torch"))
    ratio = m / t if m and t else None
    v = verdict(ratio, FASHION["torch_max"])
    summary.append((FASHION["op"], "minicnn / PyTorch", ratio, f"≤ {FASHION['torch_max']}", v))
    mark = lambda fw: "†" if contended(fashion["times"].get(fw)) else ""
    acc = fashion["accuracy"]
    return "\n".join([
        f"{FASHION['op']}: {n_steps} steps of {args.batch_size} of the first {n_train} training "
        f"images, then evaluation on {n_val} test images; one epoch per round, the same model "
        f"training on from round to round; median over {args.rounds} round(s).", "",
        "| | minicnn | PyTorch | minicnn / PyTorch | target |", "|---|---|---|---|---|",
        f"| epoch | {fmt_time(m)}{mark('numpy')} | {fmt_time(t)}{mark('torch')} | "
        f"{f'{ratio:.2f}' if ratio else '—'} | ≤ {FASHION['torch_max']}: {v} |",
        f"| test accuracy after the last epoch | {acc.get('numpy', float('nan')):.3f} | "
        f"{acc.get('torch', float('nan')):.3f} | | |"])


def run_fashion(frameworks, args):
    """The Fashion-MNIST epoch, alternating frameworks round by round, or why it can't run."""
    if not fashion_files(args.fashion_dir):
        return {"skipped": f"the Fashion-MNIST files are not in {args.fashion_dir}"}
    res = {"times": {}, "accuracy": {}, "info": {}}
    for r in range(args.rounds):
        for fw in frameworks if r % 2 == 0 else frameworks[::-1]:
            print(f"round {r + 1}/{args.rounds}: Fashion-MNIST epoch, {fw} ...", file=sys.stderr,
                  flush=True)
            out = run_worker(fw, "fashion", "fashion", args)
            res["times"].setdefault(fw, []).extend(out["times"]["fashion"])
            res["accuracy"][fw] = out["accuracy"]
            res["info"][fw] = out["info"]
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="3 repeats, 1 round, short epochs: about 1 minute on an idle 2-core "
                        "machine (59 s, issue #13), up to 2.5 minutes on a busy one (115 s and "
                        "151 s with PyTorch, 77 s with --no-torch, while other processes took "
                        "59-68%% of the CPU); the numpy round is about half of it")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=None, help="timed calls per round (default 7; quick 3)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="BLAS / PyTorch threads (default: all cores)")
    p.add_argument("--epoch-images", type=int, default=None,
                   help="images in the throughput epoch (default 4 batches; quick 2; 0 skips)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop references")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--only", default=None,
                   help="comma-separated case names (default: all; 'fashion' is the Fashion-MNIST epoch)")
    p.add_argument("--fashion-dir", default=os.environ.get("MINICNN_FASHION_DIR", FASHION_DIR),
                   help="folder with the four Fashion-MNIST .gz files (default: $MINICNN_FASHION_DIR "
                        f"or {FASHION_DIR})")
    p.add_argument("--fashion-images", type=int, default=None,
                   help=f"training images in the Fashion-MNIST epoch (default {FASHION['full'][0]}; "
                        f"quick {FASHION['quick'][0]})")
    p.add_argument("--no-fashion", action="store_true", help="skip the Fashion-MNIST epoch")
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
        args.epoch_images = args.batch_size * (2 if args.quick else 4)

    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu adds up the CPU time of all threads: use it with --threads 1")
    if args.worker == "naive":
        return naive_worker(args)
    if args.worker:
        return worker(args)

    t0, busy0, own0 = time.perf_counter(), cpu_busy_seconds(), own_cpu_seconds()
    cases = list(OPS) + available_steps()
    if args.only:
        cases = [c for c in cases if c in args.only.split(",")]
    frameworks = ["numpy"] + ([] if args.no_torch or not have_torch() else ["torch"])
    results = {fw: {} for fw in frameworks}
    for r in range(args.rounds if cases else 0):
        order = frameworks if r % 2 == 0 else frameworks[::-1]
        for fw in order:
            print(f"round {r + 1}/{args.rounds}: {fw} ...", file=sys.stderr, flush=True)
            res = run_worker(fw, "ops", ",".join(cases), args)
            for name, ts in res["times"].items():
                results[fw].setdefault(name, []).extend(ts)
            results[fw + "_info"] = res["info"]
    naive = {}
    naive_cases = [c for c in cases if c in OPS and "naive" in OPS[c]]
    if not args.no_naive and naive_cases:
        print("naive loops ...", file=sys.stderr, flush=True)
        naive = run_worker("naive", "ops", ",".join(naive_cases), args)["times"]
    fashion = None
    if not args.no_fashion and (not args.only or "fashion" in args.only.split(",")):
        fashion = run_fashion(frameworks, args)
        for fw, fw_info in fashion.pop("info", {}).items():
            results.setdefault(fw + "_info", fw_info)
    memory = {}
    if not args.no_memory:
        for name in [c for c in cases if c in STEPS]:
            for fw in frameworks:
                print(f"memory: {fw} {name} ...", file=sys.stderr, flush=True)
                res = run_worker(fw, "memory", name, args)
                memory.setdefault(fw, {})[name] = res["memory"]
    wall = time.perf_counter() - t0
    other = None
    if busy0 is not None:
        used = cpu_busy_seconds() - busy0 - (own_cpu_seconds() - own0)
        other = max(0.0, used / (wall * os.cpu_count()))
    text, summary = report(results, naive, memory, machine_info(), args, other or 0.0, wall,
                           fashion)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
