"""The command line, the top floor of minicnn: ``minicnn-train`` (same as
``python train.py``), ``minicnn-plot`` and ``minicnn-report``.

Each command parses its arguments here, makes a :class:`minicnn.training.RunConfig`,
hands it to :mod:`minicnn.training` and the pictures to :mod:`minicnn.viz`, and prints;
nothing below this package knows about argparse, flags or presets.

- :mod:`.train_args`: the flags of ``minicnn-train``; :mod:`.presets`: its ``--preset`` recipes;
- :mod:`.train_command`: what ``minicnn-train`` does (new run, ``--resume``, ``--evaluate``);
- :mod:`.plot_command`, :mod:`.report_command`: ``minicnn-plot`` and ``minicnn-report``.

``minicnn-train`` uses one BLAS thread unless ``OPENBLAS_NUM_THREADS`` is set: OpenBLAS
threads busy-wait, so on a small machine more threads can make a training step slower as
soon as anything else runs. The variable is read when numpy loads, so it is set here,
before anything imports numpy.
"""
import os


def train(argv=None, prog="minicnn-train"):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .train_command import main
    return main(argv, prog)


def plot(argv=None):
    from .plot_command import main
    return main(argv)


def report(argv=None):
    from .report_command import main
    return main(argv)
