"""KeyedStreamRNN: one key == StreamRNN, run == loop, per-key trajectories, eviction, guards."""

import copy
import pickle

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import cells
from streamrnn.kernels import layout as L
from streamrnn.kernels import keymap as KM
from streamrnn.kernels.tbptt import refresh_transposed
from streamrnn.testing.keymap import KeyMapRef
from streamrnn.testing.probe import assert_same_arrays, snapshot
from tests.conftest import make_targets

CELLS = ["elman", "gru", "lstm"]
CFG = dict(input_size=3, hidden_size=5, output_size=2, k1=3, k2=7, lr=0.05, clip=1.0, seed=1)


def keyed(cell="gru", **kw):
    cfg = dict(cell=cell, **CFG)
    cfg.update(kw)
    return sr.KeyedStreamRNN(**cfg)


def single(model):
    """A fresh StreamRNN with the keyed model's configuration."""
    cfg = model._config()
    for name in ("capacity", "eviction", "ttl", "shared"):
        del cfg[name]
    return sr.StreamRNN(**cfg)


def stream(rng, T, n_keys, loss="mse", O=2, D=3):
    keys = rng.integers(0, n_keys, T)
    X = rng.normal(size=(T, D))
    Y = make_targets(rng, loss, T, O)
    mask = rng.uniform(size=T) < 0.7
    return keys, X, Y, mask


def key_model_arrays(m, key):
    """The arrays that make up ``key``'s stream (and its own model when not shared)."""
    slot = m._slot(key)
    assert slot >= 0, key
    out = {"_slab": m._slab[slot : slot + 1], "_counts": m._counts[slot : slot + 1]}
    if m.shared:
        out.update(_meta=m._meta, _fmeta=m._fmeta, _mem=m._mem)
    else:
        out.update(_meta=m._meta[slot], _fmeta=m._fmeta[slot], _mem=m._mem[slot])
    return out


def stream_arrays(s):
    return {n: getattr(s, n) for n in ("_slab", "_counts", "_meta", "_fmeta", "_mem")}


# ---------------------------------------------------------------- one key == StreamRNN
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt,dtype", [("sgd", "float64"), ("adam", "float32"), ("rmsprop", "float64")])
@pytest.mark.parametrize("capacity", [1, 4])
def test_one_key_equals_stream_rnn_bit_for_bit(cell, opt, dtype, capacity, rng):
    keys, X, Y, mask = stream(rng, 80, 1)
    m = keyed(cell, optimizer=opt, dtype=dtype, momentum=0.9 if opt != "adam" else 0.0, capacity=capacity)
    s = single(m)
    # run, then a loop mixing predict/learn, learn alone and steps without a target
    P = m.run(np.full(50, 42), X[:50], Y[:50], mask=mask[:50])
    Q = s.run(X[:50], Y[:50], mask=mask[:50])
    assert P.dtype == np.dtype(dtype) and np.array_equal(P, Q)
    for t in range(50, 80):
        if t % 3:
            assert np.array_equal(m.predict(42, X[t]), s.predict(X[t]))
        m.learn(42, X[t], Y[t] if mask[t] else None)
        s.learn(X[t], Y[t] if mask[t] else None)
    assert_same_arrays(snapshot_of(key_model_arrays(m, 42)), snapshot_of(stream_arrays(s)))
    if capacity == 1:
        assert_same_arrays(snapshot_of({n: getattr(m, n) for n in stream_arrays(s)}), snapshot_of(stream_arrays(s)))
    d, e = m.diagnostics(), s.diagnostics()
    assert d["updates"] == e["updates"] > 10 and d["loss"] == e["loss"] and d["steps"] == 80
    assert np.array_equal(m.hidden(42) if cell != "lstm" else np.concatenate(m.hidden(42)),
                          s.hidden if cell != "lstm" else np.concatenate(s.hidden))


def snapshot_of(arrays):
    return {n: np.array(v, copy=True) for n, v in arrays.items()}


# ---------------------------------------------------------------- run == loop
def loop(m, keys, X, Y=None, mask=None):
    P = []
    for t in range(len(X)):
        k = keys[t] if isinstance(keys[t], str) else int(keys[t])
        P.append(m.predict(k, X[t]))
        m.learn(k, X[t], None if Y is None or (mask is not None and not mask[t]) else Y[t])
    return np.array(P)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shared,ttl", [(True, None), (True, 6), (False, None), (False, 9)])
