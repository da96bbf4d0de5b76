"""Console commands: ``minicnn-train`` (same as ``python train.py``), ``minicnn-plot`` and
``minicnn-report``.

``minicnn-train`` uses one BLAS thread unless ``OPENBLAS_NUM_THREADS`` is set: OpenBLAS
threads busy-wait, so on a 2-core machine two threads made a training step no faster on an
idle machine and 3-5x slower as soon as anything else ran. The variable is read when numpy
loads, so it is set here, before anything imports numpy.
"""
import os


def train(argv=None):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .training.cli import main
    return main(argv)


def plot(argv=None):
    from .viz.curves import main
    return main(argv)


def report(argv=None):
    from .viz.report import main
    return main(argv)
