"""A CIFAR-shaped toy data set whose classes are shapes, orientations and textures.

Every image is a random foreground pattern painted in a random colour over a random
background colour (either may be the brighter one), plus a background gradient, a few
small coloured specks and pixel noise. Position, size, rotation, period and phase are
random, so the average image of every class is the same flat grey: a linear classifier
on raw pixels has almost nothing to hold on to, while a small conv-relu-pool net can
learn the local edge, corner and frequency detectors that tell the classes apart.
"""
from __future__ import annotations

import numpy as np

SIZE = 32
SYNTHETIC_CLASSES = [
    "disc",                # filled circle
    "ring",                # circle outline
    "square",              # square outline, roughly axis-aligned
    "cross",               # plus sign, roughly axis-aligned
    "triangle",            # filled equilateral triangle, any rotation
    "horizontal stripes",  # striped round patch, stripes within 10 degrees of horizontal
    "vertical stripes",    # ... within 10 degrees of vertical
    "diagonal stripes",    # ... within 10 degrees of either diagonal
    "checkerboard",        # checkered round patch
    "dots",                # round patch of dots on a lattice
]
_CHUNK = 4096
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def synthetic_cifar(n: int, seed: int | np.random.SeedSequence | None = 0,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Make ``n`` images: ``x`` uint8 ``(n, 3, 32, 32)``, ``y`` int64 ``(n,)`` in ``0..9``.

    Class ``k`` is ``SYNTHETIC_CLASSES[k]``: shapes 0 disc, 1 ring, 2 square outline,
    3 cross, 4 triangle; orientations 5 horizontal, 6 vertical, 7 diagonal stripes;
    textures 8 checkerboard, 9 dots. Size, place, rotation and colours are random (module
    docstring). Classes are balanced (counts differ by at most one); the result depends
    only on ``n`` and ``seed``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES)).astype(np.int64)
    x = np.empty((n, 3, SIZE, SIZE), np.uint8)
    for start in range(0, n, _CHUNK):
        x[start:start + _CHUNK] = _render(y[start:start + _CHUNK], rng)
    return x, y


def _render(labels, rng):
    """Images uint8 ``(m, 3, 32, 32)`` for the given labels."""
    m = len(labels)
    mask = np.empty((m, SIZE, SIZE), np.float32)
    for k, draw in enumerate(_DRAW):
        chosen = labels == k
        if chosen.any():
            mask[chosen] = draw(int(chosen.sum()), rng)
    fg, bg = _colour_pairs(m, rng)
    img = rng.random((m, 3, SIZE, SIZE), dtype=np.float32)  # uniform pixel noise, +-14
    img -= 0.5
    img *= 28
    img += _gradient(m, rng)[:, None]
    img += bg[:, :, None, None]
    img += (fg - bg)[:, :, None, None] * mask[:, None]
    _add_specks(img, rng)
    np.clip(img, 0, 255, out=img)
    return np.rint(img, out=img).astype(np.uint8)


def _colour_pairs(m, rng, min_distance=100):
    """Foreground and background RGB ``(m, 3)`` float32, at least ``min_distance`` apart."""
    fg, bg = rng.uniform(0, 255, (2, m, 3)).astype(np.float32)
    while True:
        close = np.linalg.norm(fg - bg, axis=1) < min_distance
        if not close.any():
            return fg, bg
        fg[close] = rng.uniform(0, 255, (int(close.sum()), 3))


def _gradient(m, rng):
    """A random linear brightness ramp ``(m, 32, 32)``, up to about +-40 at the corners."""
    gx, gy = rng.normal(0, 1.2, (2, m, 1, 1)).astype(np.float32)
    return gx * (_XX - 15.5) + gy * (_YY - 15.5)


def _add_specks(img, rng, count=3):
    """Paint, in place, up to ``count`` small blobs of random colour at random places (clutter)."""
    m = len(img)
    flat = img.reshape(-1)
    first_pixel = np.arange(m)[:, None, None] * img[0].size
    offsets = np.arange(-2, 4)  # covers a blob of radius <= 2 around any centre
    for _ in range(count):
        cx, cy = _uniform(rng, m, 0, SIZE), _uniform(rng, m, 0, SIZE)
        rows = np.clip(cy.astype(int) + offsets[:, None], 0, SIZE - 1)
        cols = np.clip(cx.astype(int) + offsets, 0, SIZE - 1)
        present = rng.random((m, 1, 1)) < 0.5
        blob = present * _soft(_uniform(rng, m, 0.8, 2.0) - np.hypot(cols - cx, rows - cy))
        colour = rng.uniform(0, 255, (3, m, 1, 1)).astype(np.float32)
        for c in range(3):
            where = first_pixel + (c * SIZE + rows) * SIZE + cols
            flat[where] += blob * (colour[c] - flat[where])


