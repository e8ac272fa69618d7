"""Library-wide settings: default dtype and the one place numba flags are chosen.

``FASTMATH`` is an explicit flag set, never ``True``: ``nnan``/``ninf`` would let LLVM
assume that NaN and inf never occur, and the NaN guards in the kernels would silently
become no-ops. It is empty on purpose. Even ``contract`` (fused multiply-add) is left
out: with it, the code numba compiles in a process and the code it loads from its cache
fused differently (measured: a centered-RMSprop moment differed in the last bit), and a
checkpoint must resume bit for bit in any process. Without it the kernels measured the
same speed, as they are bound by memory traffic, not arithmetic.

Threads
-------
Kernels keep the GIL (no ``nogil``): ``predict`` writes the model's scratch and predict
cache, so two threads in one model's kernels at once would corrupt each other's
results. Holding the GIL makes every call on a model atomic, so a model may be shared
between threads; calls are serialised (use processes for parallel models).

Kernel cache
------------
Kernels are compiled with ``cache=True``. numba keys a cached function on the source of
the file that defines it, but not on the files of the functions it calls, so editing
``gru.py`` alone would leave a stale compiled ``tbptt.learn_step`` behind. For functions
defined in ``streamrnn/kernels`` the cache is keyed instead on a fingerprint of every
kernel source file and this one (through numba's cache-locator hook; if a numba version
lacks the hook, its default behaviour applies).

Environment switches
--------------------
``STREAMRNN_NO_CACHE=1`` disables numba's on-disk cache (useful when debugging kernels).
"""

import functools
import hashlib
import os

import numba

DEFAULT_DTYPE = "float64"
DTYPES = ("float64", "float32")

FASTMATH = frozenset()
CACHE = os.environ.get("STREAMRNN_NO_CACHE", "") not in ("1", "true", "yes")

_HERE = os.path.dirname(os.path.abspath(__file__))
_KERNELS = os.path.join(_HERE, "kernels")


def jit(func):
    """Compile ``func`` with the library's numba settings (lazily, on first call)."""
    return numba.njit(
        cache=CACHE,
        fastmath=set(FASTMATH),
        error_model="numpy",
        boundscheck=False,
    )(func)


def _kernel_files():
    names = sorted(n for n in os.listdir(_KERNELS) if n.endswith(".py"))
    return [os.path.join(_KERNELS, n) for n in names] + [os.path.abspath(__file__)]


@functools.lru_cache(maxsize=8)
def _fingerprint(stamps):
    h = hashlib.sha256()
    for path, _, _ in stamps:
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.digest()


def kernels_fingerprint():
    """sha256 over the source of every kernel module and this one."""
    stamps = []
    for path in _kernel_files():
        st = os.stat(path)
        stamps.append((path, st.st_mtime_ns, st.st_size))
    return _fingerprint(tuple(stamps))


def _install_cache_locators():
    """Put, before each of numba's file-backed cache locators, a twin for our kernels.

    The twin keeps numba's choice of place (``NUMBA_CACHE_DIR`` first, then next to the
    source, then the user-wide directory) and only changes the stamp.
    """
    try:
        from numba.core import caching

        impl = caching.CacheImpl
        classes = impl._locator_classes
        bases = tuple(
            getattr(caching, name)
            for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
        )
    except (ImportError, AttributeError):
        return
    if getattr(impl, "_streamrnn_locators", False):
        return
    for base in bases:
        if base not in classes:
            continue

        class KernelLocator(base):
            """``base``, for streamrnn kernels only, stamped with the kernels' fingerprint."""

            @classmethod
            def from_function(cls, py_func, py_file):
                if os.path.dirname(os.path.abspath(py_file)) != _KERNELS:
                    return None
                return super().from_function(py_func, py_file)

            def get_source_stamp(self):
                return kernels_fingerprint()

        classes.insert(classes.index(base), KernelLocator)
    impl._streamrnn_locators = True


if CACHE:
    _install_cache_locators()
