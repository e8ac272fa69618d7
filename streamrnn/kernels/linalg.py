"""Small dense building blocks, written so the inner loops are contiguous and vectorise.

Dimension letters: R rows, C columns of a matrix ``W (R, C)``.

A matrix is stored row-major (PyTorch's layout) as ``w[r * C + c]``, or column-major
(its transpose, row-major) as ``wt[c * R + r]``. Products with ``W`` read the
column-major copy so the inner loop is an axpy over rows; products with ``W^T`` read the
row-major one for the same reason. No loop here is a floating-point reduction over a
long axis, so LLVM vectorises them without reassociation and every result is the same
sequence of operations wherever the function is inlined.

Inner loops index a row slice with the loop variable alone: numba wraps negative
indices, and an index like ``base + c`` that LLVM cannot prove non-negative keeps it
from vectorising the loop (measured: 3x slower).
"""

import math

import numpy as np

from .._config import jit


@jit
def _add4(acc, u0, x0, u1, x1, u2, x2, u3, x3):
    """``acc + u0 x0 + u1 x1 + u2 x2 + u3 x3``, added left to right (the one order every
    blocked loop here uses, so blocking never changes a result)."""
    acc = acc + u0 * x0
    acc = acc + u1 * x1
    acc = acc + u2 * x2
    return acc + u3 * x3


@jit
def gemv_colmajor_add(wt, rows, cols, x, out):
    """Add ``W @ x`` to ``out``, reading ``W`` from its column-major copy.

    Shapes: wt (cols*rows,) with wt[c*rows + r] = W[r, c]; x (cols,); out (rows,).
    Math: out[r] += sum_c W[r, c] x[c], accumulated in order c = 0, 1, ...
    Writes: out.
    """
    c = 0
    while c + 4 <= cols:
        x0 = x[c]
        x1 = x[c + 1]
        x2 = x[c + 2]
        x3 = x[c + 3]
        w0 = wt[c * rows : (c + 1) * rows]
        w1 = wt[(c + 1) * rows : (c + 2) * rows]
        w2 = wt[(c + 2) * rows : (c + 3) * rows]
        w3 = wt[(c + 3) * rows : (c + 4) * rows]
        for r in range(rows):
            out[r] = _add4(out[r], w0[r], x0, w1[r], x1, w2[r], x2, w3[r], x3)
        c += 4
    while c < cols:
        xc = x[c]
        w0 = wt[c * rows : (c + 1) * rows]
        for r in range(rows):
            out[r] = out[r] + w0[r] * xc
        c += 1


@jit
def gemv_rowmajor_t_add(w, rows, cols, v, out):
    """Add ``W^T @ v`` to ``out``, reading ``W`` row-major (four rows per pass).

    Shapes: w (rows*cols,) with w[r*cols + c] = W[r, c]; v (rows,); out (cols,).
    Math: out[c] += sum_r W[r, c] v[r], accumulated in order r = 0, 1, ...
    Writes: out.
    """
    r = 0
    while r + 4 <= rows:
        v0 = v[r]
        v1 = v[r + 1]
        v2 = v[r + 2]
        v3 = v[r + 3]
        w0 = w[r * cols : (r + 1) * cols]
        w1 = w[(r + 1) * cols : (r + 2) * cols]
        w2 = w[(r + 2) * cols : (r + 3) * cols]
        w3 = w[(r + 3) * cols : (r + 4) * cols]
        for c in range(cols):
            out[c] = _add4(out[c], w0[c], v0, w1[c], v1, w2[c], v2, w3[c], v3)
        r += 4
    while r < rows:
        vr = v[r]
        w0 = w[r * cols : (r + 1) * cols]
        for c in range(cols):
            out[c] = out[c] + w0[c] * vr
        r += 1