def test_run_equals_predict_learn_loop_with_evictions_inside(cell, shared, ttl, rng):
    keys, X, Y, mask = stream(rng, 300, 6)
    a = keyed(cell, capacity=4, ttl=ttl, shared=shared, optimizer="adam", lr=0.02)
    b = copy.deepcopy(a)
    P = a.run(keys, X, Y, mask=mask)
    assert np.array_equal(P, loop(b, keys, X, Y, mask))
    assert_same_arrays(snapshot(a), snapshot(b))
    d = a.diagnostics()
    assert d["evictions"] > 40 and d["updates"] > 3 and d["keys_held"] == len(a) <= 4
    assert (d["expired"] > 0) == (ttl is not None)
    assert a.keys() == b.keys()


def test_run_in_pieces_equals_one_run_and_string_keys_equal_int_keys(rng):
    keys, X, Y, mask = stream(rng, 200, 7)
    a, b, c = keyed(capacity=3), keyed(capacity=3), keyed(capacity=3)
    P = a.run(keys, X, Y, mask=mask)
    Q = np.concatenate([b.run(keys[i : i + 37], X[i : i + 37], Y[i : i + 37], mask=mask[i : i + 37])
                        for i in range(0, 200, 37)])
    names = np.array([f"sensor-{k}" for k in keys])
    R = c.run(names, X, Y, mask=mask)
    assert np.array_equal(P, Q) and np.array_equal(P, R)
    assert_same_arrays(snapshot(a), snapshot(b))
    for n in ("_meta", "_fmeta", "_mem", "_slab", "_counts"):
        assert getattr(a, n).tobytes() == getattr(c, n).tobytes(), n
    assert c.keys() == [f"sensor-{k}" for k in a.keys()]


def test_string_keys_run_equals_loop_with_evictions(rng):
    keys, X, Y, mask = stream(rng, 150, 6)
    names = [["a", "b", "c", "dd", "e", "f"][k] for k in keys]
    a = keyed(capacity=3, ttl=8)
    b = copy.deepcopy(a)
    assert np.array_equal(a.run(names, X, Y, mask=mask), loop(b, names, X, Y, mask))
    assert_same_arrays(snapshot(a), snapshot(b))
    assert a._str_ids == b._str_ids and a.keys() == b.keys()
    assert a.diagnostics()["evictions"] > 10


# ---------------------------------------------------------------- per-key trajectories
@pytest.mark.parametrize("cell", CELLS)
def test_with_lr_zero_each_key_follows_its_own_stream_rnn(cell, rng):
    """Each key's state and predictions equal a StreamRNN fed only that key's samples;
    with evictions (LRU and ttl) a key that comes back equals a fresh StreamRNN."""
    keys, X, Y, mask = stream(rng, 400, 6)
    for capacity, ttl in [(6, None), (3, 4)]:
        m = keyed(cell, lr=0.0, capacity=capacity, ttl=ttl)
        ref, policy = {}, KeyMapRef(capacity, ttl)
        for t in range(400):
            k = int(keys[t])
            expect = ref[k].predict(X[t]) if k in policy.last else single(m).predict(X[t])
            assert np.array_equal(m.predict(k, X[t]), expect)
            if policy.learn(k):
                ref[k] = single(m)
            ref[k].learn(X[t], Y[t] if mask[t] else None)
            m.learn(k, X[t], Y[t] if mask[t] else None)
            got, want = m.hidden(k), ref[k].hidden
            if cell == "lstm":
                got, want = np.concatenate(got), np.concatenate(want)
            assert np.array_equal(got, want) and m.key_steps(k) == ref[k].steps
            assert m.keys() == policy.keys()
        d = m.diagnostics()
        assert (d["evictions"], d["expired"]) == (policy.evictions, policy.expired)
        assert d["updates"] > 20 and (ttl is None or policy.expired > 5)
        assert not np.any(m.params != single(m).params)


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_unshared_keys_each_equal_an_independent_stream_rnn(opt, rng):
    keys, X, Y, mask = stream(rng, 300, 5)
    m = keyed("gru", shared=False, capacity=3, ttl=10, optimizer=opt, momentum=0.9 if opt == "sgd" else 0.0)
    ref, policy = {}, KeyMapRef(3, 10)
    P = m.run(keys, X, Y, mask=mask)
    for t in range(300):
        k = int(keys[t])
        if policy.learn(k):
            ref[k] = single(m)
        assert np.array_equal(P[t], ref[k].predict(X[t]))
        ref[k].learn(X[t], Y[t] if mask[t] else None)
    assert m.keys() == policy.keys() and policy.evictions > 20
    for k in m.keys():
        assert_same_arrays(snapshot_of(key_model_arrays(m, k)), snapshot_of(stream_arrays(ref[k])))
        assert m.diagnostics(k)["updates"] == ref[k].diagnostics()["updates"]
        for name, w in m.state_dict(k).items():
            assert np.array_equal(w, ref[k].state_dict()[name])
    # the weights new keys start from are untouched
    assert np.array_equal(m.params, single(m).params)
    d = m.diagnostics()
    assert d["updates"] == sum(ref[k].diagnostics()["updates"] for k in m.keys()) > 0


