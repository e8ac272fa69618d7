"""Vectorisable exp, sigmoid and tanh for the gate nonlinearities.

``math.exp`` and ``math.tanh`` are calls into libm, which LLVM cannot vectorise; in a GRU
step they cost more than the matrix products. These versions are straight-line
arithmetic, so a loop over the hidden units becomes SIMD code. Accuracy: ``exp_nonpos``
is within about 1 ulp of exp on [-708, 0]; ``sigmoid`` and ``tanh`` are within a few
units of 1e-16 absolute of the libm results (tested against them).

Math: exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite, two-part
ln 2), exp(r) by its Taylor series to degree 13 on |r| <= ln(2)/2 (truncation < 1e-17),
and 2^n assembled from its IEEE-754 bit pattern.
"""

from numba import types
from numba.extending import intrinsic

from .._config import jit


@intrinsic
def _int64_bits_as_float64(typingctx, bits):
    """Reinterpret an int64 bit pattern as a float64 (no conversion)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@intrinsic
def _float64_bits_as_int64(typingctx, value):
    """Reinterpret a float64 as its int64 bit pattern (no conversion)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the low bits
_SHIFTER_BITS = 0x4338000000000000
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # low 21 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@jit
def exp_nonpos(x):
    """exp(x) for x <= 0 (x is clamped to [-708, 0]; exp(-708) ~ 3e-308)."""
    x = float(x)
    if x < -708.0:
        x = -708.0
    if x > 0.0:
        x = 0.0
    t = x * _LOG2E + _SHIFTER
    n = t - _SHIFTER
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = _int64_bits_as_float64((_float64_bits_as_int64(t) - _SHIFTER_BITS + 1023) << 52)
    return p * scale


@jit
def sigmoid(a):
    """1 / (1 + exp(-a)), evaluated as e/(1+e) or 1/(1+e) with e = exp(-|a|)."""
    a = float(a)
    e = exp_nonpos(-abs(a))
    d = 1.0 / (1.0 + e)
    return d if a >= 0.0 else e * d


@jit
def tanh(a):
    """tanh(a) = sign(a) (1 - e) / (1 + e) with e = exp(-2|a|)."""
    a = float(a)
    e = exp_nonpos(-2.0 * abs(a))
    t = (1.0 - e) / (1.0 + e)
    return t if a >= 0.0 else -t
