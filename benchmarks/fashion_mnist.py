"""Fashion-MNIST side by side: one network, one recipe, the same weights and batches in
minicnn and in PyTorch; prints both test accuracies (full 10,000-image test set) and wall times.

    python benchmarks/fashion_mnist.py                # the recipe (defaults), both sides
    python benchmarks/fashion_mnist.py --side minicnn # the recipe, minicnn only: 93.3%, 13 min
    python benchmarks/fashion_mnist.py --epochs 1 --train-images 6000   # a quick look
    python benchmarks/fashion_mnist.py --init he --torch-init own --optimizer adam --lr 1e-3 \\
        --weight-decay 0 --widths 16,32 --augment none --schedule none --epochs 1  # own inits

The defaults are the recipe found by measurement (docs/fashion_mnist.md): widths 16, 32, 64,
SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4, per-epoch cosine schedule,
batch 128, random horizontal flips, 10 epochs, one BLAS thread.

The network is built by hand, laid out as the zoo's ``vgg_small``: per stage
``--convs-per-stage`` x [conv3x3 - batch-norm - ReLU] then a 2x2 max pool; global average
pooling and one affine layer on top. Its weights come from one seeded Generator (so
``vgg_small(in_channels=1, widths=...)`` with the same seed would start identically) and
``--init`` can re-draw them the way PyTorch does. PyTorch gets a copy
(``minicnn.export.to_torch``), unless ``--torch-init own`` keeps PyTorch's own initialisation.

How it measures:
- Each side runs in its own process, one after the other, never two at once, with
  ``--threads`` threads (OpenBLAS for minicnn, ``torch.set_num_threads`` for PyTorch).
- Both sides draw their minibatches from the same ``minicnn.data.DataLoader`` (same seed:
  same shuffles, same crops and flips) and change the learning rate at the start of each
  epoch from the same schedule. minicnn trains through ``minicnn.train.fit``.
- After every epoch both evaluate the full test set in eval mode; the wall time includes
  that and excludes loading the data and building the model.
- The CPU that other processes used during each side's run is reported (the machine may
  be shared).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--side", choices=["both", "minicnn", "torch"], default="both",
                   help="which framework(s) to train")
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    p.add_argument("--data-dir", default=None, help="root of the data lookup (see minicnn.data)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-images", type=int, default=60000,
                   help="train on a random subset of this many training images")
    p.add_argument("--widths", default="16,32,64", help="channels of each stage")
    p.add_argument("--convs-per-stage", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="sgd")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="SGD with Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=["none", "step", "cosine"], default="cosine",
                   help="per-epoch learning rate schedule (minicnn.schedules.make_schedule)")
    p.add_argument("--augment", choices=["none", "flip", "crop", "crop-flip"], default="flip",
                   help="random crop after zero padding (--pad) and/or a random horizontal flip")
    p.add_argument("--pad", type=int, default=2, help="padding of the random crop")
    p.add_argument("--init", choices=["he", "torch", "torch-head"], default="he",
                   help="he: minicnn's He-normal everywhere; torch: PyTorch's default "
                        "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every conv and affine weight "
                        "and bias; torch-head: He for the convs, PyTorch's for the classifier")
    p.add_argument("--torch-init", choices=["copy", "own"], default="copy",
                   help="copy: PyTorch starts from minicnn's weights; own: PyTorch's default init")
    p.add_argument("--threads", type=int, default=1, help="BLAS / PyTorch threads per side")
    p.add_argument("--seed", type=int, default=0, help="weights, subset, shuffles, augmentation")
    p.add_argument("--out-dir", default=None,
                   help="minicnn's run folder (history.json after every epoch, checkpoints)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.widths = tuple(int(w) for w in args.widths.split(","))
    for name in ("epochs", "train_images", "batch_size", "convs_per_stage", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.widths) < 1:
        p.error("--widths must be positive integers")
    return args


# -- the worker: one side, in its own process -------------------------------------------

def build_model(widths, convs_per_stage, init, seed):
    """The network on minicnn, with weights drawn as ``init`` says."""
    import numpy as np

    from minicnn.layers import BatchNorm2D, Conv2D, GlobalAvgPool2D, Linear, MaxPool2D, ReLU
    from minicnn.layers.base import as_generator
    from minicnn.models import Sequential
    rng = as_generator(seed)
    layers, c_in = [], 1
    for c_out in widths:
        for _ in range(convs_per_stage):
            layers += [Conv2D(c_in, c_out, 3, padding=1, seed=rng), BatchNorm2D(c_out), ReLU()]
            c_in = c_out
        layers.append(MaxPool2D(2, 2))
    head = Linear(c_in, 10, seed=rng)
    model = Sequential(*layers, GlobalAvgPool2D(), head)
    redraw = {"he": [], "torch": [m for m in layers if isinstance(m, Conv2D)] + [head],
              "torch-head": [head]}[init]
    init_rng = np.random.default_rng([seed, 1])
    for layer in redraw:  # PyTorch's default: kaiming_uniform_(a=sqrt(5)) and its bias rule
        bound = 1 / math.sqrt(layer.weight.data[0].size)
        for p in (layer.weight, layer.bias):
            p.data[...] = init_rng.uniform(-bound, bound, p.data.shape)
    return model


def load_data(args):
    import numpy as np

    from minicnn.data import fit_normalizer, load_fashion_mnist, load_mnist, normalize
    data = (load_fashion_mnist if args.dataset == "fashion-mnist" else load_mnist)(args.data_dir)
    x_train, y_train = data.x_train, data.y_train
    if args.train_images < len(x_train):
        keep = np.sort(np.random.default_rng([args.seed, 2]).permutation(len(x_train))
                       [:args.train_images])
        x_train, y_train = x_train[keep], y_train[keep]
    mean, std = fit_normalizer(x_train)
    return (normalize(x_train, mean, std), y_train), (normalize(data.x_test, mean, std),
                                                      data.y_test)


def make_augment(args):
    from minicnn.data import random_crop, random_flip
    if args.augment == "none":
        return False
    if args.augment == "crop":
        return lambda xb, rng: random_crop(xb, args.pad, rng)
    if args.augment == "flip":
        return random_flip
    return lambda xb, rng: random_flip(random_crop(xb, args.pad, rng), rng)


def run_minicnn(args, model, train, test, schedule):
    from minicnn import optim
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.train import fit
    params = model.parameters()
    if args.optimizer == "sgd":
        opt = optim.SGD(params, args.lr, momentum=args.momentum, nesterov=args.nesterov,
                        weight_decay=args.weight_decay)
    else:
        cls = optim.Adam if args.optimizer == "adam" else optim.AdamW
        opt = cls(params, lr=args.lr, weight_decay=args.weight_decay)
    began = time.perf_counter()
    history = fit(model, SoftmaxCrossEntropy(), opt, train, test, args.epochs, args.batch_size,
                  schedule=schedule, augment=make_augment(args), seed=args.seed,
                  out_dir=args.out_dir, progress=False)
    seconds = time.perf_counter() - began
    return dict(test_acc=history["val_acc"], train_loss=history["train_loss"],
                first_loss=history.iteration_loss[0], epoch_seconds=history["seconds"],
                seconds=seconds)


def run_torch(args, model, train, test, schedule):
    import numpy as np
    import torch

    from minicnn.data import DataLoader
    from minicnn.export import to_torch
    torch.set_num_threads(args.threads)
    net = to_torch(model)
    if args.torch_init == "own":
        torch.manual_seed(args.seed)
        for m in net.modules():
            if m is not net and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    params = net.parameters()
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(params, args.lr, momentum=args.momentum, nesterov=args.nesterov,
                              weight_decay=args.weight_decay)
    else:
        cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    # the loader fit builds: the same Generator, so the same shuffles and augmentation
    loader = DataLoader(*train, args.batch_size, shuffle=True, augment=make_augment(args),
                        drop_last=True, rng=np.random.default_rng(args.seed))
    x_test, y_test = torch.from_numpy(test[0]), torch.from_numpy(test[1])
    result = dict(test_acc=[], train_loss=[], first_loss=None, epoch_seconds=[])
    began = time.perf_counter()
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(epoch)
        net.train()
        total, seen = 0.0, 0
        for xb, yb in loader:
            loss = loss_fn(net(torch.from_numpy(np.ascontiguousarray(xb))), torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if result["first_loss"] is None:
                result["first_loss"] = loss.item()
            total, seen = total + loss.item() * len(yb), seen + len(yb)
        net.eval()
        with torch.no_grad():
            scores = torch.cat([net(x_test[i:i + 500]) for i in range(0, len(x_test), 500)])
        result["test_acc"].append(float((scores.argmax(1) == y_test).double().mean()))
        result["train_loss"].append(total / seen)
        result["epoch_seconds"].append(time.perf_counter() - start)
    result["seconds"] = time.perf_counter() - began
    return result


def worker(args):
    from minicnn.schedules import make_schedule
    train, test = load_data(args)
    model = build_model(args.widths, args.convs_per_stage, args.init, args.seed)
    schedule = make_schedule(args.schedule, args.lr, args.epochs)
    run = run_minicnn if args.side == "minicnn" else run_torch
    cpu = _busy_jiffies()
    own = os.times()
    result = run(args, model, train, test, schedule)
    used = os.times()
    own_seconds = (used.user + used.system) - (own.user + own.system)
    busy = (_busy_jiffies() - cpu) / os.sysconf("SC_CLK_TCK")
    result["others_cpu"] = max(0.0, busy - own_seconds) / (result["seconds"] * os.cpu_count())
    result["parameters"] = int(sum(p.data.size for p in model.parameters()))
    print(json.dumps(result))


def _busy_jiffies():
    """CPU time (in clock ticks) all processes used so far: /proc/stat's non-idle fields."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # less idle and iowait


