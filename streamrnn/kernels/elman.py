"""Elman (tanh) cell: forward step and backward step.

Dimension letters: D input, H hidden. State width S = H.
Parameter block (PyTorch ``nn.RNN`` order, flat, from offset 0):
``weight_ih_l0 (H, D) | weight_hh_l0 (H, H) | bias_ih_l0 (H) | bias_hh_l0 (H)``.
``wt`` holds the same two matrices column-major: ``w_ih^T (D*H) | w_hh^T (H*H)``.
"""

from .._config import jit
from .linalg import gemv_colmajor_add, gemv_rowmajor_t_add
from .special import tanh


@jit
def elman_forward_step(params, wt, D, H, x, h, h_out, z):
    """One Elman step.

    Shapes: params (P,); wt (H*(D+H),); x (D,); h, h_out (H,); z (H,) scratch.
    Math: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
    Writes: h_out, z (the pre-activation).
    """
    o_bih = H * D + H * H
    b_ih = params[o_bih : o_bih + H]
    b_hh = params[o_bih + H : o_bih + 2 * H]
    for i in range(H):
        z[i] = b_ih[i] + b_hh[i]
    gemv_colmajor_add(wt[: H * D], H, D, x, z)
    gemv_colmajor_add(wt[H * D : H * D + H * H], H, H, h, z)
    for i in range(H):
        h_out[i] = tanh(z[i])


@jit
def elman_backward_step(params, D, H, h_next, dh_next, dh, dz):
    """Backward through one Elman step, up to the weight gradients.

    Shapes: params (P,); h_next, dh_next, dh, dz (H,).
    Math: dz = dh' * (1 - h'^2) (the gradient of both biases; dW_ih += dz x^T and
          dW_hh += dz h^T are accumulated over the window by the caller);  dh = W_hh^T dz.
    Writes: dz, dh (overwritten).
    """
    for i in range(H):
        dz[i] = dh_next[i] * (1.0 - h_next[i] * h_next[i])
        dh[i] = 0.0
    o_hh = H * D
    gemv_rowmajor_t_add(params[o_hh : o_hh + H * H], H, H, dz, dh)
