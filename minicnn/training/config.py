"""A run's settings as one object: :class:`RunConfig`, written to the run folder as ``config.json``.

:class:`RunConfig` owns everything about the settings of a run:

- the **defaults** (:data:`DEFAULTS`, then per data set :data:`DATASET_DEFAULTS`, then the
  optimizer's learning rate in :data:`OPTIMIZERS`), applied by :meth:`RunConfig.new`;
- the **checks** (:data:`CONFIG_SCHEMA` for each field's type and range,
  :func:`check_sizes` for the split sizes against the data set), applied whenever a
  RunConfig is made, so a RunConfig that exists is a valid one;
- the **JSON round trip** (:meth:`RunConfig.from_dict` / :meth:`RunConfig.to_dict`; the
  run-folder functions :func:`minicnn.training.run_folder.save_config` and ``load_config``
  write and read the file);
- the **resume rule**: a resumed run may change only the number of epochs and where the
  data lives (``RESUMABLE_KEYS``; :meth:`RunConfig.resumed`, :meth:`RunConfig.check_resumes`;
  the checkpoint applies the same rule to the config it stores,
  :func:`minicnn.training.checkpoint.check_resume_config`).

A RunConfig is frozen and reads like the dict of its JSON: ``config["lr"]``,
``config.get("num_train")``, ``dict(config)``.

``config.json`` keys: dataset ("cifar10", "fashion-mnist", "mnist" or "synthetic"),
data_dir, model, model_args (the zoo factory's arguments besides num_classes, seed and
dtype, e.g. ``{"in_channels": 1, "widths": [32, 64, 128]}``), epochs, batch_size, lr,
optimizer, weight_decay, schedule (per epoch: "none", "step", "cosine"; per step:
"warmup-cosine", "onecycle"; see :func:`minicnn.training.schedules.make_schedule`),
label_smoothing (of the cross-entropy, in [0, 1)), augment, num_train, num_val, num_test,
dtype, seed, tta (the test-time augmentation of the final test accuracy: "none" or "flip",
see :func:`minicnn.training.predict`), final_model (the weights the final test accuracy
and the report are measured on: "best", ``best.npz``, the epoch with the best validation
accuracy; or "last", the last epoch's, ``checkpoint.npz``). All are required but
model_args, label_smoothing, tta and final_model: a config written before they were
recorded gets the factory's defaults for the data set's channels and image size, no label
smoothing, no test-time augmentation and the best epoch's weights
(:data:`minicnn.training.checkpoint.LATER_FIELDS`).
"""
import dataclasses
from collections.abc import Mapping
from typing import Any, Optional, Union

from ..data.registry import (
    AUGMENT_STEPS,
    AUGMENTATIONS,
    DATASETS,
    SYNTHETIC_TEST_SIZE,
    SYNTHETIC_TRAIN_SIZE,
    augment_spec_problem,
)
from ..models import FLATTEN_HEAD, MODELS, NEEDS_IMAGE_SIZE
from ..optim import SGD, Adam, AdamW, RMSprop
from .checkpoint import FINAL_MODELS, LATER_FIELDS, check_resume_config
from .inference import TTA
from .memory import check_memory
from .schedules import SCHEDULES
from .schema import Rule, check_record, choice, field, integer, number, text

#: Optimizer name -> (class, default learning rate, tuned for vgg_small;
#: three_layer_convnet wants about a third of it).
OPTIMIZERS = {"sgd": (SGD, 0.05), "nesterov": (SGD, 0.05), "adam": (Adam, 3e-3),
              "adamw": (AdamW, 3e-3), "rmsprop": (RMSprop, 1e-3)}
MAX_LR = 10.0
#: The models whose stage widths can be chosen (``model_args["widths"]``).
HAS_WIDTHS = ("vgg_small", "resnet_small")

#: What a setting not given means (after the data set's defaults).
DEFAULTS = dict(data_dir=None, model="vgg_small", epochs=5, batch_size=64, optimizer="adam",
                weight_decay=0.0, schedule="cosine", label_smoothing=0.0, augment=False, num_train=None,
                num_val=1000, num_test=None, dtype="float32", seed=0, tta="none",
                final_model="best")
#: How the last feature map reaches the classifier: "avg" (global average pooling) or
#: "flatten" (the models of FLATTEN_HEAD, given the data set's image size).
HEADS = ("avg", "flatten")
#: Per data set: a first run of a minute or two (CIFAR-10: all of it).
DATASET_DEFAULTS = {"synthetic": dict(num_train=5000),
                    "fashion-mnist": dict(num_train=10_000, epochs=3),
                    "mnist": dict(num_train=10_000, epochs=3)}