@jit
def gemm_tn_add(dw, rows, cols, a, a_stride, b, b_stride, n):
    """Accumulate a sum of outer products, the weight gradient of a whole window.

    Shapes: dw (rows*cols,) row-major; a holds A (n, rows) with A[t, r] = a[t*a_stride + r];
            b holds B (n, cols) with B[t, c] = b[t*b_stride + c].
    Math: dW[r, c] += sum_t A[t, r] B[t, c], added in order t = 0, 1, ... Blocked four
          rows by four steps: each pass over the columns loads four rows of B once for
          sixteen products per column (the loads of B, not the arithmetic, bound a
          one-row loop); every entry still sees the same sequence of additions.
    Writes: dw.
    """
    n4 = n - n % 4
    r = 0
    while r + 4 <= rows:
        d0 = dw[r * cols : (r + 1) * cols]
        d1 = dw[(r + 1) * cols : (r + 2) * cols]
        d2 = dw[(r + 2) * cols : (r + 3) * cols]
        d3 = dw[(r + 3) * cols : (r + 4) * cols]
        for t in range(0, n4, 4):
            a0 = a[t * a_stride + r : t * a_stride + r + 4]
            a1 = a[(t + 1) * a_stride + r : (t + 1) * a_stride + r + 4]
            a2 = a[(t + 2) * a_stride + r : (t + 2) * a_stride + r + 4]
            a3 = a[(t + 3) * a_stride + r : (t + 3) * a_stride + r + 4]
            u00, u01, u02, u03 = a0[0], a1[0], a2[0], a3[0]
            u10, u11, u12, u13 = a0[1], a1[1], a2[1], a3[1]
            u20, u21, u22, u23 = a0[2], a1[2], a2[2], a3[2]
            u30, u31, u32, u33 = a0[3], a1[3], a2[3], a3[3]
            b0 = b[t * b_stride : t * b_stride + cols]
            b1 = b[(t + 1) * b_stride : (t + 1) * b_stride + cols]
            b2 = b[(t + 2) * b_stride : (t + 2) * b_stride + cols]
            b3 = b[(t + 3) * b_stride : (t + 3) * b_stride + cols]
            for c in range(cols):
                x0 = b0[c]
                x1 = b1[c]
                x2 = b2[c]
                x3 = b3[c]
                d0[c] = _add4(d0[c], u00, x0, u01, x1, u02, x2, u03, x3)
                d1[c] = _add4(d1[c], u10, x0, u11, x1, u12, x2, u13, x3)
                d2[c] = _add4(d2[c], u20, x0, u21, x1, u22, x2, u23, x3)
                d3[c] = _add4(d3[c], u30, x0, u31, x1, u32, x2, u33, x3)
        for t in range(n4, n):
            b0 = b[t * b_stride : t * b_stride + cols]
            for q in range(4):
                u0 = a[t * a_stride + r + q]
                dq = dw[(r + q) * cols : (r + q + 1) * cols]
                for c in range(cols):
                    dq[c] = dq[c] + u0 * b0[c]
        r += 4
    while r < rows:
        dwr = dw[r * cols : (r + 1) * cols]
        for t in range(n):
            u0 = a[t * a_stride + r]
            b0 = b[t * b_stride : t * b_stride + cols]
            for c in range(cols):
                dwr[c] = dwr[c] + u0 * b0[c]
        r += 1


@jit
def copy_into(dst, src, n):
    """``dst[:n] = src[:n]``, without a temporary.

    Callers pass slices that start where the copy starts, so the loop indexes with its
    variable alone and vectorises (see the module docstring).
    Writes: dst.
    """
    for i in range(n):
        dst[i] = src[i]


@jit
def column_sums_add(out, cols, a, a_stride, n):
    """Accumulate column sums: the bias gradient of a window.

    Shapes: out (cols,); a holds A (n, cols) with A[t, c] = a[t*a_stride + c].
    Math: out[c] += sum_t A[t, c], in order t = 0, 1, ...
    Writes: out.
    """
    for t in range(n):
        at = a[t * a_stride : t * a_stride + cols]
        for c in range(cols):
            out[c] += at[c]


