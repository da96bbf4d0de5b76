"""GFLOP/s of the matrix products inside minicnn's convolutions, per layer shape.

    python benchmarks/gemm_rates.py --clock cpu    # one BLAS thread, as minicnn's kernels use it
    python benchmarks/gemm_rates.py --blas-threads 2

For each conv shape of the model zoo (batch 128, 3x3 pad 1 unless noted) it times the
three products of a training step on one im2col band as conv2d_forward/backward build it
(``conv._bands``: at most BAND_BYTES of columns): forward W (F, K) @ cols (K, P); on the
scatter route dW = cols (K, P) @ dout^T (P, F) and dL/dcols = W^T (K, F) @ dout (F, P);
on the gather route dW = x (C, P) @ dcols^T (P, F*k) and dx = W_flip (C, F*k) @ dcols
(F*k, P), dcols the im2col columns of dout; K = C*kh*kw, P = the band's rows * W' * N.
Medians of --repeats calls; prints the OpenBLAS kernel.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minicnn.functional import conv as conv_mod  # noqa: E402

#: (C, F, H, kernel, what): the conv layers of vgg_small (1x28x28 and 3x32x32 inputs),
#: three_layer_convnet and the benchmark's single 3x3 conv.
SHAPES = [(16, 16, 28, 3, "vgg_small 28x28, stage 1"), (32, 32, 14, 3, "vgg_small 28x28, stage 2"),
          (64, 64, 7, 3, "vgg_small 28x28, stage 3"), (16, 16, 32, 3, "vgg_small 32x32, stage 1"),
          (32, 32, 16, 3, "vgg_small 32x32, stage 2"), (64, 64, 8, 3, "vgg_small 32x32, stage 3"),
          (32, 64, 16, 3, "the benchmark's 3x3 32->64"), (3, 32, 32, 7, "three_layer 7x7 3->32")]


def blas():
    try:
        from threadpoolctl import threadpool_info
        return ", ".join(f"{p['internal_api']} {p['version']} ({p.get('architecture')} kernel, "
                         f"{p['num_threads']} threads)"
                         for p in threadpool_info() if p.get("user_api") == "blas")
    except ImportError:
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
        return f"threadpoolctl not installed; OPENBLAS_NUM_THREADS={threads}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads (default 1, as inside minicnn's kernels)")
    args = p.parse_args(argv)
    if args.clock == "cpu" and args.blas_threads != 1:
        p.error("--clock cpu adds up the CPU time of all threads: use it with --blas-threads 1")
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=args.blas_threads, user_api="blas")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    N, rng = args.batch_size, np.random.default_rng(0)

    def rate(flop, f):
        f()
        ts = []
        for _ in range(args.repeats):
            t0 = clock()
            f()
            ts.append(clock() - t0)
        return flop / np.median(ts) / 1e9

    print(f"BLAS: {blas()}; {args.clock} clock; load average {os.getloadavg()[0]:.2f} on "
          f"{len(os.sched_getaffinity(0))} CPUs")
    print("| layer | C->F | band P | forward | dW | dx | route |")
    print("|---|---|---|---|---|---|---|")
    for C, F, H, k, what in SHAPES:
        K = C * k * k
        bands = conv_mod._bands(K, H, H * N, np.dtype(np.float32).itemsize)
        P = (bands[0][1] - bands[0][0]) * H * N
        w2 = rng.standard_normal((F, K), dtype=np.float32)
        cols = rng.standard_normal((K, P), dtype=np.float32)
        d = rng.standard_normal((F, P), dtype=np.float32)
        out = np.empty((F, P), np.float32)
        gather = conv_mod.dx_by_gather((k, k), (1, 1), (k // 2, k // 2), (C, F))
        flop = 2 * F * K * P
        fwd = rate(flop, lambda: np.matmul(w2, cols, out=out))
        if gather:  # both from the im2col columns of dout (bands of dx rows: P as well)
            x_band = rng.standard_normal((C, P), dtype=np.float32)
            wf = rng.standard_normal((C, F * k * k), dtype=np.float32)
            dcols = rng.standard_normal((F * k * k, P), dtype=np.float32)
            dxo = np.empty((C, P), np.float32)
            dw = rate(flop, lambda: x_band @ dcols.T)
            dx = rate(flop, lambda: np.matmul(wf, dcols, out=dxo))
        else:
            dw = rate(flop, lambda: cols @ d.T)
            dx = rate(flop, lambda: np.matmul(w2.T, d, out=cols))
        print(f"| {what} | {C}->{F} | {P:,} | {fwd:.0f} | {dw:.0f} | {dx:.0f} | "
              f"{'gather' if gather else 'scatter'} |")
    print("GFLOP/s, medians; a band is what one product of conv2d_forward/backward covers.")


if __name__ == "__main__":
    main()
