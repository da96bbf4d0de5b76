"""Pictures: loss curves, a one-page run report, and figures of a network's insides."""
from .curves import ema, plot_histories, plot_runs
from .figures import (DPI, confusion_figure, confusion_matrix, feature_maps_figure, filters_figure, first_conv,
                      layer_output, pool_routing, pool_routing_figure, predictions_figure,
                      to_display)
from .png import save_png

__all__ = ["DPI", "confusion_figure", "confusion_matrix", "ema", "feature_maps_figure", "filters_figure",
           "first_conv", "layer_output", "plot_histories", "plot_runs", "pool_routing",
           "pool_routing_figure", "predictions_figure", "save_png", "to_display",
           "write_report"]


def __getattr__(name):
    # write_report loads on first use, so that ``python -m minicnn.viz.report`` does not
    # find its own module imported already (runpy warns about that)
    if name == "write_report":
        from .report import write_report
        return write_report
    raise AttributeError(f"module 'minicnn.viz' has no attribute {name!r}")
