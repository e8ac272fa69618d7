"""The dense building blocks against NumPy, on shapes that exercise every blocked loop's tail.

The kernels promise a fixed order of additions (no reassociation), so each is compared
bit for bit with a NumPy loop that adds the same terms in the same order.
"""

import numpy as np
import pytest

from streamrnn.kernels.linalg import (
    copy_into,
    gemm_tn_add,
    gemv_colmajor_add,
    gemv_rowmajor_t_add,
    sum_squares,
    transpose_add,
    transpose_into,
)

SHAPES = [(1, 1), (3, 5), (4, 4), (7, 9), (8, 8), (13, 3), (192, 64), (195, 13)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows, cols", SHAPES)
def test_transpose_into(rows, cols, dtype):
    w = np.random.default_rng(rows * 100 + cols).normal(size=rows * cols).astype(dtype)
    wt = np.full(rows * cols, np.nan, dtype=dtype)
    transpose_into(w, rows, cols, wt)
    np.testing.assert_array_equal(wt.reshape(cols, rows), w.reshape(rows, cols).T)
    before = wt.copy()
    transpose_add(w, rows, cols, wt)
    np.testing.assert_array_equal(wt.reshape(cols, rows), before.reshape(cols, rows) + w.reshape(rows, cols).T)


@pytest.mark.parametrize("n", [0, 1, 7, 64, 100])
def test_copy_into_copies_exactly_n_values(n):
    src = np.arange(n + 3, dtype=np.float64)
    dst = np.full(n + 3, -1.0)
    copy_into(dst, src, n)
    assert dst[:n].tolist() == src[:n].tolist() and dst[n:].tolist() == [-1.0] * 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 8, 16, 17])
@pytest.mark.parametrize("rows, cols", SHAPES)
def test_gemm_tn_add_adds_outer_products_in_order(rows, cols, n, pad, dtype):
    rng = np.random.default_rng(rows + 7 * cols + 31 * n)
    a_stride, b_stride = rows + pad, cols + pad // 2  # padded rows too: the kernel must honour the strides
    a = rng.normal(size=(n + 1) * a_stride).astype(dtype)
    b = rng.normal(size=(n + 1) * b_stride).astype(dtype)
    dw = rng.normal(size=rows * cols).astype(dtype)
    expected = dw.reshape(rows, cols).copy()
    for t in range(n):
        expected += np.outer(a[t * a_stride : t * a_stride + rows], b[t * b_stride : t * b_stride + cols])
    gemm_tn_add(dw, rows, cols, a, a_stride, b, b_stride, n)
    np.testing.assert_array_equal(dw.reshape(rows, cols), expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows, cols", SHAPES)
def test_gemv_both_layouts_add_in_order(rows, cols, dtype):
    rng = np.random.default_rng(rows * 3 + cols)
    W = rng.normal(size=(rows, cols)).astype(dtype)
    x = rng.normal(size=cols).astype(dtype)
    v = rng.normal(size=rows).astype(dtype)
    out = rng.normal(size=rows).astype(dtype)
    expected = out.copy()
    for c in range(cols):
        expected += W[:, c] * x[c]
    gemv_colmajor_add(np.ascontiguousarray(W.T).ravel(), rows, cols, x, out)
    np.testing.assert_array_equal(out, expected)
    out_t = rng.normal(size=cols).astype(dtype)
    expected_t = out_t.copy()
    for r in range(rows):
        expected_t += W[r] * v[r]
    gemv_rowmajor_t_add(W.ravel(), rows, cols, v, out_t)
    np.testing.assert_array_equal(out_t, expected_t)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [1, 3, 32])
@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 127, 128, 129, 200, 14273])
def test_sum_squares_adds_lanes_in_the_stated_order(n, width, dtype):
    v = np.random.default_rng(n + width).normal(size=n + 5).astype(dtype) * 3.0
    sq = v[:n].astype(np.float64) ** 2  # squares in float64, also of float32 inputs
    rows = n // width
    lanes = np.zeros(width)
    for r in range(rows):  # lane c: column c of the (rows, width) view, down the rows
        lanes += sq[r * width : (r + 1) * width]
    expected = 0.0
    for c in range(width):
        expected += lanes[c]
    for a in sq[rows * width :]:
        expected += a
    scratch = np.full(width, np.nan)
    got = sum_squares(v, n, scratch)
    assert got == expected  # bit for bit
    assert got == pytest.approx(float(np.sum(sq)), rel=1e-13, abs=0.0)


def test_sum_squares_of_float32_values_too_large_to_square_in_float32():
    v = np.array([3e19, -1e20, 2.0], dtype=np.float32)  # squares overflow float32, not float64
    got = sum_squares(v, 3, np.zeros(32))
    assert np.isfinite(got)
    assert got == pytest.approx(sum(float(a) ** 2 for a in v), rel=1e-15)
