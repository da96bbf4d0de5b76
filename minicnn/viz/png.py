"""Writing a matplotlib figure to a PNG file."""
from ..serialization import atomic_path


def save_png(fig, path, dpi=100):
    """Write a matplotlib Figure to ``path`` as a PNG of figsize * dpi pixels, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
