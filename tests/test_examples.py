"""Every example runs with a small N and prints its result; the scalar gradient example is exact."""

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# flink_job.py needs PyFlink, which lives in its own environment: tests/adapters/test_flink.py
# runs it there (.ci/flink)
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "flink_job.py")
SMALL_N = {
    "classification.py": "400",
    "forecasting.py": "200",
    "keyed_sessions.py": "2000",
    "quickstart.py": "300",
    "river_pipeline.py": "200",
    "torch_warm_start.py": "300",
    "vanishing_gradients.py": "20",
}


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_has_a_small_n():
    assert {p.name for p in EXAMPLES} == set(SMALL_N)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_with_small_n(path):
    res = subprocess.run(
        [sys.executable, str(path), SMALL_N[path.name]], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def test_scalar_example_reproduces_072_to_the_k():
    out = load("vanishing_gradients").main(40)
    k = np.arange(40)
    np.testing.assert_allclose(out["flow"], 0.72**k, rtol=1e-13, atol=0)
    assert out["flow"][3] == pytest.approx(0.373248, abs=1e-12)
    assert out["flow"][19] == pytest.approx(0.0019468, rel=1e-4)
    np.testing.assert_allclose(out["explode_flow"], 1.5**k, rtol=1e-13, atol=0)


def test_scalar_example_clipping_holds_the_explosion():
    out = load("vanishing_gradients").main(30)
    assert out["grad_norm"] > 1e5 and out["clipped"] == 1
    assert out["moved_clipped"] == pytest.approx(0.01, rel=1e-9)  # lr x clip
    assert out["moved_unclipped"] == pytest.approx(0.01 * out["grad_norm"], rel=1e-9)
    assert abs(out["h_after_unclipped"]) == 1.0
    assert out["weight_norm_clipped"] == pytest.approx(out["weight_norm_before"], abs=0.011)


def test_river_pipeline_beats_the_linear_model():
    out = load("river_pipeline").main(200)
    assert out["streamrnn RNNRegressor"] < 0.5 * out["river LinearRegression"]


def test_classification_needs_memory():
    out = load("classification").main(4000)
    assert out["streamrnn RNNClassifier"][1] > 0.95
    assert 0.4 < out["river LogisticRegression"][1] < 0.6  # no memory: chance


def test_forecasting_beats_both_baselines_at_every_horizon():
    out = load("forecasting").main(600)
    rnn = out["streamrnn RNNForecaster"]
    assert (rnn < out["last value"]).all() and (rnn < out["seasonal naive"]).all()


def test_keyed_sessions_need_a_state_per_key():
    out = load("keyed_sessions").main(2000)
    keyed, single, last = out.values()
    assert keyed < 0.6 * single and keyed < 0.6 * last


def test_torch_warm_start_starts_where_pytorch_left_off():
    pytest.importorskip("torch")
    out = load("torch_warm_start").main(300)
    warm_first, _ = out["warm start (from_torch)"]
    cold_first, _ = out["cold start"]
    assert warm_first < 0.5 * cold_first
