"""StreamRNN._resize: growing the input or output layer keeps everything learned.

Growing the input layer and feeding zeros in the new columns must be invisible: the
same predictions, gradients, weights and moments, bit for bit, as the model that never
grew. Growing the output layer must keep the old rows and start new ones at logit 0.
"""

import copy
import pickle

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.kernels import layout as L
from streamrnn.testing.probe import assert_same_arrays, last_gradient, snapshot

CELLS = ["elman", "gru", "lstm"]
OPTS = ["sgd", "adam", "rmsprop"]


def make(cell="gru", **kw):
    cfg = dict(cell=cell, input_size=3, hidden_size=5, output_size=2, k1=3, k2=7, lr=0.05, clip=1.0, seed=3)
    cfg.update(kw)
    return sr.StreamRNN(**cfg)


def data(rng, T, D=3, O=2):
    X = rng.normal(size=(T, D))
    Y = np.tanh(np.cumsum(X[:, :O], axis=0) / 4.0)
    return X, Y


def old_block(model, d, o, vector):
    """Split a flat parameter-shaped vector of a grown model into (old part, new part)."""
    from streamrnn import cells

    sl = cells.param_slices(model.cell, model.input_size, model.hidden_size, model.output_size)
    old, new = [], []
    for name, (s, shape) in sl.items():
        block = vector[s].reshape(shape)
        if name == "weight_ih_l0":
            old.append(block[:, :d].ravel())
            new.append(block[:, d:].ravel())
        elif name.startswith("readout"):
            old.append(block[:o].ravel())
            new.append(block[o:].ravel())
        else:
            old.append(block.ravel())
    return np.concatenate(old), np.concatenate(new)


