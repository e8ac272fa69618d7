"""Time to first prediction in a fresh process, with numba's cache warm and cold.

Each measurement starts a new interpreter that imports streamrnn, builds a GRU model and
makes one prediction (and one learn step), timing from interpreter start-up to the
result. "cold" first empties the kernel cache (``__pycache__/*.nbi|*.nbc`` next to the
kernels), so it includes compilation.

Usage: python benchmarks/first_prediction.py [--repeat 5] [--cold]
"""

import argparse
import pathlib
import statistics
import subprocess
import sys
import time

CHILD = r"""
import time
t0 = time.perf_counter()
import numpy as np
import streamrnn as sr
t1 = time.perf_counter()
m = sr.StreamRNN(cell="gru", input_size=8, hidden_size=64, k1=16)
p = m.predict(np.zeros(8))
t2 = time.perf_counter()
m.learn(np.zeros(8), [0.0])
t3 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t1:.4f} {t3 - t2:.4f}")
"""


def clear_cache():
    import streamrnn

    root = pathlib.Path(streamrnn.__file__).parent
    n = 0
    for pattern in ("*.nbi", "*.nbc"):
        for f in root.rglob(pattern):
            f.unlink()
            n += 1
    return n


def one():
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    total = time.perf_counter() - t
    imp, first, learn = (float(v) for v in out.split())
    return total, imp, first, learn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also measure once with an empty cache")
    a = ap.parse_args(argv)
    if a.cold:
        clear_cache()
        total, imp, first, learn = one()
        print(f"cold cache: process start to first prediction {total - learn:.2f} s "
              f"(import {imp:.2f} s, build + compile + predict {first:.2f} s, first learn {learn:.2f} s)")
    one()  # make sure the cache is warm
    runs = [one() for _ in range(a.repeat)]
    med = [statistics.median(r[i] for r in runs) for i in range(4)]
    print(f"warm cache (median of {a.repeat}): process start to first prediction {med[0] - med[3]:.2f} s "
          f"(import {med[1]:.2f} s, build + predict {med[2]:.2f} s, first learn {med[3] * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
