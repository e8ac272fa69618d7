"""Small dense building blocks, written so the inner loops are contiguous and vectorise.

Dimension letters: R rows, C columns of a matrix ``W (R, C)``.

A matrix is stored row-major (PyTorch's layout) as ``w[r * C + c]``, or column-major
(its transpose, row-major) as ``wt[c * R + r]``. Products with ``W`` read the
column-major copy so the inner loop is an axpy over rows; products with ``W^T`` read the
row-major one for the same reason. No loop here is a floating-point reduction over a
long axis, so LLVM vectorises them without reassociation and every result is the same
sequence of operations wherever the function is inlined.
"""

import math

from .._config import jit


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
        b0 = c * rows
        b1 = b0 + rows
        b2 = b1 + rows
        b3 = b2 + rows
        for r in range(rows):
            acc = out[r] + wt[b0 + r] * x0
            acc = acc + wt[b1 + r] * x1
            acc = acc + wt[b2 + r] * x2
            out[r] = acc + wt[b3 + r] * x3
        c += 4
    while c < cols:
        xc = x[c]
        b0 = c * rows
        for r in range(rows):
            out[r] = out[r] + wt[b0 + r] * xc
        c += 1


@jit
def backward_rows(w, dw, rows, cols, dz, v, dv):
    """Backward of ``z = W @ v``: accumulate the weight gradient and the input gradient.

    Shapes: w, dw (rows*cols,) row-major; dz (rows,); v (cols,); dv (cols,).
    Math: dW[r, c] += dz[r] v[c];  dv[c] += sum_r W[r, c] dz[r] (in order r = 0, 1, ...).
    Writes: dw, dv.
    """
    for r in range(rows):
        d = dz[r]
        b = r * cols
        for c in range(cols):
            dw[b + c] += d * v[c]
            dv[c] += w[b + c] * d


@jit
def outer_add(dw, rows, cols, dz, v):
    """Accumulate an outer product into a row-major gradient.

    Shapes: dw (rows*cols,); dz (rows,); v (cols,).
    Math: dW[r, c] += dz[r] v[c].
    Writes: dw.
    """
    for r in range(rows):
        d = dz[r]
        b = r * cols
        for c in range(cols):
            dw[b + c] += d * v[c]


@jit
def transpose_into(w, rows, cols, wt):
    """Copy a row-major ``W (rows, cols)`` into its column-major copy.

    Shapes: w (rows*cols,); wt (cols*rows,).
    Math: wt[c*rows + r] = w[r*cols + c].
    Writes: wt.
    """
    for r in range(rows):
        b = r * cols
        for c in range(cols):
            wt[c * rows + r] = w[b + c]


@jit
def sum_squares(v, n):
    """Return ``sum(v[:n]**2)`` in float64.

    Shapes: v (>= n,).
    Math: four interleaved partial sums (i mod 4), added as (s0 + s1) + (s2 + s3) and
    then the tail; a fixed order, so the result is reproducible.
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = 0
    while i + 4 <= n:
        a0 = float(v[i])
        a1 = float(v[i + 1])
        a2 = float(v[i + 2])
        a3 = float(v[i + 3])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
        i += 4
    s = (s0 + s1) + (s2 + s3)
    while i < n:
        a = float(v[i])
        s += a * a
        i += 1
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


@jit
def sigmoid(a):
    """Logistic function, stable for large |a|."""
    if a >= 0.0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)
