"""Max pooling on a 4x4 input with ties: forward, cache and backward under both tie rules,
next to the naive loops of the CS231n-style note this project started from.

Run: python examples/max_pooling_explained.py
"""
import numpy as np

from minicnn import functional as F
from minicnn.layers import MaxPool2D
from minicnn.viz import pool_routing


# -- the note's naive loops ---------------------------------------------------------------
def max_pool_forward_naive(x, pool_param):
    """x: (N, C, H, W); pool_param: pool_height, pool_width, stride. Returns (out, cache)."""
    N, C, H, W = x.shape
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    H_out, W_out = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = np.max(x[n, c, i * s:i * s + ph, j * s:j * s + pw])
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Each window's gradient goes to its maxima, split evenly among ties (mask / np.sum)."""
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    N, C, H_out, W_out = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    mask = window == np.max(window)
                    dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += \
                        mask * dout[n, c, i, j] / np.sum(mask)
    return dx


def max_pool_backward_argmax(dout, cache):
    """The other common loop: everything to np.argmax, the first maximum in row-major order."""
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(dout.shape):
        window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
        r, q = np.unravel_index(np.argmax(window), window.shape)
        dx[n, c, i * s + r, j * s + q] += dout[n, c, i, j]
    return dx


def show(title, a):
    print(f"{title}:\n{np.array2string(np.asarray(a), precision=3, suppress_small=True)}\n")


# What the kernel's docstring says its cache holds, e.g. "cache: (xp, out, x.shape, ...)".
CACHE_DOC = next(line.strip("- ").strip() for line in F.max_pool2d_forward.__doc__.splitlines()
                 if "cache:" in line)

# -- a 4x4 input with ties ---------------------------------------------------------------
x = np.array([[1, 3, 3, 0],
              [2, 3, 1, 1],
              [5, 5, 2, 2],
              [0, 5, 2, 0]], dtype=np.float64).reshape(1, 1, 4, 4)
dout = np.array([[1.0, 2.0], [3.0, 6.0]]).reshape(1, 1, 2, 2)  # one upstream value per window
pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

show("input x (windows are the four 2x2 quadrants)", x[0, 0])
naive_out, naive_cache = max_pool_forward_naive(x, pool_param)
naive_dx = max_pool_backward_naive(dout, naive_cache)

for ties in ("split", "first"):
    layer = MaxPool2D(kernel_size=2, stride=2, ties=ties)
    out = layer.forward(x)
    print(f"==== MaxPool2D(kernel_size=2, stride=2, ties={ties!r}) ====")
    show("forward output", out[0, 0])
    print(f"the layer keeps for backward the {CACHE_DOC}")
    for k, item in enumerate(layer.cache):
        if isinstance(item, np.ndarray):
            values = np.array2string(item.squeeze(), precision=3).replace("\n", "\n      ")
            print(f"  [{k}] array {item.shape}:\n      {values}")
        else:
            print(f"  [{k}] {item!r}")
    print()
    show("upstream gradient dout", dout[0, 0])
    dx = layer.backward(dout)
    show(f"dx with ties={ties!r}", dx[0, 0])
    assert np.array_equal(out, naive_out)

show("note's loops (mask / np.sum): dx", naive_dx[0, 0])
show("argmax loops: dx", max_pool_backward_argmax(dout, naive_cache)[0, 0])
split = MaxPool2D(2, ties="split")
split.forward(x)
first = MaxPool2D(2, ties="first")
first.forward(x)
assert np.allclose(split.backward(dout), naive_dx), "ties='split' should equal the note's loops"
assert np.allclose(first.backward(dout), max_pool_backward_argmax(dout, naive_cache))
print("ties='split' equals the note's mask/np.sum loops; ties='first' equals the argmax loops.")
print("Top-left window: two 3s share its gradient 1 -> 0.5 each under 'split'.")
print("Bottom-left: three 5s share 3 -> 1 each; bottom-right: three 2s share 6 -> 2 each.")
shares = pool_routing(split, x[0, 0])  # (2, 2, 4, 4): window (i, j)'s share of each input
show("\nwinners per window, from minicnn.viz.pool_routing", (shares > 0).sum(axis=(2, 3)))
print("minicnn.viz.pool_routing_figure(MaxPool2D(2), x[0, 0], path='routing.png') draws it.\n")

# The same agreement on random integer maps (many ties), overlapping windows included.
rng = np.random.default_rng(0)
for k, s in [(2, 2), (3, 1), (2, 1), (3, 2)]:
    xr = rng.integers(0, 3, (2, 3, 7, 7)).astype(np.float64)
    layer = MaxPool2D(k, stride=s)
    out = layer.forward(xr)
    up = rng.standard_normal(out.shape)
    ref_out, ref_cache = max_pool_forward_naive(xr, {"pool_height": k, "pool_width": k, "stride": s})
    assert np.allclose(out, ref_out)
    assert np.allclose(layer.backward(up), max_pool_backward_naive(up, ref_cache))
print("Random 7x7 integer maps, kernel/stride (2,2) (3,1) (2,1) (3,2): loops and layer agree.")
