"""The flags of ``minicnn-train`` / ``python train.py`` and their checks.

:func:`parse_args` returns argparse's namespace; every flag that is a config field is
checked with that field's rule from :data:`minicnn.training.config.CONFIG_SCHEMA`, so a
bad value is refused in one line naming the flag before anything is loaded or written.
"""
import argparse
import os

from ..data.cifar10 import FOLDER
from ..data.registry import AUGMENT_STEPS, AUGMENTATIONS, DATASETS, augment_spec_problem
from ..models import FLATTEN_HEAD, MODELS
from ..training.checkpoint import CHECKPOINT, FINAL_MODELS
from ..training.config import CONFIG_SCHEMA, DEFAULTS, HEADS, OPTIMIZERS
from ..training.inference import TTA
from ..training.run_folder import load_config
from ..training.schedules import SCHEDULES
from .presets import PRESETS, describe, flag

#: Flags that --resume accepts besides --epochs, --no-progress and --threads (the data
#: may move; the thread count changes the speed, never the numbers).
RESUME_FLAGS = ("epochs", "no_progress", "threads", "data_dir", "resume", "download")
#: The flags --evaluate takes beside the model file: where the data lives, the threads, and
#: a test-time augmentation other than the run's.
EVALUATE_FLAGS = ("evaluate", "threads", "data_dir", "tta")
#: Flags whose value is a config field, checked by that field's rule.
CHECKED = ("epochs", "batch_size", "num_train", "num_val", "num_test", "lr", "weight_decay",
           "label_smoothing", "seed")

DESCRIPTION = "Train a CNN on CIFAR-10, Fashion-MNIST, MNIST or a synthetic stand-in and write a run folder."
EPILOG = """examples:
  python train.py                                  # the first data set found (see --dataset)
  python train.py --dataset fashion-mnist --model resnet_small --epochs 10 --augment
  python train.py --dataset cifar10 --download --model vgg_small --epochs 10 --augment crop,flip,erase
  python train.py --preset fashion --find-lr        # suggest a learning rate, plot lr_find.png
  python train.py --resume runs/20240101-120000    # continue exactly where it stopped
  python train.py --evaluate runs/20240101-120000/best.npz
  minicnn-plot runs/a runs/b -o curves.png

The run folder holds config.json, history.json, history.csv, loss.png, report.png,
checkpoint.npz and best.npz; the test accuracy of best.npz (--final-model last: of the last
epoch's weights, checkpoint.npz) is printed at the end.
--out must name a new or empty folder; a folder that holds a run is continued with
--resume. One run at a time writes a folder: a second one is refused."""


def widths(text):
    """``"32,64,128"`` -> [32, 64, 128] (for argparse)."""
    try:
        values = [int(w) for w in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, "
                                         f"e.g. 32,64,128, got {text!r}")
    return values


