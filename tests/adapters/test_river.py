"""The river estimators' own contract: purity, feature handling, growth, labels, transforms."""

import copy
import itertools
import math
import pickle

import numpy as np
import pytest

pytest.importorskip("river")

from river import datasets, preprocessing  # noqa: E402

import streamrnn  # noqa: E402
from streamrnn.adapters.river import (  # noqa: E402
    RNNAnomalyDetector,
    RNNClassifier,
    RNNForecaster,
    RNNMultiTargetRegressor,
    RNNRegressor,
)

SMALL = dict(hidden_size=5, k1=3, k2=5, seed=7)


def stream(n, names=("a", "b", "c"), seed=0):
    """(x, y) with a smooth target that depends on the inputs' past."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(names)))
    y = np.tanh(np.cumsum(X[:, 0]) / 5.0) + 0.5 * X[:, 1]
    return [(dict(zip(names, row)), float(t)) for row, t in zip(X.tolist(), y)]


def labelled(n, **kw):
    return [(x, "abc"[int(y > 0.3) + int(y > -0.3)]) for x, y in stream(n, **kw)]


def feed(model, data):
    """Prequential loop in the model's own call style; returns the predictions."""
    out = []
    for x, y in data:
        if isinstance(model, RNNAnomalyDetector):
            out.append(model.score_one(x))
            model.learn_one(x)
        elif isinstance(model, RNNForecaster):
            out.append(model.forecast(1, [x])[0])
            model.learn_one(y, x)
        elif isinstance(model, RNNClassifier):
            out.append(model.predict_proba_one(x))
            model.learn_one(x, y)
        elif isinstance(model, RNNMultiTargetRegressor):
            out.append(model.predict_one(x))
            model.learn_one(x, {"u": y, "v": -y})
        else:
            out.append(model.predict_one(x))
            model.learn_one(x, y)
    return out


def data_for(model, n, **kw):
    return labelled(n, **kw) if isinstance(model, RNNClassifier) else stream(n, **kw)


ALL = [
    RNNRegressor(**SMALL),
    RNNRegressor(feed_target=True, diff_target=True, **SMALL),
    RNNRegressor(diff_features=True, feed_target=True, **SMALL),
    RNNMultiTargetRegressor(**SMALL),
    RNNClassifier(**SMALL),
    RNNForecaster(m=2, sd=1, lags=(1, 2), **SMALL),
    RNNAnomalyDetector(**SMALL),
]
IDS = ["reg", "reg-diff-feed", "reg-diff-features", "multi", "clf", "forecaster", "anomaly"]


def inference(model, x):
    if isinstance(model, RNNAnomalyDetector):
        return [model.score_one(x)]
    if isinstance(model, RNNForecaster):
        return [model.forecast(3, [x, x, x]), model.forecast(2)]
    if isinstance(model, RNNClassifier):
        return [model.predict_proba_one(x), model.predict_one(x)]
    return [model.predict_one(x)]


# ---------------------------------------------------------------------------- purity
@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_inference_changes_nothing_pickled(model):
    model = model.clone()
    data = data_for(model, 40)
    for n_learned in (0, 1, 17, 40):  # fresh, first step, mid-window, later
        m = model.clone()
        feed(m, data[:n_learned])
        before = pickle.dumps(m)
        first = inference(m, data[0][0])
        inference(m, {"a": 1.0, "zz": 3.0})  # an unknown feature, a missing one
        assert pickle.dumps(m) == before, n_learned
        assert inference(m, data[0][0]) == first


@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_learn_one_keeps_no_reference_to_x(model):
    model = model.clone()
    data = data_for(model, 12)
    feed(model, data)
    before = pickle.dumps(model)
    for x, _ in data:
        x["a"] = 1e9
        x["new"] = 5.0
    assert pickle.dumps(model) == before


@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_same_seed_gives_bit_identical_clones(model):
    a, b = model.clone(), model.clone()
    data = data_for(a, 50)
    pa, pb = feed(a, data), feed(b, data)
    assert pa == pb
    assert pickle.dumps(a) == pickle.dumps(b)
    c = model.clone({"seed": None})
    d = model.clone({"seed": None})
    feed(c, data)
    feed(d, data)
    assert c._seed != d._seed  # None draws a fresh seed
    assert isinstance(c._seed, int)


