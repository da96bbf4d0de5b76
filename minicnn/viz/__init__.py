"""Pictures: loss curves, a one-page run report, and figures of a network's insides.

The names below load on first use, so ``python -m minicnn.viz.report`` and
``python -m minicnn.viz.curves`` run their module once, without a warning from runpy.
"""
import importlib

_LAZY = {
    ".curves": ["draw_histories", "ema", "plot_histories", "plot_runs"],
    ".figures": ["DPI", "MIN_FONT", "confusion_figure", "confusion_matrix",
                 "feature_maps_figure", "filters_figure", "first_conv", "layer_output",
                 "layer_title", "mistakes_first",
                 "pool_routing", "pool_routing_figure", "predictions_figure",
                 "strongest_maps_figure", "to_display"],
    ".png": ["save_png"],
    ".report": ["run_report", "write_report"],
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    if "." + name in _LAZY:  # the submodules: minicnn.viz.figures, ...
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'minicnn.viz' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
