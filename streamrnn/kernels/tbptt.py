"""Streaming truncated backpropagation through time: predict, learn, update and run.

Dimension letters: D input, H hidden, O outputs, S state width, A cached activations per
step, K1 steps between updates, K2 steps per window, M stored window start states.

The model is the set of arrays described in ``layout``. A stream is one row of ``slab``
plus its step count in ``counts``; ``StreamRNN`` has one row, ``KeyedStreamRNN`` one per
key, and both run these same functions.

Math (DESIGN section 2): every K1 steps of a stream, re-run its last T = min(K2, count)
steps from the stored start state with the current weights, take the mean loss over the
target-bearing steps among the last min(K1, T), backpropagate through the T steps,
clip by global norm, and update. The start state is a constant (the detach); the
stream's carried state is the one computed as samples arrived.
"""

import math

import numpy as np

from .._config import jit
from . import layout as L
from .elman import elman_backward_step, elman_forward_step
from .gru import gru_backward_step, gru_forward_step
from .linalg import (
    column_sums_add,
    copy_into,
    first_nonfinite,
    gemm_tn_add,
    sum_squares,
    transpose_add,
    transpose_into,
)
from .losses import (
    head_output,
    loss_and_grad,
    readout_backward,
    readout_forward,
    target_domain_error,
)
from .lstm import lstm_backward_step, lstm_forward_step
from .optim import clip_coefficient, optimizer_step


@jit
def readout_offset(meta):
    """Offset of ``readout.weight`` in the flat parameter vector."""
    gh = meta[L.G] * meta[L.H]
    return gh * (meta[L.D] + meta[L.H]) + 2 * gh


@jit
def lanes(iwork):
    """The float64 scratch of ``sum_squares``: iwork[OFF_LANES : OFF_LANES + N_LANES],
    read as float64 (no copy)."""
    return iwork[L.OFF_LANES : L.OFF_LANES + L.N_LANES].view(np.float64)


@jit
def refresh_transposed(meta, mem):
    """Rebuild ``wt``, the column-major copies of ``weight_ih_l0`` and ``weight_hh_l0``.

    Writes: mem[OFF_WT : OFF_WT + G*H*(D+H)].
    """
    gh = meta[L.G] * meta[L.H]
    d = meta[L.D]
    h = meta[L.H]
    w0 = meta[L.OFF_WT]
    transpose_into(mem[: gh * d], gh, d, mem[w0 : w0 + gh * d])
    transpose_into(mem[gh * d : gh * (d + h)], gh, h, mem[w0 + gh * d : w0 + gh * (d + h)])


@jit
def cell_forward(meta, mem, x, s, s_out, act, gi, gh):
    """One step of the configured cell: s_out = f(s, x); act gets what backward needs."""
    cell = meta[L.CELL]
    d = meta[L.D]
    h = meta[L.H]
    wt = mem[meta[L.OFF_WT] : meta[L.MEM_SIZE]]
    if cell == L.GRU:
        gru_forward_step(mem, wt, d, h, x, s, s_out, act, gi, gh)
    elif cell == L.LSTM:
        lstm_forward_step(mem, wt, d, h, x, s, s_out, act, gi)
    else:
        elman_forward_step(mem, wt, d, h, x, s, s_out, gi)


@jit
def cell_backward(meta, mem, s, s_next, act, ds_next, ds, dgi, dgh):
    """Backward through one step of the configured cell, up to the weight gradients.

    Writes: ds = dL/ds (from ds_next = dL/ds'), dgi / dgh = the gradients of the input /
    hidden pre-activations (Elman and LSTM write only dgi: theirs are equal).
    """
    cell = meta[L.CELL]
    d = meta[L.D]
    h = meta[L.H]
    if cell == L.GRU:
        gru_backward_step(mem, d, h, s, act, ds_next, ds, dgi, dgh)
    elif cell == L.LSTM:
        lstm_backward_step(mem, d, h, s, act, ds_next, ds, dgi)
    else:
        elman_backward_step(mem, d, h, s_next, ds_next, ds, dgi)


