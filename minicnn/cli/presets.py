"""Named recipes for ``minicnn-train --preset NAME``.

Each preset sets the flags it names (by their config names: ``batch_size`` for
``--batch-size``); a flag given on the command line wins. A preset's ``lr`` belongs to its
``optimizer``, and its ``widths`` and ``head`` to its ``model``: choosing another optimizer
(model) beside the preset gives that optimizer's default rate (that model's widths and head). To add a
recipe, add an entry: ``--preset`` and its help text list it. A preset may set any flag
of the run's recipe, e.g.::

    dict(dataset="fashion-mnist", model="vgg_small", widths=[32, 64, 128], epochs=15,
         optimizer="nesterov", lr=0.1, schedule="onecycle", augment="flip,erase",
         label_smoothing=0.1)
"""

#: Preset name -> the settings it stands for. "fashion" is the measured recipe of the
#: Fashion-MNIST results (see docs/fashion_mnist.md).
PRESETS = {
    "fashion": dict(dataset="fashion-mnist", model="vgg_small", widths=[16, 48, 96],
                    head="flatten", epochs=13, batch_size=128, optimizer="nesterov", lr=0.1,
                    weight_decay=5e-4, schedule="onecycle", augment="flip,erase",
                    label_smoothing=0.1, tta="flip", final_model="last", num_train=None),
}


def flag(name):
    """The command-line flag of a config field: ``num_train`` -> ``--num-train``."""
    return "--" + name.replace("_", "-")


def _value(v):
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v


def describe(preset):
    """The flags a preset stands for, e.g. "--dataset fashion-mnist --epochs 10 ..."."""
    return " ".join(f"{flag(k)} {_value(v)}" for k, v in preset.items() if v is not None)


def apply_preset(name, given):
    """The settings of a new run: the preset ``name`` (None: none) under the flags
    ``given`` (a dict; None values count as not given). A preset's learning rate is
    dropped when another optimizer is given, its widths when another model is."""
    preset = dict(PRESETS.get(name, {}))
    given = {k: v for k, v in given.items() if v is not None}
    if "optimizer" in given and given["optimizer"] != preset.get("optimizer"):
        preset.pop("lr", None)
    if "model" in given and given["model"] != preset.get("model"):
        preset.pop("widths", None)
        preset.pop("head", None)
    return {**preset, **given}
