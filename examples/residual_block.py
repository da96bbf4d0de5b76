"""A residual network in a few lines, trained briefly with ``fit``, saved and reloaded.

Run: python examples/residual_block.py   (a few seconds; it writes nothing to the current folder)
"""

import tempfile
from pathlib import Path

from minicnn.data import SYNTHETIC_CLASSES, fit_normalizer, normalize, synthetic_cifar
from minicnn.layers import BatchNorm2D, Conv2D, ReLU, Residual
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import Sequential, resnet_small
from minicnn.optim import Adam
from minicnn.training import evaluate, fit

# One basic block by hand: out = relu(body(x) + shortcut(x)); the shortcut matches the shape.
block = Sequential(
    Residual(body=Sequential(Conv2D(16, 32, 3, stride=2, padding=1, bias=False),
                             BatchNorm2D(32), ReLU(),
                             Conv2D(32, 32, 3, padding=1, bias=False), BatchNorm2D(32)),
             shortcut=Sequential(Conv2D(16, 32, 1, stride=2, bias=False), BatchNorm2D(32))),
    ReLU())
print(block)

# resnet_small stacks such blocks: stem, 2 blocks per stage, global pooling, one affine layer.
model = resnet_small(num_classes=len(SYNTHETIC_CLASSES), widths=(8, 16, 32), blocks=1, seed=0)
model.summary((3, 32, 32))

x_train, y_train = synthetic_cifar(1200, seed=0)
x_val, y_val = synthetic_cifar(300, seed=1)
mean, std = fit_normalizer(x_train)
x_train, x_val = normalize(x_train, mean, std), normalize(x_val, mean, std)

loss_fn = SoftmaxCrossEntropy()
history = fit(model, loss_fn, Adam(model.parameters(), lr=3e-3), (x_train, y_train),
              (x_val, y_val), epochs=3, batch_size=50, progress=False)
for epoch, acc in zip(history["epoch"], history["val_acc"]):
    print(f"epoch {epoch}: validation accuracy {acc:.1%}")

with tempfile.TemporaryDirectory() as folder:  # the example leaves no file behind
    path = Path(folder) / "resnet_small.npz"
    model.save(path)  # nested keys: "3.body.0.weight", ...
    again = resnet_small(num_classes=10, widths=(8, 16, 32), blocks=1).load(path)
print(f"reloaded: validation accuracy {evaluate(again, loss_fn, x_val, y_val)[1]:.1%} "
      f"(chance is {1 / len(SYNTHETIC_CLASSES):.0%})")