def _soft(inside):
    """Anti-aliased mask from a signed distance (positive inside the shape)."""
    return np.clip(inside + 0.5, 0, 1)


def _uniform(rng, k, low, high):
    return rng.uniform(low, high, (k, 1, 1)).astype(np.float32)


def _frame(k, rng, angle, low=9, high=23):
    """Rotated coordinates ``(u, v)``, each ``(k, 32, 32)``, centred at a random point.

    ``angle`` (radians, ``(k, 1, 1)``) turns the pattern counterclockwise on screen.
    """
    cx, cy = _uniform(rng, k, low, high), _uniform(rng, k, low, high)
    dx, dy = _XX - cx, _YY - cy
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * dx - sin * dy, sin * dx + cos * dy


def _jitter(rng, k, degrees, base=0.0):
    return np.deg2rad(base + _uniform(rng, k, -degrees, degrees))


def _disc(k, rng):
    u, v = _frame(k, rng, _jitter(rng, k, 0))
    return _soft(_uniform(rng, k, 5, 11) - np.hypot(u, v))


def _ring(k, rng):
    u, v = _frame(k, rng, _jitter(rng, k, 0))
    radius, width = _uniform(rng, k, 6, 12), _uniform(rng, k, 1.5, 3)
    return _soft(width / 2 - np.abs(np.hypot(u, v) - radius))


def _square(k, rng):
    u, v = _frame(k, rng, _jitter(rng, k, 15))
    half_side, width = _uniform(rng, k, 5, 11), _uniform(rng, k, 1.5, 3)
    return _soft(width / 2 - np.abs(np.maximum(np.abs(u), np.abs(v)) - half_side))


def _cross(k, rng):
    u, v = _frame(k, rng, _jitter(rng, k, 15))
    arm, width = _uniform(rng, k, 6, 12), _uniform(rng, k, 2, 4)
    bar_u = np.minimum(arm - np.abs(u), width / 2 - np.abs(v))
    bar_v = np.minimum(arm - np.abs(v), width / 2 - np.abs(u))
    return _soft(np.maximum(bar_u, bar_v))


def _triangle(k, rng):
    u, v = _frame(k, rng, _jitter(rng, k, 180))
    inradius = _uniform(rng, k, 3.5, 6.5)
    normals = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    inside = [inradius - (u * np.cos(a) + v * np.sin(a)) for a in normals]
    return _soft(np.minimum.reduce(inside))


def _patch(k, rng, angle):
    """Coordinates of a textured round patch, its window mask and a random period."""
    u, v = _frame(k, rng, angle)
    window = _soft(_uniform(rng, k, 9, 15) - np.hypot(u, v))
    return u, v, window, _uniform(rng, k, 4, 8)


def _wave(t, period, rng):
    """Near-square wave in ``[0, 1]`` along ``t`` with random phase."""
    phase = _uniform(rng, len(t), 0, 2 * np.pi)
    return np.clip(0.5 + 2 * np.sin(2 * np.pi * t / period + phase), 0, 1)


def _stripes(base_degrees):
    def draw(k, rng):
        base = rng.choice(np.asarray(base_degrees, np.float32), (k, 1, 1))
        u, v, window, period = _patch(k, rng, _jitter(rng, k, 10, base))
        return window * _wave(v, period, rng)
    return draw


def _checkerboard(k, rng):
    u, v, window, period = _patch(k, rng, _jitter(rng, k, 180))
    return window * np.abs(_wave(u, period, rng) - _wave(v, period, rng))


def _dots(k, rng):
    u, v, window, period = _patch(k, rng, _jitter(rng, k, 180))
    period = period * 1.2
    radius = period * _uniform(rng, k, 0.2, 0.32)
    du = (u / period + _uniform(rng, k, 0, 1)) % 1 - 0.5
    dv = (v / period + _uniform(rng, k, 0, 1)) % 1 - 0.5
    return window * _soft(radius - period * np.hypot(du, dv))


_DRAW = [_disc, _ring, _square, _cross, _triangle,
         _stripes([0]), _stripes([90]), _stripes([45, 135]), _checkerboard, _dots]
