"""Train a CNN on CIFAR-10, Fashion-MNIST, MNIST or a synthetic stand-in and write a run folder.

    python train.py                                  # the first data set found (see --dataset)
    python train.py --dataset fashion-mnist --model resnet_small --epochs 10 --augment
    python train.py --dataset cifar10 --download --model vgg_small --epochs 10 --augment
    python train.py --resume runs/20240101-120000    # continue exactly where it stopped
    python train.py --evaluate runs/20240101-120000/best.npz
    minicnn-plot runs/a runs/b -o curves.png

The run folder holds config.json, history.json, history.csv, loss.png, checkpoint.npz
and best.npz (see minicnn/training/runs.py); the test accuracy of best.npz is printed at
the end. ``python train.py`` and the ``minicnn-train`` command both call :func:`main`.
"""
import argparse
import math
import os
import sys
import time

from ..data import (
    download_cifar10,
    download_fashion_mnist,
    download_mnist,
    find_fashion_mnist,
    find_mnist,
)
from ..data.cifar10 import FOLDER, default_root
from ..losses import SoftmaxCrossEntropy
from ..models import MODELS, NEEDS_IMAGE_SIZE
from ..serialization import error_message
from .checkpoint import BEST, CHECKPOINT, check_resume_config, load_weights, read_checkpoint_meta
from .history import History
from .loop import Interrupted, evaluate, fit
from .runs import (
    AUGMENTATIONS,
    CONFIG_SCHEMA,
    DATASETS,
    OPTIMIZERS,
    augmentation,
    build_data,
    build_model_for,
    build_optimizer,
    build_schedule,
    check_config,
    check_sizes,
    load_config,
    load_run,
    save_config,
    seeds,
)

#: What a flag not given means (after the data set's defaults and a --preset).
DEFAULTS = dict(model="vgg_small", widths=None, epochs=5, batch_size=64, optimizer="adam",
                weight_decay=0.0, schedule="cosine", augment=False, num_train=None,
                num_val=1000, dtype="float32")
#: Per data set: a first run of a minute or two (CIFAR-10: all of it).
DATASET_DEFAULTS = {"synthetic": dict(num_train=5000),
                    "fashion-mnist": dict(num_train=10_000, epochs=3),
                    "mnist": dict(num_train=10_000, epochs=3)}
