"""Health warnings: each symptom fires on a constructed case, stays silent on healthy runs."""

import copy
import logging
import pickle

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.health import HealthMonitor

CELLS = ["elman", "gru", "lstm"]


@pytest.fixture
def records(caplog):
    """The streamrnn log records of the test, at INFO and above."""
    caplog.set_level(logging.INFO, logger="streamrnn")

    def get(symptom=None):
        return [r for r in caplog.records if r.name == "streamrnn" and symptom in (None, r.symptom)]

    return get


def sine(T, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)
    s = np.sin(t / 8.0) + 0.5 * np.sin(t / 3.0) + 0.05 * rng.normal(size=T + 1)
    return s[:-1, None].copy(), s[1:, None].copy()


def make(cell="elman", **kw):
    cfg = dict(cell=cell, input_size=1, hidden_size=4, output_size=1, k1=4, optimizer="sgd", lr=0.01, seed=0)
    cfg.update(kw)
    return sr.StreamRNN(**cfg)


# ---------------------------------------------------------------------- healthy runs
@pytest.mark.parametrize("cell", CELLS)
def test_healthy_runs_are_silent(cell, records):
    X, Y = sine(6000)
    a = sr.StreamRNN(cell=cell, input_size=1, hidden_size=16, k1=8, optimizer="adam", lr=0.01, clip=1.0)
    for t in range(len(X)):
        a.predict(X[t])
        a.learn(X[t], Y[t])
    b = sr.StreamRNN(cell=cell, input_size=1, hidden_size=16, k1=8, optimizer="adam", lr=0.01, clip=1.0, history=800)
    b.run(X, Y)  # 750 updates, replayed one by one from the history ring
    assert a.diagnostics()["updates"] == b.diagnostics()["updates"] == 750
    assert records() == []
    assert a.health.counts == b.health.counts == {"nonfinite": 0, "grad_spike": 0, "weight_growth": 0}


# ---------------------------------------------------------------------- non-finite
def test_nonfinite_loss_warns_after_learn(records):
    m = make(k1=2)
    m.learn([0.1], [0.0])
    m.learn([0.1], [0.0])
    assert records() == []
    m.learn([0.1], [0.0])
    m.learn([0.1], [1e300])  # (y_hat - y)^2 overflows: the update is skipped
    (r,) = records()
    assert r.levelno == logging.WARNING and r.symptom == "nonfinite"
    msg = r.getMessage()
    assert "the update was skipped" in msg and "loss=inf" in msg
    assert "clip" in msg and "lower lr" in msg
    assert m.diagnostics()["skipped"] == 1


def test_nonfinite_in_run_counts_every_skipped_update(records):
    X, Y = sine(40)
    Y[[9, 21, 30]] = 1e300  # three windows of k1=4 get a non-finite loss
    m = make()
    m.run(X, Y)
    (r,) = records("nonfinite")
    assert "3 of the last 10 updates were skipped" in r.getMessage()
    assert m.health.counts["nonfinite"] == 1  # one event per poll


def test_nonfinite_is_rate_limited_and_counts_what_it_hides(records):
    m = make(k1=1, k2=1)
    for _ in range(2500):
        m.learn([0.1], [1e300])
    recs = records("nonfinite")
    assert len(recs) == 3  # at updates 1, 1001 and 2001
    assert "999 more since the last such record" in recs[1].getMessage()
    assert m.health.counts["nonfinite"] == 2500


# ---------------------------------------------------------------------- gradient spikes
def spike_stream():
    X, Y = sine(400)
    Y = 0.1 * Y
    Y[301] = 1e3  # one absurd target, in the window of update 76 (steps 301..304)
    return X, Y


def test_gradient_spike_warns_after_learn(records):
    X, Y = spike_stream()
    m = make()
    for t in range(300):
        m.learn(X[t], Y[t])
    assert records() == []
    for t in range(300, 304):
        m.learn(X[t], Y[t])
    (r,) = records()
    assert r.symptom == "grad_spike" and r.levelno == logging.WARNING
    msg = r.getMessage()
    assert "at update 76 is" in msg and "exploding gradients" in msg
    assert "clip the gradient" in msg and "lower lr" in msg and "gated cell" in msg


