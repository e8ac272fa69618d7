"""Read a model's internals for tests: the last gradient, every array, a window's gradient."""

import copy

import numpy as np

from ..kernels import layout as L


def last_gradient(model):
    """The gradient of the last TBPTT update (after clipping), flat, in parameter order."""
    g0 = int(model._meta[L.OFF_GRAD])
    return model._mem[g0 : g0 + model.n_params].copy()


def snapshot(model):
    """Copies of every array that defines the model's behaviour (not scratch)."""
    names = [n for n, v in vars(model).items() if isinstance(v, np.ndarray) and n not in ("_work", "_iwork")]
    return {n: getattr(model, n).copy() for n in sorted(names)}


def assert_same_arrays(a, b):
    """Assert two snapshots are bit-identical (NaN payloads compared as bytes)."""
    assert a.keys() == b.keys()
    for n in a:
        assert a[n].dtype == b[n].dtype and a[n].shape == b[n].shape, n
        assert a[n].tobytes() == b[n].tobytes(), f"{n} changed"


def window_gradient(model, xs, ys, mask=None):
    """Analytic gradient and loss of one window run from the model's current state.

    A copy of ``model`` with k1 = k2 = T and lr = 0 consumes the T samples; its single
    update computes the gradient of the mean loss over the target steps (not clipped).
    """
    T = xs.shape[0]
    mask = np.ones(T, dtype=bool) if mask is None else mask
    m = copy.deepcopy(model)
    cfg = m._config()
    cfg.update(k1=T, k2=T, lr=0.0, clip=None, optimizer="sgd", momentum=0.0, nesterov=False, history=0)
    probe = type(model)(**cfg)
    probe.load_state_dict(m.state_dict())
    probe._slab[0, : probe._layout.state_width] = m._slab[0, : m._layout.state_width]
    probe._slab[0, probe._meta[L.ROW_START] : probe._meta[L.ROW_START] + probe._layout.state_width] = m._slab[
        0, : m._layout.state_width
    ]
    for t in range(T):
        probe.learn(xs[t], ys[t] if mask[t] else None)
    return last_gradient(probe), probe.diagnostics()["loss"]
