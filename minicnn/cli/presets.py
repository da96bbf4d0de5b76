"""Named recipes for ``minicnn-train --preset NAME``.

Each preset sets the flags it names (by their config names: ``batch_size`` for
``--batch-size``); a flag given on the command line wins. A preset's ``lr`` belongs to its
``optimizer``: choosing another optimizer beside the preset gives that optimizer's default
rate. To add a recipe, add an entry: ``--preset`` and its help text list it.
"""

#: Preset name -> the settings it stands for. "fashion" is the measured recipe of the
#: Fashion-MNIST results (see docs/fashion_mnist.md).
PRESETS = {
    "fashion": dict(dataset="fashion-mnist", model="vgg_small", epochs=10, batch_size=128,
                    optimizer="nesterov", lr=0.1, weight_decay=5e-4, schedule="cosine",
                    augment="flip", num_train=None),
}


def flag(name):
    """The command-line flag of a config field: ``num_train`` -> ``--num-train``."""
    return "--" + name.replace("_", "-")


def describe(preset):
    """The flags a preset stands for, e.g. "--dataset fashion-mnist --epochs 10 ..."."""
    return " ".join(f"{flag(k)} {v}" for k, v in preset.items() if v is not None)


def apply_preset(name, given):
    """The settings of a new run: the preset ``name`` (None: none) under the flags
    ``given`` (a dict; None values count as not given). A preset's learning rate is
    dropped when another optimizer is given."""
    preset = dict(PRESETS.get(name, {}))
    given = {k: v for k, v in given.items() if v is not None}
    if "optimizer" in given and given["optimizer"] != preset.get("optimizer"):
        preset.pop("lr", None)
    return {**preset, **given}
