"""Train a CNN on CIFAR-10 (or a synthetic stand-in) and write a run folder.

    python train.py                                  # ~1 minute; synthetic set unless CIFAR-10 is in ./data
    python train.py --dataset cifar10 --download --model vgg_small --epochs 10 --augment
    python train.py --resume runs/20240101-120000    # continue exactly where it stopped
    python train.py --evaluate runs/20240101-120000/best.npz
    minicnn-plot runs/a runs/b -o curves.png

The run folder holds config.json, history.json, history.csv, loss.png, checkpoint.npz
and best.npz (see minicnn/training/runs.py); the test accuracy of best.npz is printed at
the end. ``python train.py`` and the ``minicnn-train`` command both call :func:`main`.
"""
import argparse
import os
import sys
import time

from ..data import download_cifar10
from ..data.cifar10 import FOLDER, default_root
from ..losses import SoftmaxCrossEntropy
from ..models import MODELS
from .checkpoint import BEST, CHECKPOINT, load_weights, read_checkpoint
from .history import History
from .loop import evaluate, fit
from .runs import (OPTIMIZERS, build_data, build_model_for, build_optimizer, build_schedule,
                   load_config, load_run, save_config, seeds)

DEFAULTS = dict(model="vgg_small", epochs=5, batch_size=64, optimizer="adam",
                num_train=5000, num_val=1000)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["auto", "cifar10", "synthetic"], default="auto",
                   help="auto (default): CIFAR-10 if it is in --data-dir, else the synthetic set")
    p.add_argument("--data-dir", default=None,
                   help=f"folder holding {FOLDER} (default: $MINICNN_DATA or ./data)")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 (163 MB) if missing")
    p.add_argument("--model", default=DEFAULTS["model"], choices=sorted(MODELS),
                   help="network from minicnn.models.MODELS (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"number of epochs (default: {DEFAULTS['epochs']}; with --resume: "
                        f"train on up to this many)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help="default: %(default)s")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=DEFAULTS["optimizer"],
                   help="default: %(default)s (sgd uses momentum 0.9)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: sgd 0.05, adam/adamw 0.003, rmsprop 0.001; "
                        "use about a third of it for three_layer_convnet)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="default: %(default)s")
    p.add_argument("--schedule", choices=["none", "step", "cosine"], default="cosine",
                   help="per-epoch learning-rate schedule (default: %(default)s)")
    p.add_argument("--augment", action="store_true", help="random crops and horizontal flips")
    p.add_argument("--num-train", type=int, default=None,
                   help=f"train on this many images (default: all of CIFAR-10, "
                        f"{DEFAULTS['num_train']} synthetic)")
    p.add_argument("--num-val", type=int, default=DEFAULTS["num_val"],
                   help="images held out from training for validation (default: %(default)s)")
    p.add_argument("--num-test", type=int, default=None,
                   help="evaluate on this many test images (default: all 10,000 of CIFAR-10, "
                        "2000 synthetic)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="default: %(default)s")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the initial weights and the data order (default: %(default)s)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: print one line per epoch instead (epoch, loss, "
                        "accuracy, validation accuracy, seconds)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    mode.add_argument("--evaluate", metavar="CHECKPOINT",
                      help="only report the test accuracy of best.npz or checkpoint.npz "
                           "(config.json must be beside it)")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "num_train", "num_val", "num_test"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if (args.lr is not None and args.lr <= 0) or args.weight_decay < 0:
        p.error("--lr must be > 0 and --weight-decay >= 0")
    if args.data_dir is not None and not os.path.isdir(args.data_dir) and not args.download:
        p.error(f"--data-dir {args.data_dir!r} does not exist (add --download to fetch CIFAR-10 into it)")
    for flag, path, kind in (("--resume", args.resume, os.path.isdir),
                             ("--evaluate", args.evaluate, os.path.isfile)):
        if path is not None and not kind(path):
            p.error(f"{flag} {path!r} does not exist")
    return args


def resolve_dataset(args):
    """The dataset to use, printing which one when --dataset auto chose it."""
    root = args.data_dir or default_root()
    if args.dataset != "auto":
        return args.dataset
    if args.download or os.path.isdir(os.path.join(root, FOLDER)):
        print(f"dataset: CIFAR-10 from {os.path.join(root, FOLDER)}")
        return "cifar10"
    print(f"dataset: CIFAR-10 is not in {os.path.join(root, FOLDER)}, so this run uses the "
          f"synthetic CIFAR-style set; for the real one run: python train.py --download")
    return "synthetic"


def new_config(args):
    dataset = resolve_dataset(args)
    root = args.data_dir or default_root()
    if dataset == "cifar10" and args.download and not os.path.isdir(os.path.join(root, FOLDER)):
        download_cifar10(root)
    num_train = args.num_train or (DEFAULTS["num_train"] if dataset == "synthetic" else None)
    return dict(dataset=dataset, data_dir=args.data_dir, model=args.model,
                epochs=DEFAULTS["epochs"] if args.epochs is None else args.epochs,
                batch_size=args.batch_size, lr=args.lr or OPTIMIZERS[args.optimizer][1],
                optimizer=args.optimizer, weight_decay=args.weight_decay,
                schedule=args.schedule, augment=args.augment, num_train=num_train,
                num_val=args.num_val, num_test=args.num_test, dtype=args.dtype, seed=args.seed)


def new_run_dir(out):
    """The folder for a new run (created when config.json is written)."""
    if out is None:
        out = base = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
        k = 2
        while os.path.exists(out):
            out, k = f"{base}-{k}", k + 1
    if os.path.exists(os.path.join(out, CHECKPOINT)):
        raise ValueError(f"{out!r} already holds a run; continue it with --resume {out} "
                         f"or choose another --out")
    return out


def run_evaluate(path):
    config = load_config(os.path.dirname(os.path.abspath(path)))
    model = load_weights(build_model_for(config), path)
    data = build_data(config)
    loss, acc = evaluate(model, SoftmaxCrossEntropy(), data.x_test, data.y_test)
    print(f"test accuracy {acc:.4f}, loss {loss:.4f} on {len(data.y_test)} {config['dataset']} "
          f"test images ({path})")


def finished(run_dir, epochs, asked):
    """True (after saying so) if the run in ``run_dir`` has nothing left to train up to
    ``epochs``; ``asked`` is the --epochs given, or None."""
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.exists(path):
        return False  # fit says that there is nothing to resume from
    meta = read_checkpoint(path)[2]
    done = meta["position"]
    if done["epoch"] < epochs or done["step"] > 0:
        return False
    history = History.from_dict(meta["history"])
    if asked is None:
        why = f"{run_dir} has finished its {done['epoch']} epochs"
    else:
        why = (f"{run_dir} has trained {done['epoch']} epochs already, "
               f"{'as many as' if done['epoch'] == asked else 'more than'} --epochs {asked} "
               f"asks for")
    print(f"{why}: nothing to train (best validation accuracy {history.best_val_acc:.4f}).\n"
          f"To train it longer, give the new total number of epochs: python train.py "
          f"--resume {run_dir} --epochs {done['epoch'] + 5}\n"
          f"Its test accuracy: python train.py --evaluate {os.path.join(run_dir, BEST)}")
    return True


def run_training(args):
    if args.resume:
        run_dir, config = args.resume, load_config(args.resume)
        if finished(run_dir, config["epochs"] if args.epochs is None else args.epochs,
                    args.epochs):
            return
        if args.epochs is not None and args.epochs != config["epochs"]:
            if config["schedule"] != "none":
                print(f"note: the {config['schedule']} schedule is re-planned over {args.epochs} "
                      f"epochs instead of {config['epochs']}; epochs already done keep the "
                      "rates they had")
            config["epochs"] = args.epochs
        print(f"resuming {run_dir} with its config.json (only --epochs and --no-progress "
              f"can change)")
        data = build_data(config)
    else:
        run_dir, config = new_run_dir(args.out), new_config(args)
        data = build_data(config)  # before the run folder exists: a failure leaves nothing
    save_config(run_dir, config)
    print(f"run folder: {run_dir}")
    model = build_model_for(config, len(data.classes))
    optimizer = build_optimizer(model, config)
    print(f"{config['model']} on {len(data.y_train)} {config['dataset']} training images, "
          f"{config['epochs']} epochs, {optimizer!r}, schedule {config['schedule']}")
    try:
        fit(model, SoftmaxCrossEntropy(), optimizer, (data.x_train, data.y_train),
            (data.x_val, data.y_val), config["epochs"], config["batch_size"],
            schedule=build_schedule(config), augment=config["augment"], seed=seeds(config)[1],
            out_dir=run_dir, resume=bool(args.resume),
            progress="lines" if args.no_progress else "bar")
    except KeyboardInterrupt:
        print(f"\ninterrupted: checkpoint and history saved in {run_dir}; continue with "
              f"python train.py --resume {run_dir}", file=sys.stderr)
        sys.exit(130)
    from ..viz import plot_runs
    plot_runs([run_dir], path=os.path.join(run_dir, "loss.png"))
    best, _, history = load_run(run_dir)
    loss, acc = evaluate(best, SoftmaxCrossEntropy(), data.x_test, data.y_test)
    seconds = sum(history["seconds"])
    print(f"best validation accuracy {history.best_val_acc:.4f}; training took {seconds:.0f} s")
    print(f"test accuracy {acc:.4f} (loss {loss:.4f}) on {len(data.y_test)} {config['dataset']} "
          f"test images, model {os.path.join(run_dir, 'best.npz')}")
    write_report_if_available(run_dir)


def write_report_if_available(run_dir):
    try:
        from ..viz import write_report
    except ImportError:
        return
    try:
        write_report(run_dir)
    except Exception as e:  # the run itself succeeded; say why the extra picture is missing
        print(f"warning: report.png not written ({type(e).__name__}: {e})", file=sys.stderr)
    else:
        print(f"report: {os.path.join(run_dir, 'report.png')}")


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.evaluate:
            run_evaluate(args.evaluate)
        else:
            run_training(args)
    except (ValueError, OSError) as e:  # includes a missing data set and a failed download
        sys.exit(f"train.py: error: {e}")
    except KeyboardInterrupt:
        sys.exit("train.py: interrupted")

