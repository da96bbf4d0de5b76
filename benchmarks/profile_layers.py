"""Per-layer time of a minicnn training step: forward and backward of every leaf layer.

    MINICNN_NUM_THREADS=1 python benchmarks/profile_layers.py vgg_small --input 1,28,28
    python benchmarks/profile_layers.py vgg_small --input 3,32,32 --steps 20

Runs ``--steps`` training steps (forward, softmax cross-entropy, backward with the first
layer skipping dL/dx, SGD update) after two warm-up steps, timing each leaf layer's
forward and backward with ``time.perf_counter``; prints the median per layer, the
median step, and what the layers do not account for (loss, update, Python overhead).
Every layer's output layout is printed too ("C-last" = batch-last (C, H, W, N) memory,
"NCHW" = C-contiguous), with a mark where a forward or backward handed on an array
whose layout differs from the one it got (a sign of a copy between layers), and the
minor page faults per step (fresh memory the kernel had to map in).

``--clock cpu`` times with the process's CPU time instead of the wall clock: on a shared
machine with MINICNN_NUM_THREADS=1 it leaves out the time spent waiting for a CPU
(with more threads it adds up their CPU time, so use the wall clock there).
"""
import argparse
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))



def layout(a):
    if not isinstance(a, np.ndarray) or a.ndim != 4:
        return "2-D" if isinstance(a, np.ndarray) and a.ndim == 2 else "-"
    if a.flags.c_contiguous:
        return "NCHW"
    if a.transpose(1, 2, 3, 0).flags.c_contiguous:
        return "C-last"
    return "other"


def leaves(model):
    return [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
now = time.perf_counter


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def instrument(model, record):
    """Wrap every leaf layer's forward and backward to add their times to ``record``."""
    for name, m in leaves(model):
        fwd, bwd = m.forward, m.backward

        def forward(x, _name=name, _f=fwd):
            t0 = now()
            out = _f(x)
            record.setdefault((_name, "fwd"), []).append(now() - t0)
            record.setdefault((_name, "layout"), (layout(x), layout(out)))
            return out

        def backward(dout, *args, _name=name, _b=bwd, **kw):
            t0 = now()
            dx = _b(dout, *args, **kw)
            record.setdefault((_name, "bwd"), []).append(now() - t0)
            record.setdefault((_name, "blayout"), (layout(dout), layout(dx)))
            return dx
        m.forward, m.backward = forward, backward


def main(argv=None):
    import minicnn
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.models import build_model
    from minicnn.models.zoo import NEEDS_IMAGE_SIZE
    from minicnn.optim import SGD
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default="vgg_small")
    p.add_argument("--input", default="1,28,28", help="C,H,W of one image")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--clock", choices=sorted(CLOCK), default="wall")
    args = p.parse_args(argv)
    global now
    now = CLOCK[args.clock]
    c, h, w = (int(v) for v in args.input.split(","))
    kw = {"image_size": (h, w)} if args.model in NEEDS_IMAGE_SIZE else {}
    model = build_model(args.model, in_channels=c, seed=0, **kw)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, c, h, w), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.01)
    record, steps, flt = {}, [], []
    instrument(model, record)

    def step():
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()

    for _ in range(2):
        step()
    record.clear()
    for _ in range(args.steps):
        t0, f0 = now(), faults()
        step()
        steps.append(now() - t0)
        flt.append(faults() - f0)
    total = float(np.median(steps))
    print(f"{args.model} on ({args.batch_size}, {c}, {h}, {w}), median of {args.steps} steps, "
          f"{args.clock} clock; "
          f"{minicnn.get_num_threads()} minicnn thread(s), "
          f"load average {os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} CPUs")
    print("| layer | forward ms | backward ms | layout in -> out | dout -> dx |")
    print("|---|---|---|---|---|")
    accounted = 0.0
    for name, m in leaves(model):
        f = float(np.median(record.get((name, "fwd"), [0]))) * 1e3
        b = float(np.median(record.get((name, "bwd"), [0]))) * 1e3
        accounted += (f + b) / 1e3
        li, lo = record.get((name, "layout"), ("-", "-"))
        bi, bo = record.get((name, "blayout"), ("-", "-"))
        mark = lambda a, b: "" if a == b or "-" in (a, b) or "2-D" in (a, b) else " (!)"
        print(f"| {name} {type(m).__name__} | {f:.2f} | {b:.2f} | {li} -> {lo}{mark(li, lo)} "
              f"| {bi} -> {bo}{mark(bi, bo)} |")
    print(f"| step (median) | | {total * 1e3:.1f} ms | layers {accounted * 1e3:.1f} ms | "
          f"rest {max(0.0, total - accounted) * 1e3:.1f} ms |")
    print(f"minor page faults per step: {int(np.median(flt))}")


if __name__ == "__main__":
    main()