#: Named recipes (``--preset NAME``): each sets the flags it names; a flag given on the
#: command line wins. "fashion" is the measured recipe of the README's Fashion-MNIST table.
PRESETS = {
    "fashion": dict(dataset="fashion-mnist", model="vgg_small", epochs=10, batch_size=128,
                    optimizer="nesterov", lr=0.1, weight_decay=5e-4, schedule="cosine",
                    augment="flip", num_train=None),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["auto", *DATASETS], default="auto",
                   help="auto (default): CIFAR-10 if it is in --data-dir, else Fashion-MNIST if "
                        "it is there or installed (apt-get install dataset-fashion-mnist), "
                        "else the synthetic set")
    p.add_argument("--data-dir", default=None,
                   help=f"folder holding {FOLDER} (default: $MINICNN_DATA or ./data)")
    p.add_argument("--download", action="store_true",
                   help="download the data set if missing (CIFAR-10: 163 MB, Fashion-MNIST and "
                        "MNIST: about 30 MB each), verified by its published checksums")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a measured recipe; flags given beside it win. fashion: "
                        + _describe(PRESETS["fashion"]))
    p.add_argument("--model", default=None, choices=sorted(MODELS),
                   help=f"network from minicnn.models.MODELS (default: {DEFAULTS['model']})")
    p.add_argument("--widths", type=_widths, default=None,
                   help="channels per stage of vgg_small or resnet_small, e.g. 32,64,128 "
                        "(default: the model's, 16,32,64)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"number of epochs (default: {DEFAULTS['epochs']}, 3 on Fashion-MNIST and "
                        "MNIST; with --resume: train on up to this many)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"default: {DEFAULTS['batch_size']}")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None,
                   help=f"default: {DEFAULTS['optimizer']} (sgd: momentum 0.9; nesterov: SGD "
                        "with Nesterov momentum 0.9)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: sgd 0.05, adam/adamw 0.003, rmsprop 0.001; "
                        "use about a third of it for three_layer_convnet)")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"default: {DEFAULTS['weight_decay']}")
    p.add_argument("--schedule", choices=["none", "step", "cosine"], default=None,
                   help=f"per-epoch learning-rate schedule (default: {DEFAULTS['schedule']})")
    p.add_argument("--augment", nargs="?", const=True, default=None,
                   choices=[True, *AUGMENTATIONS],
                   help="--augment alone: the data set's own (random crops and horizontal flips; "
                        "crops only on MNIST digits); or name one: none, flip, crop, crop-flip "
                        "(default: none)")
    p.add_argument("--num-train", type=int, default=None,
                   help="train on this many images (default: all of CIFAR-10, 10,000 of "
                        "Fashion-MNIST and MNIST, 5,000 synthetic)")
    p.add_argument("--num-val", type=int, default=None,
                   help="images held out from training for validation "
                        f"(default: {DEFAULTS['num_val']})")
    p.add_argument("--num-test", type=int, default=None,
                   help="evaluate on this many test images (default: all 10,000 of CIFAR-10, "
                        "2000 synthetic)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help=f"default: {DEFAULTS['dtype']}")
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
    for name in ("epochs", "batch_size", "num_train", "num_val", "num_test", "lr",
                 "weight_decay", "seed"):
        value = getattr(args, name)
        problem = None if value is None else CONFIG_SCHEMA[name].problem(value, flag(name))
        if problem:
            p.error(problem)
    if args.data_dir is not None:
        if os.path.islink(args.data_dir) and not os.path.exists(args.data_dir):
            p.error(f"--data-dir {args.data_dir!r} is a broken symbolic link (to "
                    f"{os.readlink(args.data_dir)!r}); fix or remove it")
        if os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
            p.error(f"--data-dir {args.data_dir!r} is a file, not a folder")
        if not os.path.isdir(args.data_dir) and not args.download:
            p.error(f"--data-dir {args.data_dir!r} does not exist (add --download to fetch "
                    f"the data set into it)")
    if args.resume is not None:
        _check_resume_args(p, args)
    if args.evaluate is not None:
        if os.path.isdir(args.evaluate):
            p.error(f"--evaluate {args.evaluate!r} is a folder; it takes a model file, e.g. "
                    f"--evaluate {os.path.join(args.evaluate, 'best.npz')}")
        if not os.path.isfile(args.evaluate):
            p.error(f"--evaluate {args.evaluate!r} does not exist")
    return args


def _widths(text):
    """``"32,64,128"`` -> [32, 64, 128] (for argparse)."""
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, "
                                         f"e.g. 32,64,128, got {text!r}")
    return widths


def _describe(preset):
    """The flags a preset stands for, e.g. "--dataset fashion-mnist --epochs 10 ..."."""
    return " ".join(f"{flag(k)} {v}" for k, v in preset.items() if v is not None)


def flag(name):
    """The command-line flag of a config field: ``num_train`` -> ``--num-train``."""
    return "--" + name.replace("_", "-")


#: Flags that --resume accepts besides --epochs and --no-progress (the data may move).
_RESUME_FLAGS = ("epochs", "no_progress", "data_dir", "resume", "download")


def _check_resume_args(p, args):
    path = args.resume
    if os.path.isfile(path):
        p.error(f"--resume {path!r} is a file; it takes a run folder (the folder that holds "
                f"config.json and checkpoint.npz), e.g. --resume {os.path.dirname(path) or '.'}")
    if not os.path.isdir(path):
        p.error(f"--resume {path!r} does not exist")
    changed = [flag(k) for k, v in vars(args).items()
               if k not in _RESUME_FLAGS and v != p.get_default(k)]
    if changed:
        p.error(f"--resume continues {path} with its own config.json, so {changed[0]} "
                f"cannot be given; only --epochs, --data-dir and --no-progress can change")
    if not os.path.exists(os.path.join(path, CHECKPOINT)):
        p.error(f"--resume {path!r} holds no checkpoint.npz yet: the run stopped before its "
                f"first epoch ended, so there is nothing to continue; start it afresh: "
                f"{_fresh_command(path)}")


