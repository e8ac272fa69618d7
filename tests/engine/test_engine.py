"""StreamRNN's streaming contract: run == loop, purity, guards, skips, dtypes, pickling."""

import copy
import pickle

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.testing.probe import assert_same_arrays, snapshot

CELLS = ["elman", "gru", "lstm"]


def make(cell="gru", **kw):
    cfg = dict(cell=cell, input_size=3, hidden_size=6, output_size=2, k1=4, k2=9, lr=0.05, clip=1.0, seed=1)
    cfg.update(kw)
    return sr.StreamRNN(**cfg)


def data(rng, T=120, D=3, O=2):
    X = rng.normal(size=(T, D))
    Y = np.tanh(np.cumsum(X[:, :O], axis=0) / 5.0)
    mask = rng.uniform(size=T) < 0.7
    return X, Y, mask


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop"])
def test_run_equals_predict_learn_loop_bit_for_bit(cell, dtype, opt, rng):
    X, Y, mask = data(rng)
    a = make(cell, dtype=dtype, optimizer=opt, momentum=0.9 if opt != "adam" else 0.0)
    b = copy.deepcopy(a)
    P = a.run(X, Y, mask=mask)
    loop = []
    for t in range(len(X)):
        loop.append(b.predict(X[t]))
        b.learn(X[t], Y[t] if mask[t] else None)
    assert P.dtype == np.dtype(dtype)
    assert np.array_equal(P, np.array(loop))
    assert_same_arrays(snapshot(a), snapshot(b))
    assert a.diagnostics()["updates"] > 10


@pytest.mark.parametrize("k1,k2", [(4, 9), (5, 5)])
def test_learn_without_predict_equals_learn_after_predict(k1, k2, rng):
    """The predict cache only saves work: results are identical either way."""
    X, Y, mask = data(rng, T=60)
    a, b = make(k1=k1, k2=k2), make(k1=k1, k2=k2)
    for t in range(60):
        a.predict(X[t])
        a.learn(X[t], Y[t])
        b.learn(X[t], Y[t])
        b.predict(X[(t + 1) % 60])  # a cache for another input must not be used
    assert_same_arrays(snapshot(a), snapshot(b))


@pytest.mark.parametrize("cell", CELLS)
def test_recorded_window_equals_rerun_window(cell, rng):
    """k1 == k2 records the forward as samples arrive; an update that must re-run it
    (here: the record is dropped by load_state_dict mid-window) gives the same bits."""
    X, Y, _ = data(rng, T=40)
    a, b = make(cell, k1=8, k2=8), make(cell, k1=8, k2=8)
    for t in range(40):
        a.learn(X[t], Y[t])
        b.learn(X[t], Y[t])
        if t % 8 == 3:
            b.load_state_dict(b.state_dict())
    assert a.diagnostics()["updates"] == 5
    assert_same_arrays(snapshot(a), snapshot(b))


@pytest.mark.parametrize("cell", CELLS)
def test_predict_is_pure(cell, rng):
    m = make(cell)
    X, Y, _ = data(rng, T=30)
    m.run(X, Y)
    before = snapshot(m)
    pickled = pickle.dumps(m)
    p1 = m.predict(X[0])
    p2 = m.predict(X[0])
    assert np.array_equal(p1, p2)
    assert_same_arrays(before, snapshot(m))
    assert pickle.dumps(m) == pickled


@pytest.mark.parametrize(
    "x,y,match",
    [
        ([np.nan, 0.0, 0.0], None, r"x\[0\] is nan"),
        ([0.0, np.inf, 0.0], None, r"x\[1\] is inf"),
        ([0.0, 0.0, 0.0], [0.0, -np.inf], r"y\[1\] is -inf"),
        ([0.0, 0.0], None, r"x must have shape \(3,\)"),
        ([[0.0, 0.0, 0.0]], None, r"x must have shape \(3,\)"),
        ([0.0, 0.0, 0.0], [1.0], r"y must have shape \(2,\)"),
        (["a", "b", "c"], None, "x must be numeric"),
        ([1.0, None, 2.0], None, "x must be numeric"),
        ([0.0, 0.0, 0.0], "ab", "y must be numeric"),
        ([1j, 0.0, 0.0], None, "x must be numeric"),
        ([1.0, [2.0], 3.0], None, "x must be"),
    ],
)
def test_rejected_sample_leaves_every_array_unchanged(x, y, match, rng):
    m = make()
    X, Y, _ = data(rng, T=23)  # mid-window: 23 % 4 != 0
    m.run(X, Y)
    m.predict(X[0])
    before = snapshot(m)
    with pytest.raises(ValueError, match=match):
        m.learn(x, y)
    assert_same_arrays(before, snapshot(m))
    if y is None:
        with pytest.raises(ValueError, match=match):
            m.predict(x)
        assert_same_arrays(before, snapshot(m))


