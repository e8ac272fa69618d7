"""Samples/s of ``RNNRegressor`` on dict input against a PyTorch per-sample loop doing the same work.

Both sides see the same stream of dicts (D features, one target) and, per sample, make a
prediction before learning from it; same cell (GRU), H, K, optimizer, learning rate and
gradient clipping; one thread each.

* torch per-sample : ``torch.tensor`` from the dict's values (in sorted-name order) each
  sample, one ``nn.GRU`` step and ``nn.Linear`` readout (``.item()`` is the prediction),
  and every K samples ``zero_grad(); MSELoss(...).backward(); clip_grad_norm_(...);
  opt.step(); h = h.detach()``. This is the anchor; ratios are against it.
* RNNRegressor      : ``model.predict_one(x); model.learn_one(x, y)`` (``scale_target=False``,
  so the work is the same as the torch loop's).
* StreamRNN loop    : the engine alone on numpy arrays (``predict(x); learn(x, y)``), to show
  what the dict handling costs.
* keyed RNNRegressor: ``key="sensor"`` with 100 interleaved sensors (a hidden state each,
  shared weights), each x carrying its sensor id: what the key costs per sample.

The rows are measured in alternating rounds and each keeps its best round, so a busy
machine slows all of them alike.

Usage: python benchmarks/river_throughput.py [--hidden 32] [--k 16] [--features 8]
       [--steps 20000] [--torch-steps 2000] [--rounds 3]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import streamrnn as sr  # noqa: E402
from streamrnn.adapters.river import RNNRegressor  # noqa: E402


def make_stream(T, D, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)[:, None]
    X = np.sin(t / (3.0 + np.arange(D))) + 0.1 * rng.normal(size=(T + 1, D))
    names = [f"x{i}" for i in range(D)]
    xs = [dict(zip(names, row)) for row in X[:-1].tolist()]
    ys = X[1:, 0].tolist()
    return xs, ys, X[:-1].copy(), X[1:, :1].copy()


def bench_estimator(xs, ys, cfg):
    model = RNNRegressor(scale_target=False, seed=0, **cfg)
    for i in range(64):  # compile / load from cache, create the state
        model.predict_one(xs[i])
        model.learn_one(xs[i], ys[i])
    predict_one, learn_one = model.predict_one, model.learn_one
    t = time.process_time()
    for x, y in zip(xs, ys):
        predict_one(x)
        learn_one(x, y)
    return len(xs) / (time.process_time() - t)


def bench_keyed(xs, ys, cfg, n_keys=100):
    model = RNNRegressor(scale_target=False, seed=0, key="sensor", capacity=2 * n_keys, **cfg)
    xs = [dict(x, sensor=i % n_keys) for i, x in enumerate(xs)]
    for i in range(64):
        model.predict_one(xs[i])
        model.learn_one(xs[i], ys[i])
    predict_one, learn_one = model.predict_one, model.learn_one
    t = time.process_time()
    for x, y in zip(xs, ys):
        predict_one(x)
        learn_one(x, y)
    return len(xs) / (time.process_time() - t)


def bench_engine(X, Y, cfg):
    m = sr.StreamRNN(input_size=X.shape[1], output_size=1, seed=0, **cfg)
    m.run(X[:64], Y[:64])
    predict, learn = m.predict, m.learn
    t = time.process_time()
    for i in range(len(X)):
        predict(X[i])
        learn(X[i], Y[i])
    return len(X) / (time.process_time() - t)


def bench_torch(xs, ys, cfg):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    D, H, K = len(xs[0]), cfg["hidden_size"], cfg["k1"]
    rnn = torch.nn.GRU(D, H).double()
    lin = torch.nn.Linear(H, 1).double()
    params = list(rnn.parameters()) + list(lin.parameters())
    if cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=cfg["lr"])
    else:
        opt = torch.optim.SGD(params, lr=cfg["lr"])
    crit = torch.nn.MSELoss()
    order = sorted(xs[0])
    h, outs, targets = None, [], []
    t = time.process_time()
    for x, y in zip(xs, ys):
        xt = torch.tensor([[x[k] for k in order]], dtype=torch.float64)
        out, h = rnn(xt, h)
        p = lin(out)
        _ = p.item()  # the prediction, available before learning
        outs.append(p)
        targets.append(y)
        if len(outs) == K:
            opt.zero_grad()
            loss = crit(torch.cat(outs), torch.tensor(targets, dtype=torch.float64)[:, None])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
            opt.step()
            h = h.detach()
            outs, targets = [], []
    return len(xs) / (time.process_time() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--torch-steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
        print("torch is not installed: only streamrnn rows are printed")
    xs, ys, X, Y = make_stream(a.steps, a.features)
    print(
        f"GRU H={a.hidden} K={a.k} D={a.features}, clip 1.0, float64, one thread; "
        f"predict_one + learn_one samples/s (ratio to torch per-sample)"
    )
    print("| optimizer | torch per-sample | RNNRegressor (dicts) | StreamRNN loop (arrays) | keyed RNNRegressor |")
    print("|---|---:|---:|---:|---:|")
    for optimizer, lr in (("sgd", 0.01), ("adam", 0.005)):
        cfg = dict(cell="gru", hidden_size=a.hidden, k1=a.k, optimizer=optimizer, lr=lr, clip=1.0)
        best = {"torch": 0.0, "est": 0.0, "eng": 0.0, "keyed": 0.0}
        for _ in range(a.rounds):
            if have_torch:
                best["torch"] = max(best["torch"], bench_torch(xs[: a.torch_steps], ys[: a.torch_steps], cfg))
            best["est"] = max(best["est"], bench_estimator(xs, ys, cfg))
            best["eng"] = max(best["eng"], bench_engine(X, Y, cfg))
            best["keyed"] = max(best["keyed"], bench_keyed(xs, ys, cfg))
        if have_torch:
            base = best["torch"]
            print(
                f"| {optimizer} | {base:,.0f} (1x) | {best['est']:,.0f} ({best['est'] / base:.0f}x) "
                f"| {best['eng']:,.0f} ({best['eng'] / base:.0f}x) "
                f"| {best['keyed']:,.0f} ({best['keyed'] / base:.0f}x) |"
            )
        else:
            print(f"| {optimizer} | - | {best['est']:,.0f} | {best['eng']:,.0f} | {best['keyed']:,.0f} |")


if __name__ == "__main__":
    main()