# ---------------------------------------------------------------- eviction details
def test_lru_evicts_the_least_recently_learned_key_and_predict_does_not_touch():
    m = keyed(capacity=3)
    x = np.ones(3)
    for k in (1, 2, 3):
        m.learn(k, x)
    m.predict(1, x)  # not a use
    m.learn(2, x)
    assert m.keys() == [2, 3, 1]
    m.learn(4, x)  # evicts 1
    assert m.keys() == [4, 2, 3] and 1 not in m and m.key_steps(1) == 0
    assert np.all(m.hidden(1) == 0) and m.key_steps(2) == 2
    assert m.diagnostics()["evictions"] == 1
    m.learn(1, x)  # back from the zero state, evicting 3
    assert m.keys() == [1, 4, 2] and m.key_steps(1) == 1
    assert m.diagnostics()["evictions"] == 2


def test_ttl_counts_samples_of_the_whole_model():
    m = keyed(capacity=10, ttl=2)
    x = np.ones(3)
    m.learn("a", x)  # sample 0
    m.learn("b", x)  # 1
    m.learn("b", x)  # 2: "a" idle for 2 samples, still held
    assert m.keys() == ["b", "a"]
    m.learn("a", x)  # 3: "a" continues
    assert m.key_steps("a") == 2
    m.learn("c", x)  # 4
    m.learn("c", x)  # 5
    m.learn("c", x)  # 6: "a" idle for 3 > 2: evicted after this sample
    assert m.keys() == ["c"]
    d = m.diagnostics()
    assert d["evictions"] == d["expired"] == 2 and d["keys_held"] == 1
    m.learn("a", x)
    assert m.key_steps("a") == 1


def test_evicted_slot_is_reset_before_reuse(rng):
    m = keyed(capacity=1, lr=0.0)
    keys, X, Y, _ = stream(rng, 20, 1)
    m.run(np.zeros(20, dtype=np.int64), X, Y)
    assert m.key_steps(0) == 20
    m.learn(1, X[0], Y[0])
    fresh = single(m)
    fresh.learn(X[0], Y[0])
    assert np.array_equal(m._slab[0], fresh._slab[0]) and m._counts[0, 0] == 1


# ---------------------------------------------------------------- rejected input
def full_model(rng, **kw):
    m = keyed(capacity=4, ttl=50, **kw)
    keys, X, Y, mask = stream(rng, 23, 4, loss=m.loss, O=m.output_size)
    m.run(keys, X, Y, mask=mask)
    assert len(m) == 4
    return m


@pytest.mark.parametrize("key", [7, 2])  # 7: new key with the map full; 2: held key
@pytest.mark.parametrize(
    "x,y,match",
    [
        ([np.nan, 0.0, 0.0], None, r"x\[0\] is nan"),
        ([0.0, 0.0, 0.0], [0.0, np.inf], r"y\[1\] is inf"),
        ([0.0, 0.0], None, r"x must have shape \(3,\)"),
        ([0.0, 0.0, 0.0], [1.0], r"y must have shape \(2,\)"),
        (["a", "b", "c"], None, "x must be numeric"),
    ],
)
def test_rejected_sample_changes_nothing_not_even_the_key_map(key, x, y, match, rng):
    m = full_model(rng)
    m.predict(7, np.zeros(3))  # a cached prediction for the new key must not matter
    before, keys = snapshot(m), m.keys()
    with pytest.raises(ValueError, match=match):
        m.learn(key, x, y)
    assert_same_arrays(before, snapshot(m))
    assert m.keys() == keys and m.diagnostics()["evictions"] == 0
    if y is None:
        with pytest.raises(ValueError, match=match):
            m.predict(key, x)
        assert_same_arrays(before, snapshot(m))


