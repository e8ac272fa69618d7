"""streamrnn: recurrent networks trained online, one sample at a time, by truncated BPTT.

Importing the package compiles nothing; kernels compile on first use (and are cached on
disk), or all at once with ``streamrnn.warmup()``.
"""

from ._version import __version__
from .checkpoint import CheckpointError
from .engine import StreamRNN
from .warm import warmup

__all__ = ["CheckpointError", "StreamRNN", "warmup", "__version__"]
