"""Shared test helpers: a seeded Generator, a tiny network and data set for training tests,
train.py in a subprocess, and a local HTTP server (127.0.0.1) for the download tests."""
import http.server
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from minicnn.layers import BatchNorm2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import Sequential

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def rng():
    """A fresh Generator per test, so a test's inputs do not depend on which tests ran before."""
    return np.random.default_rng(0)


def tiny_net(seed=0, dropout=True):
    """Conv-BN-ReLU-pool, (dropout) and an affine layer on 3x8x8 images: every kind of state."""
    g = np.random.default_rng(seed)
    return Sequential(Conv2D(3, 4, 3, padding=1, seed=g), BatchNorm2D(4), ReLU(), MaxPool2D(2),
                      Flatten(), *([Dropout(0.2, seed=g)] if dropout else []),
                      Linear(4 * 4 * 4, 3, seed=g))


def channel_data(n, n_train):
    """Three classes of 3x8x8 noise told apart by which channel is brightest:
    ((x_train, y_train), (x_val, y_val)) with ``n_train`` of the ``n`` samples for training."""
    g = np.random.default_rng(0)
    y = g.integers(0, 3, n)
    x = g.standard_normal((n, 3, 8, 8)).astype(np.float32)
    x[np.arange(n), y] += 1.0
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def assert_matches_torch(torch, ours, theirs, x, y):
    """One softmax cross-entropy step of a float64 minicnn network and the same network in
    PyTorch (same weights): the loss, dL/dx, every parameter's gradient and every buffer
    (running statistics) agree to float64 round-off."""
    from minicnn.losses import SoftmaxCrossEntropy
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn(ours(x), y)
    dx = ours.backward(loss_fn.backward())
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(theirs(tx), torch.tensor(y))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-10
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-7, atol=1e-10)
    tparams = dict(theirs.named_parameters())
    assert set(tparams) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-7, atol=1e-10,
                                   err_msg=name)
    tstate = theirs.state_dict()
    for name, buf in ours.named_buffers():
        np.testing.assert_allclose(buf, tstate[name].numpy(), rtol=1e-10, err_msg=name)


def train_py(*args, check=True):
    """Run train.py in a subprocess with $MINICNN_DATA pointing at an empty folder (so no
    CIFAR-10 is found); with ``check``, it must exit 0."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MINICNN_DATA=os.path.join(ROOT, "tests", "no-such-data-dir"))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *map(str, args)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}  # path -> (body, declared Content-Length)

    def do_GET(self):
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, length = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """Serve ``_Handler.routes`` on 127.0.0.1; yields a function route(path, body, length)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def route(path, body, length=None):
        _Handler.routes[path] = (body, len(body) if length is None else length)
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    yield route
    httpd.shutdown()
    httpd.server_close()


class InterruptAt(SoftmaxCrossEntropy):
    """Sends this process ``times`` SIGINTs (real Ctrl-Cs) during its ``at``-th call;
    ``kwargs`` go to SoftmaxCrossEntropy (e.g. label_smoothing)."""

    def __init__(self, at, times=1, **kwargs):
        super().__init__(**kwargs)
        self.calls, self.at, self.times = 0, at, times

    def forward(self, scores, y):
        self.calls += 1
        if self.calls == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)
        return super().forward(scores, y)
