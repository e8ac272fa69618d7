"""Keyed river estimators (``key=``): one key == the unkeyed estimator, per-key streams,
the key field's contract, evictions; plus ``warn`` and ``diagnostics()`` on estimators."""

import copy
import pickle

import numpy as np
import pytest

pytest.importorskip("river")

from streamrnn.adapters.river import (  # noqa: E402
    RNNAnomalyDetector,
    RNNClassifier,
    RNNMultiTargetRegressor,
    RNNRegressor,
)

SMALL = dict(hidden_size=5, k1=3, k2=5, seed=7)


def stream(n, seed=0, names=("a", "b", "c")):
    """(x, y): a target that depends on the past; a feature "late" appears at step n // 2."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(names) + 1))
    y = np.tanh(np.cumsum(X[:, 0]) / 5.0) + 0.5 * X[:, 1]
    out = []
    for t in range(n):
        x = dict(zip(names, X[t, :-1].tolist()))
        if t >= n // 2:
            x["late"] = float(X[t, -1])
        out.append((x, float(y[t])))
    return out


def label(y):
    return "ab"[int(y > 0)]


def step(model, x, y):
    """Predict then learn one sample; return the answer."""
    if isinstance(model, RNNAnomalyDetector):
        out = model.score_one(x)
        model.learn_one(x)
    elif isinstance(model, RNNClassifier):
        out = model.predict_proba_one(x)
        model.learn_one(x, label(y))
    elif isinstance(model, RNNMultiTargetRegressor):
        out = model.predict_one(x)
        model.learn_one(x, {"u": y, "v": 2.0 * y})
    else:
        out = model.predict_one(x)
        model.learn_one(x, y)
    return out


PROTOS = {
    "reg": RNNRegressor(**SMALL),
    "reg-diff-feed": RNNRegressor(diff_target=True, feed_target=True, **SMALL),
    "multi": RNNMultiTargetRegressor(cell="lstm", **SMALL),
    "clf": RNNClassifier(cell="elman", **SMALL),
    "anomaly": RNNAnomalyDetector(**SMALL),
}


@pytest.mark.parametrize("name", list(PROTOS))
@pytest.mark.parametrize("key_value", ["pump", 42])
def test_one_key_equals_the_unkeyed_estimator_bit_for_bit(name, key_value):
    plain = PROTOS[name].clone()
    keyed = PROTOS[name].clone({"key": "sensor", "capacity": 3})
    for x, y in stream(60):
        a = step(plain, x, y)
        b = step(keyed, {"sensor": key_value, **x}, y)
        assert repr(a) == repr(b)
    e, k = plain.engine, keyed.engine
    slot = k._slot(key_value)
    for n in ("_meta", "_fmeta", "_mem"):
        assert getattr(e, n).tobytes() == getattr(k, n).tobytes(), n
    assert e._slab.tobytes() == k._slab[slot].tobytes() and e.steps == k.key_steps(key_value)
    assert plain.features == keyed.features and "sensor" not in keyed.features
    assert e.diagnostics()["updates"] > 5


@pytest.mark.parametrize(
    "proto",
    [
        RNNRegressor(scale_target=False, **SMALL),
        RNNRegressor(scale_target=False, diff_target=True, feed_target=True, **SMALL),
        RNNMultiTargetRegressor(scale_target=False, **SMALL),
        RNNClassifier(**SMALL),
    ],
    ids=["reg", "reg-diff-feed", "multi", "clf"],
)
def test_with_lr_zero_each_key_follows_its_own_estimator(proto):
    """Interleaved keys, frozen weights: each key's answers equal those of an unkeyed estimator
    fed only that key (but for the first answer of a key that comes after another: an unkeyed
    estimator has no network before its first sample, a keyed one answers from the zero
    state with the shared weights; and for the classifier, until a key has seen every label
    the model knows, as labels are shared). (Target statistics are shared by the keys, hence scale_target=False;
    RNNAnomalyDetector's feature statistics are shared too, so it has no such twin.)"""
    proto = proto.clone({"lr": 0.0})
    keyed = proto.clone({"key": "sensor", "capacity": 4})
    own = {k: proto.clone() for k in ("s0", "s1", "s2")}
    rng = np.random.default_rng(1)
    data = stream(90)
    order = ["s0", "s1", "s2"] * 2 + [f"s{i}" for i in rng.integers(0, 3, len(data) - 6)]
    if isinstance(proto, RNNClassifier):  # every key sees "a" then "b" first, as the shared label list
        data[:6] = [(x, [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0][i]) for i, (x, _) in enumerate(data[:6])]
    compared = 0
    for k, (x, y) in zip(order, data):
        fresh = own[k].engine is None  # an unkeyed estimator has no network before its first sample
        same_labels = own[k].__dict__.get("_labels") == keyed.__dict__.get("_labels")
        a, b = step(keyed, {"sensor": k, **x}, y), step(own[k], x, y)
        if (not fresh or k == "s0") and same_labels:
            assert repr(a) == repr(b)
            compared += 1
    assert compared >= len(data) - 4
    for k, m in own.items():
        h = keyed.engine.hidden(k)
        assert np.array_equal(h, m.engine.hidden)
    assert keyed.diagnostics()["keys_held"] == 3


def test_the_key_field_is_required_and_checked():
    m = RNNRegressor(key="sensor", **SMALL)
    for x, y in stream(10):
        step(m, {"sensor": "a", **x}, y)
    before = pickle.dumps(m)
    with pytest.raises(ValueError, match="x has no key field 'sensor'"):
        m.learn_one({"a": 1.0}, 1.0)
    with pytest.raises(ValueError, match="x has no key field 'sensor'"):
        m.predict_one({"a": 1.0})
    for bad, match in [(1.5, "float"), (True, "bool"), (None, "NoneType"), ((1, 2), "tuple")]:
        with pytest.raises(TypeError, match=f"key field 'sensor' is .*{match}.*: keys must be int or str"):
            m.learn_one({"sensor": bad, "a": 1.0}, 1.0)
    with pytest.raises(TypeError, match="this model's keys are strs"):
        m.learn_one({"sensor": 3, "a": 1.0}, 1.0)
    with pytest.raises(ValueError, match="feature 'a' is nan"):
        m.learn_one({"sensor": "b", "a": float("nan")}, 1.0)
    assert pickle.dumps(m) == before and "b" not in m.engine
    i = RNNClassifier(key=0, **SMALL)
    i.learn_one({0: np.int64(5), "a": 1.0}, "x")  # numpy ints are int keys
    with pytest.raises(ValueError, match="int keys must fit in int64"):
        i.learn_one({0: 2**70, "a": 1.0}, "x")
    assert i.engine.keys() == [5]


@pytest.mark.parametrize("name", list(PROTOS))
def test_keyed_inference_is_pure_even_for_unknown_keys(name):
    m = PROTOS[name].clone({"key": "sensor", "capacity": 2})
    for i, (x, y) in enumerate(stream(20)):
        step(m, {"sensor": i % 3, **x}, y)
    before = pickle.dumps(m)
    x = stream(1, seed=5)[0][0]
    for k in (0, 1, 2, 99):
        first = repr(step(copy.deepcopy(m), {"sensor": k, **x}, 0.5))
        if isinstance(m, RNNAnomalyDetector):
            assert repr(m.score_one({"sensor": k, **x})) == first
        elif isinstance(m, RNNClassifier):
            assert repr(m.predict_proba_one({"sensor": k, **x})) == first
        else:
            assert repr(m.predict_one({"sensor": k, **x})) == first
    assert pickle.dumps(m) == before


def test_per_key_previous_values_follow_the_key_map():
    """diff_target: a key's previous target is its own; evicted, it is forgotten with the key."""
    m = RNNRegressor(diff_target=True, scale_target=False, lr=0.0, key="k", capacity=2, **SMALL)
    m.learn_one({"k": "a", "f": 0.0}, 10.0)
    m.learn_one({"k": "b", "f": 0.0}, -50.0)
    out = float(m.engine.predict("a", np.zeros(1))[0])
    assert m.predict_one({"k": "a", "f": 0.0}) == 10.0 + out
    assert m.predict_one({"k": "new", "f": 0.0}) == 0.0  # no previous value of its own
    m.learn_one({"k": "c", "f": 0.0}, 3.0)  # evicts "a"
    assert m.engine.keys() == ["c", "b"] and m._key_prev.shape == (2, 2)
    assert m.predict_one({"k": "a", "f": 0.0}) == 0.0
    a = RNNAnomalyDetector(key="k", capacity=2, **SMALL)
    for i, (x, _) in enumerate(stream(30)):
        a.learn_one({"k": i % 3, **x})
    assert a._key_prev.shape == (2, 4) and a.diagnostics()["evictions"] > 5


def test_warn_is_passed_to_the_engine_and_diagnostics_delegate():
    quiet = RNNRegressor(warn=False, **SMALL)
    loud = RNNRegressor(**SMALL)
    assert quiet.diagnostics() == {} and quiet.health is None
    for x, y in stream(20):
        step(quiet, x, y)
        step(loud, x, y)
    assert quiet.health is None and quiet.engine.warn is False
    assert loud.health is loud.engine.health and loud.health.counts["nonfinite"] == 0
    d = loud.diagnostics()
    assert d["updates"] == loud.engine.diagnostics()["updates"] > 0 and d["steps"] == 20
    k = RNNClassifier(key="s", capacity=2, warn=False, **SMALL)
    for i, (x, y) in enumerate(stream(20)):
        step(k, {"s": i % 3, **x}, y)
    d = k.diagnostics()
    assert d["keys_held"] == 2 and d["evictions"] > 0 and k.health is None and k.engine.warn is False


def test_diff_features_is_refused_with_a_key():
    from streamrnn.adapters.river import RNNRegressor

    with pytest.raises(ValueError, match="diff_features=True is not available with key="):
        RNNRegressor(diff_features=True, key="sensor")