@jit
def transpose_into(w, rows, cols, wt):
    """Copy a row-major ``W (rows, cols)`` into its column-major copy.

    Shapes: w (rows*cols,); wt (cols*rows,).
    Math: wt[c*rows + r] = w[r*cols + c], eight rows at a time, so each column writes
    eight adjacent entries (a cache line in float64) rather than one entry per line
    (measured 3x faster at 192 x 64).
    Writes: wt.
    """
    r = 0
    while r + 8 <= rows:
        w0 = w[r * cols : (r + 1) * cols]
        w1 = w[(r + 1) * cols : (r + 2) * cols]
        w2 = w[(r + 2) * cols : (r + 3) * cols]
        w3 = w[(r + 3) * cols : (r + 4) * cols]
        w4 = w[(r + 4) * cols : (r + 5) * cols]
        w5 = w[(r + 5) * cols : (r + 6) * cols]
        w6 = w[(r + 6) * cols : (r + 7) * cols]
        w7 = w[(r + 7) * cols : (r + 8) * cols]
        for c in range(cols):
            o = wt[c * rows + r : c * rows + r + 8]
            o[0] = w0[c]
            o[1] = w1[c]
            o[2] = w2[c]
            o[3] = w3[c]
            o[4] = w4[c]
            o[5] = w5[c]
            o[6] = w6[c]
            o[7] = w7[c]
        r += 8
    while r < rows:
        wr = w[r * cols : (r + 1) * cols]
        for c in range(cols):
            wt[c * rows + r] = wr[c]
        r += 1


@jit
def transpose_add(w, rows, cols, wt):
    """Add a row-major ``W (rows, cols)`` to the column-major ``wt``.

    Shapes: w (rows*cols,); wt (cols*rows,).
    Math: wt[c*rows + r] += w[r*cols + c], one row of W at a time (for small matrices:
    ``accumulate_weight_grads`` adds the D x G*H input-weight gradient once a window).
    Writes: wt.
    """
    for r in range(rows):
        wr = w[r * cols : (r + 1) * cols]
        for c in range(cols):
            wt[c * rows + r] += wr[c]


@jit
def sum_squares(v, n, lanes):
    """Return ``sum(v[:n]**2)`` in float64, in a fixed order that runs in SIMD.

    Shapes: v (>= n,); lanes (L,) float64 scratch, L >= 1 (the caller's choice of L
    fixes the order).
    Math: v[:L*m] is read as m rows of L; lane l sums the squares of column l down the
    rows, four rows per pass (the loop over the lanes is elementwise, so it vectorises
    without reassociation: a running sum in one variable cannot, and numba does not
    vectorise straight-line code); then the lanes are added in order 0, 1, ..., then
    the tail v[L*m:n] in order. The same inputs give the same bits on every run.
    Each square is taken in float64 (numba's ``float()`` keeps a float32 a float32).
    Writes: lanes.
    """
    width = lanes.shape[0]
    rows = n // width
    for c in range(width):
        lanes[c] = 0.0
    r = 0
    while r + 4 <= rows:
        q0 = v[r * width : (r + 1) * width]
        q1 = v[(r + 1) * width : (r + 2) * width]
        q2 = v[(r + 2) * width : (r + 3) * width]
        q3 = v[(r + 3) * width : (r + 4) * width]
        for c in range(width):
            a0 = np.float64(q0[c])
            a1 = np.float64(q1[c])
            a2 = np.float64(q2[c])
            a3 = np.float64(q3[c])
            lanes[c] = _add4(lanes[c], a0, a0, a1, a1, a2, a2, a3, a3)
        r += 4
    while r < rows:
        q0 = v[r * width : (r + 1) * width]
        for c in range(width):
            a0 = np.float64(q0[c])
            lanes[c] = lanes[c] + a0 * a0
        r += 1
    s = 0.0
    for c in range(width):
        s += lanes[c]
    tail = v[rows * width : n]
    for i in range(n - rows * width):
        a = np.float64(tail[i])
        s += a * a
    return s


@jit
def first_nonfinite(v, n):
    """Return the index of the first NaN or inf in ``v[:n]``, or -1.

    Shapes: v (>= n,).
    """
    for i in range(n):
        if not math.isfinite(v[i]):
            return i
    return -1