@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_pickle_and_deepcopy_continue_identically(model):
    a = model.clone()
    data = data_for(a, 60)
    feed(a, data[:25])
    b = pickle.loads(pickle.dumps(a))
    c = copy.deepcopy(a)
    pa = feed(a, data[25:])
    assert pa == feed(b, data[25:]) == feed(c, data[25:])


# ---------------------------------------------------------------------------- features
@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_key_order_never_changes_a_prediction(model):
    a, b = model.clone(), model.clone()
    rng = np.random.default_rng(3)
    data = data_for(a, 40, names=("a", "b", "c", "d", "e"))
    shuffled = []
    for x, y in data:
        keys = list(x)
        rng.shuffle(keys)
        shuffled.append(({k: x[k] for k in keys}, y))
    assert feed(a, data) == feed(b, shuffled)
    assert pickle.dumps(a) == pickle.dumps(b)


def test_features_that_arrive_together_take_sorted_columns():
    m = RNNRegressor(**SMALL)
    m.learn_one({"zeta": 1.0, "alpha": 2.0, "mu": 3.0}, 1.0)
    m.learn_one({"beta": 1.0, "alpha": 2.0}, 1.0)
    assert m.features == ["alpha", "mu", "zeta", "beta"]
    assert m.engine.input_size == 4


@pytest.mark.parametrize("cell", ["gru", "lstm", "elman"])
def test_a_late_feature_that_stays_zero_changes_nothing(cell):
    """Growing the input layer is invisible until the new feature carries a value.

    (No clipping here: the global gradient norm sums the squares in another grouping once
    the parameter vector has grown, so a clipped update could differ in the last bit.)
    """
    cfg = dict(cell=cell, hidden_size=5, k1=3, k2=5, seed=4, clip=None, optimizer="adam")
    a, b = RNNRegressor(**cfg), RNNRegressor(**cfg)
    data = stream(80)
    for t, (x, y) in enumerate(data):
        xa = dict(x, late=0.0) if t >= 29 else x  # appears at step 29, mid-window
        assert a.predict_one(xa) == b.predict_one(x)
        a.learn_one(xa, y)
        b.learn_one(x, y)
    assert a.engine.input_size == 4 and b.engine.input_size == 3
    w = a.engine.state_dict()["weight_ih_l0"]
    assert not w[:, 3].any()  # zero inputs gave it no gradient
    np.testing.assert_array_equal(w[:, :3], b.engine.state_dict()["weight_ih_l0"])
    # the optimizer moments and the ring buffer grew with zeros
    assert a.engine.diagnostics()["updates"] == b.engine.diagnostics()["updates"] > 20


def test_a_late_feature_is_learned_once_it_carries_values():
    m = RNNRegressor(hidden_size=5, k1=2, seed=0, lr=0.05)
    data = stream(60)
    feed(m, data[:20])
    feed(m, [(dict(x, late=1.0 + x["a"]), y) for x, y in data[20:]])
    assert m.engine.state_dict()["weight_ih_l0"][:, 3].any()


@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_missing_and_none_count_as_zero(model):
    m = model.clone()
    feed(m, data_for(m, 20))
    if isinstance(m, RNNAnomalyDetector):
        # a missing feature is left out of the score; None is missing
        x = {"a": 0.3, "b": -0.2, "c": 0.1}
        assert m.score_one({"a": 0.3, "b": -0.2}) == m.score_one({"a": 0.3, "b": -0.2, "c": None})
        assert m.score_one(x) != m.score_one({"a": 0.3, "b": -0.2})
        return
    assert inference(m, {"a": 0.5}) == inference(m, {"a": 0.5, "b": 0.0, "c": 0.0})
    assert inference(m, {"a": 0.5, "b": None}) == inference(m, {"a": 0.5, "b": 0.0, "c": 0.0})
    a, b = m.clone(include_attributes=True), copy.deepcopy(m)
    feed(a, [({"a": 0.5}, 0.1)] * 4 if not isinstance(m, RNNClassifier) else [({"a": 0.5}, "a")] * 4)
    zeros = {"a": 0.5, "b": 0.0, "c": 0.0}
    feed(b, [(zeros, 0.1)] * 4 if not isinstance(m, RNNClassifier) else [(zeros, "a")] * 4)
    assert pickle.dumps(a) == pickle.dumps(b)