def test_rejected_target_domain_and_non_finite_state_for_a_new_key(rng):
    m = full_model(rng, loss="bce")
    before = snapshot(m)
    with pytest.raises(ValueError, match=r"y\[1\] is 2.0.*\[0, 1\]"):
        m.learn(9, [0.0, 0.0, 0.0], [0.0, 2.0])
    assert_same_arrays(before, snapshot(m))
    # finite inputs rarely overflow the state (tanh and sigmoids bound it); NaN weights,
    # written behind the API's back, make every step non-finite
    m._mem[: m.n_params] = np.nan
    refresh_transposed(m._meta, m._mem)
    m._iwork[:] = 0  # as load_state_dict would: no predict cache across a weight change
    before, keys = snapshot(m), m.keys()
    for k in (9, keys[0]):  # new and held
        with pytest.raises(ValueError, match="made the hidden state non-finite"):
            m.learn(k, [0.0, 0.0, 0.0], [0.0, 1.0])
        assert_same_arrays(before, snapshot(m))
    assert m.keys() == keys


@pytest.mark.parametrize(
    "key,err,match",
    [
        (1.5, TypeError, "key must be an int or a str, got float"),
        (True, TypeError, "key must be an int or a str, got bool"),
        (None, TypeError, "key must be an int or a str"),
        ((1, 2), TypeError, "key must be an int or a str, got tuple"),
        (2**63, ValueError, "outside the int64 range"),
        ("a", TypeError, "is a str but this model's keys are ints"),
    ],
)
def test_bad_keys_are_rejected_and_change_nothing(key, err, match, rng):
    m = full_model(rng)
    before = snapshot(m)
    with pytest.raises(err, match=match):
        m.learn(key, np.zeros(3))
    with pytest.raises(err, match=match):
        m.predict(key, np.zeros(3))
    with pytest.raises(err):
        m.run([key], np.zeros((1, 3)))
    assert_same_arrays(before, snapshot(m))


def test_string_model_rejects_int_keys_and_bad_samples_keep_the_dict():
    m = keyed(capacity=2)
    m.learn("a", np.zeros(3))
    ids = dict(m._str_ids)
    with pytest.raises(TypeError, match="is an int but this model's keys are strings"):
        m.learn(3, np.zeros(3))
    with pytest.raises(ValueError, match="x"):
        m.learn("new", [np.nan, 0, 0])
    with pytest.raises(ValueError, match="X"):
        m.run(["new", "b"], [[0, 0, 0], [np.inf, 0, 0]])
    assert m._str_ids == ids and m._next_str_id == 1 and m.keys() == ["a"]


def test_run_rejects_bad_arrays_before_learning_anything(rng):
    m = full_model(rng)
    keys, X, Y, mask = stream(rng, 20, 9)
    before = snapshot(m)
    X[13, 1] = np.nan
    with pytest.raises(ValueError, match=r"X\[13, 1\] is nan"):
        m.run(keys, X, Y)
    X[13, 1] = 0.0
    with pytest.raises(ValueError, match=r"keys must have shape \(20,\)"):
        m.run(keys[:19], X, Y)
    with pytest.raises(TypeError, match="keys must be ints or strings, got an array of dtype float64"):
        m.run(keys.astype(float), X, Y)
    with pytest.raises(TypeError, match="all ints or all strings"):
        m.run([1, "a"] * 10, X, Y)
    with pytest.raises(ValueError, match="fit in int64"):
        m.run(np.full(20, 2**64 - 1, dtype=np.uint64), X, Y)
    assert_same_arrays(before, snapshot(m))


def test_run_stopping_at_a_bad_row_keeps_exactly_the_rows_before_it(rng):
    """A target outside the loss's domain is found inside the compiled run: the rows
    before it are learned (with their evictions), nothing of the bad row or after."""
    m = full_model(rng, loss="bce")
    ref = copy.deepcopy(m)
    keys, X, Y, mask = stream(rng, 30, 9, loss="bce")
    Y[17, 1] = 2.0
    with pytest.raises(ValueError, match=r"row 17 \(rows before it were learned\): y\[1\] is 2.0"):
        m.run(keys, X, Y, mask=mask)
    ref.run(keys[:17], X[:17], Y[:17], mask=mask[:17])
    assert_same_arrays(snapshot(ref), snapshot(m))
    assert m.keys() == ref.keys() and m.diagnostics()["evictions"] > 0
    # string keys: strings first seen at or after the bad row are not recorded
    s = keyed(capacity=3, loss="bce")
    names = [f"k{k}" for k in keys]
    names[17] = "only-at-17"
    with pytest.raises(ValueError, match="row 17"):
        s.run(names, X, Y)
    assert "only-at-17" not in s._str_ids and set(s._str_ids) == set(names[:17])
    assert s._next_str_id == len(set(names[:17]))