@jit
def accumulate_weight_grads(meta, mem, work, t_w):
    """Weight and bias gradients of the cell from the whole window at once.

    Shapes: work holds DGI, DGH (K2, G*H) (one row per step), XW (K2, D), the window
    states (K2 + 1, S) and TGI (D, G*H) scratch.
    Math: dW_ih += (XW^T DGI)^T;  dW_hh += DGH^T [h_0 .. h_{T-1}];  db_ih += DGI^T 1;
          db_hh += DGH^T 1. dW_ih is summed transposed in TGI and then added: its rows
          are only D wide, too short for the column loop of ``gemm_tn_add`` to run in
          SIMD (measured 0.37 -> 0.05 us per sample at D=8, H=64). On a zeroed gradient
          (as ``tbptt_update`` calls it) every entry is the same sum in the same order
          as ``gemm_tn_add`` on the gradient itself.
    Writes: the gradient in mem (accumulated); TGI.
    """
    d = meta[L.D]
    h = meta[L.H]
    k2 = meta[L.K2]
    gh_w = meta[L.G] * h
    g0 = meta[L.OFF_GRAD]
    dgi = work[meta[L.W_DGI] : meta[L.W_DGI] + gh_w * k2]
    dgh = dgi
    if meta[L.CELL] == L.GRU:
        dgh = work[meta[L.W_DGH] : meta[L.W_DGH] + gh_w * k2]
    o_hh = g0 + gh_w * d
    o_bih = o_hh + gh_w * h
    o_bhh = o_bih + gh_w
    tgi = work[meta[L.W_TGI] : meta[L.W_TGI] + d * gh_w]
    for i in range(d * gh_w):
        tgi[i] = 0.0
    gemm_tn_add(tgi, d, gh_w, work[meta[L.W_XW] :], d, dgi, gh_w, t_w)
    transpose_add(tgi, d, gh_w, mem[g0:o_hh])
    gemm_tn_add(mem[o_hh:o_bih], gh_w, h, dgh, gh_w, work[meta[L.W_STATES] :], meta[L.S], t_w)
    column_sums_add(mem[o_bih:o_bhh], gh_w, dgi, gh_w, t_w)
    column_sums_add(mem[o_bhh : o_bhh + gh_w], gh_w, dgh, gh_w, t_w)


@jit
def predict_step(meta, mem, slab, slot, work, iwork, x, out):
    """Output for the next step of stream ``slot``, without changing the model.

    Shapes: slab (n, ROW_SIZE); x (D,); out (O,).
    Math: out = head(W_o f(s, x) + b_o).
    Writes: out; the predict cache in work/iwork (so a following learn with the same x
    does not recompute the step).
    Returns: OK, ERR_X (iwork[ERR_INDEX] = bad index) or ERR_STATE.
    """
    d = meta[L.D]
    s_w = meta[L.S]
    h = meta[L.H]
    a_w = meta[L.A]
    gh_w = meta[L.G] * h
    bad = first_nonfinite(x, d)
    if bad >= 0:
        iwork[L.ERR_INDEX] = bad
        return L.ERR_X
    row = slab[slot]
    cs = work[meta[L.W_CACHE_S] : meta[L.W_CACHE_S] + s_w]
    ca = work[meta[L.W_CACHE_A] : meta[L.W_CACHE_A] + a_w]
    gi = work[meta[L.W_GI] : meta[L.W_GI] + gh_w]
    gh = work[meta[L.W_GH] : meta[L.W_GH] + gh_w]
    iwork[L.CACHE_VALID] = 0
    cell_forward(meta, mem, x, row[:s_w], cs, ca, gi, gh)
    if first_nonfinite(cs, s_w) >= 0:
        return L.ERR_STATE
    cx = work[meta[L.W_CACHE_X] : meta[L.W_CACHE_X] + d]
    for i in range(d):
        cx[i] = x[i]
    iwork[L.CACHE_VALID] = 1
    iwork[L.CACHE_SLOT] = slot
    o_w = meta[L.O]
    logits = work[meta[L.W_LOGITS] : meta[L.W_LOGITS] + o_w]
    readout_forward(mem, readout_offset(meta), h, o_w, cs[:h], logits)
    head_output(meta[L.LOSS], logits, o_w, out)
    return L.OK


