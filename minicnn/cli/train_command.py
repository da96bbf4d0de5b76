"""What ``minicnn-train`` / ``python train.py`` does: train a new run, ``--resume`` one,
``--evaluate`` a model file, or ``--find-lr`` (``python train.py --help`` lists the flags).

The path of a new run, one way down: flags (:mod:`.train_args`, :mod:`.presets`) ->
:class:`minicnn.training.RunConfig` (defaults and checks) -> the run folder is claimed
(:func:`minicnn.training.run_folder.claim_run_folder`: new or empty, locked) -> data, model
and optimizer (:mod:`minicnn.training.build`) -> ``fit`` -> the test accuracy of the run's
result (``best.npz``, or ``checkpoint.npz`` for ``--final-model last``) -> the pictures
(:mod:`minicnn.viz`) -> the results are printed. No step goes back to a module an earlier
step left.
"""
import dataclasses
import math
import os
import sys
import time

from ..data import download_cifar10, download_fashion_mnist, download_mnist, find_fashion_mnist, find_mnist
from ..data.cifar10 import FOLDER
from ..data.paths import default_root
from ..data.registry import DATASETS
from ..parallel import get_num_threads, set_num_threads
from ..serialization import error_message
from ..training.build import (
    augmentation,
    build_data,
    build_loss,
    build_model_for,
    build_optimizer,
    build_schedule,
    seeds,
)
from ..training.checkpoint import CHECKPOINT, load_weights, read_checkpoint_meta
from ..training.config import RunConfig, check_sizes
from ..training.history import History
from ..training.loop import Interrupted, evaluate, fit
from ..training.lr_find import lr_find
from ..training.memory import check_weight_memory
from ..training.run_folder import (
    check_not_busy,
    claim_run_folder,
    final_weights,
    load_config,
    load_run,
    save_config,
)
from .presets import apply_preset, flag
from .train_args import fresh_command, parse_args

#: The flags that are settings of a new run (the rest steer the command).
SETTINGS = ("model", "widths", "head", "epochs", "batch_size", "optimizer", "lr",
            "weight_decay", "schedule", "label_smoothing", "augment", "num_train", "num_val",
            "num_test", "dtype", "seed", "tta", "final_model", "data_dir")


def _where_found(dataset, data_dir):
    """The folder a real data set is read from, or None if it is not there."""
    if dataset == "cifar10":
        folder = os.path.join(data_dir or default_root(), FOLDER)
        return folder if os.path.isdir(folder) else None
    if dataset in ("fashion-mnist", "mnist"):
        return (find_fashion_mnist if dataset == "fashion-mnist" else find_mnist)(data_dir)
    return None


def resolve_dataset(args):
    """The dataset to use, printing which one when --dataset auto chose it."""
    if args.dataset != "auto":
        return args.dataset
    cifar = os.path.join(args.data_dir or default_root(), FOLDER)
    if args.download or os.path.isdir(cifar):
        print(f"dataset: CIFAR-10 from {cifar}")
        return "cifar10"
    fashion = find_fashion_mnist(args.data_dir)
    if fashion:
        print(f"dataset: Fashion-MNIST from {fashion} (CIFAR-10 is not in {cifar}; "
              f"{args.command} --dataset cifar10 --download fetches it)")
        return "fashion-mnist"
    print(f"dataset: neither CIFAR-10 ({cifar}) nor Fashion-MNIST was found, so this run uses "
          f"the synthetic CIFAR-style set; for real images: apt-get install "
          f"dataset-fashion-mnist, or {args.command} --dataset fashion-mnist --download")
    return "synthetic"


def download_if_missing(dataset, data_dir):
    """Fetch the data set into ``data_dir`` (or $MINICNN_DATA, ./data) unless it is found."""
    root = data_dir or default_root()
    if _where_found(dataset, data_dir) is None:
        fetch = {"cifar10": download_cifar10, "fashion-mnist": download_fashion_mnist,
                 "mnist": download_mnist}.get(dataset)
        if fetch is not None:
            fetch(root)


def new_config(args):
    """The :class:`RunConfig` of a new run from the flags (nothing is downloaded or written
    yet): a flag given wins over the --preset, which wins over the config's defaults."""
    chosen = apply_preset(args.preset, {k: getattr(args, k) for k in SETTINGS})
    preset_dataset = chosen.pop("dataset", None)
    if args.dataset == "auto" and preset_dataset is not None:
        args.dataset = preset_dataset
    widths, head = chosen.pop("widths", None), chosen.pop("head", None)
    return RunConfig.new(resolve_dataset(args), label=flag, widths=widths, head=head, **chosen)


def new_run_dir(out):
    """The folder for a new run: ``out``, or runs/<timestamp> (claimed by the caller)."""
    if out is not None:
        return out
    out = base = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    k = 2
    while os.path.exists(out):
        out, k = f"{base}-{k}", k + 1
    return out


def _finite_test_loss(loss, path):
    if not math.isfinite(loss):
        raise ValueError(f"the test loss of {path} is {loss}: the model's scores overflow, so "
                         f"its accuracy means nothing")


