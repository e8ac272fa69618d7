"""Quickstart: learn a noisy sine wave online, one sample at a time, and report the error.

Usage: python examples/quickstart.py [N]
"""

import sys

import numpy as np

import streamrnn as sr


def main(n=3000):
    rng = np.random.default_rng(0)
    t = np.arange(n + 1)
    series = np.sin(t / 8.0) + 0.5 * np.sin(t / 3.0) + 0.05 * rng.normal(size=n + 1)
    model = sr.StreamRNN(cell="gru", input_size=1, hidden_size=16, k1=8, optimizer="adam", lr=0.01, clip=1.0)
    errors = []
    for i in range(n):
        x, y = series[i : i + 1], series[i + 1 : i + 2]
        errors.append(abs(model.predict(x)[0] - y[0]))  # predict first (prequential) ...
        model.learn(x, y)  # ... then learn from the truth
    half = n // 2
    print(f"samples: {n}, updates: {model.diagnostics()['updates']}")
    print(f"MAE first half: {np.mean(errors[:half]):.4f}  second half: {np.mean(errors[half:]):.4f}")
    print(f"last-value baseline MAE: {np.mean(np.abs(np.diff(series[:n + 1]))):.4f}")
    return float(np.mean(errors[half:]))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
