"""Checks on rendered matplotlib figures, shared by the picture tests."""
from unittest import mock

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from minicnn.viz import MIN_FONT


def drawn_texts(fig):
    """``[(text, font size in points, window extent)]`` of every Text the renderer really
    draws when ``fig`` is rendered (tick labels outside the view and empty or invisible
    texts are not drawn, so they are not listed)."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    drawing, drawn = [], {}
    text_draw, draw_text = Text.draw, renderer.draw_text

    def spy_text(self, rend):
        drawing.append(self)
        try:
            return text_draw(self, rend)
        finally:
            drawing.pop()

    def spy_draw_text(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if drawing:  # a multi-line text draws line by line without mtext: use the artist
            drawn[id(drawing[-1])] = (drawing[-1], prop.get_size_in_points())
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = spy_draw_text
    with mock.patch.object(Text, "draw", spy_text):
        fig.draw(renderer)
    return [(t.get_text(), size, t.get_window_extent(renderer)) for t, size in drawn.values()]


def assert_text_fits(fig, min_font=MIN_FONT):
    """Every drawn text lies inside the canvas and is at least ``min_font`` points (figures
    are saved at their own dpi, so these are points at the saved size). Returns the texts."""
    texts = drawn_texts(fig)
    assert texts
    width, height = fig.bbox.width, fig.bbox.height
    for text, size, box in texts:
        assert size >= min_font, f"{text!r} is {size} pt"
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, \
            f"{text!r} at {box.extents} is outside the {width:.0f}x{height:.0f} canvas"
    return texts


def pixels(fig):
    """The figure rendered: RGB floats in [0, 1], (H, W, 3); row 0 is the top."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3] / 255.0


def crop(image, bbox):
    """The part of a rendered ``image`` inside a display-space Bbox (origin bottom left)."""
    height = image.shape[0]
    x0, y0, x1, y1 = bbox.extents
    return image[int(round(height - y1)):int(round(height - y0)), int(round(x0)):int(round(x1))]


def longest_blank_run(image):
    """The most consecutive rows of ``image`` (H, W, 3) that are entirely white."""
    white = (image > 0.98).all(axis=(1, 2))
    best = run = 0
    for w in white:
        run = run + 1 if w else 0
        best = max(best, run)
    return best


def colour_pixels(image, colour, tolerance=0.06):
    """How many pixels of ``image`` are within ``tolerance`` of the RGB ``colour``."""
    return int(np.sum(np.abs(image - np.asarray(colour)[:3]).max(axis=-1) <= tolerance))
