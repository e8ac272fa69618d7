"""Hostile input to the river estimators, driven by hypothesis.

Every call either succeeds and leaves a model that still answers finite numbers (an
anomaly score may be inf, as documented), or raises ValueError/TypeError naming the
offending field (a feature, ``y``, a label, the key field) and leaves the estimator
exactly as it was (``pickle.dumps`` before and after). Labels follow the documented
policy: equal labels under ``==`` (with equal hashes) are one class, kept under the
first spelling seen; NaN and unhashable labels are refused.
"""

import math
import pickle
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("river")

from streamrnn.adapters.river import (  # noqa: E402
    RNNAnomalyDetector,
    RNNClassifier,
    RNNForecaster,
    RNNMultiTargetRegressor,
    RNNRegressor,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMED = re.compile(r"feature |\by\b|\by\[|key field|label|x has no key field|features of x")

special = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 0.0, 1.0])
atoms = st.one_of(
    special,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.floats(), max_size=2),
    st.complex_numbers(),
    st.sampled_from([np.float32(1e38), np.int64(-5), np.bool_(True), np.nan]),
)
names = st.one_of(
    st.sampled_from(["a", "b", "c"]), st.text(max_size=2), st.integers(-3, 3), st.tuples(st.integers(0, 2))
)


@st.composite
def xs(draw, key=None):
    """A hostile x: empty, a few (name, value) pairs, or 5,000 features; maybe a key field."""
    kind = draw(st.sampled_from(["small", "small", "small", "empty", "huge"]))
    if kind == "empty":
        x = {}
    elif kind == "huge":
        x = {f"f{i}": float(i % 7) for i in range(5000)}
        x[draw(st.sampled_from(["f3", "a"]))] = draw(atoms)
    else:
        x = draw(st.dictionaries(names, atoms, max_size=5))
    if key is not None and draw(st.booleans()) or (key is not None and kind == "huge"):
        x[key] = draw(st.one_of(st.sampled_from(["s0", "s1", "s2"]), atoms))
    return x


def clean(n, seed=0, key=None):
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        x = dict(zip("abc", rng.normal(size=3).tolist()))
        if key is not None:
            x[key] = f"s{t % 3}"
        out.append((x, float(rng.normal())))
    return out


def trained(model, key=None):
    for x, y in clean(7, key=key):  # 7: mid-window for k1 = 2
        learn(model, x, y if not isinstance(model, RNNClassifier) else "ab"[y > 0])
    return model


def learn(model, x, y):
    if isinstance(model, RNNAnomalyDetector):
        model.learn_one(x)
    elif isinstance(model, RNNForecaster):
        model.learn_one(y, x)
    elif isinstance(model, RNNMultiTargetRegressor):
        model.learn_one(x, y if isinstance(y, dict) else {"u": y})
    else:
        model.learn_one(x, y)


def infer(model, x):
    """Every answer as a list of floats."""
    if isinstance(model, RNNAnomalyDetector):
        return [model.score_one(x)]
    if isinstance(model, RNNForecaster):
        return model.forecast(2, [x, x])
    if isinstance(model, RNNClassifier):
        return list(model.predict_proba_one(x).values())
    if isinstance(model, RNNMultiTargetRegressor):
        return list(model.predict_one(x).values())
    return [model.predict_one(x)]


def check_refused_or_sound(model, call, key=None):
    before = pickle.dumps(model)
    try:
        call()
    except (ValueError, TypeError) as exc:
        assert NAMED.search(str(exc)), f"the error names no field: {exc}"
        assert pickle.dumps(model) == before, f"a refused call changed the model: {exc}"
        return False
    probe = clean(1, seed=9, key=key)[0][0]
    answers = infer(model, probe)
    if isinstance(model, RNNAnomalyDetector):
        assert not any(math.isnan(a) for a in answers), answers
    else:
        assert all(math.isfinite(a) for a in answers), answers
    return True


PROTOS = [
    RNNRegressor(hidden_size=3, k1=2, seed=1),
    RNNRegressor(hidden_size=3, k1=2, seed=1, diff_target=True, feed_target=True, dtype="float32"),
    RNNMultiTargetRegressor(hidden_size=3, k1=2, seed=1),
    RNNClassifier(hidden_size=3, k1=2, seed=1),
    RNNForecaster(hidden_size=3, k1=2, seed=1, m=2, sd=1),
    RNNAnomalyDetector(hidden_size=3, k1=2, seed=1),
    RNNAnomalyDetector(hidden_size=3, k1=2, seed=1, dtype="float32"),
]
IDS = ["reg", "reg-diff-feed-f32", "multi", "clf", "forecaster", "anomaly", "anomaly-f32"]


