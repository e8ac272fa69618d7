"""streamrnn: recurrent networks trained online, one sample at a time, by truncated BPTT.

Importing the package compiles nothing; kernels compile on first use (and are cached on
disk), or all at once with ``streamrnn.warmup()``.
"""

from .engine import StreamRNN
from .keyed import KeyedStreamRNN
from .warm import warmup

__version__ = "0.1.0"

__all__ = ["StreamRNN", "KeyedStreamRNN", "warmup", "__version__"]
