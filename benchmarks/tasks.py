"""Long-dependency tasks: what TBPTT(K) learns, per cell and dependency length d.

Three tasks, generated here from a seed, each learned prequentially by ``run`` (every
prediction is made before the model learns that step), k1 = k2 = K, hidden size 32,
adam lr=0.003, clip=1.0:

* delayed recall: the input is a random bit stream (as -1/+1); the target at every step is
  the bit from d steps ago (bce). Score: accuracy over the last 20% of the stream
  (chance 0.50).
* adding problem: segments of d steps; the input is (u_t ~ U(0, 1), marker, end flag); the
  first step of each segment and one random later step are marked; at the segment's last
  step (the only target) the model must output the sum of the two marked values, the first
  seen d-1 steps earlier. Score: mean squared error over the last 20% of the segments
  divided by the targets' variance (1: predicting the mean; 0.5: only the second value
  found; 0: solved). Streams hold max(50000 // d, 8000) segments.
* Mackey-Glass: next-step prediction of the Mackey-Glass series (tau=17, sampled every
  time unit, standardised). Score: RMSE over the last 20% divided by the series' standard
  deviation (NRMSE), next to the last-value baseline.

A star marks the entries where the input a target needs lies outside every window that
computes that target's gradient (lag >= K: d >= K for recall, d - 1 >= K for adding), so
TBPTT(K) has no gradient to learn the dependency from.

How to choose K: at least about twice the longest lag the model must learn. A dependency
of lag d gets gradient only from the targets that sit at least d steps into a window, so
nothing is learned at d >= K and little just below it; past a dozen steps, use a gated
cell, whose gradient still reaches the lag (an Elman net fails the adding problem at
d = 16 for every K). Each update re-runs k2 steps, so to reach further without updating
less often, raise k2 above k1.

The health monitor watches every run (with a history ring, so each update is judged);
the last line reports what it saw.

Usage: python benchmarks/tasks.py [--task all|recall|adding|mackey-glass] [--hidden 32]
       [--steps 80000] [--quick]
"""

import argparse
import logging
import time

import numpy as np

import streamrnn as sr

CELLS = ("elman", "gru", "lstm")
KS = (8, 16, 32)
DS = (2, 4, 8, 16, 32)


class Tally(logging.Handler):
    """Counts the health monitor's records by level and symptom, and where they came from."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.counts = {}
        self.where = set()
        self.run = ""

    def emit(self, record):
        key = (record.levelname, record.symptom)
        self.counts[key] = self.counts.get(key, 0) + 1
        if record.levelno >= logging.WARNING:
            self.where.add(self.run)


TALLY = Tally()


def model(cell, input_size, K, hidden, loss="mse", n_steps=0):
    m = sr.StreamRNN(
        cell=cell, input_size=input_size, hidden_size=hidden, output_size=1, k1=K, loss=loss,
        optimizer="adam", lr=0.003, clip=1.0, seed=0, history=n_steps // K + 1,
    )
    return m


# ---------------------------------------------------------------------- tasks
def recall_stream(T, d, seed=0):
    """x_t = a random bit as -1/+1; y_t = the bit of step t - d."""
    bits = np.random.default_rng(seed).integers(0, 2, T + d)
    return (2.0 * bits[d:] - 1.0)[:, None], bits[:T, None].astype(float)


def recall(cell, K, d, hidden, steps):
    TALLY.run = f"recall {cell} K={K} d={d}"
    X, Y = recall_stream(steps, d)
    m = model(cell, 1, K, hidden, loss="bce", n_steps=steps)
    P = m.run(X, Y)
    tail = slice(-steps // 5, None)
    return float(np.mean((P[tail, 0] > 0.5) == (Y[tail, 0] > 0.5)))


def adding_stream(n_segments, d, seed=1):
    """Segments of d steps: (u, marker, end flag); target at the end: the sum of the two marked u."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 1.0, (n_segments, d))
    second = rng.integers(1, d, n_segments)
    mark = np.zeros((n_segments, d))
    mark[:, 0] = 1.0
    mark[np.arange(n_segments), second] = 1.0
    end = np.zeros((n_segments, d))
    end[:, -1] = 1.0
    X = np.stack([u, mark, end], axis=-1).reshape(n_segments * d, 3)
    Y = np.zeros((n_segments * d, 1))
    Y[d - 1 :: d, 0] = u[:, 0] + u[np.arange(n_segments), second]
    mask = np.zeros(n_segments * d, dtype=bool)
    mask[d - 1 :: d] = True
    return X, Y, mask


