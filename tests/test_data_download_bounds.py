"""Downloads bounded in bytes and time, tried against a hostile server on 127.0.0.1: one that
streams without a Content-Length for ever, one whose Content-Length lies, one that stalls and
one that trickles. Each must stop within a few seconds, having read no more than the file's
known size (or the hard cap) plus one byte, and leave nothing behind."""
import hashlib
import http.server
import os
import threading
import time
import urllib.request

import pytest
from memory_checks import peak_above_start

from minicnn.data import download, load_cifar10, load_fashion_mnist, mnist
from minicnn.data.download import fetch, gzip_limit

LABELS = "train-labels-idx1-ubyte"
ZERO_MD5 = {name: "0" * 32 for name in mnist.FILES}  # not the published ones: no known size


class _Hostile(http.server.BaseHTTPRequestHandler):
    """GET /<mode>/...: 'forever' (no Content-Length, zeros until the client leaves), 'lie-<n>'
    (announces n bytes, sends zeros for ever), 'stall' (announces 10**6, sends 64 KiB and
    waits), 'trickle' (no Content-Length, one byte every 20 ms)."""
    sent = {}  # mode -> bytes written before the client went away
    done = {}  # mode -> threading.Event set when the handler stopped sending
    stop = threading.Event()

    def do_GET(self):
        mode = self.path.split("/")[1]
        self.send_response(200)
        if mode.startswith("lie-"):
            self.send_header("Content-Length", mode[4:])
        elif mode == "stall":
            self.send_header("Content-Length", str(10 ** 6))
        self.end_headers()
        sent, chunk = 0, b"\0" * (1 if mode == "trickle" else 1 << 16)
        try:
            while not self.stop.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
                if mode == "stall":
                    self.stop.wait(60)
                elif mode == "trickle":
                    self.stop.wait(0.02)
        except OSError:  # the client hung up: what we want
            pass
        finally:
            self.sent[mode] = sent
            self.done.setdefault(mode, threading.Event()).set()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hostile():
    _Hostile.stop.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Hostile.stop.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def received(monkeypatch):
    """Count the bytes the client reads from every response (a list, one count per URL)."""
    counts = []
    real = urllib.request.urlopen

    class Counting:
        def __init__(self, response):
            self.response, self.index = response, len(counts)
            counts.append(0)

        def _count(self, data):
            counts[self.index] += len(data)
            return data

        def read(self, n=-1):
            return self._count(self.response.read(n))

        def read1(self, n=-1):
            return self._count(self.response.read1(n))

        def __getattr__(self, name):
            return getattr(self.response, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **kw: Counting(real(*a, **kw)))
    return counts


def _download_fails(root, url_base, error, match, **kw):
    """load_fashion_mnist(download=True) from ``url_base`` fails with ``error`` in under
    10 s and leaves nothing in ``root``; returns the message."""
    root.mkdir()
    start = time.monotonic()
    with pytest.raises(error, match=match) as info:
        load_fashion_mnist(root, download=True, base_url=url_base, **kw)
    assert time.monotonic() - start < 10
    assert os.listdir(root) == []
    return str(info.value)


def test_a_stream_without_length_stops_at_the_cap(tmp_path, hostile, received, monkeypatch):
    monkeypatch.setattr(mnist, "FASHION_MNIST", mnist.FASHION_MNIST._replace(system_dir=None))
    cap = gzip_limit(16 + 60_000 * 784)  # the largest images file, stored incompressible
    message = _download_fails(tmp_path / "data", f"{hostile}/forever/", ValueError,
                              rf"more than {cap} bytes, the most the file can take",
                              md5=ZERO_MD5)
    assert "forever/train-images-idx3-ubyte.gz" in message  # the first file fetched
    assert received == [cap + 1]  # read up to the cap and one byte more, then stopped
    assert _Hostile.done["forever"].wait(5)  # the server saw the client leave


def test_a_capped_download_holds_one_chunk_in_memory(tmp_path, hostile):
    # 64 MiB streamed from a server that never stops: written to disk as it comes, so the
    # interpreter's peak grows by about one chunk (1 MiB), not by the download
    cap = 64 << 20
    added, seconds, out = peak_above_start(f"""
        from minicnn.data.download import fetch
        try:
            fetch({hostile + "/forever/x"!r}, {str(tmp_path / "x")!r}, "0" * 32, "advice",
                  "labels", limit={cap})
        except ValueError as e:
            print("REFUSED", e)
    """)
    assert f"more than {cap} bytes" in out
    assert (tmp_path / "x").stat().st_size <= cap  # the chunk past the cap is not written
    assert added <= 16 << 20, added / (1 << 20)