# ---------------------------------------------------------------- the rest of the API
def test_predict_is_pure_and_takes_no_slot(rng):
    m = full_model(rng)
    before = snapshot(m)
    pickled = pickle.dumps(m)
    for k in (0, 1, 99):
        p = m.predict(k, [0.1, 0.2, 0.3])
        assert np.array_equal(p, m.predict(k, [0.1, 0.2, 0.3]))
    assert_same_arrays(before, snapshot(m))
    assert pickle.dumps(m) == pickled and 99 not in m


def test_predict_cache_is_never_used_for_another_key_or_weights(rng):
    keys, X, Y, mask = stream(rng, 120, 6)
    a, b = keyed(capacity=3), keyed(capacity=3)
    for t in range(120):
        k = int(keys[t])
        a.predict(k, X[t])
        a.predict(int(keys[(t + 1) % 120]), X[t])  # same x, another (maybe new) key
        a.learn(k, X[t], Y[t])
        b.learn(k, X[t], Y[t])
    assert_same_arrays(snapshot(a), snapshot(b))


def test_pickle_and_deepcopy_continue_identically(rng):
    keys, X, Y, mask = stream(rng, 160, 6)
    for shared in (True, False):
        a = keyed(capacity=4, ttl=12, shared=shared)
        a.run(keys[:70], X[:70], Y[:70])
        b, c = pickle.loads(pickle.dumps(a)), copy.deepcopy(a)
        pa = a.run(keys[70:], X[70:], Y[70:])
        assert np.array_equal(pa, b.run(keys[70:], X[70:], Y[70:]))
        assert np.array_equal(pa, c.run(keys[70:], X[70:], Y[70:]))
        assert_same_arrays(snapshot(a), snapshot(b))


def test_key_types_and_array_dtypes_map_to_the_same_keys(rng):
    keys, X, Y, _ = stream(rng, 40, 5)
    ref = keyed(capacity=3)
    P = ref.run(keys, X, Y)
    for variant in (keys.astype(np.int32), keys.astype(np.uint64), keys.tolist(), list(map(np.int16, keys))):
        m = keyed(capacity=3)
        assert np.array_equal(m.run(variant, X, Y), P)
        assert_same_arrays(snapshot(ref), snapshot(m))
    m = keyed(capacity=3)
    for t in range(40):
        m.learn(np.int64(keys[t]), X[t], Y[t])
    assert_same_arrays(snapshot(ref), snapshot(m))
    assert ref.run([], np.zeros((0, 3))).shape == (0, 2) and ref.run(np.array([]), np.zeros((0, 3))).shape == (0, 2)
    big = keyed(capacity=2)
    big.learn(-(2**63), X[0])
    big.learn(2**63 - 1, X[1])
    assert big.keys() == [2**63 - 1, -(2**63)]


def test_reset_state_forgets_keys_but_keeps_weights_and_counters(rng):
    m = full_model(rng)
    w = m.params.copy()
    k = m.keys()[1]
    m.reset_state(k)
    assert k not in m and len(m) == 3 and m.diagnostics()["evictions"] == 0
    m.learn(k, np.zeros(3))
    assert m.key_steps(k) == 1 and len(m) == 4
    steps = m.steps
    m.reset_state()
    assert len(m) == 0 and m.keys() == [] and m.steps == steps
    np.testing.assert_array_equal(m.params, w)
    m.learn("now-strings", np.zeros(3))  # forgetting every key also frees the key kind
    assert m.keys() == ["now-strings"]


def test_string_ids_of_forgotten_keys_are_pruned():
    m = keyed(capacity=2, hidden_size=2)
    X = np.zeros((3000, 3))
    m.run([f"s{i}" for i in range(3000)], X)
    assert len(m._str_ids) <= 2 * 2 + 1024 and m.keys() == ["s2999", "s2998"]
    m.learn("s5", X[0])  # pruned long ago: a new key, with a new id
    assert m.keys() == ["s5", "s2999"] and m.key_steps("s5") == 1
    assert len(set(m._str_ids.values())) == len(m._str_ids)


