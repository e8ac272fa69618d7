"""LSTM cell: forward step and backward step, PyTorch ``nn.LSTM`` conventions.

Dimension letters: D input, H hidden. State width S = 2H: ``h | c``. Gate order
i | f | g | o. Parameter block (flat, from offset 0):
``weight_ih_l0 (4H, D) | weight_hh_l0 (4H, H) | bias_ih_l0 (4H) | bias_hh_l0 (4H)``.
``wt`` holds the two matrices column-major: ``w_ih^T (D*4H) | w_hh^T (H*4H)``.
Cached activations per step (A = 5H): ``i | f | g | o | tanh(c')``.
"""

from .._config import jit
from .linalg import gemv_colmajor_add, gemv_rowmajor_t_add
from .special import sigmoid, tanh


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
    b_ih = params[o_bih : o_bih + G4]
    b_hh = params[o_bhh : o_bhh + G4]
    for j in range(G4):
        a[j] = b_ih[j] + b_hh[j]
    gemv_colmajor_add(wt[: G4 * D], G4, D, x, a)
    gemv_colmajor_add(wt[G4 * D : G4 * (D + H)], G4, H, s[:H], a)
    # gate views, indexed by the loop variable only (see linalg)
    ig, fg, gg, og, tc = act[:H], act[H : 2 * H], act[2 * H : 3 * H], act[3 * H : G4], act[G4 : 5 * H]
    a_i, a_f, a_g, a_o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H : G4]
    c_prev, h_new, c_new = s[H : 2 * H], s_out[:H], s_out[H : 2 * H]
    for k in range(H):
        ig[k] = sigmoid(a_i[k])
    for k in range(H):
        fg[k] = sigmoid(a_f[k])
    for k in range(H):
        gg[k] = tanh(a_g[k])
    for k in range(H):
        og[k] = sigmoid(a_o[k])
    for k in range(H):
        c_new[k] = fg[k] * c_prev[k] + ig[k] * gg[k]
    for k in range(H):
        tc[k] = tanh(c_new[k])
    for k in range(H):
        h_new[k] = og[k] * tc[k]


@jit
def lstm_backward_step(params, D, H, s, act, ds_next, ds, da):
    """Backward through one LSTM step, up to the weight gradients.

    Shapes: params (P,); s, ds_next, ds (2H,) as h | c; act (5H,); da (4H,).
    Math: dc = dc' + dh' o (1 - tanh(c')^2);  da = [dc g i(1-i), dc c f(1-f), dc i (1-g^2),
          dh' tanh(c') o(1-o)];  dc_prev = dc f;  dh = W_hh^T da. (da is the gradient of
          both pre-activations: dW_ih += da x^T, dW_hh += da h^T, db_ih = db_hh += da,
          accumulated over the window by the caller.)
    Writes: da, ds (overwritten).
    """
    G4 = 4 * H
    ig, fg, gg, og, tc = act[:H], act[H : 2 * H], act[2 * H : 3 * H], act[3 * H : G4], act[G4 : 5 * H]
    da_i, da_f, da_g, da_o = da[:H], da[H : 2 * H], da[2 * H : 3 * H], da[3 * H : G4]
    dh_next, dc_next, c_prev = ds_next[:H], ds_next[H : 2 * H], s[H : 2 * H]
    dh, dc_prev = ds[:H], ds[H : 2 * H]
    for k in range(H):
        dc = dc_next[k] + dh_next[k] * og[k] * (1.0 - tc[k] * tc[k])
        da_i[k] = dc * gg[k] * ig[k] * (1.0 - ig[k])
        da_f[k] = dc * c_prev[k] * fg[k] * (1.0 - fg[k])
        da_g[k] = dc * ig[k] * (1.0 - gg[k] * gg[k])
        da_o[k] = dh_next[k] * tc[k] * og[k] * (1.0 - og[k])
        dc_prev[k] = dc * fg[k]
        dh[k] = 0.0
    o_hh = G4 * D
    gemv_rowmajor_t_add(params[o_hh : o_hh + G4 * H], G4, H, da, dh)