def _int_or_ints(v):
    ints = v if isinstance(v, list) and v else [v]
    return all(isinstance(i, int) and not isinstance(i, bool) for i in ints)


def _augment_ok(v, _):
    return isinstance(v, bool) or (isinstance(v, str) and augment_spec_problem(v) is None)


#: What each config.json field must hold (also checks the flags of train.py).
CONFIG_SCHEMA = {
    "dataset": choice(*DATASETS),
    "data_dir": text(nullable=True),
    "model": choice(*sorted(MODELS)),
    "model_args": Rule("an object of zoo arguments, each an integer or a list of integers",
                       lambda v, _: isinstance(v, dict) and all(
                           isinstance(k, str) and _int_or_ints(a) for k, a in v.items()),
                       nullable=True),
    "epochs": integer(1),
    "batch_size": integer(1),
    "lr": number(0, MAX_LR, lo_open=True),
    "optimizer": choice(*sorted(OPTIMIZERS)),
    "weight_decay": number(0, 1),
    "schedule": choice(*SCHEDULES),
    "label_smoothing": number(0, 1, hi_open=True),
    "augment": Rule("true, false, one of " + ", ".join(repr(a) for a in AUGMENTATIONS)
                    + " or steps of " + ", ".join(repr(a) for a in AUGMENT_STEPS)
                    + " joined by commas", _augment_ok),
    "num_train": integer(1, nullable=True),
    "num_val": integer(1),
    "num_test": integer(1, nullable=True),
    "dtype": choice("float32", "float64"),
    "seed": integer(0),
    "tta": choice(*TTA),
    "final_model": choice(*FINAL_MODELS),
}


def check_config(config, where, label=None):
    """Raise a one-line ValueError unless ``config`` passes :data:`CONFIG_SCHEMA`."""
    kw = {} if label is None else {"label": label}
    return check_record(config, CONFIG_SCHEMA, where, "a JSON object of run settings",
                        optional=("model_args", *LATER_FIELDS), **kw)


def split_sizes(config, label=str, where=""):
    """``(train, val, test)``, the image counts of a run's splits, after checking them
    against the data set; one-line ValueError ``"<where><label(field)> <value>: <why>"``."""
    num_train, num_val, num_test = config.get("num_train"), config["num_val"], config.get("num_test")

    def fail(key, why):
        raise ValueError(f"{where}{label(key)} {config[key]}: {why}")

    info = DATASETS[config["dataset"]]
    if info.sizes is None:
        return num_train or SYNTHETIC_TRAIN_SIZE, num_val, num_test or SYNTHETIC_TEST_SIZE
    pool, test_pool = info.sizes
    if num_val >= pool:
        fail("num_val", f"{info.name} has {pool:,} training images and at least one must "
                        f"be left for training")
    if num_train is not None and num_train > pool - num_val:
        fail("num_train", f"{info.name} has {pool - num_val:,} training images left after "
                          f"holding out {num_val:,} for validation")
    if num_test is not None and num_test > test_pool:
        fail("num_test", f"{info.name} has {test_pool:,} test images")
    return num_train or pool - num_val, num_val, num_test or test_pool


def check_sizes(config, label=str, where="", memory=True, model=None):
    """Check num_train, num_val, num_test and batch_size against the data set and memory.

    Returns ``(train, val, test)``, the image counts of the splits. Raises ValueError
    ``"<where><label(field)> <value>: <why>"`` (``label`` names a field: ``--num-train``
    on the command line) when a split asks for more images than the data set has, the
    batch is larger than the training split (an epoch would have no step), or, with
    ``memory``, the images (and, given the ``model``, a training batch's activations)
    would not fit in the memory available (:func:`minicnn.training.memory.check_memory`).
    """
    splits = split_sizes(config, label, where)
    if config["batch_size"] > splits[0]:
        raise ValueError(f"{where}{label('batch_size')} {config['batch_size']}: larger than "
                         f"the {splits[0]:,} training images (each epoch drops its last, "
                         f"smaller batch, so there would be no step)")
    if memory:
        check_memory(config, splits, label, where, model)
    return splits


