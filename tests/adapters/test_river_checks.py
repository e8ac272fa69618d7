"""river's own estimator checks (``river.checks.yield_checks``) on every estimator.

Each estimator runs every check for every ``_unit_test_params`` config, bare and behind
``preprocessing.StandardScaler() |``. Checks are skipped only through the estimator's
``_unit_test_skips`` (the reasons are in that method).

A keyed configuration (``key=...``) needs its key field in every sample, which river's
data sets do not have, so its ``_unit_test_skips`` lists the checks that feed a data set.
Here those checks run anyway, on the same data sets with a key field added (three
interleaved keys), and the piped variant keeps the key field away from the scaler. The
three checks that drop features at random (the key field among them, which a keyed
estimator refuses by contract) stay skipped; tests/adapters/test_river_keyed.py covers
emerging and missing features of keyed estimators.

``RNNAnomalyDetector``'s data set in river's checks is ``datasets.CreditCard``, which
must be downloaded. When it is not on disk (offline test runs), the same checks run on an
offline stream of the same kind (numeric features, rare labelled anomalies) instead of
being skipped.
"""

import functools
import itertools

import numpy as np
import pytest

river = pytest.importorskip("river")

from river import base, checks, compose, datasets, preprocessing  # noqa: E402
from river.checks import common, time_series  # noqa: E402

from streamrnn.adapters.river import (  # noqa: E402
    _DATASET_CHECKS,
    RNNAnomalyDetector,
    RNNClassifier,
    RNNForecaster,
    RNNMultiTargetRegressor,
    RNNRegressor,
)

ESTIMATORS = [RNNRegressor, RNNMultiTargetRegressor, RNNClassifier, RNNForecaster, RNNAnomalyDetector]


def offline_anomaly_stream(n, seed=0):
    """(x, y) pairs: 10 autocorrelated numeric features; 2% anomalies (y=1) with large jumps."""
    rng = np.random.default_rng(seed)
    names = [f"v{i}" for i in range(10)]
    state = np.zeros(10)
    for _ in range(n):
        state = 0.8 * state + 0.6 * rng.normal(size=10)
        x = state.copy()
        y = int(rng.uniform() < 0.02)
        if y:
            x[rng.integers(0, 10, 3)] += rng.choice([-1.0, 1.0], 3) * rng.uniform(6.0, 10.0, 3)
        yield dict(zip(names, x.tolist())), y


def _needs_credit_card(model, check):
    return (
        isinstance(model, base.AnomalyDetector)
        and "dataset" in getattr(check, "keywords", {})
        and not datasets.CreditCard().is_downloaded
    )


DROPPING = {"check_emerging_features", "check_disappearing_features", "check_radically_disappearing_features"}


class WithKey:
    """A data set with a key field added to every x: three interleaved streams."""

    def __init__(self, data, key):
        self.data, self.key = data, key

    def __iter__(self):
        for i, (x, y) in enumerate(self.data):
            yield {self.key: i % 3, **x}, y


def _cases():
    for cls in ESTIMATORS:
        for i, params in enumerate(cls._unit_test_params()):
            for piped in (False, True):
                model = cls(**params)
                key = params.get("key")
                if piped:
                    scaler = preprocessing.StandardScaler()
                    if key is not None:
                        scaler = (compose.Discard(key) | scaler) + compose.Select(key)
                    model = scaler | model
                skips = model._unit_test_skips()
                seen = {}
                for check in checks.yield_checks(model):
                    name = check.__name__
                    if name in skips and (key is None or name in DROPPING or name not in _DATASET_CHECKS):
                        continue
                    k = seen[name] = seen.get(name, -1) + 1
                    if _needs_credit_card(model, check):
                        n = 10_000 if check.func is common.check_bounded_memory_growth else 1000
                        check = functools.partial(check.func, dataset=list(offline_anomaly_stream(n)))
                        check.__name__ = name
                    if key is not None and "dataset" in getattr(check, "keywords", {}):
                        check = functools.partial(check.func, dataset=WithKey(check.keywords["dataset"], key))
                        check.__name__ = name
                    where = "piped" if piped else "bare"
                    yield pytest.param(model, check, id=f"{cls.__name__}-{i}-{where}-{name}-{k}")


CASES = list(_cases())


@pytest.mark.parametrize("model,check", CASES)
def test_river_check(model, check):
    check(model.clone())


def test_every_estimator_and_config_is_covered():
    ids = [p.id for p in CASES]
    for cls in ESTIMATORS:
        n_configs = len(list(cls._unit_test_params()))
        assert n_configs >= 2
        for i, where in itertools.product(range(n_configs), ("bare", "piped")):
            assert any(x.startswith(f"{cls.__name__}-{i}-{where}-check_pickling") for x in ids), (cls, i, where)
    # the data set checks ran, not only the generic ones
    assert any("RNNClassifier-0-bare-check_predict_proba_one-2" in x for x in ids)  # ImageSegments
    assert any("RNNAnomalyDetector-0-bare-check_roc_auc" in x for x in ids)


def test_skips_are_the_forecaster_checks_a_pipeline_cannot_call_and_data_set_checks_of_keyed_configs():
    n_keyed = 0
    for cls in ESTIMATORS:
        for params in cls._unit_test_params():
            skips = cls(**params)._unit_test_skips()
            if cls is RNNForecaster:
                assert skips == {"check_learn_one", "check_forecast"}
            elif params.get("key") is not None:
                n_keyed += 1
                assert skips == set(_DATASET_CHECKS)
            else:
                assert skips == set()
    assert n_keyed == 4
    # every data set check of a keyed configuration that does not drop features ran with a key field
    ids = [p.id for p in CASES]
    for cls in (RNNRegressor, RNNMultiTargetRegressor, RNNClassifier, RNNAnomalyDetector):
        i = len(list(cls._unit_test_params())) - 1
        for where in ("bare", "piped"):
            ran = {x.split("-")[3] for x in ids if x.startswith(f"{cls.__name__}-{i}-{where}-")}
            assert {"check_learn_one", "check_predict_one_pure", "check_bounded_memory_growth"} <= ran
            assert not ran & DROPPING


@pytest.mark.parametrize("params", list(RNNForecaster._unit_test_params()))
@pytest.mark.parametrize("check", [time_series.check_learn_one, time_series.check_forecast])
def test_forecaster_time_series_checks_bare(params, check):
    """The two checks skipped for the pipeline variant, run on the bare forecaster."""
    model = RNNForecaster(**params)
    assert isinstance(model, river.time_series.base.Forecaster)
    (dataset,) = checks._yield_datasets(model)
    check(model.clone(), dataset=dataset)


def test_forecaster_behind_a_pipeline_learns_with_keywords():
    """river's evaluate.evaluate calls learn_one(y=..., x=...), which a pipeline routes."""
    model = preprocessing.StandardScaler() | RNNForecaster(hidden_size=4, k1=2, seed=0)
    for t in range(30):
        model.learn_one(x={"t": float(t)}, y=float(t % 5))
    out = model.forecast(horizon=3, xs=[{"t": 30.0}, {"t": 31.0}, {"t": 32.0}])
    assert len(out) == 3 and all(np.isfinite(out))


def test_offline_anomaly_stream_is_a_fair_substitute():
    data = list(offline_anomaly_stream(1000))
    labels = [y for _, y in data]
    assert 5 <= sum(labels) <= 40 and len(data[0][0]) == 10
    model = RNNAnomalyDetector(hidden_size=4, k1=2, seed=0)
    common.check_learn_one(model, dataset=data)  # it is a (x, y) stream river's checks accept