# -- the driver ------------------------------------------------------------------------

def run_side(side, argv, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--side", side, "--worker"]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {side} run failed (exit {done.returncode}); its error is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    sides = ["minicnn", "torch"] if args.side == "both" else [args.side]
    if "torch" in sides:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: running the minicnn side only")
            sides.remove("torch")
    print(f"{args.dataset}: {args.train_images} training images, {args.epochs} epoch(s), "
          f"widths {args.widths} x {args.convs_per_stage} conv(s), batch {args.batch_size}, "
          f"{args.optimizer} lr {args.lr} wd {args.weight_decay}, {args.schedule} schedule, "
          f"augment {args.augment} (pad {args.pad}), init {args.init} "
          f"(torch: {args.torch_init}), {args.threads} thread(s), seed {args.seed}", flush=True)
    results = {}
    for side in sides:
        results[side] = run_side(side, argv, args.threads)
        r = results[side]
        curve = " ".join(f"{a:.4f}" for a in r["test_acc"])
        print(f"{side:8s} test acc by epoch: {curve}", flush=True)
    print("\n| side | test accuracy | wall time | s/epoch | first loss | other processes' CPU |")
    print("|---|---|---|---|---|---|")
    for side, r in results.items():
        print(f"| {side} | {r['test_acc'][-1]:.4f} | {r['seconds']:.1f} s | "
              f"{r['seconds'] / args.epochs:.1f} | {r['first_loss']:.3f} | "
              f"{100 * r['others_cpu']:.0f}% |")
    if len(results) == 2:
        m, t = results["minicnn"], results["torch"]
        print(f"\nminicnn - PyTorch: {100 * (m['test_acc'][-1] - t['test_acc'][-1]):+.2f} "
              f"points; time ratio minicnn / PyTorch: {m['seconds'] / t['seconds']:.2f}")
    if args.json:
        from minicnn.serialization import atomic_path
        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(dict(args={k: v for k, v in vars(args).items() if k != "worker"},
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
