"""Fashion-MNIST side by side: one recipe, the same weights, batches, augmentation draws and
per-step learning rates in minicnn and in PyTorch; prints both test accuracies and times.

    python benchmarks/fashion_mnist.py                  # the candidate recipe, both sides
    python benchmarks/fashion_mnist.py --side minicnn   # minicnn only
    python benchmarks/fashion_mnist.py --quick          # a few minutes: subset, 2 epochs
    python benchmarks/fashion_mnist.py --estimate       # minicnn's time for the full run
    python benchmarks/fashion_mnist.py --widths 16,32,64 --schedule cosine --augment flip \\
        --label-smoothing 0 --lr 0.1 --epochs 10 --threads 1   # the first preset's recipe

The defaults are the recipe of ``train.py --preset fashion`` (docs/fashion_mnist.md): the
zoo's ``vgg_small`` (two [conv3x3 - batch-norm - ReLU] and a 2x2 max pool per stage) with
widths 16, 48, 96 on 1x28x28 images and the flattened head (``image_size=28``: the 96x3x3
map into one affine layer; ``--head avg`` for global average pooling); SGD with Nesterov
momentum 0.9 and weight decay 5e-4; one-cycle schedule per step up to lr 0.1 (PyTorch's
``OneCycleLR`` defaults); batch 128; random horizontal flip and random erasing
(torchvision's defaults); label smoothing 0.1; 13 epochs; the final test accuracy (of the
last epoch's weights, as the preset's ``--final-model last``) also with flip test-time
augmentation (``--tta flip``: the scores of each test image and of its mirror image
averaged, on both sides). It trains on all 60,000 training images, where the preset holds
1,000 out for validation.

How it keeps the two sides on the same path:
- The weights: minicnn's model (``vgg_small(in_channels=1, widths=..., seed=...)``) is
  copied into PyTorch with ``minicnn.export.to_torch``.
- The batches and the augmentation: both sides draw them from a ``minicnn.data.DataLoader``
  built the way ``fit`` builds its own (same Generator from ``--seed``), so the shuffles,
  crops, flips and erased rectangles are the same numbers.
- The rate: ``schedule.lr_at(step)`` before every step (per-step schedules, the step
  counted over the whole run) or ``lr_at(epoch)`` at every epoch's start, as ``fit`` does.
- The loss: ``SoftmaxCrossEntropy(label_smoothing=eps)`` and
  ``torch.nn.CrossEntropyLoss(label_smoothing=eps)``.
The per-step training losses of both sides are compared. With ``--dtype float64`` they
agree to round-off step after step; in float32 they agree for the first steps and then
drift apart as rounding differences grow (as two PyTorch runs on different hardware do),
and the test accuracies should agree within noise.

How it measures: each side in its own process, one after the other, with ``--threads``
threads (minicnn's own threads, ``MINICNN_NUM_THREADS``, with a one-thread BLAS;
``torch.set_num_threads`` for PyTorch). After every epoch both evaluate the test images in
eval mode; the wall time includes that and excludes loading the data and building the
model. The CPU that other processes used during each run is reported (a shared machine).

``--estimate`` times minicnn alone on a few batches instead of training: ``fit`` for
``--estimate-steps`` steps of the recipe (augmentation and schedule included, no
validation), then ``evaluate`` on 2,000 test images, and projects an epoch of the full
training set plus the test set, and the whole run. It also reports the CPU time a step
took (all threads): on a busy machine the wall time mostly measures the others' load,
while the CPU time changes much less, so ratios of CPU times compare recipes.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

AUGMENTATIONS = ("crop", "flip", "erase")
SCHEDULES = ("none", "step", "cosine", "warmup-cosine", "onecycle")
#: What --quick sets (flags given on the command line still win).
QUICK = dict(train_images=3000, test_images=2000, epochs=2)
STEPS_COMPARED = 10  # the first steps, where float32 rounding has not yet grown


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except None (the help says what it means)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=_Formatter)
    p.add_argument("--side", choices=["both", "minicnn", "torch"], default="both",
                   help="which framework(s) to train")
    p.add_argument("--quick", action="store_true",
                   help="a short agreement check: " + ", ".join(
                       f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    p.add_argument("--data-dir", default=None, help="root of the data lookup (see minicnn.data)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 13)")
    p.add_argument("--train-images", type=int, default=None,
                   help="train on a random subset of this many training images (default all)")
    p.add_argument("--test-images", type=int, default=None,
                   help="evaluate on a random subset of the test images (default all 10,000)")
    p.add_argument("--widths", default="16,48,96", help="channels of each vgg_small stage")
    p.add_argument("--head", choices=["avg", "flatten"], default="flatten",
                   help="vgg_small's head: global average pooling, or the last map flattened")
    p.add_argument("--tta", choices=["none", "flip"], default="flip",
                   help="test-time augmentation of the final test accuracy (both sides)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="sgd")
    p.add_argument("--lr", type=float, default=0.1, help="the rate (one-cycle: its peak)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="SGD with Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=SCHEDULES, default="onecycle",
                   help="minicnn.training.make_schedule: none, step, cosine per epoch; "
                        "warmup-cosine, onecycle per step")
    p.add_argument("--augment", default="flip,erase",
                   help="comma-separated, applied in this order: crop (zero padding --pad), "
                        "flip, erase (random erasing), or none")
    p.add_argument("--pad", type=int, default=2, help="padding of the random crop")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="float64 shows the two sides take the same steps (losses equal to "
                        "round-off); float32 is what one trains with")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="minicnn's / PyTorch's threads per side")
    p.add_argument("--seed", type=int, default=0, help="weights, subsets, shuffles, augmentation")
    p.add_argument("--out-dir", default=None,
                   help="minicnn's run folder (history.json after every epoch, checkpoints)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--estimate", action="store_true",
                   help="time minicnn on a few steps and project the full run's time")
    p.add_argument("--estimate-steps", type=int, default=30, help="steps --estimate times")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, value in {**dict(epochs=13), **(QUICK if args.quick else {})}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    _check(p, args)
    return args


def _check(p, args):
    try:
        args.widths = tuple(int(w) for w in args.widths.split(","))
    except ValueError:
        p.error(f"--widths must be comma-separated integers, got {args.widths!r}")
    args.augment = () if args.augment == "none" else tuple(args.augment.split(","))
    unknown = [a for a in args.augment if a not in AUGMENTATIONS]
    if unknown:
        p.error(f"--augment: unknown {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)} "
                f"or none")
    for name in ("epochs", "train_images", "test_images", "batch_size", "threads",
                 "estimate_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if min(args.widths) < 1:
        p.error("--widths must be positive integers")
    if not 0 <= args.label_smoothing <= 1:
        p.error(f"--label-smoothing must be in [0, 1], got {args.label_smoothing}")


# -- the worker: one side, in its own process -------------------------------------------

def _subset(x, y, n, seed):
    import numpy as np
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[keep], y[keep]


def load_data(args):
    from minicnn.data import fit_normalizer, load_fashion_mnist, load_mnist, normalize
    data = (load_fashion_mnist if args.dataset == "fashion-mnist" else load_mnist)(args.data_dir)
    x_train, y_train = _subset(data.x_train, data.y_train, args.train_images, [args.seed, 2])
    x_test, y_test = _subset(data.x_test, data.y_test, args.test_images, [args.seed, 3])
    mean, std = fit_normalizer(x_train)
    x_train, x_test = (normalize(x, mean, std).astype(args.dtype, copy=False)
                       for x in (x_train, x_test))
    return (x_train, y_train), (x_test, y_test)


def make_augment(names, pad):
    """``f(x_batch, rng)`` applying ``names`` in order, each drawing from ``rng``."""
    from minicnn import data
    if "erase" in names and not hasattr(data, "random_erasing"):
        raise SystemExit("--augment erase needs minicnn.data.random_erasing, which this "
                         "minicnn does not have")
    steps = {"crop": lambda x, rng: data.random_crop(x, pad, rng), "flip": data.random_flip,
             "erase": lambda x, rng: data.random_erasing(x, rng)}
    chosen = [steps[n] for n in names]
    if not chosen:
        return False

    def augment(x, rng):
        for step in chosen:
            x = step(x, rng)
        return x
    return augment


def make_loader(args, train):
    """The loader ``fit`` builds for this run: the same Generator gives the same batches."""
    import numpy as np

    from minicnn.data import DataLoader
    return DataLoader(*train, args.batch_size, shuffle=True,
                      augment=make_augment(args.augment, args.pad), drop_last=True,
                      rng=np.random.default_rng(args.seed), check_inputs=False)


def _minicnn_optimizer(args, model):
    from minicnn import optim
    params = model.parameters()
    if args.optimizer == "sgd":
        return optim.SGD(params, args.lr, momentum=args.momentum, nesterov=args.nesterov,
                         weight_decay=args.weight_decay)
    cls = optim.Adam if args.optimizer == "adam" else optim.AdamW
    return cls(params, lr=args.lr, weight_decay=args.weight_decay)


def run_minicnn(args, model, train, test, schedule):
    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.training import fit
    opt = _minicnn_optimizer(args, model)
    began = time.perf_counter()
    history = fit(model, SoftmaxCrossEntropy(label_smoothing=args.label_smoothing), opt, train,
                  test, args.epochs, args.batch_size, schedule=schedule,
                  augment=make_augment(args.augment, args.pad), seed=args.seed,
                  out_dir=args.out_dir, progress=False)
    seconds = time.perf_counter() - began
    result = dict(test_acc=history["val_acc"], train_loss=history["train_loss"],
                  step_loss=[float(v) for v in history.iteration_loss], lr=history["lr"],
                  epoch_seconds=history["seconds"], seconds=seconds)
    if args.tta == "flip":
        from minicnn.training import evaluate
        result["test_acc_tta"] = evaluate(model, SoftmaxCrossEntropy(), *test, tta="flip")[1]
    return result


def _torch_optimizer(torch, args, params):
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, args.lr, momentum=args.momentum, nesterov=args.nesterov,
                               weight_decay=args.weight_decay)
    cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=args.lr, weight_decay=args.weight_decay)


def run_torch(args, model, train, test, schedule):
    import numpy as np
    import torch

    from minicnn.export import to_torch
    torch.set_num_threads(args.threads)
    net = to_torch(model)
    opt = _torch_optimizer(torch, args, net.parameters())
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    loader = make_loader(args, train)
    per_step = bool(getattr(schedule, "per_step", False))
    x_test, y_test = torch.from_numpy(test[0]), torch.from_numpy(test[1])
    result = dict(test_acc=[], train_loss=[], step_loss=[], lr=[], epoch_seconds=[])
    began, step = time.perf_counter(), 0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        net.train()
        for xb, yb in loader:
            lr = schedule.lr_at(step if per_step else epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = loss_fn(net(torch.from_numpy(np.ascontiguousarray(xb))), torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            result["step_loss"].append(loss.item())
            step += 1
        net.eval()
        with torch.no_grad():
            scores = torch.cat([net(x_test[i:i + 500]) for i in range(0, len(x_test), 500)])
        result["test_acc"].append(float((scores.argmax(1) == y_test).double().mean()))
        if epoch == args.epochs - 1 and args.tta == "flip":
            with torch.no_grad():
                scores = (scores + torch.cat([net(x_test[i:i + 500].flip(-1))
                                              for i in range(0, len(x_test), 500)])) / 2
            result["test_acc_tta"] = float((scores.argmax(1) == y_test).double().mean())
        result["train_loss"].append(float(np.mean(result["step_loss"][-len(loader):])))
        result["lr"].append(lr)
        result["epoch_seconds"].append(time.perf_counter() - start)
    result["seconds"] = time.perf_counter() - began
    return result


def worker(args):
    from minicnn.models.zoo import vgg_small
    from minicnn.training import make_schedule
    train, test = load_data(args)
    model = vgg_small(10, in_channels=1, seed=args.seed, widths=args.widths, dtype=args.dtype,
                      image_size=train[0].shape[-2:] if args.head == "flatten" else None)
    steps_per_epoch = len(train[0]) // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the "
                         f"{len(train[0])} training images")
    schedule = make_schedule(args.schedule, args.lr, args.epochs, steps_per_epoch)
    run = run_minicnn if args.side == "minicnn" else run_torch
    cpu, own = _busy_jiffies(), os.times()
    result = run(args, model, train, test, schedule)
    used = os.times()
    own_seconds = (used.user + used.system) - (own.user + own.system)
    busy = (_busy_jiffies() - cpu) / os.sysconf("SC_CLK_TCK")
    result["others_cpu"] = max(0.0, busy - own_seconds) / (result["seconds"] * os.cpu_count())
    result["parameters"] = int(sum(p.data.size for p in model.parameters()))
    result["steps_per_epoch"] = steps_per_epoch
    print(json.dumps(result))


def estimate(args):
    """Seconds per training step and per evaluated image, measured on the recipe; the
    projected epoch (training set + test set) and run."""
    import numpy as np

    from minicnn.losses import SoftmaxCrossEntropy
    from minicnn.models.zoo import vgg_small
    from minicnn.training import evaluate, fit, make_schedule
    (x_train, y_train), test = load_data(args)
    n_train = len(x_train)
    steps, full_steps = args.estimate_steps, n_train // args.batch_size
    take = np.random.default_rng(args.seed).permutation(n_train)[:(steps + 1) * args.batch_size]
    train = x_train[take], y_train[take]
    model = vgg_small(10, in_channels=1, seed=args.seed, widths=args.widths, dtype=args.dtype,
                      image_size=train[0].shape[-2:] if args.head == "flatten" else None)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=args.label_smoothing)
    schedule = make_schedule(args.schedule, args.lr, args.epochs, full_steps)
    fit(model, loss_fn, _minicnn_optimizer(args, model), (train[0][:args.batch_size],
        train[1][:args.batch_size]), None, 1, args.batch_size, progress=False)  # warm up
    cpu, own, began = _busy_jiffies(), os.times(), time.perf_counter()
    fit(model, loss_fn, _minicnn_optimizer(args, model), (train[0][args.batch_size:],
        train[1][args.batch_size:]), None, 1, args.batch_size, schedule=schedule,
        augment=make_augment(args.augment, args.pad), seed=args.seed, progress=False)
    trained, step = os.times(), (time.perf_counter() - began) / steps
    step_cpu = _cpu(trained) - _cpu(own)
    began = time.perf_counter()
    evaluate(model, loss_fn, test[0][:2000], test[1][:2000], batch_size=500)
    per_image = (time.perf_counter() - began) / min(2000, len(test[0]))
    seconds, used = time.perf_counter() - began + step * steps, os.times()
    busy = (_busy_jiffies() - cpu) / os.sysconf("SC_CLK_TCK")
    epoch = step * full_steps + per_image * len(test[0])
    return dict(step_ms=1000 * step, step_cpu_ms=1000 * step_cpu / steps,
                eval_ms_per_image=1000 * per_image, epoch_s=epoch,
                run_min=epoch * args.epochs / 60, steps_per_epoch=full_steps,
                others_cpu=max(0.0, busy - (_cpu(used) - _cpu(own))) / (seconds * os.cpu_count()),
                load=os.getloadavg()[0])


def _cpu(times):
    return times.user + times.system


def _busy_jiffies():
    """CPU time (in clock ticks) all processes used so far: /proc/stat's non-idle fields."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # less idle and iowait