def moments(model):
    p = model.n_params
    m0 = int(model._meta[L.OFF_MOM])
    return [model._mem[m0 + j * p : m0 + (j + 1) * p] for j in range(model._layout.n_moments)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt", OPTS)
def test_grown_input_fed_zeros_is_bit_identical_to_the_ungrown_model(cell, opt, rng):
    """Without clipping, bit for bit. (With clipping the global norm sums the same
    squares in another grouping, so the clip factor may differ in the last bit.)"""
    X, Y = data(rng, 80)
    a = make(cell, optimizer=opt, momentum=0.9 if opt != "adam" else 0.0, weight_decay=0.01, clip=None)
    a.run(X[:23], Y[:23])  # mid-window, ring buffer wrapped
    b = copy.deepcopy(a)
    b._resize(input_size=5)
    assert b.input_size == 5 and b._config()["input_size"] == 5
    Xb = np.hstack([X, np.zeros((80, 2))])
    for t in range(23, 80):
        pa, pb = a.predict(X[t]), b.predict(Xb[t])
        assert pa.tobytes() == pb.tobytes()
        a.learn(X[t], Y[t])
        b.learn(Xb[t], Y[t])
        if (t + 1) % a.k1 == 0:
            ga_old, _ = old_block(a, 3, 2, last_gradient(a))
            gb_old, gb_new = old_block(b, 3, 2, last_gradient(b))
            assert ga_old.tobytes() == gb_old.tobytes()
            assert not gb_new.any()
    pa_old, _ = old_block(a, 3, 2, a.params)
    pb_old, pb_new = old_block(b, 3, 2, b.params)
    assert pa_old.tobytes() == pb_old.tobytes()
    assert not pb_new.any()
    for ma, mb in zip(moments(a), moments(b)):
        ma_old, _ = old_block(a, 3, 2, ma)
        mb_old, mb_new = old_block(b, 3, 2, mb)
        assert ma_old.tobytes() == mb_old.tobytes() and not mb_new.any()
    da, db = a.diagnostics(), b.diagnostics()
    assert da["updates"] == db["updates"] > 10 and da["loss"] == db["loss"]
    assert np.array_equal(da["lag_grad_norm"], db["lag_grad_norm"])


@pytest.mark.parametrize("cell", CELLS)
def test_grown_input_with_clipping_tracks_the_ungrown_model(cell, rng):
    X, Y = data(rng, 80)
    a = make(cell, optimizer="rmsprop", clip=0.05)
    a.run(X[:23], Y[:23])
    b = copy.deepcopy(a)
    b._resize(input_size=4)
    Pa = a.run(X[23:], Y[23:])
    Pb = b.run(np.hstack([X[23:], np.zeros((57, 1))]), Y[23:])
    assert a.diagnostics()["clipped"] > 5
    np.testing.assert_allclose(Pb, Pa, rtol=1e-11, atol=1e-12)
    pa_old, _ = old_block(a, 3, 2, a.params)
    pb_old, pb_new = old_block(b, 3, 2, b.params)
    np.testing.assert_allclose(pb_old, pa_old, rtol=1e-11, atol=1e-12)
    assert not pb_new.any()


@pytest.mark.parametrize("cell", CELLS)
def test_resize_keeps_state_buffer_counters_and_statistics(cell, rng):
    X, Y = data(rng, 40)
    a = make(cell, history=5)
    a.run(X[:29], Y[:29], mask=np.arange(29) % 3 != 1)
    before = snapshot(a)
    b = copy.deepcopy(a)
    b._resize(input_size=4, output_size=3)
    assert b.steps == a.steps == 29
    for key in ("steps", "updates", "skipped", "clipped", "no_target", "loss", "grad_norm"):
        assert a.diagnostics()[key] == b.diagnostics()[key], key
    assert np.array_equal(a.diagnostics()["history"]["loss"], b.diagnostics()["history"]["loss"])
    ha, hb = (np.concatenate(v) if cell == "lstm" else v for v in (a.hidden, b.hidden))
    assert ha.tobytes() == hb.tobytes()
    assert np.array_equal(a._fmeta, b._fmeta) and np.array_equal(a._counts, b._counts)
    for i in (L.OPT_STEP, L.N_UPDATES, L.N_SKIPPED, L.N_CLIPPED, L.N_STEPS, L.HIST_POS, L.HIST_COUNT, L.N_NO_TARGET):
        assert a._meta[i] == b._meta[i]
    # the ring buffer: old entries copied, new input columns and target rows zero
    k2, s = a.k2, a._layout.state_width
    for m, d, o in ((a, 3, 2), (b, 4, 3)):
        assert m._meta[L.D] == d and m._meta[L.O] == o
    xa = a._slab[0, a._meta[L.ROW_XS] : a._meta[L.ROW_YS]].reshape(k2, 3)
    xb = b._slab[0, b._meta[L.ROW_XS] : b._meta[L.ROW_YS]].reshape(k2, 4)
    ya = a._slab[0, a._meta[L.ROW_YS] : a._meta[L.ROW_MASK]].reshape(k2, 2)
    yb = b._slab[0, b._meta[L.ROW_YS] : b._meta[L.ROW_MASK]].reshape(k2, 3)
    assert np.array_equal(xb[:, :3], xa) and not xb[:, 3].any()
    assert np.array_equal(yb[:, :2], ya) and not yb[:, 2].any()
    ma = a._slab[0, a._meta[L.ROW_MASK] : a._meta[L.ROW_MASK] + k2]
    mb = b._slab[0, b._meta[L.ROW_MASK] : b._meta[L.ROW_MASK] + k2]
    assert np.array_equal(ma, mb)
    assert np.array_equal(a._slab[0, : a._meta[L.ROW_XS]], b._slab[0, : b._meta[L.ROW_XS]])
    assert a._meta[L.ROW_XS] == s * (1 + a._layout.n_starts)
    assert_same_arrays(before, snapshot(a))  # the source of the copy is untouched
    # the grown model is a normal model: run == loop, pickles, continues
    c = pickle.loads(pickle.dumps(b))
    X2, Y2 = data(rng, 30, D=4, O=3)
    P = b.run(X2, Y2)
    loop = []
    for t in range(30):
        loop.append(c.predict(X2[t]))
        c.learn(X2[t], Y2[t])
    assert np.array_equal(P, np.array(loop))
    assert_same_arrays(snapshot(b), snapshot(c))


@pytest.mark.parametrize("cell", CELLS)
def test_grown_output_keeps_old_rows_and_starts_new_ones_at_logit_zero(cell, rng):
    X, Y = data(rng, 30)
    x = rng.normal(size=3)
    for loss, o_new in (("mse", 4), ("bce", 3)):
        a = make(cell, loss=loss)
        a.run(X, (Y + 1) / 2 if loss == "bce" else Y)
        b = copy.deepcopy(a)
        b._resize(output_size=o_new)
        pa, pb = a.predict(x), b.predict(x)
        assert pa.tobytes() == pb[:2].tobytes()
        assert np.all(pb[2:] == (0.0 if loss == "mse" else 0.5))
    a = make(cell, loss="ce", output_size=2)
    a.run(X, np.eye(2)[(Y[:, 0] > 0).astype(int)])
    b = copy.deepcopy(a)
    b._resize(output_size=3)
    pa, pb = a.predict(x), b.predict(x)
    c = copy.deepcopy(a)
    c.learn(x)  # the state after x, computed with a's weights
    h = c.hidden[0] if cell == "lstm" else c.hidden
    w = a.named_parameters()
    logits = w["readout.weight"] @ h + w["readout.bias"]
    # the new row's logit is exactly 0: p_new = 1 / (1 + sum exp(old logits))
    np.testing.assert_allclose(pb[2], 1.0 / (1.0 + np.exp(logits).sum()), rtol=1e-13)
    np.testing.assert_allclose(pb[:2] / pb[:2].sum(), pa, rtol=0, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
def test_mse_gradient_scales_by_the_output_count(cell, rng):
    """MSE averages over outputs: from 1 to 2 outputs (new target 0), every old gradient halves exactly."""
    X, Y = data(rng, 20, O=1)
    a = make(cell, output_size=1, k1=4, k2=4, lr=0.0, clip=None)
    a.run(X[:6], Y[:6])
    b = copy.deepcopy(a)
    b._resize(output_size=2)
    for t in range(6, 12):
        a.learn(X[t], Y[t])
        b.learn(X[t], [Y[t, 0], 0.0])
    ga, _ = old_block(a, 3, 1, last_gradient(a))
    gb, gb_new = old_block(b, 3, 1, last_gradient(b))
    assert np.any(ga != 0)
    assert (0.5 * ga).tobytes() == gb.tobytes()
    assert not gb_new.any()  # zero row, zero target: nothing to learn


def test_resize_rejects_shrinking_and_changes_nothing(rng):
    a = make()
    X, Y = data(rng, 10)
    a.run(X, Y)
    before = snapshot(a)
    for kw, match in (
        (dict(input_size=2), "sizes can only grow"),
        (dict(output_size=1), "sizes can only grow"),
        (dict(input_size=0), "input_size must be an integer >= 1"),
        (dict(output_size=2.5), "output_size must be an integer"),
    ):
        with pytest.raises(ValueError, match=match):
            a._resize(**kw)
        assert_same_arrays(before, snapshot(a))
    assert a._resize() is a and a._resize(input_size=3) is a
    assert_same_arrays(before, snapshot(a))


def test_resize_copies_every_stream_row():
    """A slab with several rows (the keyed layout) grows row by row."""
    a = make(k1=2, k2=4)
    a._build(n_streams=3)
    a._slab[:] = np.arange(a._slab.size, dtype=float).reshape(a._slab.shape)
    a._counts[:, 0] = [1, 5, 9]
    b = copy.deepcopy(a)
    b._resize(input_size=5, output_size=3)
    for r in range(3):
        xa = a._slab[r, a._meta[L.ROW_XS] : a._meta[L.ROW_YS]].reshape(4, 3)
        xb = b._slab[r, b._meta[L.ROW_XS] : b._meta[L.ROW_YS]].reshape(4, 5)
        ya = a._slab[r, a._meta[L.ROW_YS] : a._meta[L.ROW_MASK]].reshape(4, 2)
        yb = b._slab[r, b._meta[L.ROW_YS] : b._meta[L.ROW_MASK]].reshape(4, 3)
        assert np.array_equal(xb[:, :3], xa) and not xb[:, 3:].any()
        assert np.array_equal(yb[:, :2], ya) and not yb[:, 2:].any()
        assert np.array_equal(a._slab[r, : a._meta[L.ROW_XS]], b._slab[r, : b._meta[L.ROW_XS]])
        assert np.array_equal(a._slab[r, a._meta[L.ROW_MASK] :], b._slab[r, b._meta[L.ROW_MASK] :])
    assert np.array_equal(a._counts, b._counts)


@pytest.mark.parametrize("cell", CELLS)
def test_advance_moves_the_state_like_learn_without_storing_or_learning(cell, rng):
    X, Y = data(rng, 30)
    a = make(cell, k1=40, k2=40)  # no update falls in the steps below
    a.run(X[:10], Y[:10])
    b = copy.deepcopy(a)
    steps, params = a.steps, a.params.copy()
    for t in range(10, 16):
        p = a.predict(X[t])
        assert a._advance(X[t]).tobytes() == p.tobytes()
        b.learn(X[t])  # no target: the state advances the same way
        ha, hb = (np.concatenate(v) if cell == "lstm" else v for v in (a.hidden, b.hidden))
        assert ha.tobytes() == hb.tobytes()
    assert a.steps == steps and np.array_equal(a.params, params)
    assert a.predict(X[20]).tobytes() == b.predict(X[20]).tobytes()
