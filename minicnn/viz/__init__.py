"""Pictures: loss curves, a one-page run report, and figures of a network's insides.

The names below load on first use, so importing minicnn.viz stays cheap. Importing this
package also makes ``fit(progress="plot")`` draw a :class:`LivePlot` in a notebook.
"""
import importlib

from ..training.callbacks import set_live_plot

_LAZY = {
    ".curves": ["draw_histories", "ema", "plot_histories", "plot_lr_find", "plot_runs"],
    ".figures": ["DPI", "MIN_FONT", "confusion_figure", "confusion_matrix",
                 "feature_maps_figure", "filters_figure", "first_conv", "layer_output",
                 "layer_title", "mistakes_first",
                 "pool_routing", "pool_routing_figure", "predictions_figure",
                 "strongest_maps_figure", "to_display"],
    ".live": ["LivePlot", "SamplePredictions"],
    ".png": ["save_png"],
    ".report": ["run_report", "write_report"],
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
__all__ = sorted(_WHERE)


def _live_plot():
    return __getattr__("LivePlot")()


# fit(progress="plot") adds a LivePlot in a notebook; training does not import the pictures
set_live_plot(_live_plot)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    if "." + name in _LAZY:  # the submodules: minicnn.viz.figures, ...
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'minicnn.viz' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
