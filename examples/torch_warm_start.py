"""Warm start from PyTorch: train offline on history, then keep learning online with streamrnn.

A GRU and its linear readout are trained in PyTorch on a block of past data (the usual
batched loop, several epochs). ``from_torch`` copies their weights into a ``StreamRNN``
(same parameter names and gate order), which then predicts and learns the live stream
one sample at a time. It starts where PyTorch left off; a model started from scratch
must first learn what the history already taught.

Usage: python examples/torch_warm_start.py [N]    (N: history and live samples, default 2000)
"""

import sys

import numpy as np

import streamrnn as sr


def series(n, rng):
    t = np.arange(n + 1)
    return np.sin(t / 6.0) * (1 + 0.5 * np.sin(t / 50.0)) + 0.05 * rng.normal(size=n + 1)


def pretrain(history, epochs=60, k=32, hidden=16):
    import torch

    torch.manual_seed(0)
    rnn = torch.nn.GRU(1, hidden, batch_first=True, dtype=torch.float64)
    readout = torch.nn.Linear(hidden, 1, dtype=torch.float64)
    opt = torch.optim.Adam([*rnn.parameters(), *readout.parameters()], lr=0.01)
    x = torch.from_numpy(history[:-1]).reshape(-1, 1)
    y = torch.from_numpy(history[1:]).reshape(-1, 1)
    n = (len(x) // k) * k
    xb, yb = x[:n].reshape(-1, k, 1), y[:n].reshape(-1, k, 1)  # chunks of k steps, as a batch
    for _ in range(epochs):
        opt.zero_grad()
        out, _ = rnn(xb)
        loss = torch.nn.functional.mse_loss(readout(out), yb)
        loss.backward()
        opt.step()
    return rnn, readout, float(loss.detach())


def main(n=2000):
    try:
        from streamrnn.adapters.torch import from_torch
        import torch  # noqa: F401
    except ImportError:
        print("this example needs PyTorch: pip install torch")
        return None
    data = series(2 * n, np.random.default_rng(0))
    history, live = data[: n + 1], data[n:]
    rnn, readout, loss = pretrain(history)
    config = dict(k1=8, optimizer="adam", lr=0.005, clip=1.0)
    warm = from_torch(rnn, readout, **config)
    cold = sr.StreamRNN(cell="gru", input_size=1, hidden_size=16, seed=0, **config)
    X, Y = live[:-1, None], live[1:, None]
    first = min(200, len(X))
    result = {}
    print(f"PyTorch: {n} samples of history, final training loss {loss:.4f}; then {len(X)} live samples online")
    for name, model in (("warm start (from_torch)", warm), ("cold start", cold)):
        err = np.abs(model.run(X, Y) - Y)[:, 0]  # predict, then learn, each sample
        result[name] = (float(err[:first].mean()), float(err.mean()))
        print(f"  {name:<24} MAE first {first}: {err[:first].mean():.4f}   all: {err.mean():.4f}")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