@pytest.mark.parametrize("model", ALL, ids=IDS)
def test_bools_count_as_zero_and_one(model):
    m = model.clone()
    feed(m, data_for(m, 20))
    assert inference(m, {"a": True, "b": False, "c": np.bool_(True)}) == inference(m, {"a": 1.0, "b": 0.0, "c": 1.0})
    assert inference(m, {"a": 2, "b": np.float32(0.5), "c": np.int64(-1)}) == inference(
        m, {"a": 2.0, "b": 0.5, "c": -1.0}
    )


BAD_VALUES = ["1.5", "red", [1.0], (1.0, 2.0), 1 + 2j, np.array([1.0, 2.0]), {"x": 1}, object()]


@pytest.mark.parametrize("model", ALL, ids=IDS)
@pytest.mark.parametrize("bad", BAD_VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(BAD_VALUES)])
def test_non_numeric_values_raise_type_error_naming_the_feature(model, bad):
    m = model.clone()
    data = data_for(m, 10)
    feed(m, data)
    before = pickle.dumps(m)
    for x in ({"a": 0.1, "b": bad, "c": 0.3}, {"a": 0.1, "b": 0.2, "c": 0.3, "fresh": bad}):
        with pytest.raises(TypeError, match="feature '(b|fresh)'"):
            feed(m, [(x, data[0][1])])
        assert pickle.dumps(m) == before
        with pytest.raises(TypeError, match="feature '(b|fresh)'"):
            inference(m, x)


@pytest.mark.parametrize("model", ALL, ids=IDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -np.inf])
def test_non_finite_values_raise_value_error_naming_the_feature(model, bad):
    m = model.clone()
    data = data_for(m, 10)
    feed(m, data)
    m.predict_one(data[0][0]) if hasattr(m, "predict_one") else None
    before = pickle.dumps(m)
    for x in ({"a": 0.1, "b": bad, "c": 0.3}, {"a": 0.1, "b": 0.2, "c": 0.3, "fresh": bad}):
        with pytest.raises(ValueError, match="feature '(b|fresh)' is .*finite"):
            feed(m, [(x, data[0][1])])
        assert pickle.dumps(m) == before
    with pytest.raises(ValueError, match="feature 'b'"):
        inference(m, {"a": 0.1, "b": bad, "c": 0.3})
    # and the model goes on as if nothing happened
    n = copy.deepcopy(m)
    assert feed(m, data) == feed(n, data)


def test_bad_targets_are_refused_and_change_nothing():
    m = RNNRegressor(**SMALL)
    feed(m, stream(5))
    before = pickle.dumps(m)
    for y, exc in ((math.nan, ValueError), ("3", TypeError), (None, TypeError), ({"u": 1.0}, TypeError)):
        with pytest.raises(exc, match="y"):
            m.learn_one({"a": 1.0}, y)
        assert pickle.dumps(m) == before
    f = RNNForecaster(log=True, **SMALL)
    f.learn_one(3.0)
    with pytest.raises(ValueError, match="log=True needs positive"):
        f.learn_one(0.0)
    mt = RNNMultiTargetRegressor(**SMALL)
    mt.learn_one({"a": 1.0}, {"u": 1.0, "v": 2.0})
    before = pickle.dumps(mt)
    with pytest.raises(ValueError, match="lacks the target 'v'"):
        mt.learn_one({"a": 1.0}, {"u": 1.0})
    with pytest.raises(ValueError, match=r"y\['v'\] is nan"):
        mt.learn_one({"a": 1.0}, {"u": 1.0, "v": math.nan})
    assert pickle.dumps(mt) == before
    c = RNNClassifier(**SMALL)
    with pytest.raises(ValueError, match="y is None"):
        c.learn_one({"a": 1.0}, None)
    with pytest.raises(TypeError, match="hashable"):
        c.learn_one({"a": 1.0}, ["a"])


# ---------------------------------------------------------------------------- parameters
CLASSES = [RNNRegressor, RNNMultiTargetRegressor, RNNClassifier, RNNForecaster, RNNAnomalyDetector]