def test_float32_overflow_is_rejected_with_the_original_field(rng):
    m = make(dtype="float32")
    before = snapshot(m)
    with pytest.raises(ValueError, match=r"x\[2\] is inf \(as float32\)"):
        m.learn(np.array([0.0, 1.0, 1e308]))
    assert_same_arrays(before, snapshot(m))


@pytest.mark.parametrize("cell", CELLS)
def test_huge_finite_inputs_never_corrupt_the_state(cell):
    """Inputs near the float64 limit either give a finite state or are refused unchanged."""
    m = make(cell=cell, input_size=2)
    sd = m.state_dict()
    sd["weight_ih_l0"][:, 0] = 2.0
    sd["weight_ih_l0"][:, 1] = -2.0
    m.load_state_dict(sd)
    for x in ([1e308, 1e308], [-1e308, 1e308], [1e308, -1e308]):
        before = snapshot(m)
        try:
            m.learn(x, [0.0, 0.0])
        except ValueError as exc:
            assert "non-finite" in str(exc)
            assert_same_arrays(before, snapshot(m))
        state = np.concatenate(m.hidden) if cell == "lstm" else m.hidden
        assert np.all(np.isfinite(state)) and np.all(np.isfinite(m.params))


def test_target_domain_is_checked():
    b = make(loss="bce")
    with pytest.raises(ValueError, match=r"y\[1\] is 2.0.*\[0, 1\]"):
        b.learn([0, 0, 0], [0.0, 2.0])
    c = make(loss="ce", output_size=3)
    with pytest.raises(ValueError, match="non-negative"):
        c.learn([0, 0, 0], [0.0, 0.0, 0.0])


def test_run_rejects_bad_rows_before_learning_anything(rng):
    m = make()
    X, Y, _ = data(rng, T=20)
    X[13, 1] = np.nan
    before = snapshot(m)
    with pytest.raises(ValueError, match=r"X\[13, 1\] is nan"):
        m.run(X, Y)
    assert_same_arrays(before, snapshot(m))
    X[13, 1] = 0.0
    Y[5, 0] = np.inf
    with pytest.raises(ValueError, match=r"Y\[5, 0\] is inf"):
        m.run(X, Y)
    Y[5, 0] = 0.0
    with pytest.raises(ValueError, match="Y has 19 rows"):
        m.run(X, Y[:19])
    assert_same_arrays(before, snapshot(m))


@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop"])
def test_non_finite_loss_skips_the_update_and_counts_it(opt):
    m = make(optimizer=opt, k1=2, k2=2, clip=None)
    m.learn([0.1, 0.2, 0.3], [0.0, 0.0])
    w = m.params.copy()
    moments = m._mem.copy()
    m.learn([0.1, 0.2, 0.3], [1e300, 0.0])  # (l - y)^2 overflows: loss is inf
    d = m.diagnostics()
    assert d["skipped"] == 1 and d["updates"] == 0
    assert not np.isfinite(d["loss"])
    np.testing.assert_array_equal(m.params, w)
    n = m.n_params
    np.testing.assert_array_equal(m._mem[: n * (1 + m._layout.n_moments)], moments[: n * (1 + m._layout.n_moments)])
    assert m.steps == 2


def test_absurd_learning_rate_never_makes_weights_non_finite(rng):
    X, Y, _ = data(rng, T=400)
    for opt in ["sgd", "adam", "rmsprop"]:
        m = make(optimizer=opt, lr=1e3, clip=None, k1=1, k2=3)
        m.run(X, Y * 1e3)
        assert np.all(np.isfinite(m.params)), opt
        d = m.diagnostics()
        assert d["updates"] + d["skipped"] + d["no_target"] == 400