def _fresh_command(run_dir):
    """The train.py command that starts the run of ``run_dir`` again from scratch."""
    try:
        config = load_config(run_dir)
    except ValueError:
        return f"python train.py --out {run_dir} (with the flags it had)"
    words = ["python train.py", f"--out {run_dir}"]
    for key, value in config.items():
        if key == "model_args":  # follows from --model and --dataset, but for the widths
            if value and value.get("widths"):
                words.append("--widths " + ",".join(map(str, value["widths"])))
            continue
        if key == "dataset" and value is not None:
            words.append(f"--dataset {value}")
        elif isinstance(value, bool):
            words += [flag(key)] if value else []
        elif value is not None:
            words.append(f"{flag(key)} {value}")
    return " ".join(words)


def resolve_dataset(args):
    """The dataset to use, printing which one when --dataset auto chose it."""
    root = args.data_dir or default_root()
    if args.dataset != "auto":
        return args.dataset
    cifar = os.path.join(root, FOLDER)
    if args.download or os.path.isdir(cifar):
        print(f"dataset: CIFAR-10 from {cifar}")
        return "cifar10"
    fashion = find_fashion_mnist(args.data_dir)
    if fashion:
        print(f"dataset: Fashion-MNIST from {fashion} (CIFAR-10 is not in {cifar}; "
              "python train.py --dataset cifar10 --download fetches it)")
        return "fashion-mnist"
    print(f"dataset: neither CIFAR-10 ({cifar}) nor Fashion-MNIST was found, so this run uses "
          "the synthetic CIFAR-style set; for real images: apt-get install "
          "dataset-fashion-mnist, or python train.py --dataset fashion-mnist --download")
    return "synthetic"


def default_model_args(model, dataset):
    """The zoo arguments a new run records: the data set's channels (and image size)."""
    info = DATASETS[dataset]
    args = {"in_channels": info.in_channels}
    if model in NEEDS_IMAGE_SIZE:
        args["image_size"] = info.image_size
    return args


def download_if_missing(dataset, data_dir):
    """Fetch the data set into ``data_dir`` (or $MINICNN_DATA, ./data) unless it is found."""
    root = data_dir or default_root()
    if dataset == "cifar10":
        if not os.path.isdir(os.path.join(root, FOLDER)):
            download_cifar10(root)
    elif dataset in ("fashion-mnist", "mnist"):
        find = find_fashion_mnist if dataset == "fashion-mnist" else find_mnist
        if not find(data_dir):
            (download_fashion_mnist if dataset == "fashion-mnist" else download_mnist)(root)


def new_config(args):
    """The config of a new run from the flags (nothing is downloaded or written yet): a
    flag given wins over the --preset, which wins over the data set's defaults and then
    :data:`DEFAULTS`."""
    preset = PRESETS.get(args.preset, {})
    if args.dataset == "auto" and "dataset" in preset:
        args.dataset = preset["dataset"]
    dataset = resolve_dataset(args)
    chosen = {**DEFAULTS, **DATASET_DEFAULTS.get(dataset, {}), **preset,
              **{k: v for k, v in vars(args).items() if v is not None and k in DEFAULTS}}
    model, widths = chosen["model"], chosen["widths"]
    model_args = default_model_args(model, dataset)
    if widths is not None:
        if model not in ("vgg_small", "resnet_small"):
            raise ValueError(f"--widths is for vgg_small and resnet_small, not {model}")
        model_args["widths"] = list(widths)
    optimizer = chosen["optimizer"]
    # a preset's learning rate belongs to its optimizer: another optimizer gets its own default
    preset_lr = preset.get("lr") if optimizer == preset.get("optimizer") else None
    return dict(dataset=dataset, data_dir=args.data_dir, model=model, model_args=model_args,
                epochs=chosen["epochs"], batch_size=chosen["batch_size"],
                lr=args.lr or preset_lr or OPTIMIZERS[optimizer][1], optimizer=optimizer,
                weight_decay=chosen["weight_decay"], schedule=chosen["schedule"],
                augment=False if chosen["augment"] == "none" else chosen["augment"],
                num_train=chosen["num_train"],
                num_val=chosen["num_val"], num_test=args.num_test, dtype=chosen["dtype"],
                seed=args.seed)


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


