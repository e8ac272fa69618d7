"""Each cell's forward step and window gradient against numpy, finite differences and torch."""

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.cells import state_width
from streamrnn.testing.probe import window_gradient
from streamrnn.testing.reference import (
    central_difference,
    predict_ref,
    unflatten,
    window_loss_ref,
)
from tests.conftest import make_targets

CELLS = ["elman", "gru", "lstm"]
HEADS = [("mse", 2), ("bce", 2), ("ce", 3)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,O", HEADS)
def test_forward_matches_numpy_reference(cell, loss, O, rng):
    m = sr.StreamRNN(cell=cell, input_size=3, hidden_size=5, output_size=O, loss=loss, seed=7)
    w = unflatten(cell, 3, 5, O, m.params.copy())
    s = np.zeros(state_width(cell, 5))
    for _ in range(20):
        x = rng.normal(size=3)
        out = m.predict(x)
        ref_out, s = predict_ref(cell, loss, w, x, s)
        np.testing.assert_allclose(out, ref_out, rtol=1e-13, atol=1e-14)
        m.learn(x)  # no target: state advances, weights stay
        got = np.concatenate(m.hidden) if cell == "lstm" else m.hidden
        np.testing.assert_allclose(got, s, rtol=1e-13, atol=1e-14)
    assert m.diagnostics()["updates"] == 0


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,O", HEADS)
def test_window_gradient_matches_central_differences(cell, loss, O, rng):
    D, H, T = 3, 4, 7
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=O, loss=loss, seed=11)
    xs = rng.normal(size=(T, D))
    ys = make_targets(rng, loss, T, O)
    mask = np.array([1, 0, 1, 1, 0, 1, 1], dtype=bool)
    grad, value = window_gradient(m, xs, ys, mask)
    s0 = np.zeros(state_width(cell, H))

    def f(theta):
        return window_loss_ref(cell, loss, unflatten(cell, D, H, O, theta), xs, ys, mask, s0)

    theta = m.params.copy()
    assert value == pytest.approx(f(theta), rel=1e-13)
    fd = central_difference(f, theta, eps=1e-6)
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-6
    # every parameter group receives gradient (no silently dead block)
    for name, sl_view in unflatten(cell, D, H, O, grad).items():
        assert np.any(sl_view != 0.0), name


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,O", HEADS)
@pytest.mark.parametrize("T,seed", [(1, 0), (5, 1), (17, 2)])
def test_window_gradient_matches_torch_autograd(cell, loss, O, T, seed):
    torch = pytest.importorskip("torch")
    from tests.torch_reference import make_torch, window_grads

    rng = np.random.default_rng(seed)
    D, H = 4, 6
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=O, loss=loss, seed=seed)
    xs = rng.normal(size=(T, D))
    ys = make_targets(rng, loss, T, O)
    mask = rng.uniform(size=T) < 0.7
    mask[-1] = True
    grad, value = window_gradient(m, xs, ys, mask)
    rnn, lin = make_torch(m, torch.float64)
    ref, ref_value = window_grads(cell, rnn, lin, xs, ys, mask, loss)
    assert abs(value - ref_value) <= 1e-12
    got = unflatten(cell, D, H, O, grad)
    for name, g in ref.items():
        assert np.max(np.abs(got[name] - g)) <= 1e-10, name
