"""Keyed sessions: many interleaved streams, one hidden state per key, shared weights.

100 sessions (think users or sensors), each a noisy oscillation with its own period,
arrive interleaved in random order. The task: predict each session's next value. A
``KeyedStreamRNN`` keeps a hidden state (and a TBPTT buffer) per session and one set of
weights learned from all of them. A plain ``StreamRNN`` fed the same interleaved stream
has a single state, which mixes the sessions; the last value of the session is the
naive baseline.

Usage: python examples/keyed_sessions.py [N]    (N: samples over all sessions, default 30000)
"""

import sys

import numpy as np

import streamrnn as sr

SESSIONS = 100


def make_stream(n, rng):
    period = rng.uniform(4.0, 12.0, SESSIONS)
    phase = rng.uniform(0.0, 2 * np.pi, SESSIONS)
    keys = rng.integers(0, SESSIONS, n)
    clock = np.zeros(SESSIONS, dtype=int)  # each session's own step count
    X, Y = np.empty(n), np.empty(n)
    for i, k in enumerate(keys):
        u = clock[k]
        X[i] = np.sin(2 * np.pi * u / period[k] + phase[k]) + 0.05 * rng.normal()
        Y[i] = np.sin(2 * np.pi * (u + 1) / period[k] + phase[k])  # the session's next value
        clock[k] += 1
    return keys, X[:, None], Y[:, None]


def main(n=30000):
    keys, X, Y = make_stream(n, np.random.default_rng(0))
    config = dict(cell="gru", input_size=1, hidden_size=16, k1=4, optimizer="adam", lr=0.01, seed=0)
    keyed = sr.KeyedStreamRNN(**config, capacity=SESSIONS)
    P_keyed = keyed.run(keys, X, Y)[:, 0]
    P_single = sr.StreamRNN(**config).run(X, Y)[:, 0]
    half = n // 2
    mae = {
        "KeyedStreamRNN (a state per session)": np.mean(np.abs(P_keyed[half:] - Y[half:, 0])),
        "StreamRNN (one state, mixed)": np.mean(np.abs(P_single[half:] - Y[half:, 0])),
        "last value of the session": np.mean(np.abs(X[half:, 0] - Y[half:, 0])),
    }
    d = keyed.diagnostics()
    print(f"{n} samples from {SESSIONS} interleaved sessions; MAE of the next value, second half")
    for name, v in mae.items():
        print(f"  {name:<38} {v:.4f}")
    print(f"keyed model: {d['keys_held']} sessions held, {d['updates']} updates of the shared weights")
    return mae


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30000)
