"""GRU cell: forward step and backward step, PyTorch ``nn.GRU`` conventions.

Dimension letters: D input, H hidden. State width S = H. Gate order r | z | n.
Parameter block (flat, from offset 0):
``weight_ih_l0 (3H, D) | weight_hh_l0 (3H, H) | bias_ih_l0 (3H) | bias_hh_l0 (3H)``.
``wt`` holds the two matrices column-major: ``w_ih^T (D*3H) | w_hh^T (H*3H)``.
Cached activations per step (A = 4H): ``r | z | n | W_hn h + b_hn``.
"""

import math

from .._config import jit
from .linalg import backward_rows, gemv_colmajor_add, outer_add, sigmoid


@jit
def gru_forward_step(params, wt, D, H, x, h, h_out, act, gi, gh):
    """One GRU step.

    Shapes: params (P,); wt (3H*(D+H),); x (D,); h, h_out (H,); act (4H,);
            gi, gh (3H,) scratch.
    Math: r = s(W_ir x + b_ir + W_hr h + b_hr);  z = s(W_iz x + b_iz + W_hz h + b_hz);
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h.
    Writes: h_out, act, gi, gh.
    """
    G3 = 3 * H
    o_bih = G3 * D + G3 * H
    o_bhh = o_bih + G3
    for i in range(G3):
        gi[i] = params[o_bih + i]
        gh[i] = params[o_bhh + i]
    gemv_colmajor_add(wt[: G3 * D], G3, D, x, gi)
    gemv_colmajor_add(wt[G3 * D : G3 * (D + H)], G3, H, h, gh)
    for k in range(H):
        r = sigmoid(gi[k] + gh[k])
        z = sigmoid(gi[H + k] + gh[H + k])
        ghn = gh[2 * H + k]
        n = math.tanh(gi[2 * H + k] + r * ghn)
        act[k] = r
        act[H + k] = z
        act[2 * H + k] = n
        act[3 * H + k] = ghn
        h_out[k] = (1.0 - z) * n + z * h[k]


@jit
def gru_backward_step(params, grad, D, H, x, h, act, dh_next, dh, dgi, dgh):
    """Backward through one GRU step.

    Shapes: params, grad (P,); x (D,); h, dh_next, dh (H,); act (4H,); dgi, dgh (3H,).
    Math: dn = dh' (1 - z);  dz = dh' (h - n);  dh = dh' z + W_hh^T dgh, with
          da_n = dn (1 - n^2);  da_r = da_n ghn r (1 - r);  da_z = dz z (1 - z);
          dgi = [da_r, da_z, da_n];  dgh = [da_r, da_z, da_n r];
          dW_ih += dgi x^T;  dW_hh += dgh h^T;  db_ih += dgi;  db_hh += dgh.
    Writes: grad (accumulated), dh (overwritten), dgi, dgh.
    """
    G3 = 3 * H
    o_hh = G3 * D
    o_bih = o_hh + G3 * H
    o_bhh = o_bih + G3
    for k in range(H):
        r = act[k]
        z = act[H + k]
        n = act[2 * H + k]
        ghn = act[3 * H + k]
        d = dh_next[k]
        da_n = d * (1.0 - z) * (1.0 - n * n)
        da_z = d * (h[k] - n) * z * (1.0 - z)
        da_r = da_n * ghn * r * (1.0 - r)
        dgi[k] = da_r
        dgi[H + k] = da_z
        dgi[2 * H + k] = da_n
        dgh[k] = da_r
        dgh[H + k] = da_z
        dgh[2 * H + k] = da_n * r
        dh[k] = d * z
    for i in range(G3):
        grad[o_bih + i] += dgi[i]
        grad[o_bhh + i] += dgh[i]
    outer_add(grad[:o_hh], G3, D, dgi, x)
    backward_rows(params[o_hh:o_bih], grad[o_hh:o_bih], G3, H, dgh, h, dh)
