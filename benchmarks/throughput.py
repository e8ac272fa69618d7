"""Samples/s of streamrnn against a PyTorch per-sample TBPTT loop on the same stream.

Same cell, sizes, K, optimizer (SGD) and data; one thread each; times are CPU time of
this process (so a busy machine does not skew the ratio). Rows:

* torch per-sample : the loop a PyTorch user writes for a stream: one ``rnn`` call per
  sample (prediction made before learning), and every K samples ``loss.backward();
  opt.step(); h = h.detach()``. This is the anchor; every ratio is against it.
* torch chunked    : the batch-of-one chunked loop (K steps per ``rnn`` call), which
  needs the whole chunk before predicting, so it is not a streaming loop; for reference.
* streamrnn loop   : ``p = m.predict(x); m.learn(x, y)`` per sample from Python.
* streamrnn run    : ``m.run(X, Y)``, the same loop in one compiled call.

Usage: python benchmarks/throughput.py [--cell gru] [--hidden 64] [--input 8] [--k 16]
       [--steps 20000] [--torch-steps 3000] [--all]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import streamrnn as sr  # noqa: E402


def make_stream(T, D, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)[:, None]
    X = np.sin(t / (3.0 + np.arange(D))) + 0.1 * rng.normal(size=(T + 1, D))
    return X[:-1].copy(), X[1:, :1].copy()


def bench_streamrnn(cell, D, H, K, X, Y, lr):
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=1, k1=K, lr=lr, seed=0)
    m.run(X[:64], Y[:64])  # compile / load from cache
    t = time.process_time()
    m.run(X, Y)
    run_rate = len(X) / (time.process_time() - t)
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=1, k1=K, lr=lr, seed=0)
    predict, learn = m.predict, m.learn
    t = time.process_time()
    for i in range(len(X)):
        predict(X[i])
        learn(X[i], Y[i])
    loop_rate = len(X) / (time.process_time() - t)
    return loop_rate, run_rate


def bench_torch(cell, D, H, K, X, Y, lr):
    import torch

    torch.set_num_threads(1)
    mod = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    rates = {}
    for mode in ("per-sample", "chunked"):
        torch.manual_seed(0)
        rnn, lin = mod(D, H).double(), torch.nn.Linear(H, 1).double()
        opt = torch.optim.SGD(list(rnn.parameters()) + list(lin.parameters()), lr=lr)
        crit = torch.nn.MSELoss()
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        h = None
        t = time.process_time()
        if mode == "per-sample":
            outs = []
            for i in range(len(Xt)):
                out, h = rnn(Xt[i : i + 1], h)
                outs.append(lin(out))
                _ = outs[-1].item()  # the prediction, available now
                if len(outs) == K:
                    opt.zero_grad()
                    crit(torch.cat(outs), Yt[i + 1 - K : i + 1]).backward()
                    opt.step()
                    h = tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()
                    outs = []
        else:
            for s in range(0, len(Xt) - K + 1, K):
                opt.zero_grad()
                out, h = rnn(Xt[s : s + K], h)
                crit(lin(out), Yt[s : s + K]).backward()
                opt.step()
                h = tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()
        rates[mode] = len(Xt) / (time.process_time() - t)
    return rates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="gru", choices=["elman", "gru", "lstm"])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--input", type=int, default=8)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--torch-steps", type=int, default=3000)
    ap.add_argument("--all", action="store_true", help="all three cells")
    a = ap.parse_args(argv)
    cells = ["elman", "gru", "lstm"] if a.all else [a.cell]
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
        print("torch is not installed: only streamrnn rows are printed")
    print(f"H={a.hidden} D={a.input} K={a.k} SGD float64, one thread; samples/s (ratio to torch per-sample)")
    print("| cell | torch per-sample | torch chunked | streamrnn loop | streamrnn run |")
    print("|---|---:|---:|---:|---:|")
    for cell in cells:
        X, Y = make_stream(a.steps, a.input)
        loop, run = bench_streamrnn(cell, a.input, a.hidden, a.k, X, Y, 0.01)
        if have_torch:
            r = bench_torch(cell, a.input, a.hidden, a.k, X[: a.torch_steps], Y[: a.torch_steps], 0.01)
            base = r["per-sample"]
            print(
                f"| {cell} | {base:,.0f} (1x) | {r['chunked']:,.0f} ({r['chunked'] / base:.1f}x) "
                f"| {loop:,.0f} ({loop / base:.0f}x) | {run:,.0f} ({run / base:.0f}x) |"
            )
        else:
            print(f"| {cell} | - | - | {loop:,.0f} | {run:,.0f} |")


if __name__ == "__main__":
    main()