@pytest.mark.parametrize("proto", PROTOS, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_hostile_features_are_refused_unchanged_or_learned_soundly(proto, data):
    model = trained(proto.clone())
    x = data.draw(xs())
    y = 0.5 if not isinstance(model, RNNClassifier) else "a"
    check_refused_or_sound(model, lambda: infer(model, x))
    check_refused_or_sound(model, lambda: learn(model, x, y))


@pytest.mark.parametrize("proto", PROTOS[:5], ids=IDS[:5])
@SETTINGS
@given(y=st.one_of(atoms, st.dictionaries(st.sampled_from(["u", "v"]), atoms, max_size=2)))
def test_hostile_targets_are_refused_unchanged_or_learned_soundly(proto, y):
    model = trained(proto.clone())
    if isinstance(model, RNNClassifier) and isinstance(y, float) and not math.isnan(y):
        pass  # a finite float is a fine label
    check_refused_or_sound(model, lambda: learn(model, {"a": 0.1, "b": 0.2, "c": 0.3}, y))


LABELS = [1, "1", True, 1.0, np.int64(1), False, 0, "0", None, math.nan, (1, "1"), np.bool_(True), [1], 2.5]


@SETTINGS
@given(labels=st.lists(st.sampled_from(LABELS), min_size=1, max_size=12))
def test_mixed_labels_follow_the_documented_policy(labels):
    """1, 1.0, True and np.int64(1) are one class (dict semantics), under its first spelling;
    "1" is another; None, NaN and unhashable labels are refused and change nothing."""
    model = RNNClassifier(hidden_size=3, k1=2, seed=1)
    accepted = []
    for i, y in enumerate(labels):
        x = {"a": float(i), "b": 1.0}
        if check_refused_or_sound(model, lambda x=x, y=y: model.learn_one(x, y)):
            accepted.append(bool(y) if isinstance(y, np.bool_) else y)
    if not accepted:
        return
    reserved = {False, True} if isinstance(accepted[0], bool) else set()
    assert set(model._labels) == set(accepted) | reserved
    assert len(model._labels) == len(set(model._labels))
    first = {}
    for y in ([False, True] if reserved else []) + accepted:
        first.setdefault(y, y)
    assert [repr(label) for label in model._labels] == [repr(first[label]) for label in model._labels]
    p = model.predict_proba_one({"a": 0.0, "b": 1.0})
    assert [repr(k) for k in p] == [repr(label) for label in model._labels] or len(model._labels) == 1


KEYED = [
    RNNRegressor(hidden_size=3, k1=2, seed=1, key="s", capacity=2, diff_target=True),
    RNNClassifier(hidden_size=3, k1=2, seed=1, key="s", capacity=2),
    RNNAnomalyDetector(hidden_size=3, k1=2, seed=1, key="s", capacity=2),
]


@pytest.mark.parametrize("proto", KEYED, ids=["reg", "clf", "anomaly"])
@SETTINGS
@given(data=st.data())
def test_keyed_estimators_refuse_hostile_samples_and_keys_unchanged(proto, data):
    model = trained(proto.clone(), key="s")
    x = data.draw(xs(key="s"))
    y = 0.5 if not isinstance(model, RNNClassifier) else "a"
    check_refused_or_sound(model, lambda: infer(model, x), key="s")
    check_refused_or_sound(model, lambda: learn(model, x, y), key="s")


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_absurd_learning_rate_keeps_every_estimator_and_the_keyed_engine_finite(optimizer):
    """lr = 1e3 on huge targets: updates that would overflow are skipped and counted, the
    rest are applied; the weights and every answer stay finite (keyed engine, each
    estimator, and an estimator with a key)."""
    import streamrnn as sr

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 2)) * 50
    Y = rng.normal(size=300) * 1e150  # squared errors near the float64 limit: some updates overflow
    keyed = sr.KeyedStreamRNN(cell="gru", input_size=2, hidden_size=4, k1=2, k2=3, lr=1e3, optimizer=optimizer,
                              momentum=0.9 if optimizer != "adam" else 0.0, capacity=3, seed=1)
    keyed.run(np.arange(300) % 3, X, Y[:, None])
    d = keyed.diagnostics()
    assert np.isfinite(keyed._mem[: keyed._layout.n_params]).all() and d["updates"] + d["skipped"] == 150
    if optimizer == "sgd":  # (adam and rmsprop steps are bounded by lr: nothing overflows)
        assert d["skipped"] > 0 and d["updates"] > 0
    common = dict(hidden_size=4, k1=2, k2=3, lr=1e3, optimizer=optimizer, seed=1)
    models = [RNNRegressor(scale_target=False, **common), RNNRegressor(scale_target=False, key="s", **common),
              RNNClassifier(**common), RNNAnomalyDetector(**common)]
    for model in models:
        for t in range(300):
            x = {"a": float(X[t, 0]), "b": float(X[t, 1]), "s": t % 3}
            if isinstance(model, RNNClassifier):
                assert all(math.isfinite(p) for p in model.predict_proba_one(x).values())
                model.learn_one(x, bool(Y[t] > 0))
            elif isinstance(model, RNNAnomalyDetector):
                model.score_one(x)
                model.learn_one(x)
            else:
                assert math.isfinite(model.predict_one(x))
                model.learn_one(x, float(Y[t]))
        eng = model.engine
        assert np.isfinite(eng._mem[: eng._layout.n_params]).all(), type(model).__name__
        assert eng.diagnostics()["updates"] + eng.diagnostics()["skipped"] > 0