def test_steps_without_targets_advance_state_but_do_not_update():
    m = make(k1=3, k2=3)
    w = m.params.copy()
    for _ in range(9):
        m.learn([1.0, 2.0, 3.0])
    assert m.steps == 9
    assert m.diagnostics()["no_target"] == 3
    np.testing.assert_array_equal(m.params, w)


def test_scalar_target_for_single_output():
    m = make(output_size=1)
    m.learn([0, 0, 0], 0.5)
    m.learn(np.zeros(3, dtype=np.int32), np.float32(0.5))
    assert m.steps == 2


def test_reset_state_keeps_weights():
    m = make(k1=2, k2=2)
    for _ in range(5):
        m.learn([1, 1, 1], [0.5, 0.5])
    w = m.params.copy()
    m.reset_state()
    assert m.steps == 0
    assert np.all(m.hidden == 0)
    np.testing.assert_array_equal(m.params, w)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(cell="rnn"), "cell must be one of"),
        (dict(hidden_size=0), "hidden_size must be an integer >= 1"),
        (dict(k1=4, k2=2), "k2 must be >= k1"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(lr=-1.0), "lr must be"),
        (dict(lr=float("nan")), "lr must be"),
        (dict(clip=0.0), "clip must be"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(nesterov=True), "nesterov=True needs momentum"),
        (dict(betas=(0.9,)), "betas must be a pair"),
        (dict(loss="ce", output_size=1), "needs output_size >= 2"),
        (dict(input_size=2.5), "input_size must be an integer"),
    ],
)
def test_bad_configuration_names_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        make(**kw)


def test_state_dict_round_trip_and_validation():
    a, b = make(seed=1), make(seed=2)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.predict([1, 2, 3]), b.predict([1, 2, 3]))
    sd = a.state_dict()
    sd["weight_hh_l0"] = sd["weight_hh_l0"][:, :-1]
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\] must have shape \(18, 6\)"):
        b.load_state_dict(sd)
    sd = a.state_dict()
    del sd["readout.bias"]
    with pytest.raises(ValueError, match="missing \\['readout.bias'\\]"):
        b.load_state_dict(sd)
    with pytest.raises(ValueError):
        b.params[0] = 1.0  # read-only: weights change through load_state_dict only


def test_pickle_and_deepcopy_continue_identically(rng):
    X, Y, _ = data(rng, T=50)
    a = make()
    a.run(X[:21], Y[:21])
    b = pickle.loads(pickle.dumps(a))
    c = copy.deepcopy(a)
    pa = a.run(X[21:], Y[21:])
    assert np.array_equal(pa, b.run(X[21:], Y[21:]))
    assert np.array_equal(pa, c.run(X[21:], Y[21:]))


def test_float32_tracks_float64(rng):
    X, Y, _ = data(rng, T=200)
    a, b = make(dtype="float64"), make(dtype="float32")
    pa, pb = a.run(X, Y), b.run(X, Y)
    assert b.params.dtype == np.float32
    np.testing.assert_allclose(pb, pa, atol=1e-4)


def test_learning_rate_schedule_validation():
    with pytest.raises(ValueError, match="lr_end and lr_tau go together"):
        make(lr_end=0.001)
    with pytest.raises(ValueError, match="lr_tau must be"):
        make(lr_end=0.001, lr_tau=0.0)
    m = make(lr_end=0.001, lr_tau=50.0)
    assert m._config()["lr_end"] == 0.001 and sr.StreamRNN(**m._config())._config() == m._config()


def test_a_model_can_be_shared_between_threads(rng):
    """Kernels keep the GIL, so concurrent predict/learn calls on one model are serialised:
    every answer equals the one computed alone (the scratch is never written by two at once)."""
    import threading

    m = make(cell="lstm", hidden_size=16)
    X = rng.normal(size=(2, 3))
    expected = [m.predict(X[0]), m.predict(X[1])]
    wrong = [0, 0]

    def worker(i):
        for _ in range(3000):
            if not np.array_equal(m.predict(X[i]), expected[i]):
                wrong[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [0, 0]
