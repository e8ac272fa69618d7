"""streamrnn: recurrent networks trained online, one sample at a time, by truncated BPTT.

Importing the package compiles nothing; kernels compile on first use (and are cached on
disk), or all at once with ``streamrnn.warmup()``.
"""

from ._version import __version__
from .checkpoint import CheckpointError
from .engine import StreamRNN
from .health import HealthMonitor
from .keyed import KeyedStreamRNN
from .warm import warmup

__all__ = [
    "CheckpointError",
    "HealthMonitor",
    "KeyedStreamRNN",
    "RNNAnomalyDetector",
    "RNNClassifier",
    "RNNForecaster",
    "RNNMultiTargetRegressor",
    "RNNRegressor",
    "StreamRNN",
    "warmup",
    "__version__",
]

# river estimators, importable as ``streamrnn.RNNRegressor`` and so on; river is imported
# on first access only (``import streamrnn`` never imports it).
_RIVER_NAMES = frozenset(
    {"RNNAnomalyDetector", "RNNClassifier", "RNNForecaster", "RNNMultiTargetRegressor", "RNNRegressor"}
)


def __getattr__(name):
    if name in _RIVER_NAMES:
        from .adapters import river

        return getattr(river, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _RIVER_NAMES)
