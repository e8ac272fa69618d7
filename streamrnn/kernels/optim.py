"""Optimizers and gradient clipping with PyTorch's update formulas.

Dimension letter: P, the number of parameters. Each update runs twice over the
parameters: once to count new values that would not be finite (no early exit, so the
pass vectorises), and once to write; both passes evaluate the same expressions, so a
skipped update leaves the parameters and the moments exactly as they were.

Moment vectors in ``mem`` after the parameters (P each):
SGD ``momentum_buffer``;  Adam ``exp_avg | exp_avg_sq``;
RMSprop ``square_avg | momentum_buffer | grad_avg``.
"""

import math

from .._config import jit
from .layout import (
    ADAM,
    ALPHA,
    BETA1,
    BETA2,
    CENTERED,
    DAMPENING,
    EPS,
    FMAX,
    LR,
    LR_END,
    LR_TAU,
    MOMENTUM,
    NESTEROV,
    OFF_GRAD,
    OFF_MOM,
    OPT,
    OPT_STEP,
    P,
    SGD,
    WEIGHT_DECAY,
)

@jit
def clip_coefficient(gnorm, max_norm):
    """``torch.nn.utils.clip_grad_norm_``'s factor: min(1, max_norm / (gnorm + 1e-6))."""
    coef = max_norm / (gnorm + 1e-6)
    if coef > 1.0:
        return 1.0
    return coef


@jit
def current_lr(meta, fmeta):
    """The learning rate of the next step: constant, or lr_end + (lr - lr_end) tau / (tau + t)."""
    tau = fmeta[LR_TAU]
    if tau <= 0.0:
        return fmeta[LR]
    return fmeta[LR_END] + (fmeta[LR] - fmeta[LR_END]) * (tau / (tau + float(meta[OPT_STEP])))


@jit
def _bad(v, fmax):
    """1 unless v is finite and fits the model dtype (so storing it cannot make inf)."""
    return 0 if abs(v) <= fmax else 1


@jit
def _lerp(a, b, w):
    """torch.lerp(a, b, w) as its CPU kernel evaluates it."""
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1.0 - w)


@jit
def _sgd(meta, fmeta, mem, commit):
    n = meta[P]
    fmax = fmeta[FMAX]
    params = mem[:n]
    grad = mem[meta[OFF_GRAD] : meta[OFF_GRAD] + n]
    buf = mem[meta[OFF_MOM] : meta[OFF_MOM] + n]
    lr = current_lr(meta, fmeta)
    mu = fmeta[MOMENTUM]
    damp = fmeta[DAMPENING]
    wd = fmeta[WEIGHT_DECAY]
    nesterov = meta[NESTEROV] != 0
    first = meta[OPT_STEP] == 0
    bad = 0
    for i in range(n):
        p = float(params[i])
        g = float(grad[i])
        if wd != 0.0:
            g = g + wd * p
        if mu != 0.0:
            if first:
                b = g
            else:
                b = float(buf[i]) * mu + (1.0 - damp) * g
            if nesterov:
                g = g + mu * b
            else:
                g = b
            if commit:
                buf[i] = b
            else:
                bad += _bad(b, fmax)
        p = p + (-lr) * g
        if commit:
            params[i] = p
        else:
            bad += _bad(p, fmax)
    return bad == 0


@jit
def _adam(meta, fmeta, mem, commit):
    n = meta[P]
    fmax = fmeta[FMAX]
    params = mem[:n]
    grad = mem[meta[OFF_GRAD] : meta[OFF_GRAD] + n]
    exp_avg = mem[meta[OFF_MOM] : meta[OFF_MOM] + n]
    exp_avg_sq = mem[meta[OFF_MOM] + n : meta[OFF_MOM] + 2 * n]
    lr = current_lr(meta, fmeta)
    b1 = fmeta[BETA1]
    b2 = fmeta[BETA2]
    eps = fmeta[EPS]
    wd = fmeta[WEIGHT_DECAY]
    t = float(meta[OPT_STEP] + 1)
    step_size = lr / (1.0 - b1**t)
    bc2_sqrt = (1.0 - b2**t) ** 0.5
    bad = 0
    for i in range(n):
        p = float(params[i])
        g = float(grad[i])
        if wd != 0.0:
            g = g + wd * p
        m = _lerp(float(exp_avg[i]), g, 1.0 - b1)
        v = float(exp_avg_sq[i]) * b2 + ((1.0 - b2) * g) * g  # torch's addcmul order
        p = p + (-step_size) * (m / (math.sqrt(v) / bc2_sqrt + eps))
        if commit:
            exp_avg[i] = m
            exp_avg_sq[i] = v
            params[i] = p
        else:
            bad += _bad(m, fmax) + _bad(v, fmax) + _bad(p, fmax)
    return bad == 0


@jit
def _rmsprop(meta, fmeta, mem, commit):
    n = meta[P]
    fmax = fmeta[FMAX]
    params = mem[:n]
    grad = mem[meta[OFF_GRAD] : meta[OFF_GRAD] + n]
    m0 = meta[OFF_MOM]
    square_avg = mem[m0 : m0 + n]
    buf = mem[m0 + n : m0 + 2 * n]
    grad_avg = mem[m0 + 2 * n : m0 + 3 * n]
    lr = current_lr(meta, fmeta)
    alpha = fmeta[ALPHA]
    eps = fmeta[EPS]
    wd = fmeta[WEIGHT_DECAY]
    mu = fmeta[MOMENTUM]
    centered = meta[CENTERED] != 0
    bad = 0
    for i in range(n):
        p = float(params[i])
        g = float(grad[i])
        if wd != 0.0:
            g = g + wd * p
        sq = float(square_avg[i]) * alpha + ((1.0 - alpha) * g) * g  # torch's addcmul order
        ga = 0.0
        if centered:
            ga = _lerp(float(grad_avg[i]), g, 1.0 - alpha)
            avg = math.sqrt(sq + (-1.0) * (ga * ga)) + eps
        else:
            avg = math.sqrt(sq) + eps
        b = 0.0
        if mu > 0.0:
            b = float(buf[i]) * mu + g / avg
            p = p + (-lr) * b
        else:
            p = p + (-lr) * (g / avg)
        if commit:
            square_avg[i] = sq
            buf[i] = b
            grad_avg[i] = ga
            params[i] = p
        else:
            bad += _bad(sq, fmax) + _bad(b, fmax) + _bad(ga, fmax) + _bad(p, fmax)
    return bad == 0


@jit
def optimizer_step(meta, fmeta, mem):
    """Apply one optimizer step to ``mem``'s parameters if every new value is finite.

    Shapes: mem (MEM_SIZE,) holding params (P) | moments | grad (P).
    Math: torch.optim.SGD / Adam / RMSprop single-tensor updates (see module docstring).
    Writes: params and moments in mem, meta[OPT_STEP] (only when the step is applied).
    Returns: True if applied, False if skipped (nothing written).
    """
    opt = meta[OPT]
    if opt == SGD:
        ok = _sgd(meta, fmeta, mem, False)
        if ok:
            _sgd(meta, fmeta, mem, True)
    elif opt == ADAM:
        ok = _adam(meta, fmeta, mem, False)
        if ok:
            _adam(meta, fmeta, mem, True)
    else:
        ok = _rmsprop(meta, fmeta, mem, False)
        if ok:
            _rmsprop(meta, fmeta, mem, True)
    if ok:
        meta[OPT_STEP] += 1
    return ok