@jit
def check_target(meta, iwork, y, has_y):
    """OK, or ERR_Y / ERR_Y_DOMAIN (index in iwork[ERR_INDEX]) for a target that is not
    finite or outside the loss's domain."""
    if has_y:
        o_w = meta[L.O]
        bad = first_nonfinite(y, o_w)
        if bad >= 0:
            iwork[L.ERR_INDEX] = bad
            return L.ERR_Y
        bad = target_domain_error(meta[L.LOSS], y, o_w)
        if bad >= 0:
            iwork[L.ERR_INDEX] = bad
            return L.ERR_Y_DOMAIN
    return L.OK


@jit
def cache_hit(meta, work, iwork, slot, x):
    """True if the predict cache holds the step of stream ``slot`` for exactly ``x``."""
    if iwork[L.CACHE_VALID] != 1 or iwork[L.CACHE_SLOT] != slot:
        return False
    d = meta[L.D]
    cx = work[meta[L.W_CACHE_X] : meta[L.W_CACHE_X] + d]
    for i in range(d):
        if cx[i] != x[i]:
            return False
    return True


@jit
def learn_step(meta, fmeta, mem, slab, counts, slot, work, iwork, x, y, has_y):
    """Consume one sample on stream ``slot``; at its K1-th step run a TBPTT update.

    Shapes: slab (n, ROW_SIZE); counts (n, 1); x (D,); y (O,) (ignored if not has_y).
    Math: s <- f(s, x); the ring buffer keeps x, y and the target flag; see ``tbptt_update``.
    Writes: slab[slot], counts[slot], and at a boundary mem, meta counters and fmeta stats.
    Returns: OK, or ERR_X / ERR_Y / ERR_Y_DOMAIN / ERR_STATE before anything is written.
    """
    d = meta[L.D]
    o_w = meta[L.O]
    s_w = meta[L.S]
    k1 = meta[L.K1]
    k2 = meta[L.K2]
    bad = first_nonfinite(x, d)
    if bad >= 0:
        iwork[L.ERR_INDEX] = bad
        return L.ERR_X
    code = check_target(meta, iwork, y, has_y)
    if code != L.OK:
        return code
    row = slab[slot]
    cs = work[meta[L.W_CACHE_S] : meta[L.W_CACHE_S] + s_w]
    if not cache_hit(meta, work, iwork, slot, x):
        gh_w = meta[L.G] * meta[L.H]
        ca = work[meta[L.W_CACHE_A] : meta[L.W_CACHE_A] + meta[L.A]]
        gi = work[meta[L.W_GI] : meta[L.W_GI] + gh_w]
        gh = work[meta[L.W_GH] : meta[L.W_GH] + gh_w]
        cell_forward(meta, mem, x, row[:s_w], cs, ca, gi, gh)
        if first_nonfinite(cs, s_w) >= 0:
            iwork[L.CACHE_VALID] = 0
            return L.ERR_STATE
    # ---- nothing has been written before this line ----
    iwork[L.CACHE_VALID] = 0
    count = counts[slot, 0]
    pos = count % k2
    xo = meta[L.ROW_XS] + pos * d
    copy_into(row[xo : xo + d], x, d)
    yo = meta[L.ROW_YS] + pos * o_w
    ys = row[yo : yo + o_w]
    for o in range(o_w):
        ys[o] = y[o] if has_y else 0.0
    row[meta[L.ROW_MASK] + pos] = 1.0 if has_y else 0.0
    if k1 == k2:
        _record_window_step(meta, work, iwork, slot, count % k1, row[:s_w], cs, x)
    for i in range(s_w):
        row[i] = cs[i]
    count += 1
    counts[slot, 0] = count
    meta[L.N_STEPS] += 1
    if count % k1 == 0:
        tbptt_update(meta, fmeta, mem, row, count, work, iwork, slot)
    if (count + k2) % k1 == 0:
        j = ((count + k2) // k1) % meta[L.M]
        so = meta[L.ROW_START] + j * s_w
        copy_into(row[so : so + s_w], row, s_w)
    return L.OK


@jit
def _record_window_step(meta, work, iwork, slot, t, s, s_next, x):
    """Keep step t of the current window (its input, new state and activations) so the
    update at the window's end can skip the forward re-run (k1 == k2 only: then the
    weights cannot change inside a window unless another stream updates them)."""
    if t == 0:
        iwork[L.WIN_SLOT] = slot
        iwork[L.WIN_LEN] = 0
        iwork[L.WIN_VERSION] = meta[L.N_UPDATES]
    if iwork[L.WIN_SLOT] != slot or iwork[L.WIN_LEN] != t or iwork[L.WIN_VERSION] != meta[L.N_UPDATES]:
        iwork[L.WIN_SLOT] = -1
        return
    s_w = meta[L.S]
    a_w = meta[L.A]
    d = meta[L.D]
    states = work[meta[L.W_STATES] :]
    if t == 0:
        copy_into(states, s, s_w)
    copy_into(states[(t + 1) * s_w :], s_next, s_w)
    acts = work[meta[L.W_ACTS] :]
    copy_into(acts[t * a_w :], work[meta[L.W_CACHE_A] :], a_w)
    xw = work[meta[L.W_XW] :]
    copy_into(xw[t * d :], x, d)
    iwork[L.WIN_LEN] = t + 1


@jit
def tbptt_update(meta, fmeta, mem, row, count, work, iwork, slot):
    """TBPTT over the last T = min(K2, count) steps of one stream, then one update.

    Shapes: row (ROW_SIZE,); work (W_SIZE,).
    Math: states[0] = stored start state; states[t+1] = f(states[t], x_t) with the current
    weights (recorded as the samples arrived when k1 == k2, else re-run); loss = mean of
    the per-step losses of the target steps among the last min(K1, T); gradients flow
    back through every step of the window; lags[k] = ||dL/dh_{T-1-k}||.
    Writes: the gradient, then (if finite) params, moments, wt; meta counters; fmeta stats;
    scratch in work (the window, TGI) and iwork (the lanes of the norms).
    """
    d = meta[L.D]
    h = meta[L.H]
    o_w = meta[L.O]
    s_w = meta[L.S]
    a_w = meta[L.A]
    k1 = meta[L.K1]
    k2 = meta[L.K2]
    n_p = meta[L.P]
    loss = meta[L.LOSS]
    gh_w = meta[L.G] * h
    t_w = min(k2, count)
    first_loss_step = t_w - min(k1, t_w)
    start = count - t_w
    mask0 = meta[L.ROW_MASK]
    recorded = (
        iwork[L.WIN_SLOT] == slot and iwork[L.WIN_LEN] == t_w and iwork[L.WIN_VERSION] == meta[L.N_UPDATES]
    )
    iwork[L.WIN_SLOT] = -1
    n_tgt = 0
    for t in range(first_loss_step, t_w):
        if row[mask0 + (start + t) % k2] != 0.0:
            n_tgt += 1
    if n_tgt == 0:
        meta[L.N_NO_TARGET] += 1
        return
    states = work[meta[L.W_STATES] : meta[L.W_STATES] + (k2 + 1) * s_w]
    acts = work[meta[L.W_ACTS] : meta[L.W_ACTS] + k2 * a_w]
    logits = work[meta[L.W_LOGITS] : meta[L.W_LOGITS] + k2 * o_w]
    dlogits = work[meta[L.W_DLOGITS] : meta[L.W_DLOGITS] + k2 * o_w]
    xw = work[meta[L.W_XW] : meta[L.W_XW] + k2 * d]
    gi = work[meta[L.W_GI] : meta[L.W_GI] + gh_w]
    gh = work[meta[L.W_GH] : meta[L.W_GH] + gh_w]
    xs0 = meta[L.ROW_XS]
    ys0 = meta[L.ROW_YS]
    if not recorded:
        so = meta[L.ROW_START] + ((count // k1) % meta[L.M]) * s_w
        copy_into(states, row[so:], s_w)
        for t in range(t_w):
            p = (start + t) % k2
            copy_into(xw[t * d :], row[xs0 + p * d :], d)
            cell_forward(
                meta,
                mem,
                xw[t * d : (t + 1) * d],
                states[t * s_w : (t + 1) * s_w],
                states[(t + 1) * s_w : (t + 2) * s_w],
                acts[t * a_w : (t + 1) * a_w],
                gi,
                gh,
            )
    g0 = meta[L.OFF_GRAD]
    grad = mem[g0 : g0 + n_p]
    for i in range(n_p):
        grad[i] = 0.0
    off_ro = readout_offset(meta)
    scale = 1.0 / n_tgt
    total = 0.0
    for t in range(first_loss_step, t_w):
        p = (start + t) % k2
        if row[mask0 + p] != 0.0:
            lg = logits[t * o_w : (t + 1) * o_w]
            readout_forward(mem, off_ro, h, o_w, states[(t + 1) * s_w : (t + 1) * s_w + h], lg)
            total += loss_and_grad(
                loss, lg, row[ys0 + p * o_w : ys0 + (p + 1) * o_w], o_w, scale, dlogits[t * o_w : (t + 1) * o_w]
            )
    loss_value = total / n_tgt
    ds = work[meta[L.W_DS] : meta[L.W_DS] + s_w]
    ds_prev = work[meta[L.W_DS2] : meta[L.W_DS2] + s_w]
    for i in range(s_w):
        ds[i] = 0.0
    lags = fmeta[L.F_LAGS : L.F_LAGS + k2]
    sq_lanes = lanes(iwork)
    dgi_all = work[meta[L.W_DGI] : meta[L.W_DGI] + gh_w * k2]
    dgh_all = dgi_all
    if meta[L.CELL] == L.GRU:
        dgh_all = work[meta[L.W_DGH] : meta[L.W_DGH] + gh_w * k2]
    for t in range(t_w - 1, -1, -1):
        p = (start + t) % k2
        s_next = states[(t + 1) * s_w : (t + 2) * s_w]
        if t >= first_loss_step and row[mask0 + p] != 0.0:
            readout_backward(mem, grad, off_ro, h, o_w, s_next[:h], dlogits[t * o_w : (t + 1) * o_w], ds[:h])
        lags[t_w - 1 - t] = math.sqrt(sum_squares(ds, h, sq_lanes))
        cell_backward(
            meta,
            mem,
            states[t * s_w : (t + 1) * s_w],
            s_next,
            acts[t * a_w : (t + 1) * a_w],
            ds,
            ds_prev,
            dgi_all[t * gh_w : (t + 1) * gh_w],
            dgh_all[t * gh_w : (t + 1) * gh_w],
        )
        ds, ds_prev = ds_prev, ds
    accumulate_weight_grads(meta, mem, work, t_w)
    for k in range(t_w, k2):
        lags[k] = 0.0
    gnorm = math.sqrt(sum_squares(grad, n_p, sq_lanes))
    finish_update(meta, fmeta, mem, iwork, loss_value, gnorm, t_w)


@jit
def finish_update(meta, fmeta, mem, iwork, loss_value, gnorm, t_w):
    """Skip a non-finite update, else clip, step the optimizer and record statistics.

    Writes: mem (params, moments, wt), meta counters, fmeta statistics and history; the
    lanes of the weight norm in iwork.
    """
    fmeta[L.LAST_LOSS] = loss_value
    fmeta[L.LAST_GNORM] = gnorm
    clipped = 0.0
    applied = math.isfinite(loss_value) and math.isfinite(gnorm)
    if applied:
        clip = fmeta[L.CLIP]
        if clip > 0.0:
            coef = clip_coefficient(gnorm, clip)
            if coef < 1.0:
                g0 = meta[L.OFF_GRAD]
                grad = mem[g0 : g0 + meta[L.P]]
                for i in range(meta[L.P]):
                    grad[i] = grad[i] * coef
                clipped = 1.0
        applied = optimizer_step(meta, fmeta, mem)
    if not applied:
        meta[L.N_SKIPPED] += 1
        _record(meta, fmeta, loss_value, gnorm, 0.0, fmeta[L.WNORM])
        return
    if clipped > 0.0:
        meta[L.N_CLIPPED] += 1
    refresh_transposed(meta, mem)
    decay = fmeta[L.EMA]
    first = meta[L.N_UPDATES] == 0
    k2 = meta[L.K2]
    lags = fmeta[L.F_LAGS : L.F_LAGS + k2]
    lag_means = fmeta[L.F_LAGS + k2 : L.F_LAGS + 2 * k2]
    if first:
        fmeta[L.EMA_LOSS] = loss_value
        fmeta[L.EMA_GNORM] = gnorm
        for k in range(t_w):
            lag_means[k] = lags[k]
    else:
        fmeta[L.EMA_LOSS] = decay * fmeta[L.EMA_LOSS] + (1.0 - decay) * loss_value
        fmeta[L.EMA_GNORM] = decay * fmeta[L.EMA_GNORM] + (1.0 - decay) * gnorm
        for k in range(t_w):
            lag_means[k] = decay * lag_means[k] + (1.0 - decay) * lags[k]
    fmeta[L.PREV_WNORM] = fmeta[L.WNORM]
    fmeta[L.WNORM] = math.sqrt(sum_squares(mem, meta[L.P], lanes(iwork)))
    meta[L.N_UPDATES] += 1
    _record(meta, fmeta, loss_value, gnorm, clipped, fmeta[L.WNORM])


@jit
def _record(meta, fmeta, loss_value, gnorm, clipped, wnorm):
    """Append one record to the history ring, if it is on."""
    cap = meta[L.HIST]
    if cap <= 0:
        return
    base = L.F_LAGS + 2 * meta[L.K2] + L.HIST_WIDTH * meta[L.HIST_POS]
    fmeta[base] = loss_value
    fmeta[base + 1] = gnorm
    fmeta[base + 2] = clipped
    fmeta[base + 3] = wnorm
    meta[L.HIST_POS] = (meta[L.HIST_POS] + 1) % cap
    if meta[L.HIST_COUNT] < cap:
        meta[L.HIST_COUNT] += 1


@jit
def reset_stream(slab, counts, slot, iwork):
    """Zero stream ``slot``: state, start states, buffer and step count."""
    row = slab[slot]
    for i in range(row.shape[0]):
        row[i] = 0.0
    counts[slot, 0] = 0
    if iwork[L.CACHE_SLOT] == slot:
        iwork[L.CACHE_VALID] = 0
    if iwork[L.WIN_SLOT] == slot:
        iwork[L.WIN_SLOT] = -1


@jit
def run_rows(meta, fmeta, mem, slab, counts, work, iwork, xs, ys, mask, out):
    """Prequential loop over stream 0: for each row t, predict, then learn.

    Shapes: xs (T, D); ys (T, O); mask (T,) bool (row has a target); out (T, O).
    Math: exactly predict_step then learn_step per row.
    Writes: out and the model, as the loop would.
    Returns: the number of rows processed; fewer than T means row `returned` failed with
    the code in iwork[ERR_CODE] and left the model as it was before that row.
    """
    n = xs.shape[0]
    for t in range(n):
        code = predict_step(meta, mem, slab, 0, work, iwork, xs[t], out[t])
        if code == L.OK:
            code = learn_step(meta, fmeta, mem, slab, counts, 0, work, iwork, xs[t], ys[t], mask[t])
        if code != L.OK:
            iwork[L.ERR_CODE] = code
            return t
    return n