# -- the driver ------------------------------------------------------------------------

def run_side(side, argv, threads):
    env = dict(os.environ, MINICNN_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--side", side, "--worker"]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {side} run failed (exit {done.returncode}); its error is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe(args):
    augment = ",".join(args.augment) or "none"
    return (f"{args.dataset}: {args.train_images or 'all'} training images, "
            f"{args.test_images or 'all'} test images, {args.epochs} epoch(s), vgg_small "
            f"widths {args.widths}, batch {args.batch_size}, {args.optimizer} lr {args.lr} "
            f"wd {args.weight_decay}, {args.schedule} schedule, augment {augment} "
            f"(pad {args.pad}), label smoothing {args.label_smoothing}, head {args.head}, "
            f"tta {args.tta}, {args.dtype}, "
            f"{args.threads} thread(s), seed {args.seed}")


def report(args, results):
    print("\n| side | test accuracy | with flip TTA | wall time | s/epoch | first loss "
          "| other processes' CPU |")
    print("|---|---|---|---|---|---|---|")
    for side, r in results.items():
        tta = f"{r['test_acc_tta']:.4f}" if "test_acc_tta" in r else "—"
        print(f"| {side} | {r['test_acc'][-1]:.4f} | {tta} | {r['seconds']:.1f} s | "
              f"{r['seconds'] / args.epochs:.1f} | {r['step_loss'][0]:.4f} | "
              f"{100 * r['others_cpu']:.0f}% |")
    if len(results) < 2:
        return
    m, t = results["minicnn"], results["torch"]
    early = max(abs(a - b) for a, b in zip(m["step_loss"][:STEPS_COMPARED],
                                           t["step_loss"][:STEPS_COMPARED]))
    rate = max(abs(a - b) / b for a, b in zip(m["lr"], t["lr"]) if b) if any(t["lr"]) else 0.0
    whole = max(abs(a - b) for a, b in zip(m["step_loss"], t["step_loss"]))
    print(f"\nper-step training loss, largest |minicnn - PyTorch|: {early:.2e} over the first "
          f"{STEPS_COMPARED} steps, {whole:.2e} over all {len(t['step_loss'])}")
    print("mean training loss by epoch: minicnn "
          + " ".join(f"{v:.4f}" for v in m["train_loss"]) + "; PyTorch "
          + " ".join(f"{v:.4f}" for v in t["train_loss"]))
    print(f"learning rate of each epoch's last step: largest relative difference {rate:.1e}")
    print(f"minicnn - PyTorch: {100 * (m['test_acc'][-1] - t['test_acc'][-1]):+.2f} points "
          f"of test accuracy; time ratio minicnn / PyTorch: {m['seconds'] / t['seconds']:.2f}")
    if "test_acc_tta" in m and "test_acc_tta" in t:
        print(f"with flip test-time augmentation: minicnn - PyTorch "
              f"{100 * (m['test_acc_tta'] - t['test_acc_tta']):+.2f} points")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        return worker(args) if not args.estimate else print(json.dumps(estimate(args)))
    if args.estimate:
        print(describe(args), flush=True)
        r = run_side("minicnn", argv, args.threads)
        print(f"minicnn, {args.estimate_steps} steps timed: {r['step_ms']:.0f} ms a step "
              f"({r['step_cpu_ms']:.0f} ms of CPU time), "
              f"{r['eval_ms_per_image']:.2f} ms an evaluated image -> an epoch "
              f"({r['steps_per_epoch']} steps + the test set) {r['epoch_s']:.0f} s, "
              f"{args.epochs} epochs {r['run_min']:.1f} min (other processes' CPU "
              f"{100 * r['others_cpu']:.0f} %, load average {r['load']:.1f})")
        return None
    sides = ["minicnn", "torch"] if args.side == "both" else [args.side]
    if "torch" in sides:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: running the minicnn side only")
            sides.remove("torch")
    print(describe(args), flush=True)
    results = {}
    for side in sides:
        results[side] = r = run_side(side, argv, args.threads)
        curve = " ".join(f"{a:.4f}" for a in r["test_acc"])
        print(f"{side:8s} test accuracy by epoch: {curve}  ({r['seconds']:.1f} s)", flush=True)
    report(args, results)
    if args.json:
        from minicnn.serialization import atomic_path
        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(dict(args={k: v for k, v in vars(args).items() if k != "worker"},
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
