import numpy as np
import pytest


def make_targets(rng, loss, T, O):
    """Targets valid for ``loss``: reals (mse), probabilities (bce), one-hot rows (ce)."""
    if loss == "mse":
        return rng.normal(size=(T, O))
    if loss == "bce":
        return rng.uniform(size=(T, O))
    return np.eye(O)[rng.integers(0, O, T)]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_configure(config):
    """In CI (STREAMRNN_REQUIRE_TORCH=1) the PyTorch parity tests must not skip silently."""
    import importlib.util
    import os

    if os.environ.get("STREAMRNN_REQUIRE_TORCH") == "1" and importlib.util.find_spec("torch") is None:
        raise pytest.UsageError("STREAMRNN_REQUIRE_TORCH=1 but torch is not installed (pip install -e '.[dev]')")
