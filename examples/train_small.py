"""Compose a small conv net and train it on a subset of the synthetic CIFAR-style data.

Run: python examples/train_small.py   (a few seconds)
"""
import numpy as np

from minicnn.data import SYNTHETIC_CLASSES, DataLoader, fit_normalizer, normalize, synthetic_cifar
from minicnn.layers import BatchNorm2D, Conv2D, GlobalAvgPool2D, Linear, MaxPool2D, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import Sequential
from minicnn.optim import Adam

x_train, y_train = synthetic_cifar(1500, seed=0)  # uint8 (N, 3, 32, 32), labels 0..9
x_val, y_val = synthetic_cifar(300, seed=1)
mean, std = fit_normalizer(x_train)                # per-channel, from the training set only
x_train, x_val = normalize(x_train, mean, std), normalize(x_val, mean, std)

model = Sequential(
    Conv2D(3, 16, kernel_size=3, padding=1, seed=0), BatchNorm2D(16), ReLU(), MaxPool2D(2),
    Conv2D(16, 32, kernel_size=3, padding=1, seed=1), BatchNorm2D(32), ReLU(), MaxPool2D(2),
    Conv2D(32, 32, kernel_size=3, padding=1, seed=2), ReLU(), GlobalAvgPool2D(),
    Linear(32, len(SYNTHETIC_CLASSES), seed=3),
)
model.summary((3, 32, 32))
loss_fn = SoftmaxCrossEntropy()
optimizer = Adam(model.parameters(), lr=3e-3)
batches = DataLoader(x_train, y_train, batch_size=50, shuffle=True, rng=0)

for epoch in range(4):
    model.train()
    for xb, yb in batches:
        loss = loss_fn(model(xb), yb)        # forward
        model.backward(loss_fn.backward())   # backward: fills every parameter's .grad
        optimizer.step()
        optimizer.zero_grad()
    model.eval()                             # BatchNorm uses its running statistics
    val_acc = np.mean(model(x_val).argmax(axis=1) == y_val)
    print(f"epoch {epoch + 1}: last batch loss {loss:.3f}, validation accuracy {val_acc:.1%}")
print(f"chance is {1 / len(SYNTHETIC_CLASSES):.0%}; python train.py trains longer, with a report")
