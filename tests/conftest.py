"""Shared fixtures: a seeded Generator and a local HTTP server (127.0.0.1) for the download tests."""
import http.server
import threading

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


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
