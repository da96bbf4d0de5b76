"""What the in-place check costs: training steps timed with it and without it.

    python benchmarks/inplace_check.py               # 5 alternating rounds
    python benchmarks/inplace_check.py --rounds 7 --only linear,vgg_small_gray

The check (``minicnn.layers.calls``) fingerprints the cached arrays a caller can reach
(the network's input and output) when forward ends and again when backward starts, and
copies a reachable max-pool output. "Without" replaces that step by nothing, in the same
process; the two alternate round by round (each round: a warm-up step, then ``--steps``
timed steps per side), so both see the same machine. Prints the median step of each side,
the extra time in percent with the lowest and highest round's, and the machine's load.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minicnn import get_num_threads  # noqa: E402
from minicnn.layers import Linear, MaxPool2D, ReLU, calls  # noqa: E402
from minicnn.losses import SoftmaxCrossEntropy  # noqa: E402
from minicnn.models import Sequential, zoo  # noqa: E402
from minicnn.optim import SGD  # noqa: E402


def cases():
    """name -> (model, input shape, uses the loss: False for a lone layer, fwd+bwd only)."""
    return {
        "linear": (lambda: Sequential(Linear(3072, 10, seed=0)), (128, 3072), True),
        "two_layer": (lambda: Sequential(Linear(3072, 100, seed=0), ReLU(),
                                         Linear(100, 10, seed=1)), (128, 3072), True),
        "three_layer_convnet": (lambda: zoo.three_layer_convnet(seed=0), (128, 3, 32, 32), True),
        "vgg_small": (lambda: zoo.vgg_small(seed=0), (128, 3, 32, 32), True),
        "vgg_small_gray": (lambda: zoo.vgg_small(in_channels=1, seed=0), (128, 1, 28, 28), True),
        "relu_alone": (lambda: ReLU(), (128, 32, 32, 32), False),
        "maxpool_alone": (lambda: MaxPool2D(2), (128, 32, 32, 32), False),
    }


def make_step(make, shape, with_loss):
    rng = np.random.default_rng(0)
    model, x = make(), rng.standard_normal(shape).astype(np.float32)
    if not with_loss:
        def step():
            out = model(x)
            model.backward(np.ones_like(out))
        return step
    y = rng.integers(0, 10, shape[0])
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(model.parameters(), lr=1e-3)

    def step():
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    return step


def timed(step, steps):
    step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - began) / steps


def busy_jiffies():
    with open("/proc/stat") as f:
        user, nice, system, idle = map(int, f.readline().split()[1:5])
    return user + nice + system, user + nice + system + idle


def own_jiffies():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps per side and round (default: about 0.3 s worth)")
    p.add_argument("--only", default=None, help="comma-separated case names")
    args = p.parse_args(argv)
    names = list(cases()) if args.only is None else args.only.split(",")
    real = calls.fingerprint
    off = lambda pass_, x, out: None  # noqa: E731
    busy0, total0 = busy_jiffies()
    own0, began = own_jiffies(), time.time()
    print(f"minicnn threads: {get_num_threads()}; load average {os.getloadavg()[0]:.2f} at the start")
    print("| case | with the check | without | extra | lowest-highest round |")
    print("|---|---|---|---|---|")
    for name in names:
        make, shape, with_loss = cases()[name]
        step = make_step(make, shape, with_loss)
        steps = args.steps or max(3, int(0.3 / timed(step, 1)))
        on, without = [], []
        for _ in range(args.rounds):
            for side, times in ((real, on), (off, without)):
                calls.fingerprint = side
                try:
                    times.append(timed(step, steps))
                finally:
                    calls.fingerprint = real
        extra = [a / b - 1 for a, b in zip(on, without)]
        print(f"| {name} {shape} | {np.median(on) * 1e3:.3f} ms | {np.median(without) * 1e3:.3f} ms "
              f"| {100 * (np.median(on) / np.median(without) - 1):+.1f} % "
              f"| {100 * min(extra):+.1f} to {100 * max(extra):+.1f} % |")
    busy1, total1 = busy_jiffies()
    others = (busy1 - busy0 - (own_jiffies() - own0)) / max(1, total1 - total0)
    print(f"\n{time.time() - began:.0f} s; other processes used {100 * others:.0f} % of the CPU; "
          f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
