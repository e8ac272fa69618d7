"""Elman (tanh) cell: forward step and backward step.

Dimension letters: D input, H hidden. State width S = H.
Parameter block (PyTorch ``nn.RNN`` order, flat, from offset 0):
``weight_ih_l0 (H, D) | weight_hh_l0 (H, H) | bias_ih_l0 (H) | bias_hh_l0 (H)``.
``wt`` holds the same two matrices column-major: ``w_ih^T (D*H) | w_hh^T (H*H)``.
"""

import math

from .._config import jit
from .linalg import backward_rows, gemv_colmajor_add, outer_add


@jit
def elman_forward_step(params, wt, D, H, x, h, h_out, z):
    """One Elman step.

    Shapes: params (P,); wt (H*(D+H),); x (D,); h, h_out (H,); z (H,) scratch.
    Math: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
    Writes: h_out, z (the pre-activation).
    """
    o_bih = H * D + H * H
    o_bhh = o_bih + H
    for i in range(H):
        z[i] = params[o_bih + i] + params[o_bhh + i]
    gemv_colmajor_add(wt[: H * D], H, D, x, z)
    gemv_colmajor_add(wt[H * D : H * D + H * H], H, H, h, z)
    for i in range(H):
        h_out[i] = math.tanh(z[i])


@jit
def elman_backward_step(params, grad, D, H, x, h, h_next, dh_next, dh, dz):
    """Backward through one Elman step.

    Shapes: params, grad (P,); x (D,); h, h_next, dh_next, dh, dz (H,).
    Math: dz = dh' * (1 - h'^2);  dW_ih += dz x^T;  dW_hh += dz h^T;  db_ih += dz;
          db_hh += dz;  dh = W_hh^T dz.
    Writes: grad (accumulated), dh (overwritten), dz (scratch).
    """
    o_hh = H * D
    o_bih = o_hh + H * H
    o_bhh = o_bih + H
    for i in range(H):
        dz[i] = dh_next[i] * (1.0 - h_next[i] * h_next[i])
        grad[o_bih + i] += dz[i]
        grad[o_bhh + i] += dz[i]
        dh[i] = 0.0
    outer_add(grad[:o_hh], H, D, dz, x)
    backward_rows(params[o_hh:o_bih], grad[o_hh:o_bih], H, H, dz, h, dh)