def default_model_args(model, dataset, widths=None, head="avg"):
    """The zoo arguments a new run records: the data set's channels (and image size where
    the model needs it, or where ``head="flatten"`` asks for a flattened last feature map),
    and the stage ``widths`` of vgg_small or resnet_small."""
    info = DATASETS[dataset]
    args = {"in_channels": info.in_channels}
    if model in NEEDS_IMAGE_SIZE or head == "flatten":
        args["image_size"] = info.image_size
    if widths is not None:
        args["widths"] = list(widths)
    return args


@dataclasses.dataclass(frozen=True, eq=False)  # equality: Mapping's, so a RunConfig equals its dict
class RunConfig(Mapping):
    """The settings of one run, checked (see the module docstring); the fields are the keys
    of ``config.json``, in its order."""
    dataset: str
    data_dir: Optional[str]
    model: str
    model_args: Optional[dict]
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    schedule: str
    label_smoothing: float
    augment: Union[bool, str]
    num_train: Optional[int]
    num_val: int
    num_test: Optional[int]
    dtype: str
    seed: int
    tta: str = "none"
    final_model: str = "best"

    def __post_init__(self):
        check_config(self.to_dict(), "RunConfig")
        check_sizes(self, where="RunConfig: ", memory=False)

    # -- making one ----------------------------------------------------------------

    @classmethod
    def new(cls, dataset, *, label=field, widths=None, head=None, **settings):
        """A new run's config: the ``settings`` given win over the data set's
        :data:`DATASET_DEFAULTS`, then :data:`DEFAULTS`; ``lr`` (when not given or None)
        is the optimizer's default rate; ``widths`` are the stage widths of vgg_small or
        resnet_small; ``head`` one of :data:`HEADS` (None: "avg"). ``label(name)`` names a
        setting in messages (``--num-train``)."""
        chosen = {**DEFAULTS, **DATASET_DEFAULTS.get(dataset, {}), **settings, "dataset": dataset}
        if widths is not None and chosen["model"] not in HAS_WIDTHS:
            raise ValueError(f"{label('widths')} is for {' and '.join(HAS_WIDTHS)}, "
                             f"not {chosen['model']}")
        head = "avg" if head is None else head
        if head not in HEADS:
            raise ValueError(f"{label('head')} must be one of {', '.join(HEADS)}, got {head!r}")
        if head == "flatten" and chosen["model"] not in FLATTEN_HEAD:
            raise ValueError(f"{label('head')} flatten is for {' and '.join(FLATTEN_HEAD)}, "
                             f"not {chosen['model']}")
        if chosen.get("lr") is None and chosen["optimizer"] in OPTIMIZERS:
            chosen["lr"] = OPTIMIZERS[chosen["optimizer"]][1]
        if chosen["augment"] == "none":
            chosen["augment"] = False
        if chosen["model"] in MODELS and dataset in DATASETS:
            chosen["model_args"] = default_model_args(chosen["model"], dataset, widths, head)
        record = {f.name: chosen.get(f.name) for f in dataclasses.fields(cls)}
        check_config(record, "the run's settings", label)
        check_sizes(record, label, memory=False)
        return cls(**record)

    @classmethod
    def from_dict(cls, record, where="config"):
        """The RunConfig of a ``config.json`` object; one-line ValueError starting with
        ``where`` (the file) that names the first bad field."""
        check_config(record, where)
        check_sizes(record, where=f"{where}: ", memory=False)
        return cls(**{"model_args": None, **LATER_FIELDS, **record})

    def to_dict(self):
        """The JSON object of ``config.json`` (``model_args`` left out when None, as a
        config written before it was recorded has it)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if record["model_args"] is None:
            del record["model_args"]
        else:
            record["model_args"] = {k: list(v) if isinstance(v, list) else v
                                    for k, v in record["model_args"].items()}
        return record

    # -- resuming ------------------------------------------------------------------

    def resumed(self, epochs=None, data_dir=None):
        """This config for a resumed run: only :data:`RESUMABLE_KEYS` (``epochs`` and
        ``data_dir``) may change; None keeps the value."""
        changes = {k: v for k, v in (("epochs", epochs), ("data_dir", data_dir)) if v is not None}
        return dataclasses.replace(self, **changes)

    def check_resumes(self, stored, where):
        """Raise a one-line ValueError unless this config may resume a checkpoint trained
        with the config dict ``stored`` (equal but for :data:`RESUMABLE_KEYS`)."""
        check_resume_config(stored, self.to_dict(), where)

    # -- read like a dict ----------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__ or (key == "model_args" and self.model_args is None):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(self.to_dict())
