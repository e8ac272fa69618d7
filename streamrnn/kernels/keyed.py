"""Keyed streams: the TBPTT kernels run on one slab row per key, found through ``keymap``.

Dimension letters: D input, O outputs, S state width, R rows of the model arrays (1 when
the weights are shared, else one per slot), N slots (capacity).

The model arrays are those of ``tbptt`` with a leading axis: ``meta (R, META_SIZE)``,
``fmeta (R, F)``, ``mem (R, MEM_SIZE)``; a slot's model is row ``0`` (shared) or row
``slot``. ``init_meta, init_mem`` (and ``init_fmeta``) are the model a new key starts
from: the shared model itself, or the pristine per-key model copied into a slot when
it is given to a new key. ``zero (1, S)`` is an all-zero state row: a key that is not
held is predicted from it, without taking a slot.

Order of a learned sample (``keyed_step``): validate everything first (input, target,
and that the step keeps the state finite, computed from the key's state or the zero
state); only then take a slot for a new key (evicting the LRU key if full), reset it,
learn, touch the key, advance the clock and expire idle keys. A rejected sample
therefore changes nothing: not the key map, not the model.
"""

from .._config import jit
from . import layout as L
from .keymap import (
    KM_CLOCK,
    KM_SHARED,
    keymap_acquire,
    keymap_expire,
    keymap_find,
    keymap_touch,
)
from .linalg import first_nonfinite
from .losses import target_domain_error
from .tbptt import learn_step, predict_step, reset_stream

# iwork[CACHE_SLOT] value meaning: the predict cache holds a step from the zero state
# computed with init_mem (a key that was not held)
ZERO_SLOT = -2


@jit
def keyed_predict(meta, mem, slab, work, iwork, kmeta, table, slots, zero, init_meta, init_mem, key, x, out):
    """Output for the next step of ``key``, without changing the model or the key map.

    Shapes: meta (R, META_SIZE); mem (R, MEM_SIZE); slab (N, ROW_SIZE); zero (1, S);
            x (D,); out (O,).
    Math: out = head(W_o f(s_key, x) + b_o), with s_key = 0 and the new-key weights
          when ``key`` is not held.
    Writes: out; the predict cache in work/iwork.
    Returns: OK, ERR_X or ERR_STATE (see ``predict_step``).
    """
    slot = keymap_find(kmeta, table, slots, key)
    if slot >= 0:
        r = 0 if kmeta[KM_SHARED] == 1 else slot
        return predict_step(meta[r], mem[r], slab, slot, work, iwork, x, out)
    code = predict_step(init_meta, init_mem, zero, 0, work, iwork, x, out)
    if code == L.OK:
        iwork[L.CACHE_SLOT] = ZERO_SLOT
    return code


@jit
def keyed_step(
    meta, fmeta, mem, slab, counts, work, iwork, kmeta, table, slots, zero,
    init_meta, init_fmeta, init_mem, key, x, y, has_y, out, want_out,
):
    """Learn one sample of ``key`` (predicting it first if ``want_out``).

    Shapes: meta (R, META_SIZE); fmeta (R, F); mem (R, MEM_SIZE); slab (N, ROW_SIZE);
            counts (N, 1); zero (1, S); x (D,); y (O,) (ignored unless has_y); out (O,).
    Math: exactly ``predict_step`` (if want_out) then ``learn_step`` on the key's slot;
          a new key first gets a slot (LRU eviction when full), zeroed, with the
          new-key weights when not shared.
    Writes: out (if want_out); the slot's slab row and count; the model (at the key's
            boundary); the key map (slot, LRU order, clock, ttl expiry).
    Returns: OK, or ERR_X / ERR_Y / ERR_Y_DOMAIN / ERR_STATE with nothing written.
    """
    shared = kmeta[KM_SHARED] == 1
    slot = keymap_find(kmeta, table, slots, key)
    if slot >= 0:
        r = 0 if shared else slot
        if want_out:
            code = predict_step(meta[r], mem[r], slab, slot, work, iwork, x, out)
            if code != L.OK:
                return code
        code = learn_step(meta[r], fmeta[r], mem[r], slab, counts, slot, work, iwork, x, y, has_y)
        if code != L.OK:
            return code
    else:
        # validate on the zero state before the key map changes
        d = init_meta[L.D]
        hit = not want_out and iwork[L.CACHE_VALID] == 1 and iwork[L.CACHE_SLOT] == ZERO_SLOT
        if hit:
            c0 = init_meta[L.W_CACHE_X]
            for i in range(d):
                if work[c0 + i] != x[i]:
                    hit = False
                    break
        if not hit:
            code = predict_step(init_meta, init_mem, zero, 0, work, iwork, x, out)
            if code != L.OK:
                return code
            iwork[L.CACHE_SLOT] = ZERO_SLOT
        if has_y:
            o_w = init_meta[L.O]
            bad = first_nonfinite(y, o_w)
            if bad >= 0:
                iwork[L.ERR_INDEX] = bad
                return L.ERR_Y
            bad = target_domain_error(init_meta[L.LOSS], y, o_w)
            if bad >= 0:
                iwork[L.ERR_INDEX] = bad
                return L.ERR_Y_DOMAIN
        # ---- the sample is valid: nothing has been written before this line ----
        slot = keymap_acquire(kmeta, table, slots, key)
        r = 0 if shared else slot
        if not shared:
            meta[r, :] = init_meta
            fmeta[r, :] = init_fmeta
            mem[r, :] = init_mem
        reset_stream(slab, counts, slot, iwork)
        # the cached step from the zero state is the slot's step now
        iwork[L.CACHE_SLOT] = slot
        code = learn_step(meta[r], fmeta[r], mem[r], slab, counts, slot, work, iwork, x, y, has_y)
        if code != L.OK:  # cannot happen: x, y and the step were checked above
            return code
    keymap_touch(kmeta, slots, slot)
    kmeta[KM_CLOCK] += 1
    keymap_expire(kmeta, table, slots)
    return L.OK


@jit
def keyed_run_rows(
    meta, fmeta, mem, slab, counts, work, iwork, kmeta, table, slots, zero,
    init_meta, init_fmeta, init_mem, keys, xs, ys, mask, out,
):
    """Prequential loop over keyed rows: for each row t, predict then learn keys[t].

    Shapes: keys (T,) int64; xs (T, D); ys (T, O); mask (T,) bool; out (T, O); the rest
            as in ``keyed_step``.
    Math: exactly ``keyed_step(..., want_out=True)`` per row, in order (so slots,
          evictions and expiries happen as in the loop of predict/learn).
    Writes: out, the model and the key map, as the loop would.
    Returns: the number of rows processed; fewer than T means row ``returned`` was
    rejected with the code in iwork[ERR_CODE] and left everything as before that row.
    """
    n = xs.shape[0]
    for t in range(n):
        code = keyed_step(
            meta, fmeta, mem, slab, counts, work, iwork, kmeta, table, slots, zero,
            init_meta, init_fmeta, init_mem, keys[t], xs[t], ys[t], mask[t], out[t], True,
        )
        if code != L.OK:
            iwork[L.ERR_CODE] = code
            return t
    return n