def positive_int(text):
    """``"2"`` -> 2; anything but a positive integer is refused (for argparse)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def augment_spec(text):
    """An augmentation name or comma-separated steps, e.g. ``crop,flip,erase`` (for argparse)."""
    problem = augment_spec_problem(text, "--augment")
    if problem:  # argparse names the flag itself
        raise argparse.ArgumentTypeError(problem.removeprefix("--augment: "))
    return text


def build_parser(prog="train.py"):
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_flags(p)
    _model_flags(p)
    _optimizer_flags(p)
    _run_flags(p)
    return p


def _data_flags(p):
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
                   help="a measured recipe; flags given beside it win. "
                        + "; ".join(f"{name}: {describe(p)}" for name, p in sorted(PRESETS.items())))
    p.add_argument("--augment", nargs="?", const=True, default=None, type=augment_spec,
                   metavar="SPEC",
                   help="--augment alone: the data set's own (random crops and horizontal flips; "
                        "crops only on MNIST digits); or name the steps, in order: "
                        + ", ".join(AUGMENT_STEPS) + " joined by commas (e.g. crop,flip,erase), or one "
                        "of " + ", ".join(AUGMENTATIONS) + " (default: none)")
    p.add_argument("--num-train", type=int, default=None,
                   help="train on this many images (default: all of CIFAR-10, 10,000 of "
                        "Fashion-MNIST and MNIST, 5,000 synthetic)")
    p.add_argument("--num-val", type=int, default=None,
                   help="images held out from training for validation "
                        f"(default: {DEFAULTS['num_val']})")
    p.add_argument("--num-test", type=int, default=None,
                   help="evaluate on this many test images (default: all 10,000 of CIFAR-10, "
                        "2000 synthetic)")
    p.add_argument("--tta", choices=list(TTA), default=None,
                   help="test-time augmentation of the final test accuracy: flip averages the "
                        "scores of each test image and its mirror image (for a model trained "
                        "with flips); both accuracies are printed (default: none)")
    p.add_argument("--final-model", choices=list(FINAL_MODELS), default=None,
                   help="the weights the final test accuracy and report.png use: best "
                        "(best.npz, the epoch with the best validation accuracy) or last (the "
                        "last epoch's, checkpoint.npz: the model a schedule that ends near "
                        "zero, such as onecycle, aims for) (default: best)")


#: Where --find-lr draws the sweep when no path is given (the current folder).
LR_FIND_PNG = "lr_find.png"


def _model_flags(p):
    p.add_argument("--model", default=None, choices=sorted(MODELS),
                   help=f"network from minicnn.models.MODELS (default: {DEFAULTS['model']})")
    p.add_argument("--widths", type=widths, default=None,
                   help="channels per stage of vgg_small or resnet_small, e.g. 32,64,128 "
                        "(default: the model's, 16,32,64)")
    p.add_argument("--head", choices=HEADS, default=None,
                   help="how vgg_small's last feature map reaches its affine layer: avg (global "
                        "average pooling, any image size) or flatten (the classic VGG head: "
                        "every position its own features) (default: avg)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help=f"default: {DEFAULTS['dtype']}")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the initial weights and the data order (default: %(default)s)")


def _optimizer_flags(p):
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
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule; per epoch: none, step (x0.1 after each third "
                        "of the epochs), cosine (down to 0 by the last epoch); per step: "
                        "warmup-cosine (linear warm-up from a third of --lr over the first "
                        "epoch, or 5%% of the run if shorter, then cosine to 0), onecycle "
                        "(PyTorch's OneCycleLR with max_lr --lr: up from --lr/25 over the "
                        f"first 30%% of the steps, then down) (default: {DEFAULTS['schedule']})")
    p.add_argument("--label-smoothing", type=float, default=None, metavar="EPS",
                   help="train against (1 - EPS) on the true class plus EPS/classes on every "
                        "class, as PyTorch's CrossEntropyLoss(label_smoothing=EPS); 0 <= EPS "
                        f"< 1, e.g. 0.1 (default: {DEFAULTS['label_smoothing']})")


def _run_flags(p):
    p.add_argument("--out", default=None,
                   help="run folder, new or empty (default: runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: print one line per epoch instead (epoch, loss, "
                        "accuracy, validation accuracy, seconds)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads for minicnn's kernels (default: $MINICNN_NUM_THREADS, else "
                        "every CPU this process may use); changes the speed, never the "
                        "numbers, so --resume may give another")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--find-lr", nargs="?", const=LR_FIND_PNG, default=None, metavar="PNG",
                      help="only run the learning-rate range test (200 steps on a copy of "
                           "the run's model, with its optimizer, loss and training data; no "
                           "run folder, nothing trained): print the suggested --lr and draw "
                           "the sweep into PNG "
                           f"(default: {LR_FIND_PNG} in the current folder)")
    mode.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    mode.add_argument("--evaluate", metavar="CHECKPOINT",
                      help="only report the test accuracy of best.npz or checkpoint.npz "
                           "(config.json must be beside it); --data-dir, --threads and --tta "
                           "may be given with it, no other flag")


def parse_args(argv=None, prog="train.py"):
    """The checked flags; a bad one exits with argparse's one-line error (status 2)."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    args.command = "python train.py" if prog == "train.py" else prog
    for name in CHECKED:
        value = getattr(args, name)
        problem = None if value is None else CONFIG_SCHEMA[name].problem(value, flag(name))
        if problem:
            p.error(problem)
    if args.data_dir is not None:
        _check_data_dir(p, args)
    if args.resume is not None:
        _check_resume_args(p, args)
    if args.evaluate is not None:
        _check_evaluate(p, args)
    if args.find_lr is not None:
        _check_find_lr(p, args)
    return args