def adding(cell, K, d, hidden, steps):
    TALLY.run = f"adding {cell} K={K} d={d}"
    n_segments = max(50000 // d, 8000) if steps >= 50000 else max(steps // d, 2000)
    X, Y, mask = adding_stream(n_segments, d)
    m = model(cell, 3, K, hidden, n_steps=len(X))
    P = m.run(X, Y, mask=mask)
    idx = np.flatnonzero(mask)[-n_segments // 5 :]
    return float(np.mean((P[idx, 0] - Y[idx, 0]) ** 2) / np.var(Y[idx, 0]))


def mackey_glass(n, tau=17.0, beta=0.2, gamma=0.1, power=10, dt=0.1, warm=1000):
    """The Mackey-Glass series (Euler steps of dt from a constant history of 1.2), sampled
    every time unit after ``warm`` units, standardised."""
    lag = int(round(tau / dt))
    per = int(round(1.0 / dt))
    x = np.full((n + warm) * per + lag, 1.2)
    for i in range(lag, len(x)):
        xd = x[i - lag]
        x[i] = x[i - 1] + dt * (beta * xd / (1.0 + xd**power) - gamma * x[i - 1])
    s = x[lag + warm * per :: per][:n]
    return (s - s.mean()) / s.std()


def mackey(cell, K, hidden, steps):
    TALLY.run = f"mackey-glass {cell} K={K}"
    s = mackey_glass(steps + 1)
    m = model(cell, 1, K, hidden, n_steps=steps)
    P = m.run(s[:-1, None], s[1:, None])
    tail = slice(-steps // 5, None)
    return float(np.sqrt(np.mean((P[tail, 0] - s[1:][tail]) ** 2)) / np.std(s))


# ---------------------------------------------------------------------- tables
def table_by_d(title, score, lag, fmt, hidden, steps):
    print(title)
    print("cell    K  | " + " ".join(f"d={d:<5d}" for d in DS))
    t0 = time.perf_counter()
    for cell in CELLS:
        for K in KS:
            cells = []
            for d in DS:
                v = score(cell, K, d, hidden, steps)
                cells.append((fmt.format(v) + ("*" if lag(d) >= K else " ")).ljust(7))
            print(f"{cell:6s} {K:2d}  | " + " ".join(cells), flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="all", choices=["all", "recall", "adding", "mackey-glass"])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=80000, help="stream length (recall, Mackey-Glass)")
    ap.add_argument("--quick", action="store_true", help="short streams: a smoke test, not the results")
    args = ap.parse_args()
    steps = 5000 if args.quick else args.steps
    logger = logging.getLogger("streamrnn")
    logger.setLevel(logging.INFO)
    logger.addHandler(TALLY)  # counted and summarised below instead of printed
    logger.propagate = False
    sr.StreamRNN(cell="gru", input_size=1, hidden_size=2, k1=2).run(np.zeros((4, 1)), np.zeros((4, 1)))
    print(f"hidden {args.hidden}, adam lr=0.003, clip=1.0, k1 = k2 = K; * marks a dependency longer than the window\n")
    if args.task in ("all", "recall"):
        table_by_d(
            f"Delayed recall: accuracy over the last 20% of {steps} steps (chance 0.50)",
            recall, lambda d: d, "{:.2f}", args.hidden, steps,
        )
    if args.task in ("all", "adding"):
        table_by_d(
            "Adding problem: MSE / variance over the last 20% of segments (1: the mean; 0.5: one value; 0: solved)",
            adding, lambda d: d - 1, "{:.2f}", args.hidden, steps,
        )
    if args.task in ("all", "mackey-glass"):
        n = min(steps, 20000)
        s = mackey_glass(n + 1)
        base = float(np.sqrt(np.mean(np.diff(s)[-n // 5 :] ** 2)) / np.std(s))
        print(f"Mackey-Glass (tau=17), next step: NRMSE over the last 20% of {n} steps "
              f"(last-value baseline {base:.3f})")
        print("cell   | " + " ".join(f"K={K:<5d}" for K in KS))
        t0 = time.perf_counter()
        for cell in CELLS:
            print(f"{cell:6s} | " + " ".join(f"{mackey(cell, K, args.hidden, n):.3f}  " for K in KS), flush=True)
        print(f"({time.perf_counter() - t0:.0f} s)\n")
    found = ", ".join(f"{n} {sym} ({level})" for (level, sym), n in sorted(TALLY.counts.items())) or "none"
    print(f"health monitor records over all runs: {found}")
    if TALLY.where:
        print("warnings came from: " + "; ".join(sorted(TALLY.where)))


if __name__ == "__main__":
    main()
