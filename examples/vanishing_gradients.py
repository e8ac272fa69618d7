"""Vanishing and exploding gradients, read from a running model's own per-lag gradient flow.

An Elman cell with one unit, ``h_t = tanh(w_ih x_t + b + w_hh h_{t-1})``. Backpropagating
through one step multiplies the gradient by ``dh_t/dh_{t-1} = (1 - h_t^2) w_hh``. Hold the
state at the fixed point where ``1 - h^2 = 0.8`` with ``w_hh = 0.9``, and each step back
multiplies the gradient by 0.72: after k steps by 0.72^k (0.373 at k = 3, 0.0019 at 19,
7.5e-15 at 99). With ``w_hh = 1.5`` at ``h = 0`` each step multiplies it by 1.5 instead,
and the gradient explodes; clipping bounds the update it would make.

The numbers come from ``diagnostics()["lag_grad_norm"]``: entry k is ``||dL/dh_{t-k}||``
of the last update, computed by the same kernels that train the model.

Usage: python examples/vanishing_gradients.py [N]    (N: window length, default 100)
"""

import math
import sys

import numpy as np

import streamrnn as sr


def scalar_elman(w_hh, bias, window, lr=0.0, clip=None):
    """An H=1 Elman model with the given recurrent weight and bias, readout y = h."""
    m = sr.StreamRNN(cell="elman", input_size=1, hidden_size=1, output_size=1, k1=window, lr=lr, clip=clip)
    m.load_state_dict(
        {
            "weight_ih_l0": [[0.0]],
            "weight_hh_l0": [[w_hh]],
            "bias_ih_l0": [bias],
            "bias_hh_l0": [0.0],
            "readout.weight": [[1.0]],
            "readout.bias": [0.0],
        }
    )
    return m


def one_window(m, window, target=1.0):
    """Settle the state (steps without targets), then one window with a target at its last step."""
    zero = np.zeros(1)
    for _ in range(window * math.ceil(200 / window)):  # 0.72^200 ~ 1e-29: at the fixed point
        m.learn(zero)
    for _ in range(window - 1):
        m.learn(zero)
    m.learn(zero, [target])
    return m.diagnostics()


def main(n=100):
    if n < 2:
        raise ValueError(f"N must be at least 2, got {n}")
    lags = [k for k in (0, 1, 2, 3, 5, 10, 19, 50, 99) if k < n]

    # ---- vanishing: w_hh = 0.9 at the fixed point h* = sqrt(0.2), where 1 - h*^2 = 0.8
    h_star = math.sqrt(0.2)
    bias = math.atanh(h_star) - 0.9 * h_star
    m = scalar_elman(0.9, bias, n)
    d = one_window(m, n)
    flow = d["lag_grad_norm"] / d["lag_grad_norm"][0]
    expected = 0.72 ** np.arange(n)
    rel = np.abs(flow / expected - 1.0)
    print(f"Vanishing: Elman H=1, w_hh=0.9, h={m.hidden[0]:.6f} (1 - h^2 = {1 - m.hidden[0] ** 2:.6f}), window {n}")
    print("   k   ||dL/dh_(t-k)|| / ||dL/dh_t||        0.72^k   rel. error")
    for k in lags:
        print(f"{k:4d}   {flow[k]:29.6e}   {expected[k]:11.6e}   {rel[k]:.1e}")
    print(f"largest relative error over all {n} lags: {rel.max():.1e}")

    # ---- exploding: w_hh = 1.5 at h = 0, so each step back multiplies by 1.5
    big = scalar_elman(1.5, 0.0, n, lr=0.01)
    w0 = big.params.copy()
    before = big.diagnostics()["weight_norm"]
    d_big = one_window(big, n)
    growth = d_big["lag_grad_norm"] / d_big["lag_grad_norm"][0]
    moved = float(np.linalg.norm(big.params - w0))
    print(f"\nExploding: w_hh=1.5 at h=0, window {n}, one target at the last step, sgd lr=0.01")
    print(f"  gradient at lag {n - 1} is {growth[-1]:.4e} x lag 0 (1.5^{n - 1} = {1.5 ** (n - 1):.4e})")
    print(f"  no clipping: gradient norm {d_big['grad_norm']:.3e}; the update moves the weights by {moved:.3e}")
    big.learn(np.zeros(1))
    h_next = float(big.hidden[0])
    print(f"               (weight norm {before:.3f} -> {d_big['weight_norm']:.3e}); the next state is")
    print(f"               h = {h_next:.6f}: saturated, 1 - h^2 = {1 - h_next ** 2:.1e}, no gradient flows back")
    held = scalar_elman(1.5, 0.0, n, lr=0.01, clip=1.0)
    d_held = one_window(held, n)
    moved_held = float(np.linalg.norm(held.params - w0))
    print("  clip=1.0:    the same gradient is scaled to norm 1; the update moves the weights by")
    print(f"               {moved_held:.4f} = lr x clip (weight norm {before:.3f} -> {d_held['weight_norm']:.3f})")
    return {
        "flow": flow,
        "max_rel_error": float(rel.max()),
        "explode_flow": growth,
        "weight_norm_before": before,
        "weight_norm_unclipped": d_big["weight_norm"],
        "weight_norm_clipped": d_held["weight_norm"],
        "moved_unclipped": moved,
        "moved_clipped": moved_held,
        "h_after_unclipped": h_next,
        "clipped": d_held["clipped"],
        "grad_norm": d_big["grad_norm"],
    }


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
