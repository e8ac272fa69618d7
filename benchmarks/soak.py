"""Soak test: millions of samples through ``learn``; resident memory must not grow.

One model learns a noisy multi-sine stream sample by sample (``predict`` then ``learn``,
as a service would), checkpointing now and then. Resident memory (RSS) is measured after
a warm-up and then at regular intervals; the run passes if RSS at the end exceeds RSS
after the warm-up by less than 1%. The stream is generated in chunks, so the data itself
takes constant memory.

Usage: python benchmarks/soak.py [--samples 10000000] [--cell gru] [--hidden 32]
       [--input 4] [--k1 16] [--k2 32] [--save-every 1000000]
"""

import argparse
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import streamrnn as sr  # noqa: E402


def rss_bytes():
    """Current resident set size (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def chunks(n, d, size, seed=0):
    """(X, Y) chunks of a stream whose target is the next value of its first input.

    Every chunk is written into the same preallocated buffers, so generating the data
    allocates nothing after the first chunk (X and Y are views, valid until the next one).
    """
    rng = np.random.default_rng(seed)
    freqs = 1.0 / (5.0 + 3.0 * np.arange(d))
    steps = np.arange(size + 1, dtype=np.float64)[:, None]
    t = np.empty_like(steps)
    S = np.empty((size + 1, d))
    noise = np.empty((size + 1, d))
    t0 = 0
    while t0 < n:
        m = min(size, n - t0)
        np.add(steps, t0, out=t)
        np.multiply(t, freqs, out=S)
        np.sin(S, out=S)
        rng.standard_normal(out=noise)
        noise *= 0.05
        S += noise
        yield S[:m], S[1 : m + 1, :1]
        t0 += m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--cell", default="gru", choices=["elman", "gru", "lstm"])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--input", type=int, default=4)
    ap.add_argument("--k1", type=int, default=16)
    ap.add_argument("--k2", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=200_000)
    ap.add_argument("--save-every", type=int, default=1_000_000)
    ap.add_argument("--reports", type=int, default=10)
    a = ap.parse_args(argv)

    m = sr.StreamRNN(
        cell=a.cell, input_size=a.input, hidden_size=a.hidden, output_size=1, k1=a.k1, k2=a.k2,
        optimizer="adam", lr=1e-3, clip=1.0, history=256,
    )
    print(
        f"soak: {a.samples:,} samples through predict+learn, {a.cell} H={a.hidden} D={a.input} "
        f"k1={a.k1} k2={a.k2} adam, checkpoint every {a.save_every:,}"
    )
    ckpt = os.path.join(tempfile.mkdtemp(prefix="streamrnn-soak-"), "soak.npz")
    predict, learn = m.predict, m.learn
    report_every = max(1, a.samples // a.reports)
    rss0 = rss1 = None
    err, n_err = 0.0, 0
    done = 0
    start = time.perf_counter()
    for X, Y in chunks(a.samples, a.input, 100_000):
        for i in range(len(X)):
            p = predict(X[i])
            learn(X[i], Y[i])
            err += abs(float(p[0]) - float(Y[i, 0]))
            n_err += 1
            done += 1
            if done == a.warmup:
                m.save(ckpt)  # warm the checkpoint path too
                rss0 = rss_bytes()
                t_warm = time.perf_counter()
                print(f"  after warm-up ({done:,} samples): RSS {rss0 / 2**20:.2f} MiB")
                err, n_err = 0.0, 0
            elif a.save_every and done % a.save_every == 0:
                m.save(ckpt)
            if done == a.samples:  # measured here, while the data buffers are still alive
                rss1 = rss_bytes()
            if done % report_every == 0 and rss0 is not None:
                rate = (done - a.warmup) / (time.perf_counter() - t_warm)
                print(
                    f"  {done:>11,} samples  RSS {rss_bytes() / 2**20:8.2f} MiB  {rate:,.0f} samples/s  "
                    f"MAE {err / max(n_err, 1):.4f}"
                )
                err, n_err = 0.0, 0
    if rss0 is None:
        print("fewer samples than the warm-up: nothing measured")
        return 1
    growth = (rss1 - rss0) / rss0
    loaded = sr.StreamRNN.load(ckpt)
    d = m.diagnostics()
    print(
        f"done in {time.perf_counter() - start:.0f} s: {d['updates']:,} updates, {d['skipped']} skipped, "
        f"last checkpoint at step {loaded.steps:,}"
    )
    print(f"RSS start {rss0 / 2**20:.2f} MiB, end {rss1 / 2**20:.2f} MiB, growth {100 * growth:+.3f}%")
    ok = growth < 0.01
    print("PASS: RSS grew by less than 1%" if ok else "FAIL: RSS grew by 1% or more")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
