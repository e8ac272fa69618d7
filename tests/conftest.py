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
