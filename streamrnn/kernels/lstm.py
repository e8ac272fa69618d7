"""LSTM cell: forward step and backward step, PyTorch ``nn.LSTM`` conventions.

Dimension letters: D input, H hidden. State width S = 2H: ``h | c``. Gate order
i | f | g | o. Parameter block (flat, from offset 0):
``weight_ih_l0 (4H, D) | weight_hh_l0 (4H, H) | bias_ih_l0 (4H) | bias_hh_l0 (4H)``.
``wt`` holds the two matrices column-major: ``w_ih^T (D*4H) | w_hh^T (H*4H)``.
Cached activations per step (A = 5H): ``i | f | g | o | tanh(c')``.
"""

import math

from .._config import jit
from .linalg import backward_rows, gemv_colmajor_add, outer_add, sigmoid


@jit
def lstm_forward_step(params, wt, D, H, x, s, s_out, act, a):
    """One LSTM step.

    Shapes: params (P,); wt (4H*(D+H),); x (D,); s, s_out (2H,) as h | c; act (5H,);
            a (4H,) scratch.
    Math: [i, f, g, o] = [s, s, tanh, s](W_ih x + b_ih + W_hh h + b_hh);
          c' = f * c + i * g;  h' = o * tanh(c').
    Writes: s_out, act, a.
    """
    G4 = 4 * H
    o_bih = G4 * D + G4 * H
    o_bhh = o_bih + G4
    for j in range(G4):
        a[j] = params[o_bih + j] + params[o_bhh + j]
    gemv_colmajor_add(wt[: G4 * D], G4, D, x, a)
    gemv_colmajor_add(wt[G4 * D : G4 * (D + H)], G4, H, s[:H], a)
    for k in range(H):
        i = sigmoid(a[k])
        f = sigmoid(a[H + k])
        g = math.tanh(a[2 * H + k])
        o = sigmoid(a[3 * H + k])
        c = f * s[H + k] + i * g
        tc = math.tanh(c)
        act[k] = i
        act[H + k] = f
        act[2 * H + k] = g
        act[3 * H + k] = o
        act[4 * H + k] = tc
        s_out[k] = o * tc
        s_out[H + k] = c


@jit
def lstm_backward_step(params, grad, D, H, x, s, act, ds_next, ds, da):
    """Backward through one LSTM step.

    Shapes: params, grad (P,); x (D,); s, ds_next, ds (2H,) as h | c; act (5H,);
            da (4H,) scratch.
    Math: dc = dc' + dh' o (1 - tanh(c')^2);  do = dh' tanh(c');  di = dc g;  dg = dc i;
          df = dc c;  dc_prev = dc f;  da = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)];
          dW_ih += da x^T;  dW_hh += da h^T;  db_ih += da;  db_hh += da;  dh = W_hh^T da.
    Writes: grad (accumulated), ds (overwritten), da.
    """
    G4 = 4 * H
    o_hh = G4 * D
    o_bih = o_hh + G4 * H
    o_bhh = o_bih + G4
    for k in range(H):
        i = act[k]
        f = act[H + k]
        g = act[2 * H + k]
        o = act[3 * H + k]
        tc = act[4 * H + k]
        dh_k = ds_next[k]
        dc = ds_next[H + k] + dh_k * o * (1.0 - tc * tc)
        da[k] = dc * g * i * (1.0 - i)
        da[H + k] = dc * s[H + k] * f * (1.0 - f)
        da[2 * H + k] = dc * i * (1.0 - g * g)
        da[3 * H + k] = dh_k * tc * o * (1.0 - o)
        ds[H + k] = dc * f
        ds[k] = 0.0
    for j in range(G4):
        grad[o_bih + j] += da[j]
        grad[o_bhh + j] += da[j]
    outer_add(grad[:o_hh], G4, D, da, x)
    backward_rows(params[o_hh:o_bih], grad[o_hh:o_bih], G4, H, da, s[:H], ds[:H])