def test_weights_api_shared_and_unshared():
    a = keyed(seed=1)
    b = keyed(seed=2)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.params, b.params)
    with pytest.raises(ValueError, match="weights are shared"):
        b.load_state_dict(a.state_dict(), key=1)
    u = keyed(seed=3, shared=False, capacity=2)
    u.learn(5, np.ones(3), np.ones(2))
    mine = u.state_dict(5)
    u.load_state_dict(a.state_dict())  # new keys start from a's weights; key 5 keeps its own
    assert np.array_equal(u.params, a.params)
    assert all(np.array_equal(u.state_dict(5)[n], mine[n]) for n in mine)
    u.learn(6, np.ones(3))
    assert all(np.array_equal(u.state_dict(6)[n], v) for n, v in a.state_dict().items())
    with pytest.raises(ValueError, match="key 7 is not held"):
        u.load_state_dict(a.state_dict(), key=7)
    u.load_state_dict(a.state_dict(), key=5)
    assert all(np.array_equal(u.state_dict(5)[n], v) for n, v in a.state_dict().items())
    with pytest.raises(ValueError, match="per-key diagnostics need shared=False"):
        a.diagnostics(1)
    with pytest.raises(ValueError):
        b.params[0] = 1.0


def test_memory_per_key_follows_the_documented_formula():
    m = keyed(hidden_size=32, input_size=8, output_size=1, k1=16, k2=None, dtype="float32", capacity=1000)
    row = 4 * (32 * 2 + 16 * (8 + 1 + 1))
    assert row == 896 and m._slab.shape == (1000, 224)
    assert m.bytes_per_key == row + 8 + 32 + 8 * 2048 / 1000 < 1024
    u = keyed(hidden_size=32, input_size=8, output_size=1, k1=16, k2=None, dtype="float32", capacity=1000,
              shared=False, optimizer="adam")
    n_p = 4065
    mem = n_p * (2 + 2) + 3 * 32 * (8 + 32)  # params, two moments, gradient, transposed matrices
    assert 0 <= u._layout.mem_size - mem < 4 * cells.ALIGN  # and the padding that aligns the regions
    own = 4 * u._layout.mem_size + 8 * (L.META_SIZE + L.F_LAGS + 2 * 16)
    assert u.n_params == n_p and u.bytes_per_key == m.bytes_per_key + own


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(capacity=0), "capacity must be an integer >= 1"),
        (dict(eviction="fifo"), "eviction must be one of"),
        (dict(ttl=0), "ttl must be an integer >= 1"),
        (dict(shared="yes"), "shared must be True or False"),
        (dict(k1=4, k2=2), "k2 must be >= k1"),
    ],
)
def test_bad_configuration_names_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        keyed(**kw)


def test_config_round_trips_and_diagnostics_report_keyed_counts():
    m = keyed(capacity=5, ttl=3, shared=False)
    assert sr.KeyedStreamRNN(**m._config())._config() == m._config()
    d = m.diagnostics()
    assert {k: d[k] for k in ("steps", "keys_held", "capacity", "evictions", "expired")} == dict(
        steps=0, keys_held=0, capacity=5, evictions=0, expired=0
    )
    assert m._kmeta[KM.KM_TTL] == 3 and "KeyedStreamRNN(cell='gru'" in repr(m)


def test_string_keys_with_nul_are_refused_in_both_paths():
    """numpy string arrays drop trailing NULs, so "a" and "a\\x00" would be one key in run
    and two in the loop: both paths refuse them, changing nothing."""
    m = keyed(hidden_size=3, input_size=2, output_size=1, capacity=4)
    before = snapshot(m)
    with pytest.raises(ValueError, match="NUL"):
        m.learn("a\x00", [0.0, 0.0], [0.0])
    with pytest.raises(ValueError, match="NUL"):
        m.run(["a", "a\x00"], np.zeros((2, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="NUL"):
        m.run(np.array(["a", "b\x00c"]), np.zeros((2, 2)), np.zeros((2, 1)))
    assert_same_arrays(before, snapshot(m))


def test_run_input_errors_match_streamrnn():
    m = keyed(hidden_size=3, input_size=2, output_size=1, capacity=4)
    plain = sr.StreamRNN(hidden_size=3, input_size=2, output_size=1)
    for kw in (dict(Y=None, mask=[1, 0]), dict(Y=np.zeros((2, 1)), mask=np.array([True]))):
        with pytest.raises(ValueError) as a:
            plain.run(np.zeros((2, 2)), **kw)
        with pytest.raises(ValueError) as b:
            m.run([1, 2], np.zeros((2, 2)), **kw)
        assert str(a.value) == str(b.value)
