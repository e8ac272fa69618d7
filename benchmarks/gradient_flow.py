"""Per-lag gradient flow of the three cells, before and after learning the adding problem.

Each cell learns the adding problem with segments of d = 16 steps (the answer needs a value
seen 15 steps earlier) under TBPTT(32), as in ``benchmarks/tasks.py``. A probe copy of the
weights (lr = 0, k1 = 1, k2 = 64: one update per answer, its loss at the last step only)
then measures ``||dL/dh_{t-k}|| / ||dL/dh_t||``, the share of an answer's gradient that
reaches k steps back, averaged over the last answers (``lag_grad_norm_ema``; for the
LSTM, the gradient reaching its output h, not its cell state c). Printed as
a table; ``--plot PATH`` also draws it (needs matplotlib, an optional extra).

Usage: python benchmarks/gradient_flow.py [--plot docs/gradient_flow.png] [--segments 8000]
"""

import argparse
import pathlib
import sys

import numpy as np

import streamrnn as sr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tasks import adding_stream  # noqa: E402

CELLS = ("elman", "gru", "lstm")
D, K, LAGS = 16, 32, 64


def train(cell, X, Y, mask, hidden):
    m = sr.StreamRNN(cell=cell, input_size=3, hidden_size=hidden, k1=K, optimizer="adam", lr=0.003, clip=1.0, seed=0)
    P = m.run(X, Y, mask=mask)
    idx = np.flatnonzero(mask)[-len(np.flatnonzero(mask)) // 5 :]
    return m, float(np.mean((P[idx, 0] - Y[idx, 0]) ** 2) / np.var(Y[idx, 0]))


def flow(m, X, Y, mask):
    """Mean per-lag gradient share of the answers in (X, Y, mask), for m's weights, changing nothing."""
    probe = sr.StreamRNN(
        cell=m.cell, input_size=3, hidden_size=m.hidden_size, k1=1, k2=LAGS, lr=0.0, ema=0.995, warn=False
    )
    probe.load_state_dict(m.state_dict())
    warm = np.zeros(len(X), dtype=bool)
    warm[LAGS:] = mask[LAGS:]  # no answers until every window is full
    probe.run(X, Y, mask=warm)
    lag = probe.diagnostics()["lag_grad_norm_ema"]
    return lag / lag[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plot", default=None, help="write a PNG here (needs matplotlib)")
    ap.add_argument("--segments", type=int, default=8000)
    ap.add_argument("--hidden", type=int, default=32)
    args = ap.parse_args()
    X, Y, mask = adding_stream(args.segments, D)
    Xp, Yp, maskp = adding_stream(600, D, seed=7)
    curves = {}
    print(f"adding problem, d={D}, TBPTT({K}), {args.segments} segments; share of the gradient reaching lag k")
    print("cell   stage    score |  k=1      k=4      k=15     k=31     k=63")
    for cell in CELLS:
        init = sr.StreamRNN(cell=cell, input_size=3, hidden_size=args.hidden, k1=K, seed=0)
        trained, score = train(cell, X, Y, mask, args.hidden)
        for stage, m, s in (("init", init, float("nan")), ("trained", trained, score)):
            f = flow(m, Xp, Yp, maskp)
            curves[cell, stage] = f
            print(f"{cell:6s} {stage:8s} {s:5.2f} | " + " ".join(f"{f[k]:.2e}" for k in (1, 4, 15, 31, 63)), flush=True)
    if args.plot:
        plot(curves, args.plot)
        print(f"wrote {args.plot}")


def plot(curves, path):
    import matplotlib  # optional: only this function needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=100)
    colors = {"elman": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
    k = np.arange(LAGS)
    for (cell, stage), f in curves.items():
        style = "-" if stage == "trained" else ":"
        ax.semilogy(k, np.maximum(f, 1e-17), style, color=colors[cell], label=f"{cell} ({stage})")
    ax.axvline(D - 1, color="grey", lw=0.8)
    ax.text(D - 0.5, 1e-11, "first value\n(lag 15)", fontsize=8, color="grey")
    ax.axvline(K - 1, color="grey", lw=0.8, ls="--")
    ax.text(K - 0.5, 1e-6, "training window\nK = 32", fontsize=8, color="grey")
    ax.set_ylim(1e-17, 10.0)
    ax.set_xlabel("lag k (steps back from the answer)")
    ax.set_ylabel("||dL/dh(t-k)|| / ||dL/dh(t)||")
    ax.set_title(f"Gradient flow: adding problem, d = {D}, H = 32 (lag_grad_norm_ema)")
    ax.legend(fontsize=8, ncol=3, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