def _check_find_lr(p, args):
    """--find-lr trains nothing, so it writes no run folder: only its picture."""
    if args.out is not None:
        p.error(f"--find-lr writes no run folder, so --out cannot be given; name the "
                f"picture instead, e.g. --find-lr {os.path.join(args.out, LR_FIND_PNG)}")
    path = args.find_lr
    if not path.lower().endswith(".png"):
        p.error(f"--find-lr {path!r}: expected the path of a .png picture, e.g. {LR_FIND_PNG}")
    if os.path.isdir(path):
        p.error(f"--find-lr {path!r} is a folder; name the picture, e.g. "
                f"{os.path.join(path, LR_FIND_PNG)}")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        p.error(f"--find-lr {path!r}: the folder {folder!r} does not exist")


def _check_data_dir(p, args):
    if os.path.islink(args.data_dir) and not os.path.exists(args.data_dir):
        p.error(f"--data-dir {args.data_dir!r} is a broken symbolic link (to "
                f"{os.readlink(args.data_dir)!r}); fix or remove it")
    if os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
        p.error(f"--data-dir {args.data_dir!r} is a file, not a folder")
    if not os.path.isdir(args.data_dir) and not args.download:
        p.error(f"--data-dir {args.data_dir!r} does not exist (add --download to fetch "
                f"the data set into it)")


def _check_resume_args(p, args):
    path = args.resume
    if os.path.isfile(path):
        p.error(f"--resume {path!r} is a file; it takes a run folder (the folder that holds "
                f"config.json and checkpoint.npz), e.g. --resume {os.path.dirname(path) or '.'}")
    if not os.path.isdir(path):
        p.error(f"--resume {path!r} does not exist")
    _refuse_flags_besides(p, args, RESUME_FLAGS,
                          f"--resume continues {path} with its own config.json",
                          "--epochs, --data-dir, --threads and --no-progress can change")
    if not os.path.exists(os.path.join(path, CHECKPOINT)):
        p.error(f"--resume {path!r} holds no checkpoint.npz yet: the run stopped before its "
                f"first epoch ended, so there is nothing to continue; start it afresh: "
                f"{fresh_command(path, args.command)}")


def _refuse_flags_besides(p, args, allowed, why, what_may):
    """argparse's one-line error for the first flag given that is not in ``allowed``: the
    mode (``why``) would not use it, and nothing given is silently ignored."""
    changed = [flag(k) for k, v in vars(args).items()
               if k not in allowed and k != "command" and v != p.get_default(k)]
    if changed:
        p.error(f"{why}, so {changed[0]} cannot be given; only {what_may}")


def _check_evaluate(p, args):
    path = args.evaluate
    _refuse_flags_besides(p, args, EVALUATE_FLAGS,
                          f"--evaluate measures {path} with the config.json beside it",
                          "--data-dir, --threads and --tta can be given")
    if os.path.isdir(path):
        p.error(f"--evaluate {path!r} is a folder; it takes a model file, e.g. "
                f"--evaluate {os.path.join(path, 'best.npz')}")
    if not os.path.isfile(path):
        p.error(f"--evaluate {path!r} does not exist")
    try:
        open(path, "rb").close()
    except PermissionError:
        p.error(f"--evaluate {path!r} cannot be read: permission denied (the file is there; "
                f"give yourself read access, e.g. chmod u+r {path})")
    except OSError as e:
        p.error(f"--evaluate {path!r} cannot be read ({e.strerror})")


def fresh_command(run_dir, command="python train.py"):
    """The command that starts the run of ``run_dir`` again from scratch (the folder is
    removed first: a new run needs a new or empty folder)."""
    try:
        config = load_config(run_dir)
    except ValueError:
        return f"rm -r {run_dir} && {command} --out {run_dir} (with the flags it had)"
    words = [f"rm -r {run_dir} &&", command, f"--out {run_dir}"]
    for key, value in config.items():
        if key == "model_args":  # follows from --model and --dataset, but for these
            if value and value.get("widths"):
                words.append("--widths " + ",".join(map(str, value["widths"])))
            if value and "image_size" in value and config["model"] in FLATTEN_HEAD:
                words.append("--head flatten")
        elif isinstance(value, bool):
            words += [flag(key)] if value else []
        elif value is not None:
            words.append(f"{flag(key)} {value}")
    return " ".join(words)
