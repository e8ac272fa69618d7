"""Checkpoints of the river estimators: resume bit for bit in a new process, typed names,
refusal of what cannot be stored, and of bad or foreign files."""

import enum
import io
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("river")

import streamrnn as sr  # noqa: E402
from streamrnn import checkpoint  # noqa: E402
from streamrnn.adapters.river import (  # noqa: E402
    RNNAnomalyDetector,
    RNNClassifier,
    RNNForecaster,
    RNNMultiTargetRegressor,
    RNNRegressor,
)

SMALL = dict(hidden_size=4, k1=3, k2=5, seed=11)
# feature names of every type a checkpoint stores exactly (True would collide with 1 in a dict)
NAMES = ["a", 7, 2.5, (1, "b"), None, b"z", False, np.int64(9), -0.0]
LABELS = ["x", 3, (1, "y"), 2.5, np.str_("w")]
N = 70


def stream(n, seed=0, keyed=None, n_keys=3):
    """(x, y) pairs; a late feature appears at 2/3 of the stream (so after most save points)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES) + 1))
    y = np.tanh(np.cumsum(X[:, 0]) / 5.0) + 0.5 * X[:, 1]
    out = []
    for t in range(n):
        x = dict(zip(NAMES, X[t, :-1].tolist()))
        if t >= 2 * n // 3:
            x["late"] = X[t, -1]
        if keyed == "int":
            x["sensor"] = int(rng.integers(0, n_keys))
        elif keyed == "str":
            x["sensor"] = f"s{int(rng.integers(0, n_keys))}"
        out.append((x, float(y[t])))
    return out


def feed(model, data):
    """Prequential loop; returns every answer (as values whose repr is exact)."""
    out = []
    for t, (x, y) in enumerate(data):
        if isinstance(model, RNNAnomalyDetector):
            out.append(model.score_one(x))
            model.learn_one(x)
        elif isinstance(model, RNNForecaster):
            out.append(model.forecast(2, [x, x]))
            model.learn_one(100.0 + y, x)
        elif isinstance(model, RNNClassifier):
            out.append(model.predict_proba_one(x))
            model.learn_one(x, LABELS[int(abs(y) * 7) % len(LABELS)])
        elif isinstance(model, RNNMultiTargetRegressor):
            out.append(model.predict_one(x))
            model.learn_one(x, {"u": y, 5: -y, (0, None): y * y})
        else:
            out.append(model.predict_one(x))
            model.learn_one(x, y)
    return out


KEYED = dict(key="sensor", capacity=2, ttl=4)
MODELS = {
    "reg": RNNRegressor(**SMALL),
    "reg-diff-feed-f32": RNNRegressor(diff_target=True, feed_target=True, dtype="float32", **SMALL),
    "reg-diff-features": RNNRegressor(diff_target=True, diff_features=True, **SMALL),
    "multi": RNNMultiTargetRegressor(cell="lstm", **SMALL),
    "clf": RNNClassifier(cell="elman", **SMALL),
    "forecaster": RNNForecaster(m=2, sd=1, lags=(1, 2), log=True, **SMALL),
    "anomaly": RNNAnomalyDetector(**SMALL),
    "reg-keyed-int": RNNRegressor(diff_target=True, feed_target=True, **KEYED, **SMALL),
    "reg-keyed-str": RNNRegressor(**KEYED, **SMALL),
    "multi-keyed-str": RNNMultiTargetRegressor(**KEYED, **SMALL),
    "clf-keyed-int": RNNClassifier(cell="lstm", **KEYED, **SMALL),
    "anomaly-keyed-str": RNNAnomalyDetector(**KEYED, **SMALL),
}


def data_for(name):
    keyed = "int" if name.endswith("keyed-int") else "str" if name.endswith("keyed-str") else None
    return stream(N, seed=len(name), keyed=keyed)


def state_bytes(model):
    """Everything an estimator holds, attribute by attribute (the engine's too), pickled.

    Not the engine's health monitor (a loaded model's starts afresh) and not the scratch.
    Attribute by attribute, because a whole pickle also records which objects are shared
    (the same str object as two attributes), which is not state.
    """
    out = {}
    for name, value in sorted(vars(model).items()):
        if name == "_engine":
            for n, v in sorted(value.__getstate__().items()):  # the engine's state, without scratch
                if n != "_health":
                    out["_engine." + n] = pickle.dumps(v)
        elif name != "_tmp":
            out[name] = pickle.dumps(value)
    return out


CHILD = r"""
import json, sys
import numpy as np
import streamrnn.adapters.river as R
sys.path.insert(0, sys.argv[2])
from tests.adapters.test_river_checkpoint import data_for, feed

