"""Peak memory and CPU time of a piece of code, measured in a fresh interpreter."""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_above_start(code):
    """Run ``code`` in a fresh interpreter after importing numpy and minicnn.data; returns
    (peak resident bytes above what the interpreter held before it, CPU seconds, its output).

    The peak is Linux's ``VmHWM`` of the process, reset after the imports (``clear_refs``);
    not ``ru_maxrss``, which a child started by a big parent (pytest after many tests)
    inherits from it."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to measure peak memory")
    script = textwrap.dedent("""
        import time
        import numpy as np
        import minicnn.data

        def status(key):
            with open("/proc/self/status") as f:
                return next(int(x.split()[1]) for x in f if x.startswith(key)) * 1024

        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) starts again from what is resident now
        start_rss = status("VmRSS:")
        start = time.process_time()
    """) + textwrap.dedent(code) + textwrap.dedent("""
        seconds = time.process_time() - start
        print("MEASURED", status("VmHWM:") - start_rss, seconds)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, MINICNN_DATA=os.path.join(ROOT, "no-such-dir"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("MEASURED"))
    _, added, seconds = line.split()
    return int(added), float(seconds), result.stdout