@pytest.mark.parametrize("cls", CLASSES)
def test_parameters_are_checked_at_construction(cls):
    if cls is RNNForecaster:
        with pytest.raises(ValueError, match="RNNForecaster takes no key"):
            cls(key="user")
    else:
        assert cls(key="user", capacity=3, ttl=2).key == "user"
        with pytest.raises(ValueError, match="capacity must be an integer >= 1"):
            cls(key="user", capacity=0)
        with pytest.raises(ValueError, match="ttl must be an integer >= 1"):
            cls(key="user", ttl=0)
        with pytest.raises(TypeError, match="key must be a feature name"):
            cls(key=["user"])
    with pytest.raises(ValueError, match="cell must be one of"):
        cls(cell="transformer")
    with pytest.raises(ValueError, match="k2 must be >= k1"):
        cls(k1=8, k2=4)
    with pytest.raises(ValueError, match="lr must be"):
        cls(lr=-1.0)
    m = cls(cell="lstm", hidden_size=3)
    assert m.cell == "lstm" and m.hidden_size == 3 and m.key is None
    assert not [k for k in vars(m) if k.startswith("_")]  # learned state comes with learn_one


def test_forecaster_parameters_are_checked():
    for kw, match in ((dict(d=-1), "d must be"), (dict(m=0), "m must be"), (dict(lags=[1]), "lags must be"),
                      (dict(lags=()), "lags must be"), (dict(lags=(0,)), "lags must be")):
        with pytest.raises(ValueError, match=match):
            RNNForecaster(**kw)
    f = RNNForecaster(**SMALL)
    with pytest.raises(ValueError, match="horizon"):
        f.forecast(-1)
    with pytest.raises(ValueError, match="one dict per step"):
        f.forecast(2, [{}])
    assert f.forecast(0) == [] and f.forecast(2) == [0.0, 0.0]


def test_lazy_reexport_from_the_package():
    assert streamrnn.RNNRegressor is RNNRegressor
    assert streamrnn.RNNAnomalyDetector is RNNAnomalyDetector
    assert "RNNClassifier" in dir(streamrnn)
    with pytest.raises(AttributeError):
        streamrnn.RNNTransformer


# ---------------------------------------------------------------------------- regressor
def test_regressor_predicts_in_target_units_and_scaling_is_exact():
    """With scale_target the engine learns (y - mean) / std; predictions map back exactly."""
    data = [(x, 1000.0 + 50.0 * y) for x, y in stream(40)]
    m = RNNRegressor(**SMALL)
    feed(m, data)
    ys = np.array([y for _, y in data])
    x = data[-1][0]
    out = m.engine.predict(np.array([x["a"], x["b"], x["c"]]))[0]
    assert m.predict_one(x) == pytest.approx(ys.mean() + ys.std() * out, rel=1e-12)
    assert m.predict_one(x) == pytest.approx(1000.0, abs=200.0)
    raw = RNNRegressor(scale_target=False, **SMALL)
    feed(raw, data)
    assert raw.predict_one(x) == float(raw.engine.predict(np.array([x["a"], x["b"], x["c"]]))[0])


def test_diff_target_starts_from_the_last_value():
    """A network whose output is 0 predicts the last target plus the mean change."""
    m = RNNRegressor(diff_target=True, lr=0.0, **{k: v for k, v in SMALL.items() if k != "lr"})
    data = stream(30)
    feed(m, data)
    sd = m.engine.state_dict()
    sd["readout.weight"][:] = 0.0
    sd["readout.bias"][:] = 0.0
    m.engine.load_state_dict(sd)
    ys = np.array([y for _, y in data])
    assert m.predict_one({"a": 3.0}) == pytest.approx(ys[-1] + np.diff(ys).mean(), rel=1e-12)
    assert RNNRegressor(diff_target=True).predict_one({"a": 1.0}) == 0.0


def test_feed_target_feeds_the_previous_standardised_target():
    m = RNNRegressor(feed_target=True, **SMALL)
    feed(m, stream(20))
    assert m.engine.input_size == 4  # the previous target, then a, b, c
    x = {"a": 0.1, "b": 0.2, "c": 0.3}
    expected = m.engine.predict(np.array([m._prev_z, 0.1, 0.2, 0.3]))[0]
    mean, scale = m._y_loc_scale
    assert m.predict_one(x) == mean + scale * float(expected)