for job in json.load(open(sys.argv[1])):
    cls = getattr(R, job["cls"])
    model = cls.load(job["checkpoint"])
    later = feed(model, data_for(job["name"])[job["start"]:])
    with open(job["answers"], "w") as f:
        f.write(repr(later))
    model.save(job["final"])
"""


def test_resume_in_a_new_process_is_bit_for_bit(tmp_path, request):
    """Each estimator (keyed ones with int and str keys, with evictions) trained to a random
    step (at a TBPTT boundary or inside a window), saved, loaded in a fresh interpreter and
    continued: every later answer and the final state equal the uninterrupted run's, bit
    for bit."""
    rng = np.random.default_rng(7)
    jobs, expected = [], {}
    for i, (name, proto) in enumerate(MODELS.items()):
        data = data_for(name)
        start = int(rng.integers(10, 2 * N // 3))
        start += (-start) % proto.k1 + (i % 2)  # at a boundary (even i) or one step into a window
        model = proto.clone()
        feed(model, data[:start])
        path = model.save(tmp_path / f"{name}.npz")
        later = feed(model, data[start:])  # the uninterrupted run
        if model.key is not None:
            assert model.diagnostics()["evictions"] > 0, name
        expected[name] = (repr(later), model)
        jobs.append(dict(name=name, cls=type(model).__name__, checkpoint=str(path), start=start,
                         answers=str(tmp_path / f"{name}.txt"), final=str(tmp_path / f"{name}-final.npz")))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "jobs.json"), str(request.config.rootpath)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for job in jobs:
        name = job["name"]
        answers, model = expected[name]
        assert (tmp_path / f"{name}.txt").read_text() == answers, f"{name}: answers differ after the resume"
        final = model.save(tmp_path / f"{name}-expected.npz")
        assert (tmp_path / f"{name}-final.npz").read_bytes() == final.read_bytes(), f"{name}: final state differs"
        resumed = type(model).load(tmp_path / f"{name}-final.npz")
        assert state_bytes(resumed) == state_bytes(model), name


@pytest.mark.parametrize("name", list(MODELS))
def test_load_restores_every_attribute_and_names_keep_their_types(name, tmp_path):
    model = MODELS[name].clone()
    fresh = type(model).load(model.save(tmp_path / "fresh.npz"))  # before any learn_one
    assert state_bytes(fresh) == state_bytes(model) and fresh._get_params() == model._get_params()
    feed(model, data_for(name)[:40])
    loaded = type(model).load(model.save(tmp_path / "m.npz"))
    assert state_bytes(loaded) == state_bytes(model)
    assert [(type(n), n) for n in loaded.features] == [(type(n), n) for n in model.features]
    assert loaded.diagnostics()["updates"] == model.diagnostics()["updates"] > 0
    if isinstance(model, RNNClassifier):
        assert [type(label) for label in loaded._labels] == [type(label) for label in model._labels]
    if isinstance(model, RNNMultiTargetRegressor):
        assert list(loaded._targets) == list(model._targets) == ["u", (0, None), 5]  # mixed types: by repr


def test_typed_names_round_trip_exactly(tmp_path):
    """True is not 1, "1" is not 1, 1.0 is not 1: each name comes back as what it was."""
    c = RNNClassifier(**SMALL)
    for label in (True, "1", 2.0, (1, "1"), False):
        c.learn_one({"1": 1.0, 1: 2.0, 1.5: 0.5, ("t", 2): 1.0, b"b": -1.0}, label)
    loaded = RNNClassifier.load(c.save(tmp_path / "c.npz"))
    assert [(type(n), n) for n in loaded.features] == [(type(n), n) for n in c.features]
    assert [(type(v), v) for v in loaded._labels] == [(type(v), v) for v in c._labels] == [
        (bool, False), (bool, True), (str, "1"), (float, 2.0), (tuple, (1, "1"))]
    p, q = c.predict_proba_one({"1": 1.0}), loaded.predict_proba_one({"1": 1.0})
    assert repr(p) == repr(q)


class Colour(enum.Enum):
    RED = 1


class Name(str):
    pass


@pytest.mark.parametrize(
    "where,bad",
    [("feature", frozenset({1})), ("feature", Colour.RED), ("feature", Name("b")), ("feature", (1, object())),
     ("label", Colour.RED), ("label", frozenset()), ("target", Name("u")), ("key", Colour.RED)],
)
def test_names_that_cannot_be_stored_are_refused_at_save_time(where, bad, tmp_path):
    if where == "feature":
        m = RNNRegressor(**SMALL)
        m.learn_one({"a": 1.0, bad: 2.0}, 1.0)
        match = "feature name"
    elif where == "label":
        m = RNNClassifier(**SMALL)
        m.learn_one({"a": 1.0}, bad)
        match = "label"
    elif where == "target":
        m = RNNMultiTargetRegressor(**SMALL)
        m.learn_one({"a": 1.0}, {bad: 1.0})
        match = "target name"
    else:
        m = RNNRegressor(key=bad, **SMALL)
        match = "parameter 'key'"
    with pytest.raises(TypeError, match=f"{match} .* cannot be stored in a checkpoint"):
        m.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_another_kind_is_refused_naming_both(tmp_path):
    reg, clf = RNNRegressor(**SMALL), RNNClassifier(**SMALL)
    feed(reg, stream(5))
    feed(clf, stream(5))
    p_reg, p_clf = reg.save(tmp_path / "reg.npz"), clf.save(tmp_path / "clf.npz")
    with pytest.raises(sr.CheckpointError, match="a checkpoint of kind 'RNNClassifier', expected 'RNNRegressor'"):
        RNNRegressor.load(p_clf)
    with pytest.raises(sr.CheckpointError, match="kind 'RNNRegressor', expected 'RNNAnomalyDetector'"):
        RNNAnomalyDetector.load(p_reg)
    with pytest.raises(sr.CheckpointError, match="kind 'RNNRegressor', expected 'StreamRNN'"):
        sr.StreamRNN.load(p_reg)
    with pytest.raises(sr.CheckpointError, match="kind 'StreamRNN', expected 'RNNRegressor'"):
        RNNRegressor.load(reg.engine.save(tmp_path / "engine.npz"))
    with pytest.raises(sr.CheckpointError, match="kind 'RNNRegressor', expected 'KeyedStreamRNN'"):
        sr.KeyedStreamRNN.load(p_reg)


def test_expected_parameters_are_checked(tmp_path):
    m = RNNForecaster(m=3, lags=(1, 3), **SMALL)
    feed(m, stream(8))
    path = m.save(tmp_path / "f.npz")
    assert RNNForecaster.load(path, lags=(1, 3), hidden_size=4).lags == (1, 3)
    with pytest.raises(sr.CheckpointError, match="has hidden_size=4, expected hidden_size=8"):
        RNNForecaster.load(path, hidden_size=8)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        RNNForecaster.load(path, colour="red")


def test_expected_k2_none_means_k1_whichever_side_holds_it(tmp_path):
    m = RNNRegressor(hidden_size=3, k1=4, k2=None, seed=1)  # the estimator stores k2=None
    feed(m, stream(6))
    path = m.save(tmp_path / "r.npz")
    assert RNNRegressor.load(path, k2=None).k2 is None
    assert RNNRegressor.load(path, k2=4).k2 is None  # k2 = k1 = 4 either way
    with pytest.raises(sr.CheckpointError, match="has k2=None, expected k2=5"):
        RNNRegressor.load(path, k2=5)
    engine = sr.StreamRNN(k1=3, k2=None)  # the engine stores k2=3
    epath = engine.save(tmp_path / "e.npz")
    assert sr.StreamRNN.load(epath, k2=None).k2 == 3


def forge(path, kind, config, arrays, extra):
    return checkpoint.write(path, kind, config, arrays, extra=extra)


def test_corrupted_and_inconsistent_estimator_checkpoints_are_refused(tmp_path):
    """Bytes flipped anywhere, and well-formed files whose parts disagree."""
    cases = {}
    for name in ("clf", "anomaly-keyed-str", "reg-diff-feed-f32", "forecaster", "multi"):
        m = MODELS[name].clone()
        feed(m, data_for(name)[:30])
        data = m.save(tmp_path / f"{name}.npz").read_bytes()
        cases[name] = (m, data, checkpoint.read(io.BytesIO(data)))
        for pos in range(0, len(data), max(1, len(data) // 60)):
            flipped = bytearray(data)
            flipped[pos] ^= 0x21
            try:
                loaded = type(m).load(io.BytesIO(bytes(flipped)))
            except sr.CheckpointError:
                continue
            assert state_bytes(loaded) == state_bytes(m), f"{name}: byte {pos} flipped and a different model loaded"
        for n in (10, len(data) // 2, len(data) - 1):
            with pytest.raises(sr.CheckpointError):
                type(m).load(io.BytesIO(data[:n]))

    def refused(name, match, config=None, arrays=None, extra=None):
        m, _, ck = cases[name]
        path = forge(tmp_path / "forged.npz", ck.kind, config or ck.config, arrays or ck.arrays, extra or ck.extra)
        with pytest.raises(sr.CheckpointError, match=match):
            type(m).load(path)

    _, _, ck = cases["clf"]
    refused("clf", "malformed value", extra=dict(ck.extra, state={"labels": [["int", "3"]]}))
    refused("clf", "do not fit the engine's output_size", extra=dict(ck.extra, state={"labels": ["x"] * 2}))
    refused("clf", "feature names do not fit", extra=dict(ck.extra, columns=ck.extra["columns"][:-1]))
    refused("clf", "duplicate feature names", extra=dict(ck.extra, columns=["a"] * len(ck.extra["columns"])))
    refused("clf", "options this RNNClassifier does not know", config=dict(ck.config, colour="red"))
    refused("clf", "the checkpoint has hidden_size=5, expected hidden_size=4",
            extra=dict(ck.extra, engine=dict(ck.extra["engine"], hidden_size=5)))
    refused("clf", "has no 'seed' entry", extra={k: v for k, v in ck.extra.items() if k != "seed"})
    refused("clf", r"unexpected arrays \['other'\]", arrays=dict(ck.arrays, other=np.zeros(2)))
    _, _, ck = cases["anomaly-keyed-str"]
    prev = ck.arrays["state.key_prev"]
    refused("anomaly-keyed-str", "'state.key_prev' is float64 .*, expected float64",
            arrays=dict(ck.arrays, **{"state.key_prev": prev[:1]}))
    keys = dict(ck.extra["keys"], str_ids=[])
    refused("anomaly-keyed-str", "held string key has no entry", extra=dict(ck.extra, keys=keys))
    slots = ck.arrays["engine.slots"].copy()
    slots[:, 1] = 5  # LRU links pointing nowhere
    refused("anomaly-keyed-str", "broken LRU list", arrays=dict(ck.arrays, **{"engine.slots": slots}))
    _, _, ck = cases["reg-diff-feed-f32"]
    refused("reg-diff-feed-f32", "'state.y_stats' is float32",
            arrays=dict(ck.arrays, **{"state.y_stats": ck.arrays["state.y_stats"].astype(np.float32)}))
    refused("reg-diff-feed-f32", "expected \\['prev', 'y_loc_scale', 'y_stats'\\]",
            arrays={k: v for k, v in ck.arrays.items() if k != "state.prev"})
    _, _, ck = cases["forecaster"]
    refused("forecaster", "history does not fit", arrays=dict(ck.arrays, **{"state.history": np.zeros(9)}))
    _, _, ck = cases["multi"]
    refused("multi", "do not fit the engine's output_size", extra=dict(ck.extra, state={"targets": ["u"]}))