def run_evaluate(path, data_dir=None, tta=None):
    """``--evaluate``: the test accuracy of the model file ``path`` with the config.json
    beside it; ``data_dir`` (where the data set now lives) and ``tta`` override the run's."""
    folder = os.path.dirname(os.path.abspath(path))
    config = load_config(folder).resumed(data_dir=data_dir)
    if tta is not None:
        config = dataclasses.replace(config, tta=tta)
    model = built_model(config, where=f"{os.path.join(folder, 'config.json')}: ")
    model = load_weights(model, path)  # read once, checked, bounded
    data = build_data(config)
    loss, acc, plain = _test_accuracy(model, config, data)
    _finite_test_loss(loss, path)
    print(f"test accuracy {acc:.4f}, loss {loss:.4f}{plain} on {len(data.y_test)} "
          f"{config['dataset']} test images ({path})")


def _test_accuracy(model, config, data):
    """(loss, accuracy, note) on the test set with the run's test-time augmentation; the
    note gives the accuracy without it, when there is one."""
    loss_fn, tta = build_loss(config), config.get("tta", "none")
    loss, acc = evaluate(model, loss_fn, data.x_test, data.y_test, tta=tta)
    if tta == "none":
        return loss, acc, ""
    plain = evaluate(model, loss_fn, data.x_test, data.y_test)[1]
    return loss, acc, f"; {tta} test-time augmentation, {plain:.4f} without"


def resumed_config(args):
    """The config.json of the run to resume, checked against its checkpoint, with
    --epochs (and --data-dir) applied."""
    run_dir = args.resume
    config = load_config(run_dir)
    meta = read_checkpoint_meta(os.path.join(run_dir, CHECKPOINT))
    if "config" in meta:
        config.check_resumes(meta["config"], os.path.join(run_dir, "config.json"))
    else:
        print(f"note: {os.path.join(run_dir, CHECKPOINT)} does not record its config, so "
              f"config.json cannot be checked against it")
    if args.epochs is not None and args.epochs != config["epochs"] and config["schedule"] != "none":
        print(f"note: the {config['schedule']} schedule is re-planned over {args.epochs} "
              f"epochs instead of {config['epochs']}; epochs already done keep the "
              "rates they had")
    print(f"resuming {run_dir} with its config.json (only --epochs, --data-dir, --threads "
          f"and --no-progress can change)")
    return config.resumed(epochs=args.epochs, data_dir=args.data_dir)


def finished(run_dir, epochs, asked, command):
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
          f"To train it longer, give the new total number of epochs: {command} "
          f"--resume {run_dir} --epochs {done['epoch'] + 5}\n"
          f"Its test accuracy: {command} --evaluate "
          f"{os.path.join(run_dir, final_weights(load_config(run_dir)))}")
    return True


def _model_named(config, label):
    """How the messages name the network's size: ``--widths 8,16`` on the command line,
    ``model_args.widths [8, 16]`` from a config.json, else the model."""
    widths = (config.get("model_args") or {}).get("widths")
    if widths is None:
        return f"{label('model')} {config['model']}"
    if label is flag:
        return f"--widths {','.join(map(str, widths))}"
    return f"model_args.widths {widths}"


def built_model(config, label=str, where=""):
    """The run's network, its weights checked to fit in memory before they are allocated;
    else a one-line ValueError."""
    what = _model_named(config, label)
    check_weight_memory(config, what, where)
    try:
        return build_model_for(config)
    except MemoryError as e:  # more than the estimate, e.g. under a tight RLIMIT_AS
        raise ValueError(f"{where}{what}: the network's weights alone do not fit in memory "
                         f"({e}); choose narrower widths or a smaller model") from None


def checked_model(config, label, where):
    """The run's network (:func:`built_model`), checked to fit in memory with its data and
    a training batch's activations, or a one-line ValueError."""
    model = built_model(config, label, where)
    check_sizes(config, label, where, model=model)
    return model


def run_training(args):
    """A new run, or ``--resume``: claim the folder, train, then draw and evaluate."""
    if args.resume:
        check_not_busy(args.resume)  # before anything about the run is read or printed
        stored = load_config(args.resume)
        if finished(args.resume, stored["epochs"] if args.epochs is None else args.epochs,
                    args.epochs, args.command):
            return
        config, run_dir = resumed_config(args), args.resume
        label, where = str, f"{os.path.join(run_dir, 'config.json')}: "
    else:
        config, run_dir = new_config(args), new_run_dir(args.out)
        label, where = flag, ""
    # Everything is checked before the run folder is created or changed: a failure
    # leaves nothing behind (a folder created for the run is removed again).
    checked_model(config, label, where)
    with claim_run_folder(run_dir, resume=bool(args.resume)):
        if args.download:
            download_if_missing(config["dataset"], config["data_dir"])
        found = _where_found(config["dataset"], config["data_dir"])
        if args.dataset != "auto" and found:  # auto said it already
            print(f"dataset: {DATASETS[config['dataset']].name} from {found}")
        data = build_data(config)
        save_config(run_dir, config)
        _train(args, config, run_dir, data)
        _finish(run_dir, config, data)