def changes(data):
    """``data`` with each feature replaced by its change since the previous sample, by hand.

    A feature's change is 0 at its first appearance; a missing feature counts as 0.
    """
    out, prev = [], {}
    for x, y in data:
        d = {k: (v - prev[k] if k in prev else 0.0) for k, v in x.items()}
        d.update({k: 0.0 - v for k, v in prev.items() if k not in x})
        out.append((d, y))
        prev = {k: 0.0 for k in prev} | x
    return out


@pytest.mark.parametrize("extra", [{}, {"feed_target": True, "diff_target": True}])
def test_diff_features_equals_feeding_the_changes_by_hand(extra):
    """The model with diff_features is, bit for bit, the plain model fed the changes.

    The stream has a feature that first appears late, a step where a feature is missing
    and one where it is None, so the first-appearance and missing rules are both exercised.
    """
    data = stream(60)
    data = [(dict(x, late=2.0 + x["a"]) if t >= 23 else x, y) for t, (x, y) in enumerate(data)]
    data[31] = ({k: v for k, v in data[31][0].items() if k != "b"}, data[31][1])
    data[40] = (dict(data[40][0], c=None), data[40][1])
    plain = [({k: (0.0 if v is None else v) for k, v in x.items()}, y) for x, y in data]
    a = RNNRegressor(diff_features=True, **extra, **SMALL)
    b = RNNRegressor(**extra, **SMALL)
    pa = feed(a, data)
    pb = feed(b, changes(plain))
    assert pa == pb
    assert a.features == b.features == ["a", "b", "c", "late"]
    for name, w in a.engine.state_dict().items():
        np.testing.assert_array_equal(w, b.engine.state_dict()[name], err_msg=name)
    # the next prediction reads the change from the last learned sample
    x = {"a": 0.25, "b": -1.0, "c": 0.5, "late": 1.0}
    last = plain[-1][0]
    assert a.predict_one(x) == b.predict_one({k: v - last[k] for k, v in x.items()})


def test_diff_features_first_change_is_zero():
    """The first sample's features have no previous value: the network reads zeros."""
    a = RNNRegressor(diff_features=True, **SMALL)
    b = RNNRegressor(**SMALL)
    a.learn_one({"a": 1e6, "b": -3.0}, 1.0)
    b.learn_one({"a": 0.0, "b": 0.0}, 1.0)
    assert pickle.dumps(a.engine) == pickle.dumps(b.engine)
    assert a.predict_one({"a": 1e6, "b": -3.0}) == b.predict_one({"a": 0.0, "b": 0.0})


def test_pipeline_with_standard_scaler():
    model = preprocessing.StandardScaler() | RNNRegressor(**SMALL)
    for x, y in itertools.islice(datasets.TrumpApproval(), 50):
        p = model.predict_one(x)
        model.learn_one(x, y)
    assert math.isfinite(p)


# ---------------------------------------------------------------------------- multi-target
def test_multi_target_learns_targets_as_they_appear():
    m = RNNMultiTargetRegressor(**SMALL)
    assert m.predict_one({"a": 1.0}) == {}
    m.learn_one({"a": 1.0}, {"v": 2.0, "u": 1.0})
    assert list(m.predict_one({"a": 1.0})) == ["u", "v"]
    before = m.engine.state_dict()["readout.weight"].copy()
    m.learn_one({"a": 1.0}, {"v": 2.0, "u": 1.0, "w": 5.0})
    assert list(m.predict_one({"a": 1.0})) == ["u", "v", "w"]
    assert m.engine.output_size == 3
    assert before.shape == (2, 5)


# ---------------------------------------------------------------------------- classifier
def test_classifier_before_any_label_answers_binary():
    c = RNNClassifier(**SMALL)
    assert c.predict_proba_one({"a": 1.0}) == {False: 0.5, True: 0.5}
    c.learn_one({"a": 1.0}, np.bool_(True))
    p = c.predict_proba_one({"a": 1.0})
    assert set(p) == {False, True} and all(type(k) is bool for k in p)
    assert math.isclose(sum(p.values()), 1.0, rel_tol=0, abs_tol=1e-15)


