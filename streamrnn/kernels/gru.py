"""GRU cell: forward step and backward step, PyTorch ``nn.GRU`` conventions.

Dimension letters: D input, H hidden. State width S = H. Gate order r | z | n.
Parameter block (flat, from offset 0):
``weight_ih_l0 (3H, D) | weight_hh_l0 (3H, H) | bias_ih_l0 (3H) | bias_hh_l0 (3H)``.
``wt`` holds the two matrices column-major: ``w_ih^T (D*3H) | w_hh^T (H*3H)``.
Cached activations per step (A = 4H): ``r | z | n | W_hn h + b_hn``.
"""

from .._config import jit
from .linalg import gemv_colmajor_add, gemv_rowmajor_t_add
from .special import sigmoid, tanh


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
    b_ih = params[o_bih : o_bih + G3]
    b_hh = params[o_bhh : o_bhh + G3]
    for i in range(G3):
        gi[i] = b_ih[i]
        gh[i] = b_hh[i]
    gemv_colmajor_add(wt[: G3 * D], G3, D, x, gi)
    gemv_colmajor_add(wt[G3 * D : G3 * (D + H)], G3, H, h, gh)
    # gate views, indexed by the loop variable only (see linalg), one loop per gate
    gi_r, gi_z, gi_n = gi[:H], gi[H : 2 * H], gi[2 * H : G3]
    gh_r, gh_z, gh_n = gh[:H], gh[H : 2 * H], gh[2 * H : G3]
    r, z, n, ghn = act[:H], act[H : 2 * H], act[2 * H : G3], act[G3 : 4 * H]
    for k in range(H):
        r[k] = sigmoid(gi_r[k] + gh_r[k])
    for k in range(H):
        z[k] = sigmoid(gi_z[k] + gh_z[k])
    for k in range(H):
        ghn[k] = gh_n[k]
        n[k] = tanh(gi_n[k] + r[k] * gh_n[k])
    for k in range(H):
        h_out[k] = (1.0 - z[k]) * n[k] + z[k] * h[k]


@jit
def gru_backward_step(params, D, H, h, act, dh_next, dh, dgi, dgh):
    """Backward through one GRU step, up to the weight gradients.

    Shapes: params (P,); h, dh_next, dh (H,); act (4H,); dgi, dgh (3H,).
    Math: da_n = dh' (1 - z)(1 - n^2);  da_z = dh' (h - n) z (1 - z);
          da_r = da_n ghn r (1 - r);  dgi = [da_r, da_z, da_n];  dgh = [da_r, da_z, da_n r];
          dh = dh' z + W_hh^T dgh. (dgi and dgh are the gradients of the two input and
          hidden pre-activations: dW_ih += dgi x^T, dW_hh += dgh h^T, db_ih += dgi,
          db_hh += dgh, accumulated over the window by the caller.)
    Writes: dgi, dgh, dh (overwritten).
    """
    G3 = 3 * H
    r, z, n, ghn = act[:H], act[H : 2 * H], act[2 * H : G3], act[G3 : 4 * H]
    dgi_r, dgi_z, dgi_n = dgi[:H], dgi[H : 2 * H], dgi[2 * H : G3]
    dgh_r, dgh_z, dgh_n = dgh[:H], dgh[H : 2 * H], dgh[2 * H : G3]
    for k in range(H):
        d = dh_next[k]
        da_n = d * (1.0 - z[k]) * (1.0 - n[k] * n[k])
        da_z = d * (h[k] - n[k]) * z[k] * (1.0 - z[k])
        da_r = da_n * ghn[k] * r[k] * (1.0 - r[k])
        dgi_r[k] = da_r
        dgi_z[k] = da_z
        dgi_n[k] = da_n
        dgh_r[k] = da_r
        dgh_z[k] = da_z
        dgh_n[k] = da_n * r[k]
        dh[k] = d * z[k]
    o_hh = G3 * D
    gemv_rowmajor_t_add(params[o_hh : o_hh + G3 * H], G3, H, dgh, dh)