def test_the_published_size_bounds_a_stream_without_length(tmp_path, hostile, received):
    with pytest.raises(ValueError, match="more than the 29515 bytes of the published file"):
        fetch(f"{hostile}/forever/x", tmp_path / "x", mnist.FASHION_MNIST.md5[LABELS],
              "advice", "labels", size=29_515, limit=10 ** 9)
    assert received == [29_516]


@pytest.mark.parametrize("announced, size, match", [
    (10 ** 12, None, r"announces 1000000000000 bytes, more than the 100000 the file can take"),
    (29_516, 29_515, r"announces 29516 bytes, but the published file has 29515"),
    (29_514, 29_515, r"announces 29514 bytes, but the published file has 29515"),
])
def test_a_lying_content_length_is_refused_before_reading(tmp_path, hostile, received,
                                                           announced, size, match):
    with pytest.raises(ValueError, match=match):
        fetch(f"{hostile}/lie-{announced}/x", tmp_path / "x", "0" * 32, "advice", "labels",
              size=size, limit=100_000)
    assert received == [0]


def test_a_content_length_shorter_than_the_stream_bounds_it(tmp_path, hostile, received):
    # announces 5000 within the cap, sends for ever: 5000 bytes are read, then the MD5 fails
    with pytest.raises(ValueError, match="has MD5 .*expected 0000"):
        fetch(f"{hostile}/lie-5000/x", tmp_path / "x", "0" * 32, "advice", "labels",
              limit=100_000)
    assert received == [5000]
    # and a file that does have those 5000 zeros passes
    fetch(f"{hostile}/lie-5000/y", tmp_path / "y", hashlib.md5(b"\0" * 5000).hexdigest(),
          "advice", "labels", limit=5000)
    assert (tmp_path / "y").read_bytes() == b"\0" * 5000


def test_the_cap_is_inclusive(tmp_path, hostile, received):
    with pytest.raises(ValueError, match="more than 5000 bytes"):
        fetch(f"{hostile}/forever/x", tmp_path / "x", "0" * 32, "advice", "labels", limit=5000)
    fetch(f"{hostile}/lie-5000/y", tmp_path / "y", hashlib.md5(b"\0" * 5000).hexdigest(),
          "advice", "labels", limit=5000)  # exactly the cap: fine


@pytest.mark.parametrize("mode, match, most", [
    ("stall", "stalled: no data for 1 s", 1 << 16),  # one chunk, then nothing
    ("trickle", r"stalled: \d+ bytes in the last 1 s \(less than 1024 bytes/s\)", 1024),
])
def test_a_stalled_or_trickling_server_times_out(tmp_path, hostile, received, monkeypatch,
                                                   mode, match, most):
    monkeypatch.setattr(download, "STALL_SECONDS", 1.0)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=match):
        fetch(f"{hostile}/{mode}/x", tmp_path / "x", "0" * 32, "delete it", "labels",
              limit=10 ** 6)
    assert time.monotonic() - start < 5
    assert received[0] <= most


@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_a_stalled_download_through_the_loader_leaves_nothing(tmp_path, hostile, monkeypatch,
                                                              mode):
    monkeypatch.setattr(download, "STALL_SECONDS", 1.0)
    monkeypatch.setattr(mnist, "FASHION_MNIST", mnist.FASHION_MNIST._replace(system_dir=None))
    message = _download_fails(tmp_path / "data", f"{hostile}/{mode}/", ConnectionError,
                              "stalled", md5=ZERO_MD5)
    assert message.count("\n") == 0 and f"{mode}/train-images-idx3-ubyte.gz" in message


def test_cifar_download_is_bounded_and_leaves_nothing(tmp_path, hostile, received):
    root = tmp_path / "data"
    start = time.monotonic()
    with pytest.raises(ValueError, match="the most the file can take"):
        load_cifar10(root, download=True, url=f"{hostile}/forever/cifar.tar.gz", md5="0" * 32)
    assert time.monotonic() - start < 30
    assert os.listdir(root) == []
    from minicnn.data.cifar10 import ALL_FILES, MAX_BATCH_BYTES
    assert received == [gzip_limit(len(ALL_FILES) * MAX_BATCH_BYTES + (1 << 20)) + 1]


def test_the_published_cifar_archive_size_is_enforced(tmp_path, hostile, received):
    from minicnn.data.cifar10 import CIFAR10_MD5
    with pytest.raises(ValueError, match="announces 1000 bytes, but the published file has "
                                         "170498071"):
        load_cifar10(tmp_path, download=True, url=f"{hostile}/lie-1000/c.tar.gz",
                     md5=CIFAR10_MD5)
    assert received == [0]