def test_classifier_grows_with_labels_and_new_labels_start_at_logit_zero():
    c = RNNClassifier(**SMALL)
    x = {"a": 0.3, "b": -0.1}
    c.learn_one(x, "cat")
    assert c.predict_proba_one(x) == {"cat": 1.0}
    assert c.engine.diagnostics()["updates"] == 0  # one label: nothing to tell apart yet
    c.learn_one(x, "dog")
    for _ in range(10):
        c.learn_one(x, "cat")
    p2 = c.predict_proba_one(x)
    assert set(p2) == {"cat", "dog"} and c.engine.output_size == 2
    c.learn_one(x, "eel")
    assert c.engine.output_size == 3
    w = c.engine.state_dict()
    assert c._labels == ["cat", "dog", "eel"]
    p3 = c.predict_proba_one(x)
    assert set(p3) == {"cat", "dog", "eel"}
    assert math.isclose(sum(p3.values()), 1.0, rel_tol=0, abs_tol=1e-15)
    assert all(0.0 <= v <= 1.0 for v in p3.values())
    # one update has touched the new row since it was added at zero
    assert np.abs(w["readout.weight"][2]).max() < np.abs(w["readout.weight"][:2]).max()
    assert c.predict_one(x) in {"cat", "dog", "eel"}


def test_new_label_row_is_zero_when_added():
    c = RNNClassifier(hidden_size=4, k1=50, seed=0)  # no update before we look
    for label in ["a", "b", "c", "d"]:
        c.learn_one({"f": 1.0}, label)
    w = c.engine.state_dict()
    assert not w["readout.weight"][2:].any() and not w["readout.bias"][2:].any()
    assert w["readout.weight"][:2].any()  # the first two rows are the initial ones


def test_classifier_tracks_every_label_on_image_segments():
    c = preprocessing.StandardScaler() | RNNClassifier(hidden_size=8, k1=2, seed=0)
    seen = set()
    for x, y in itertools.islice(datasets.ImageSegments(), 150):
        c.learn_one(x, y)
        seen.add(y)
    p = c.predict_proba_one(x)
    assert set(p) == seen and len(seen) == 7
    assert math.isclose(sum(p.values()), 1.0, rel_tol=0, abs_tol=1e-12)


# ---------------------------------------------------------------------------- forecaster
def naive(hist, d, m, sd, log):
    """The forecast of a model whose output is the running mean of the transformed series."""
    v = np.log(hist) if log else np.asarray(hist, dtype=float)
    w = v.copy()
    for _ in range(d):
        w = w[1:] - w[:-1]
    for _ in range(sd):
        w = w[m:] - w[:-m]
    return w


@pytest.mark.parametrize("d,m,sd,log", [(1, 1, 0, False), (0, 3, 1, True), (1, 4, 1, True), (2, 1, 0, False)])
def test_forecaster_transforms_invert_exactly(d, m, sd, log):
    """A network that outputs 0 forecasts mean change: check the differencing inversion."""
    f = RNNForecaster(d=d, m=m, sd=sd, log=log, lr=0.0, **{k: v for k, v in SMALL.items() if k != "lr"})
    series = 10.0 + np.arange(30) * 0.5 + np.sin(np.arange(30)) + 2.0 * (np.arange(30) % max(m, 1))
    for y in series:
        f.learn_one(float(y))
    sd_ = f.engine.state_dict()
    sd_["readout.weight"][:] = 0.0
    sd_["readout.bias"][:] = 0.0
    f.engine.load_state_dict(sd_)
    w = naive(series, d, m, sd, log)
    mean = w.mean()
    hist = list(np.log(series) if log else series)
    expected = []
    coef = f._lag_coefficients()
    for _ in range(5):
        v = mean - sum(coef[k] * hist[-k] for k in range(1, len(coef)))
        hist.append(v)
        expected.append(math.exp(v) if log else v)
    np.testing.assert_allclose(f.forecast(5), expected, rtol=1e-12)


