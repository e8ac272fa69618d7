"""Keyed streams at scale: bytes per key, resident memory with a million keys, throughput.

GRU, H=32, D=8, O=1, k1=k2=16, float32, SGD, one thread. Three figures:

* state per key: ``bytes_per_key`` (slab row + step count + slot record + hash table
  share, at capacity 1,000,000), against the 1 KiB target; and, for reference, the
  per-key cost of ``shared=False`` (each key its own weights and adam moments).
* resident memory: a model with capacity 1,000,000 after every key has learned a
  sample (VmRSS of this process, and its peak VmHWM), against 1.5 GiB.
* throughput: ``run`` over the same number of rows, (a) one stream (``StreamRNN.run``)
  and (b) 1,000,000 keys in uniformly random interleaving (``KeyedStreamRNN.run``),
  both in chunks of ``--chunk`` rows generated outside the timed calls. With
  ``--rows-per-key`` 32 most keys reach TBPTT boundaries, so both runs do a similar
  number of updates (printed).

Usage: python benchmarks/keyed.py [--keys 1000000] [--rows-per-key 32] [--chunk 1000000]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import streamrnn as sr  # noqa: E402

CFG = dict(cell="gru", input_size=8, hidden_size=32, output_size=1, k1=16, lr=0.01, dtype="float32", seed=0)


def status_kib(field):
    """A ``/proc/self/status`` field in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def chunk_data(rng, n, keys_total=None):
    X = rng.standard_normal((n, CFG["input_size"]), dtype=np.float32)
    Y = np.tanh(X[:, :1] + 0.5 * X[:, 1:2])
    keys = None if keys_total is None else rng.integers(0, keys_total, n)
    return keys, X, Y


def timed_runs(model, rows, chunk, seed, keys_total=None):
    """Samples/s of ``model.run`` over ``rows`` rows in chunks (data made outside the timer),
    by wall clock and by this process's CPU time (robust when other processes share the cores)."""
    rng = np.random.default_rng(seed)
    wall = cpu = 0.0
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        keys, X, Y = chunk_data(rng, n, keys_total)
        t, c = time.perf_counter(), time.process_time()
        if keys is None:
            model.run(X, Y)
        else:
            model.run(keys, X, Y)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        done += n
    return rows / wall, rows / cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--rows-per-key", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    a = ap.parse_args(argv)
    n_keys, rows = a.keys, a.keys * a.rows_per_key
    sr.warmup()
    rss0 = status_kib("VmRSS")

    # ---- memory: every key holds a state
    m = sr.KeyedStreamRNN(**CFG, capacity=n_keys)
    lay = m._layout
    rng = np.random.default_rng(1)
    for start in range(0, n_keys, a.chunk):
        ids = np.arange(start, min(start + a.chunk, n_keys), dtype=np.int64)
        rng.shuffle(ids)
        _, X, Y = chunk_data(rng, len(ids))
        m.run(ids, X, Y)
    assert len(m) == n_keys
    rss, hwm = status_kib("VmRSS"), status_kib("VmHWM")
    item = np.dtype(CFG["dtype"]).itemsize
    print(f"GRU H=32 D=8 O=1 k1=k2=16 float32 SGD; capacity {n_keys:,}")
    print("| figure | measured | target |")
    print("|---|---:|---:|")
    print(f"| slab row (state, window start, xs, ys, mask) | {lay.row_size * item} B | |")
    print(f"| state per key (slabs + key map) / capacity | {m.bytes_per_key:,.1f} B | <= 1024 B |")
    if rss is not None:
        print(f"| resident memory, {n_keys:,} keys held | {rss / 2**20:.2f} GiB (peak {hwm / 2**20:.2f}) "
              f"| <= 1.5 GiB |")
        print(f"| of which before the model existed | {rss0 / 2**20:.2f} GiB | |")
    u = sr.KeyedStreamRNN(**{**CFG, "optimizer": "adam"}, capacity=1000, shared=False)
    print(f"| shared=False, adam: state per key | {u.bytes_per_key:,.0f} B | |")

    # ---- throughput: same rows, one stream vs n_keys random keys (the model above, warm)
    single = sr.StreamRNN(**CFG)
    single_rate = timed_runs(single, rows, a.chunk, seed=2)
    before = m.diagnostics()
    keyed_rate = timed_runs(m, rows, a.chunk, seed=3, keys_total=n_keys)
    after = m.diagnostics()
    print(f"| one stream, run: {rows:,} rows ({single.diagnostics()['updates']:,} updates) "
          f"| {single_rate[0]:,.0f} samples/s (CPU time: {single_rate[1]:,.0f}) | |")
    print(f"| {n_keys:,} random keys, run: {rows:,} rows ({after['updates'] - before['updates']:,} updates) "
          f"| {keyed_rate[0]:,.0f} samples/s ({keyed_rate[0] / single_rate[0]:.2f}x; CPU time: "
          f"{keyed_rate[1]:,.0f}, {keyed_rate[1] / single_rate[1]:.2f}x) | >= 0.5x |")
    if rss is not None:
        print(f"| resident memory at the end (peak) | {status_kib('VmRSS') / 2**20:.2f} GiB "
              f"({status_kib('VmHWM') / 2**20:.2f}) | |")


if __name__ == "__main__":
    main()