def test_clipped_spike_is_logged_at_info_level(records):
    X, Y = spike_stream()
    m = make(clip=1.0)
    m.run(X[:304], Y[:304])
    (r,) = records()
    assert r.symptom == "grad_spike" and r.levelno == logging.INFO
    assert "clipping (clip=1) scaled this update down" in r.getMessage()


def test_run_sees_a_mid_run_spike_only_through_the_history_ring(records):
    X, Y = spike_stream()
    with_ring, without = make(history=200), make()
    with_ring.run(X, Y)
    assert [r.symptom for r in records()] == ["grad_spike"]
    assert "at update 76 is" in records()[0].getMessage()
    without.run(X, Y)  # the spike is update 76 of 100: a poll after run sees only update 100
    assert len(records()) == 1
    assert without.health.counts["grad_spike"] == 0
    end = make()
    end.run(X[:304], Y[:304])  # the spike is the last update of the call: seen
    assert end.health.counts["grad_spike"] == 1


def test_run_with_an_overflowed_ring_still_sees_a_late_spike(records):
    X, Y = spike_stream()
    m = make(history=50)  # 100 updates: the ring keeps 51..100
    m.run(X, Y)
    assert m.health.counts["grad_spike"] == 1
    assert "at update 76 is" in records()[0].getMessage()


