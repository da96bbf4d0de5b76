"""Max pooling on a 4x4 input with ties: forward, cache (field by field) and backward under
both tie rules, next to the loops of the CS231n-style note this project started from, as
minicnn.functional.reference has them.

Run: python examples/max_pooling_explained.py
"""
import numpy as np

from minicnn.functional import reference as R
from minicnn.layers import MaxPool2D
from minicnn.viz import pool_routing

# The note's naive loops (max_pool_forward_naive / max_pool_backward_naive, mask and
# np.sum), generalised and with the overlap fix, are minicnn.functional.reference's
# max_pool2d_forward / max_pool2d_backward: open that file to read them.


def show(title, a):
    print(f"{title}:\n{np.array2string(np.asarray(a), precision=3, suppress_small=True)}\n")


# -- a 4x4 input with ties ---------------------------------------------------------------
x = np.array([[1, 3, 3, 0],
              [2, 3, 1, 1],
              [5, 5, 2, 2],
              [0, 5, 2, 0]], dtype=np.float64).reshape(1, 1, 4, 4)
dout = np.array([[1.0, 2.0], [3.0, 6.0]]).reshape(1, 1, 2, 2)  # one upstream value per window

show("input x (windows are the four 2x2 quadrants)", x[0, 0])
loop_out, loop_cache = R.max_pool2d_forward(x, (2, 2), (2, 2))  # the note's loops

for ties in ("split", "first"):
    layer = MaxPool2D(kernel_size=2, stride=2, ties=ties)
    out = layer.forward(x)
    print(f"==== MaxPool2D(kernel_size=2, stride=2, ties={ties!r}) ====")
    show("forward output", out[0, 0])
    cache = layer.cache
    print(f"the layer keeps for backward a {type(cache).__name__}:")
    for name, item in cache._asdict().items():
        if isinstance(item, np.ndarray):
            values = np.array2string(item.squeeze(), precision=3).replace("\n", "\n      ")
            print(f"  {name}: array {item.shape}:\n      {values}")
        else:
            print(f"  {name}: {item!r}")
    print("backward compares cache.out with every window of cache.xp (the input, padded with\n"
          "-inf where there is padding: none here) to find each window's maxima.\n")
    show("upstream gradient dout", dout[0, 0])
    dx = layer.backward(dout)
    show(f"dx with ties={ties!r}", dx[0, 0])
    assert np.array_equal(out, loop_out)

loop_split = R.max_pool2d_backward(dout, loop_cache, ties="split")
loop_first = R.max_pool2d_backward(dout, loop_cache, ties="first")
show("the note's loops (mask / np.sum): dx", loop_split[0, 0])
show("the loops with ties='first' (np.argmax): dx", loop_first[0, 0])
split = MaxPool2D(2, ties="split")
split.forward(x)
first = MaxPool2D(2, ties="first")
first.forward(x)
assert np.allclose(split.backward(dout), loop_split), "ties='split' should equal the note's loops"
assert np.allclose(first.backward(dout), loop_first)
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
    ref_out, ref_cache = R.max_pool2d_forward(xr, (k, k), (s, s))
    assert np.allclose(out, ref_out)
    assert np.allclose(layer.backward(up), R.max_pool2d_backward(up, ref_cache))
print("Random 7x7 integer maps, kernel/stride (2,2) (3,1) (2,1) (3,2): loops and layer agree.")