def _count(n, noun):
    """``_count(2, "thread")`` -> "2 threads", ``_count(1, "epoch")`` -> "1 epoch"."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _threads():
    """"2 threads": how many threads minicnn's kernels use (``--threads``)."""
    return _count(get_num_threads(), "thread")


def _train(args, config, run_dir, data):
    model = build_model_for(config, len(data.classes))
    optimizer = build_optimizer(model, config)
    loss_fn = build_loss(config)
    print(f"run folder: {run_dir}")
    print(f"{config['model']} on {len(data.y_train)} {config['dataset']} training images, "
          f"{_count(config['epochs'], 'epoch')}, {optimizer!r}, schedule {config['schedule']}, "
          f"{loss_fn!r}, {_threads()}")
    try:
        fit(model, loss_fn, optimizer, (data.x_train, data.y_train),
            (data.x_val, data.y_val), config["epochs"], config["batch_size"],
            schedule=build_schedule(config, len(data.y_train)), augment=augmentation(config),
            seed=seeds(config)[1],
            out_dir=run_dir, resume=bool(args.resume),
            progress="lines" if args.no_progress else "bar", config=config.to_dict())
    except Interrupted as e:
        hint = (f"continue with {args.command} --resume {run_dir}" if e.resumable else
                f"start again with {fresh_command(run_dir, args.command)}")
        print(f"\ninterrupted: {e}; {hint}", file=sys.stderr)
        sys.exit(130)


def _finish(run_dir, config, data):
    """The test accuracy of the run's result (``best.npz``, or the last epoch's weights for
    ``--final-model last``), then the pictures (viz), then the results are printed: the
    run's last steps go down the house once."""
    model, _, history = load_run(run_dir)
    loss, acc, plain = _test_accuracy(model, config, data)
    report = draw_pictures(run_dir)
    path = os.path.join(run_dir, final_weights(config))
    _finite_test_loss(loss, path)
    seconds = sum(history["seconds"])
    print(f"best validation accuracy {history.best_val_acc:.4f}; training took {seconds:.0f} s")
    which = " (the last epoch's weights)" if config["final_model"] == "last" else ""
    print(f"test accuracy {acc:.4f} (loss {loss:.4f}{plain}) on {len(data.y_test)} "
          f"{config['dataset']} test images, model {path}{which}")
    print(report, file=sys.stderr if report.startswith("warning") else sys.stdout)


def draw_pictures(run_dir):
    """Draw loss.png and report.png into the run folder; returns the line to print about
    the report (a warning if it could not be drawn: the run itself succeeded)."""
    from ..viz import plot_runs, write_report
    plot_runs([run_dir], path=os.path.join(run_dir, "loss.png"))
    try:
        write_report(run_dir)
    except Exception as e:  # say why the extra picture is missing
        return f"warning: report.png not written ({type(e).__name__}: {e})"
    return f"report: {os.path.join(run_dir, 'report.png')}"


def run_find_lr(args):
    """``--find-lr``: the learning-rate range test on the run that the flags describe
    (nothing is trained or written but the picture); prints the suggested rate."""
    given = _flags_given(args)  # before the preset fills in its data set
    config = new_config(args)
    checked_model(config, flag, "")
    if args.download:
        download_if_missing(config["dataset"], config["data_dir"])
    data = build_data(config)
    model = build_model_for(config, len(data.classes))
    optimizer = build_optimizer(model, config)
    print(f"learning-rate range test: {config['model']} on {len(data.y_train)} "
          f"{config['dataset']} training images, {optimizer!r}, batch size "
          f"{config['batch_size']}, {_threads()}")
    result = lr_find(model, build_loss(config), optimizer, (data.x_train, data.y_train),
                     batch_size=config["batch_size"], seed=seeds(config)[1])
    from ..viz import plot_lr_find
    plot_lr_find(*result, path=args.find_lr)
    print(result)
    print(f"picture: {args.find_lr}")
    words = [args.command, *given, f"--lr {result.suggestion:.2g}"]
    print(f"train with it: {' '.join(words)}")


def _flags_given(args):
    """The flags of this command line that describe the run (for the suggestion line)."""
    words = [f"--preset {args.preset}"] if args.preset else []
    if args.dataset != "auto":
        words.append(f"--dataset {args.dataset}")
    for key in SETTINGS:
        value = getattr(args, key)
        if key == "lr" or value is None or (key == "seed" and value == 0):
            continue
        if key == "widths":
            value = ",".join(map(str, value))
        words.append(flag(key) if value is True else f"{flag(key)} {value}")
    return words


def main(argv=None, prog="train.py"):
    args = parse_args(argv, prog)
    try:
        if args.threads is not None:
            set_num_threads(args.threads)
        if args.evaluate:
            run_evaluate(args.evaluate, args.data_dir, args.tta)
        elif args.find_lr:
            run_find_lr(args)
        else:
            run_training(args)
    except (ValueError, OSError) as e:  # includes a missing data set and a failed download
        sys.exit(f"{prog}: error: {error_message(e)}")
    except KeyboardInterrupt:
        sys.exit(f"{prog}: interrupted")
