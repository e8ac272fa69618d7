"""Pieces of the TBPTT update against their plain definitions, bit for bit: the window's
weight gradients (``accumulate_weight_grads``, which sums dW_ih transposed) against
``gemm_tn_add`` on the gradient itself, and the float64 lanes that ``iwork`` lends to the
norms."""

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.kernels import layout as L
from streamrnn.kernels import tbptt as T
from streamrnn.kernels.linalg import column_sums_add, gemm_tn_add


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("d, h, k", [(1, 1, 1), (3, 5, 3), (8, 9, 8), (13, 5, 5), (17, 1, 4)])
def test_window_weight_gradients_equal_the_plain_products(cell, d, h, k, dtype):
    m = sr.StreamRNN(cell=cell, input_size=d, hidden_size=h, k1=k, dtype=dtype, seed=d + h)
    meta, mem, work = m._meta, m._mem, m._work
    rng = np.random.default_rng(d * 100 + h * 10 + k)
    work[:] = rng.normal(size=work.shape).astype(dtype)  # every region holds something
    gh, s_w, g0 = int(meta[L.G]) * h, int(meta[L.S]), int(meta[L.OFF_GRAD])
    dgi = work[meta[L.W_DGI] :]
    dgh = work[meta[L.W_DGH] :] if cell == "gru" else dgi
    for t_w in range(1, k + 1):  # every partial window
        grad = mem[g0 : g0 + m.n_params]
        grad[:] = rng.normal(size=grad.shape).astype(dtype)  # accumulates onto what is there
        start = grad.copy()
        expected = np.zeros_like(grad)  # the plain products on a zeroed gradient ...
        o_hh, o_bih = gh * d, gh * d + gh * h
        gemm_tn_add(expected[:o_hh], gh, d, dgi, gh, work[meta[L.W_XW] :], d, t_w)
        gemm_tn_add(expected[o_hh:o_bih], gh, h, dgh, gh, work[meta[L.W_STATES] :], s_w, t_w)
        column_sums_add(expected[o_bih : o_bih + gh], gh, dgi, gh, t_w)
        column_sums_add(expected[o_bih + gh : o_bih + 2 * gh], gh, dgh, gh, t_w)
        grad[:] = 0
        T.accumulate_weight_grads(meta, mem, work, t_w)
        assert grad.tobytes() == expected.tobytes()  # ... equal bit for bit
        grad[:] = start
        T.accumulate_weight_grads(meta, mem, work, t_w)  # and on a non-zero one, it adds
        np.testing.assert_allclose(grad, start + expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


def test_the_lanes_are_a_float64_view_of_their_own_iwork_slots():
    m = sr.StreamRNN(input_size=2, hidden_size=3)
    iwork = m._iwork
    iwork[:] = np.arange(iwork.size)
    lanes = T.lanes(iwork)
    assert lanes.dtype == np.float64 and lanes.size == L.N_LANES
    assert np.shares_memory(lanes, iwork[L.OFF_LANES :]) and not np.shares_memory(lanes, iwork[: L.OFF_LANES])
    lanes[:] = 1.5
    assert iwork[: L.OFF_LANES].tolist() == list(range(L.OFF_LANES))
    assert iwork[L.OFF_LANES :].view(np.float64).tolist() == [1.5] * L.N_LANES