def test_forecast_leaves_the_model_untouched_and_matches_one_step_prediction():
    f = RNNForecaster(m=3, sd=1, lags=(1, 3), **SMALL)
    data = stream(40)
    for x, y in data:
        f.learn_one(y, x)
    before = pickle.dumps(f)
    xs = [x for x, _ in data[:4]]
    one = f.forecast(4, xs)
    assert pickle.dumps(f) == before
    assert f.forecast(4, xs) == one
    # forecast(1) is the engine's prediction from the current state, transformed back
    zs, hist, (n, mean, m2) = f._z_history, f._history, f._w_stats
    x = xs[0]
    zhat = f.engine.predict(np.array([zs[-1], zs[-3], x["a"], x["b"], x["c"]]))[0]
    coef = f._lag_coefficients()  # (1 - B)(1 - B^3)
    assert coef == [1.0, -1.0, 0.0, -1.0, 1.0]
    v = mean + math.sqrt(m2 / n) * zhat - sum(coef[k] * hist[-k] for k in range(1, 5))
    assert one[0] == pytest.approx(v, rel=1e-14)
    assert len(one) == 4 and all(math.isfinite(v) for v in one)


def test_forecast_rolls_forward_like_learning_without_targets():
    """Each horizon step feeds the previous prediction back as lag 1."""
    f = RNNForecaster(d=0, lags=(1,), scale_target=False, **SMALL)
    for y in np.sin(np.arange(30) / 3.0):
        f.learn_one(float(y))
    e = copy.deepcopy(f.engine)
    prev = f._z_history[-1]
    expected = []
    for _ in range(6):
        prev = float(e._advance(np.array([prev]))[0])
        expected.append(prev)
    assert f.forecast(6) == expected


# ---------------------------------------------------------------------------- anomaly detector
def test_anomaly_score_is_the_standardised_squared_error():
    m = RNNAnomalyDetector(**SMALL)
    data = stream(40)
    feed(m, data)
    rows = np.array([[x[k] for k in ("a", "b", "c")] for x, _ in data])
    mean, sd = rows.mean(axis=0), rows.std(axis=0)
    x = {"a": 0.4, "b": -1.0, "c": 2.0}
    z = (np.array([0.4, -1.0, 2.0]) - mean) / sd
    z_prev = (rows[-1] - rows[:-1].mean(axis=0)) / rows[:-1].std(axis=0)
    p = m.engine.predict(z_prev)
    assert m.score_one(x) == pytest.approx(float(np.mean((z - p) ** 2)), rel=1e-10)


def test_anomaly_detector_ranks_spikes_high():
    m = RNNAnomalyDetector(hidden_size=8, k1=4, lr=0.01, seed=0)
    rng = np.random.default_rng(0)
    normal, spikes = [], []
    for t in range(600):
        x = {"s": math.sin(t / 5.0) + 0.05 * rng.normal(), "c": math.cos(t / 5.0) + 0.05 * rng.normal()}
        if t > 300 and t % 37 == 0:
            x["s"] += 3.0
            spikes.append(m.score_one(x))
        elif t > 300:
            normal.append(m.score_one(x))
        m.learn_one(x)
    assert min(spikes) > np.quantile(normal, 0.95)


def test_anomaly_detector_grows_inputs_and_outputs():
    m = RNNAnomalyDetector(**SMALL)
    feed(m, stream(10))
    m.learn_one({"a": 1.0, "b": 0.0, "c": 0.0, "d": 2.0})
    assert m.engine.input_size == m.engine.output_size == 4
    assert m.features == ["a", "b", "c", "d"]
    assert math.isfinite(m.score_one({"d": 1.0}))
    assert m.score_one({"unknown": 1.0}) == 0.0


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier, RNNMultiTargetRegressor, RNNForecaster,
                                 RNNAnomalyDetector])
def test_history_keeps_the_last_updates_of_the_engine(cls, tmp_path):
    model = cls(history=4, hidden_size=3, k1=2, seed=1)
    assert model.history == 4 and cls(hidden_size=3).history == 0
    feed(model, data_for(model, 20))
    d = model.engine.diagnostics()
    hist = d["history"]
    assert len(hist["grad_norm"]) == 4 and hist["grad_norm"][-1] == d["grad_norm"]
    again = cls.load(model.save(tmp_path / "m.ckpt"))
    np.testing.assert_array_equal(again.engine.diagnostics()["history"]["grad_norm"], hist["grad_norm"])
    with pytest.raises(ValueError, match="history"):
        cls(history=-1)
