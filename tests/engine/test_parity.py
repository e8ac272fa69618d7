"""Whole trajectories against PyTorch: the chunked loop (k1 = k2) and TBPTT(k1 < k2)."""

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.testing.probe import last_gradient
from tests.conftest import make_targets

torch = pytest.importorskip("torch")
from tests.torch_reference import (  # noqa: E402
    chunked_loop,
    make_torch,
    tbptt_loop,
    torch_state_dict,
    window_grads,
)

CELLS = ["elman", "gru", "lstm"]


def stream(T, D, O, seed):
    """A noisy multi-sine stream; the targets are the next inputs' first O coordinates."""
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)[:, None]
    base = np.sin(t / np.array([3.0, 7.0, 11.0, 5.0])[:D] + np.arange(D))
    base = base + 0.1 * rng.normal(size=base.shape)
    return base[:-1].copy(), base[1:, :O].copy()


OPTIMIZERS = [
    ("sgd", dict(lr=0.05, momentum=0.9), dict(momentum=0.9)),
    ("adam", dict(lr=0.01), {}),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt,kw,torch_kw", OPTIMIZERS, ids=["sgd-momentum", "adam"])
def test_matches_torch_chunked_loop_for_2000_steps(cell, opt, kw, torch_kw):
    T, D, H, O, K, clip = 2000, 3, 8, 2, 16, 0.05
    X, Y = stream(T, D, O, seed=1)
    m = sr.StreamRNN(
        cell=cell, input_size=D, hidden_size=H, output_size=O, k1=K, optimizer=opt, clip=clip, seed=3, **kw
    )
    rnn, lin = make_torch(m)
    ref = chunked_loop(cell, rnn, lin, X, Y, K, optimizer=opt, clip=clip, lr=kw["lr"], **torch_kw)
    got = m.run(X, Y)
    d = m.diagnostics()
    assert d["updates"] == T // K and d["clipped"] > d["updates"] // 2, d  # clipping really active
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    ref_sd = torch_state_dict(rnn, lin)
    for name, w in m.state_dict().items():
        np.testing.assert_allclose(w, ref_sd[name], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "k1,k2,opt,kw,torch_kw",
    [
        (4, 10, "sgd", dict(lr=0.05, momentum=0.9, nesterov=True), dict(momentum=0.9, nesterov=True)),
        (5, 5, "rmsprop", dict(lr=0.005, momentum=0.5, centered=True), dict(momentum=0.5, centered=True)),
        (3, 12, "adam", dict(lr=0.01, weight_decay=0.01), dict(weight_decay=0.01)),
        (1, 1, "sgd", dict(lr=0.02, weight_decay=0.1, momentum=0.5, dampening=0.3),
         dict(weight_decay=0.1, momentum=0.5, dampening=0.3)),
    ],
)
def test_matches_torch_tbptt_k1_k2(cell, k1, k2, opt, kw, torch_kw, rng):
    T, D, H, O = 300, 3, 6, 2
    X, Y = stream(T, D, O, seed=2)
    mask = rng.uniform(size=T) < 0.6
    m = sr.StreamRNN(
        cell=cell, input_size=D, hidden_size=H, output_size=O, k1=k1, k2=k2, optimizer=opt, clip=1.0, seed=5, **kw
    )
    rnn, lin = make_torch(m)
    ref = tbptt_loop(cell, rnn, lin, X, Y, mask, k1, k2, optimizer=opt, clip=1.0, lr=kw["lr"], **torch_kw)
    got = m.run(X, Y, mask=mask)
    assert m.diagnostics()["updates"] > 0
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    ref_sd = torch_state_dict(rnn, lin)
    for name, w in m.state_dict().items():
        np.testing.assert_allclose(w, ref_sd[name], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,O", [("bce", 2), ("ce", 3)])
def test_classification_heads_match_torch(cell, loss, O, rng):
    T, D, H, K = 200, 3, 5, 8
    X = rng.normal(size=(T, D))
    Y = make_targets(rng, loss, T, O)
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=O, loss=loss, k1=K, lr=0.1, seed=2)
    rnn, lin = make_torch(m)
    ref = chunked_loop(cell, rnn, lin, X, Y, K, loss=loss, lr=0.1)
    np.testing.assert_allclose(m.run(X, Y), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_tbptt_with_window_covering_the_sequence_is_full_bptt(cell, rng):
    """k1 = k2 = T: one update whose gradient is full BPTT; k1 = k2 > T: no update yet."""
    T, D, H, O = 30, 2, 5, 1
    X = rng.normal(size=(T, D))
    Y = rng.normal(size=(T, O))
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=O, k1=T, lr=0.1, seed=4)
    rnn, lin = make_torch(m)
    before = m.params.copy()
    ref, _ = window_grads(cell, rnn, lin, X, Y, np.ones(T, bool), "mse")
    m.run(X, Y)
    full = np.concatenate([ref[name].ravel() for name in m.state_dict()])
    np.testing.assert_allclose(last_gradient(m), full, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.params, before - 0.1 * full, rtol=0, atol=1e-14)

    longer = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=O, k1=2 * T, lr=0.1, seed=4)
    longer.run(X, Y)
    assert longer.diagnostics()["updates"] == 0
    np.testing.assert_array_equal(longer.params, before)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt,torch_kw", [("sgd", dict(momentum=0.9)), ("adam", {})])
def test_learning_rate_schedule_matches_torch_lambdalr(cell, opt, torch_kw):
    """lr_t = lr_end + (lr - lr_end) tau / (tau + t) equals LambdaLR stepped after each opt.step()."""
    T, D, H, O, K, lr, lr_end, tau = 400, 3, 6, 2, 4, 0.05, 0.005, 10.0
    X, Y = stream(T, D, O, seed=3)
    m = sr.StreamRNN(
        cell=cell, input_size=D, hidden_size=H, output_size=O, k1=K, optimizer=opt, lr=lr, lr_end=lr_end,
        lr_tau=tau, seed=6, **torch_kw,
    )
    rnn, lin = make_torch(m)
    params = list(rnn.parameters()) + list(lin.parameters())
    topt = torch.optim.SGD(params, lr=lr, **torch_kw) if opt == "sgd" else torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda t: (lr_end + (lr - lr_end) * tau / (tau + t)) / lr)
    crit = torch.nn.MSELoss()
    h = None
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    ref = []
    for s in range(0, T, K):
        topt.zero_grad()
        out, h = rnn(Xt[s : s + K], h)
        logits = lin(out)
        ref.append(logits.detach().numpy())
        crit(logits, Yt[s : s + K]).backward()
        topt.step()
        sched.step()
        h = tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()
    got = m.run(X, Y)
    np.testing.assert_allclose(got, np.concatenate(ref), rtol=0, atol=1e-10)
    assert sched.get_last_lr()[0] < 0.3 * lr  # the schedule really decayed
    constant = sr.StreamRNN(cell=cell, input_size=D, hidden_size=H, output_size=O, k1=K, optimizer=opt, lr=lr,
                            seed=6, **torch_kw)
    assert not np.allclose(constant.run(X, Y), got, atol=1e-6)
