"""Library-wide settings: default dtype and the one place numba flags are chosen.

``FASTMATH`` is an explicit flag set, never ``True``: ``nnan``/``ninf`` would let LLVM
assume that NaN and inf never occur, and the NaN guards in the kernels would silently
become no-ops. ``contract`` only allows fused multiply-add, which keeps every result
deterministic for a given machine and build.

Environment switches
--------------------
``STREAMRNN_NO_CACHE=1`` disables numba's on-disk cache (useful when debugging kernels).
"""

import os

import numba

DEFAULT_DTYPE = "float64"
DTYPES = ("float64", "float32")

FASTMATH = frozenset({"contract"})
CACHE = os.environ.get("STREAMRNN_NO_CACHE", "") not in ("1", "true", "yes")


def jit(func):
    """Compile ``func`` with the library's numba settings (lazily, on first call)."""
    return numba.njit(
        cache=CACHE,
        fastmath=set(FASTMATH),
        error_model="numpy",
        nogil=True,
        boundscheck=False,
    )(func)
