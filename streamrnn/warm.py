"""Compile every kernel once, on tiny inputs."""

import numpy as np


def warmup(verbose=False):
    """Compile (or load from numba's cache) every kernel for float64 and float32.

    Call it at start-up to move compilation out of the first prediction. Returns the
    number of models exercised.
    """
    from .engine import StreamRNN
    from .keyed import KeyedStreamRNN

    n = 0
    for dtype in ("float64", "float32"):
        m = StreamRNN(cell="gru", input_size=2, hidden_size=2, output_size=1, k1=2, dtype=dtype)
        x = np.zeros(2, dtype=dtype)
        y = np.zeros(1, dtype=dtype)
        m.predict(x)
        m.learn(x, y)
        m.learn(x)
        m.run(np.zeros((2, 2), dtype=dtype), np.zeros((2, 1), dtype=dtype))
        m.reset_state()
        k = KeyedStreamRNN(cell="gru", input_size=2, hidden_size=2, output_size=1, k1=2, dtype=dtype, capacity=1)
        k.predict(0, x)
        k.learn(0, x, y)
        k.learn(1, x)
        k.run(np.array([0, 1]), np.zeros((2, 2), dtype=dtype), np.zeros((2, 1), dtype=dtype))
        k.keys()
        k.reset_state(1)
        n += 1
        if verbose:
            print(f"warmup: {dtype} ready")
    return n
