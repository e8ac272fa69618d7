"""Where the time of one training sample goes: each kernel piece timed alone, per sample.

The model is the throughput benchmark's (default GRU, H=64, D=8, k1 = k2 = 16, SGD,
float64). Each piece runs in a compiled loop on the model's own arrays (after 2,000
samples of training), so the figures add up to roughly what ``run`` costs:

* forward: the cell's step (both matvecs and the gates), and the recurrent matvec alone
  (``W_hh h`` from the transposed copy), whose bytes over time give the bandwidth it got;
* update, amortised over the k1 samples of a window: the backward steps (and the
  ``W_hh^T`` matvec alone), the window's weight-gradient products, and the optimizer
  with the transposed-weight refresh and the norms (``finish_update``);
* ``run`` with and without targets (without: no update at all), and the Python loop of
  ``predict`` + ``learn``, whose difference to ``run`` is the call overhead.

CPU time, best of 5. Usage: python benchmarks/breakdown.py [--cell gru] [--hidden 64]
[--input 8] [--k 16] [--dtype float64]
"""

import argparse
import time

import numba
import numpy as np

import streamrnn as sr
from streamrnn import bench, cells
from streamrnn.kernels import layout as L
from streamrnn.kernels import tbptt as T
from streamrnn.kernels.linalg import gemv_colmajor_add, gemv_rowmajor_t_add


@numba.njit
def _forward(n, meta, mem, x, s, s_out, act, gi, gh):
    for _ in range(n):
        T.cell_forward(meta, mem, x, s, s_out, act, gi, gh)


@numba.njit
def _matvec(n, wt, rows, cols, h, out):
    for _ in range(n):
        gemv_colmajor_add(wt, rows, cols, h, out)


@numba.njit
def _backward(n, meta, mem, s, s_next, act, ds_next, ds, dgi, dgh):
    for _ in range(n):
        T.cell_backward(meta, mem, s, s_next, act, ds_next, ds, dgi, dgh)


@numba.njit
def _matvec_t(n, w, rows, cols, v, out):
    for _ in range(n):
        gemv_rowmajor_t_add(w, rows, cols, v, out)


@numba.njit
def _weight_grads(n, meta, mem, work, t_w):
    for _ in range(n):
        T.accumulate_weight_grads(meta, mem, work, t_w)


@numba.njit
def _finish(n, meta, fmeta, mem, iwork, t_w):
    for _ in range(n):
        T.finish_update(meta, fmeta, mem, iwork, 0.5, 0.5, t_w)


def best_of(fn, *args, n=2000, rounds=5):
    """Seconds per call of ``fn(n, *args)``'s body: the best of ``rounds`` CPU-timed runs."""
    fn(2, *args)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        fn(n, *args)
        best = min(best, time.process_time() - start)
    return best / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="gru", choices=bench.CELLS)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--input", type=int, default=8)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    args = ap.parse_args(argv)
    X, Y = (a.astype(args.dtype) for a in bench.make_stream(20000, args.input))

    def model():
        return sr.StreamRNN(cell=args.cell, input_size=args.input, hidden_size=args.hidden, k1=args.k,
                            lr=1e-9, seed=0, dtype=args.dtype)  # a tiny lr keeps the weights as they are

    m = model()
    m.run(X[:2000], Y[:2000])
    meta, fmeta, mem, work = m._meta, m._fmeta, m._mem, m._work
    d, h, k = args.input, args.hidden, args.k
    gh, s_w, a_w = int(meta[L.G]) * h, int(meta[L.S]), int(meta[L.A])
    wt = mem[meta[L.OFF_WT] + gh * d : meta[L.MEM_SIZE]]
    w_hh = mem[gh * d : gh * (d + h)]
    scratch = cells.aligned_zeros((6, cells.aligned(max(gh, s_w, a_w, 1))), args.dtype)
    s, s_out, act, g1, g2, ds = (scratch[i] for i in range(6))
    s[:s_w] = m._slab[0, :s_w]
    rows = []

    def row(name, seconds, per=1):
        rows.append((name, seconds / per * 1e6))

    row("forward step (cell)", best_of(_forward, meta, mem, X[0], s[:s_w], s_out[:s_w], act[:a_w], g1[:gh], g2[:gh]))
    t_mv = best_of(_matvec, wt, gh, h, s[:h], g1[:gh], n=20000)
    row("  of which the W_hh matvec", t_mv)
    row("backward step (cell)", best_of(_backward, meta, mem, s[:s_w], s_out[:s_w], act[:a_w], s_out[:s_w],
                                        ds[:s_w], g1[:gh], g2[:gh]))
    row("  of which the W_hh^T matvec", best_of(_matvec_t, w_hh, gh, h, g1[:gh], ds[:h], n=20000))
    row(f"window weight gradients (/{k})", best_of(_weight_grads, meta, mem, work, k), per=k)
    row(f"optimizer, W^T refresh, norms (/{k})", best_of(_finish, meta, fmeta, mem, m._iwork, k), per=k)

    def per_sample(f, n=len(X)):
        best = float("inf")
        for _ in range(3):
            f(100)
            start = time.process_time()
            f(n)
            best = min(best, (time.process_time() - start) / n)
        return best

    def run_all(n, mask=None):
        mm = model()
        mm.run(X[:n], Y[:n], mask=None if mask is None else mask[:n])

    def loop(n):
        mm = model()
        p, learn = mm.predict, mm.learn
        for i in range(n):
            p(X[i])
            learn(X[i], Y[i])

    no_targets = np.zeros(len(X), dtype=bool)
    row("run, without targets (no updates)", per_sample(lambda n: run_all(n, no_targets)))
    row("run", per_sample(run_all))
    row("predict + learn from Python", per_sample(loop))
    print(f"{args.cell}, H={h}, D={d}, k1=k2={k}, SGD, {args.dtype}: microseconds per sample (CPU time, best of 5)")
    for name, us in rows:
        print(f"{name:40s} {us:8.3f}")
    nbytes = gh * h * np.dtype(args.dtype).itemsize
    print(f"W_hh is {nbytes / 1024:.0f} KiB: the matvec streamed it at {nbytes / t_mv / 1e9:.0f} GB/s")


if __name__ == "__main__":
    main()