# ---------------------------------------------------------------------- weight growth
def ramp(T, seed=0):
    """Targets that grow without end: the readout must keep growing to follow them."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(T, 1)), 0.01 * np.arange(T, dtype=float)[:, None]


def test_weight_growth_warns_in_run_with_history_and_after_learn(records):
    X, Y = ramp(24000)  # 6000 updates: the default monitor samples the norm every 500
    m = sr.StreamRNN(cell="gru", input_size=1, hidden_size=8, k1=4, lr=0.01, history=6000)
    m.run(X, Y)
    recs = records("weight_growth")
    assert len(recs) >= 1 and all(r.levelno == logging.WARNING for r in recs)
    msg = recs[0].getMessage()
    assert "weight norm grew from" in msg and "the loss did not improve" in msg
    assert "lower lr" in msg and "weight_decay" in msg
    assert records("nonfinite") == [] and records("grad_spike") == []
    loop = sr.StreamRNN(cell="gru", input_size=1, hidden_size=8, k1=4, lr=0.01)
    for t in range(len(X)):
        loop.learn(X[t], Y[t])
    assert loop.health.counts == m.health.counts  # learn sees each update, as run does through the ring
    assert len(records("weight_growth")) == 2 * len(recs)


def test_weights_that_grow_while_the_loss_falls_are_learning(records):
    X, Y = ramp(1200)  # early on the model catches up with the ramp: its loss falls
    m = sr.StreamRNN(cell="gru", input_size=1, hidden_size=8, k1=4, lr=0.01)
    m.health.window, m.health.growth = 20, 1.5  # thresholds are attributes of the monitor
    for t in range(1200):
        m.learn(X[t], Y[t])
    assert m.diagnostics()["weight_norm"] > 1.5 * 3.6 and m.health.counts["weight_growth"] == 0
    assert records() == []


def test_constant_weights_do_not_count_as_growth(records):
    X, Y = sine(3000)
    m = make(lr=0.0, history=800)
    m.health.window = 5
    m.run(X, Y)
    assert records() == []


# ---------------------------------------------------------------------- plumbing
def test_warn_false_logs_nothing(records):
    m = make(k1=1, k2=1, warn=False)
    for _ in range(5):
        m.learn([0.1], [1e300])
    m.run(np.zeros((5, 1)), np.full((5, 1), 1e300))
    assert m.health is None and records() == []
    assert m._config()["warn"] is False


def test_learn_polls_at_each_boundary_after_run_and_reset(records):
    m = make(k1=4)
    m.health.quiet = 0
    X, Y = sine(7)
    m.run(X, Y)  # 7 steps: the next boundary is one learn away
    m.learn([0.1], [1e300])
    assert len(records("nonfinite")) == 1  # seen at once, not a boundary later
    m.reset_state()
    for _ in range(3):
        m.learn([0.1], [0.0])
    m.learn([0.1], [1e300])
    assert len(records("nonfinite")) == 2


def test_pickled_model_keeps_its_monitor_state(records):
    m = make(k1=1, k2=1)
    m.learn([0.1], [1e300])
    c = pickle.loads(pickle.dumps(m))
    d = copy.deepcopy(m)
    for other in (c, d):
        other.learn([0.1], [1e300])  # inside the quiet period: counted, not logged
        assert other.health.counts["nonfinite"] == 2
    assert len(records()) == 1


def test_replaced_arrays_sync_silently(records):
    """A model whose arrays come from elsewhere (a loaded checkpoint) is not judged on their past."""
    old = make(k1=1, k2=1, history=10)
    for _ in range(5):
        old.learn([0.1], [1e300])
    new = make(k1=1, k2=1, history=10)
    for name in ("_meta", "_fmeta", "_mem", "_slab", "_counts"):
        getattr(new, name)[...] = getattr(old, name)
    n = len(records())
    new.learn([0.1], [0.0])  # 6 updates look new, but learn makes at most one: sync, no warning
    assert len(records()) == n and new.health.counts["nonfinite"] == 0
    new.learn([0.1], [1e300])
    assert new.health.counts["nonfinite"] == 1


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(spike=1.0), "spike must be a finite number > 1.0"),
        (dict(warmup=0), "warmup must be an integer >= 1"),
        (dict(growth=float("nan")), "growth must be"),
        (dict(window=2.5), "window must be an integer"),
        (dict(quiet=-1), "quiet must be an integer >= 0"),
    ],
)
def test_bad_monitor_settings_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        HealthMonitor(**kw)


# ---------------------------------------------------------------------- the monitor alone
def fake_model(k2=1):
    """The two arrays the monitor reads, as any engine on these kernels keeps them."""
    from streamrnn.kernels import layout as L

    meta = np.zeros(L.META_SIZE, dtype=np.int64)
    meta[L.K2] = k2
    fmeta = np.zeros(L.fmeta_size(k2, 0))
    fmeta[L.EMA] = 0.9
    return meta, fmeta


def feed(monitor, meta, fmeta, wnorm, gnorm=1.0, loss=1.0):
    """Record one applied update the way the kernel does, then poll."""
    from streamrnn.kernels import layout as L

    first = meta[L.N_UPDATES] == 0
    fmeta[L.LAST_LOSS], fmeta[L.LAST_GNORM], fmeta[L.WNORM] = loss, gnorm, wnorm
    fmeta[L.EMA_GNORM] = gnorm if first else 0.9 * fmeta[L.EMA_GNORM] + 0.1 * gnorm
    fmeta[L.EMA_LOSS] = loss if first else 0.9 * fmeta[L.EMA_LOSS] + 0.1 * loss
    meta[L.N_UPDATES] += 1
    return monitor.poll(meta, fmeta, 1)


@pytest.mark.parametrize(
    "shape,loss,fires",
    [
        (lambda t: 1.0 + 0.01 * t, 1.0, True),  # linear: keeps growing
        (lambda t: 1.01**t, 1.0, True),  # exponential: diverging
        (lambda t: 4.0 - 3.0 * np.exp(-t / 60.0), 1.0, False),  # converging: grows 3x, then levels off
        (lambda t: 1.0 + 0.3 * np.log1p(t), 1.0, False),  # slows down, never stops
        (lambda t: 1.0 + 0.001 * t, 1.0, False),  # linear but slow: 1.2x over the horizon
        (lambda t: 1.0 + 0.01 * t, lambda t: np.exp(-t / 100.0), False),  # grows as the loss falls: learning
    ],
    ids=["linear", "exponential", "converging", "logarithmic", "slow", "learning"],
)
def test_weight_growth_needs_sustained_growth_without_progress(shape, loss, fires, records):
    monitor = HealthMonitor(window=10, patience=10, growth=1.5)
    meta, fmeta = fake_model()
    for t in range(400):
        value = loss(t) if callable(loss) else loss
        assert feed(monitor, meta, fmeta, float(shape(t)), loss=value) == 1
    assert (monitor.counts["weight_growth"] > 0) == fires
    assert len(records("weight_growth")) == (1 if fires else 0)


def test_spike_threshold_and_warmup_on_hand_made_records(records):
    monitor = HealthMonitor(spike=20.0, warmup=20)
    meta, fmeta = fake_model()
    feed(monitor, meta, fmeta, 1.0, gnorm=1.0)
    feed(monitor, meta, fmeta, 1.0, gnorm=100.0)  # a spike, but inside the warmup
    for _ in range(40):
        feed(monitor, meta, fmeta, 1.0, gnorm=1.0)
    assert records() == []
    feed(monitor, meta, fmeta, 1.0, gnorm=19.0)  # ema ~1.0: below 20x
    assert records() == []
    feed(monitor, meta, fmeta, 1.0, gnorm=1.0)
    feed(monitor, meta, fmeta, 1.0, gnorm=60.0)
    (r,) = records()
    assert r.symptom == "grad_spike" and r.levelno == logging.WARNING and "clip the gradient" in r.getMessage()


def test_health_checks_continue_after_a_checkpoint_load(tmp_path, caplog):
    """A symptom right after a resume is reported as it would be without the restart."""
    import streamrnn as sr

    def run(m):
        for t in range(8):
            m.learn([0.1 * t], [0.5])

    m = sr.StreamRNN(cell="gru", input_size=1, hidden_size=3, k1=2, lr=0.01, seed=1)
    run(m)
    resumed = sr.StreamRNN.load(m.save(tmp_path / "m.npz"))
    for model in (m, resumed):
        model.learn([0.0], [0.0])
        model.learn([0.0], [1e300])  # loss overflows: a skipped update at this boundary
    assert m.health.counts["nonfinite"] == 1
    assert resumed.health.counts["nonfinite"] == 1


HEALTH_FIELDS = {
    "steps", "updates", "skipped", "clipped", "no_target", "loss", "loss_ema", "grad_norm",
    "grad_norm_ema", "weight_norm", "lag_grad_norm", "lag_grad_norm_ema", "history",
}


def test_every_surface_reports_every_health_field():
    """The engine, the keyed engine (one key: the same numbers) and the river estimators,
    keyed or not, all report the same training-health fields."""
    from streamrnn.adapters.river import RNNRegressor

    cfg = dict(cell="gru", input_size=2, hidden_size=4, k1=3, k2=5, lr=0.05, clip=1.0, seed=3, history=8)
    (x0, Y), (x1, _) = sine(60), sine(60, seed=1)
    X = np.hstack([x0, x1])
    plain = sr.StreamRNN(**cfg)
    plain.run(X, Y)
    keyed = sr.KeyedStreamRNN(capacity=4, **cfg)
    keyed.run(np.zeros(len(X), dtype=np.int64), X, Y)
    d, k = plain.diagnostics(), keyed.diagnostics()
    assert HEALTH_FIELDS <= set(d) and HEALTH_FIELDS <= set(k)
    assert d["updates"] == k["updates"] == 20 and len(d["history"]["loss"]) == 8
    for name in ("loss", "loss_ema", "grad_norm", "grad_norm_ema", "weight_norm"):
        assert d[name] == k[name] and np.isfinite(d[name]) and d[name] > 0, name
    for name in ("lag_grad_norm", "lag_grad_norm_ema"):
        assert d[name].shape == (5,) and (d[name] > 0).all()
        np.testing.assert_array_equal(d[name], k[name])
    for key in (None, "s"):
        est = RNNRegressor(hidden_size=4, k1=3, k2=5, seed=3, history=8, key=key)
        for t in range(len(X)):
            x = {"a": float(X[t, 0]), "b": float(X[t, 1])}
            if key:
                x["s"] = t % 2
            est.predict_one(x)
            est.learn_one(x, float(Y[t, 0]))
        e = est.diagnostics()
        assert HEALTH_FIELDS <= set(e), key
        assert e["updates"] > 0 and e["lag_grad_norm"].shape == (5,) and len(e["history"]["loss"]) == 8
