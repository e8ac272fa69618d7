"""diagnostics(): per-lag gradient flow against torch autograd, running means, history."""

import numpy as np
import pytest

import streamrnn as sr
from tests.conftest import make_targets

torch = pytest.importorskip("torch")
from tests.torch_reference import criterion  # noqa: E402

CELLS = ["elman", "gru", "lstm"]
TORCH_CELLS = {"elman": torch.nn.RNNCell, "gru": torch.nn.GRUCell, "lstm": torch.nn.LSTMCell}


def torch_lag_norms(model, weights, start, xs, ys, loss_mask):
    """||dL/dh_t|| for every step t of a window, by autograd with ``h.retain_grad()``.

    The window runs from the carried state ``start`` (a constant: the detach) with
    ``weights``; L is the mean loss over the steps in ``loss_mask``. Returns the norms
    from the last step back (lag 0 first), as ``diagnostics()["lag_grad_norm"]``.
    """
    H = model.hidden_size
    cell = TORCH_CELLS[model.cell](model.input_size, H).double()
    lin = torch.nn.Linear(H, model.output_size).double()
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(torch.from_numpy(weights[name + "_l0"]))
        lin.weight.copy_(torch.from_numpy(weights["readout.weight"]))
        lin.bias.copy_(torch.from_numpy(weights["readout.bias"]))
    if model.cell == "lstm":
        h, c = torch.tensor(start[0]), torch.tensor(start[1])
    else:
        h = torch.tensor(start)
    hs, logits = [], []
    for x in torch.from_numpy(xs):
        if model.cell == "lstm":
            h, c = cell(x, (h, c))
        else:
            h = cell(x, h)
        h.retain_grad()  # the hidden state of this step: the same tensor feeds the readout and the next step
        hs.append(h)
        logits.append(lin(h))
    idx = np.flatnonzero(loss_mask)
    value = criterion(model.loss)(torch.stack(logits)[idx], torch.from_numpy(ys)[idx])
    value.backward()
    return np.array([float(torch.linalg.vector_norm(g.grad)) for g in reversed(hs)]), float(value.detach())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "k1,k2,T,loss",
    [(6, 6, 30, "mse"), (3, 7, 21, "mse"), (4, 10, 40, "ce"), (4, 10, 8, "bce")],
    ids=["k1=k2", "k1<k2", "k1<k2-ce", "window-shorter-than-k2"],
)
def test_lag_flow_equals_torch_autograd(cell, k1, k2, T, loss, rng):
    """The last update's per-lag flow, after earlier updates changed the weights (adam, clip)."""
    D, O = 3, 3
    m = sr.StreamRNN(
        cell=cell, input_size=D, hidden_size=5, output_size=O, k1=k1, k2=k2, loss=loss,
        optimizer="adam", lr=0.05, clip=0.5, seed=2,
    )
    X = rng.normal(size=(T, D))
    Y = make_targets(rng, loss, T, O)
    mask = rng.uniform(size=T) < 0.6
    mask[-1] = True
    carried = []  # the carried state after each step
    for t in range(T - 1):
        m.learn(X[t], Y[t] if mask[t] else None)
        carried.append(m.hidden)
    weights = m.state_dict()  # the weights the last update backpropagates through
    m.learn(X[-1], Y[-1])
    d = m.diagnostics()
    assert d["updates"] == T // k1 - d["no_target"] > 1  # earlier updates moved the weights

    W = min(k2, T)
    start = carried[T - W - 1] if T > W else (
        (np.zeros(5), np.zeros(5)) if cell == "lstm" else np.zeros(5)
    )
    loss_mask = mask[T - W :].copy()
    loss_mask[: W - k1] = False  # only the last k1 steps carry loss
    ref, ref_loss = torch_lag_norms(m, weights, start, X[T - W :], Y[T - W :], loss_mask)
    got = d["lag_grad_norm"]
    assert got.shape == (k2,)
    np.testing.assert_allclose(got[:W], ref, rtol=1e-9, atol=1e-15)
    assert np.all(got[W:] == 0.0)
    assert d["loss"] == pytest.approx(ref_loss, rel=1e-12)
    assert ref[-1] > 0.0  # gradient reaches the oldest step: the comparison is not vacuous


@pytest.mark.parametrize("cell", CELLS)
def test_running_means_follow_the_documented_recursion(cell, rng):
    """loss_ema, grad_norm_ema and lag_grad_norm_ema: first applied update, then ema * old + (1 - ema) * new."""
    k1, k2, ema = 3, 5, 0.8
    m = sr.StreamRNN(cell=cell, input_size=2, hidden_size=4, k1=k1, k2=k2, lr=0.05, ema=ema, history=6, seed=1)
    X, Y = rng.normal(size=(60, 2)), rng.normal(size=(60, 1))
    Y[31] = 1e300  # the update at step 33 is skipped: it must not enter the means
    per_update = []
    for t in range(60):
        m.learn(X[t], Y[t])
        if (t + 1) % k1 == 0:
            per_update.append(m.diagnostics())
    mean = None
    for d in per_update:
        cur = np.concatenate([[d["loss"], d["grad_norm"]], d["lag_grad_norm"]])
        if not np.isfinite(d["loss"]):
            assert d["skipped"] == 1
            continue
        mean = cur if mean is None else ema * mean + (1 - ema) * cur
        got = np.concatenate([[d["loss_ema"], d["grad_norm_ema"]], d["lag_grad_norm_ema"]])
        np.testing.assert_allclose(got, mean, rtol=1e-13, atol=0)
    last = per_update[-1]
    assert last["updates"] == 19 and last["skipped"] == 1 and last["steps"] == 60
    hist = last["history"]
    assert list(hist) == ["loss", "grad_norm", "clipped", "weight_norm"] and len(hist["loss"]) == 6
    np.testing.assert_array_equal(hist["loss"], [d["loss"] for d in per_update[-6:]])
    np.testing.assert_array_equal(hist["grad_norm"], [d["grad_norm"] for d in per_update[-6:]])
    np.testing.assert_allclose(hist["weight_norm"][-1], last["weight_norm"], rtol=1e-12)


def test_history_marks_skips_with_the_previous_weight_norm_and_clips(rng):
    m = sr.StreamRNN(cell="gru", input_size=1, hidden_size=3, k1=2, lr=0.1, clip=0.05, history=4)
    m.run(rng.normal(size=(4, 1)), rng.normal(size=(4, 1)))
    m.learn([0.0], [0.0])
    m.learn([0.0], [1e300])  # skipped
    h = m.diagnostics()["history"]
    assert not np.isfinite(h["loss"][-1]) and h["weight_norm"][-1] == h["weight_norm"][-2]
    assert h["clipped"].dtype == bool and h["clipped"][:2].all() and not h["clipped"][-1]