def _finite_test_loss(loss, path):
    if not math.isfinite(loss):
        raise ValueError(f"the test loss of {path} is {loss}: the model's scores overflow, so "
                         f"its accuracy means nothing")


def run_evaluate(path):
    config = load_config(os.path.dirname(os.path.abspath(path)))
    model = load_weights(build_model_for(config), path)  # read once, checked, bounded
    data = build_data(config)
    loss, acc = evaluate(model, SoftmaxCrossEntropy(), data.x_test, data.y_test)
    _finite_test_loss(loss, path)
    print(f"test accuracy {acc:.4f}, loss {loss:.4f} on {len(data.y_test)} {config['dataset']} "
          f"test images ({path})")


def resumed_config(args):
    """The config.json of the run to resume, checked against its checkpoint, with
    --epochs (and --data-dir) applied."""
    run_dir = args.resume
    config_path = os.path.join(run_dir, "config.json")
    config = load_config(run_dir)
    meta = read_checkpoint_meta(os.path.join(run_dir, CHECKPOINT))
    if "config" in meta:
        check_resume_config(meta["config"], config, config_path)
    else:
        print(f"note: {os.path.join(run_dir, CHECKPOINT)} does not record its config, so "
              f"config.json cannot be checked against it")
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    if args.epochs is not None and args.epochs != config["epochs"]:
        if config["schedule"] != "none":
            print(f"note: the {config['schedule']} schedule is re-planned over {args.epochs} "
                  f"epochs instead of {config['epochs']}; epochs already done keep the "
                  "rates they had")
        config["epochs"] = args.epochs
    print(f"resuming {run_dir} with its config.json (only --epochs, --data-dir and "
          f"--no-progress can change)")
    return run_dir, config


def finished(run_dir, epochs, asked):
    """True (after saying so) if the run in ``run_dir`` has nothing left to train up to
    ``epochs``; ``asked`` is the --epochs given, or None."""
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.exists(path):
        return False  # fit says that there is nothing to resume from
    meta = read_checkpoint_meta(path)
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
        if finished(args.resume, load_config(args.resume)["epochs"] if args.epochs is None
                    else args.epochs, args.epochs):
            return
        run_dir, config = resumed_config(args)
        label, where = str, f"{os.path.join(run_dir, 'config.json')}: "
    else:
        run_dir, config = new_run_dir(args.out), new_config(args)
        label, where = flag, ""
        check_config(config, "train.py", label)
    # Everything is checked before the run folder is created or changed: a failure
    # leaves nothing behind.
    check_sizes(config, label, where, model=build_model_for(config))
    if args.download:
        download_if_missing(config["dataset"], config["data_dir"])
    data = build_data(config)
    model = build_model_for(config, len(data.classes))
    optimizer = build_optimizer(model, config)
    schedule = build_schedule(config)
    save_config(run_dir, config)
    print(f"run folder: {run_dir}")
    print(f"{config['model']} on {len(data.y_train)} {config['dataset']} training images, "
          f"{config['epochs']} epochs, {optimizer!r}, schedule {config['schedule']}")
    try:
        fit(model, SoftmaxCrossEntropy(), optimizer, (data.x_train, data.y_train),
            (data.x_val, data.y_val), config["epochs"], config["batch_size"],
            schedule=schedule, augment=augmentation(config), seed=seeds(config)[1],
            out_dir=run_dir, resume=bool(args.resume),
            progress="lines" if args.no_progress else "bar", config=config)
    except Interrupted as e:
        hint = (f"continue with python train.py --resume {run_dir}" if e.resumable else
                f"start again with {_fresh_command(run_dir)}")
        print(f"\ninterrupted: {e}; {hint}", file=sys.stderr)
        sys.exit(130)
    from ..viz import plot_runs
    plot_runs([run_dir], path=os.path.join(run_dir, "loss.png"))
    best, _, history = load_run(run_dir)
    loss, acc = evaluate(best, SoftmaxCrossEntropy(), data.x_test, data.y_test)
    _finite_test_loss(loss, os.path.join(run_dir, "best.npz"))
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
        sys.exit(f"train.py: error: {error_message(e)}")
    except KeyboardInterrupt:
        sys.exit("train.py: interrupted")

