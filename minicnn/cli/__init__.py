"""The command line, the top floor of minicnn: ``minicnn-train`` (same as
``python train.py``), ``minicnn-plot`` and ``minicnn-report``.

Each command parses its arguments here, makes a :class:`minicnn.training.RunConfig`,
hands it to :mod:`minicnn.training` and the pictures to :mod:`minicnn.viz`, and prints;
nothing below this package knows about argparse, flags or presets.

- :mod:`.train_args`: the flags of ``minicnn-train``; :mod:`.presets`: its ``--preset`` recipes;
- :mod:`.train_command`: what ``minicnn-train`` does (new run, ``--resume``, ``--evaluate``);
- :mod:`.plot_command`, :mod:`.report_command`: ``minicnn-plot`` and ``minicnn-report``.

``minicnn-train --threads N`` sets the number of minicnn's own threads (default: every
CPU this process may use, see :mod:`minicnn.parallel`, which also keeps BLAS on one
thread so that no BLAS thread busy-waits on a shared machine).
"""


def train(argv=None, prog="minicnn-train"):
    from .train_command import main
    return main(argv, prog)


def plot(argv=None):
    from .plot_command import main
    return main(argv)


def report(argv=None):
    from .report_command import main
    return main(argv)
