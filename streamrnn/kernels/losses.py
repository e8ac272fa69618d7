"""Readout heads and their losses.

Dimension letters: H hidden, O outputs. The readout is ``logits = W_o h + b_o`` with
``readout.weight (O, H)`` and ``readout.bias (O,)`` stored flat at offset ``off``.

Heads (loss code -> output, per-step loss, as PyTorch computes them):
MSE  identity   mean_o (l_o - y_o)^2                                  (MSELoss)
BCE  sigmoid    mean_o max(l,0) - l y + log(1 + exp(-|l|))            (BCEWithLogitsLoss)
CE   softmax    -sum_o y_o log softmax(l)_o, y a probability vector   (CrossEntropyLoss)
"""

import math

from .._config import jit
from .layout import BCE, CE, MSE
from .special import sigmoid


@jit
def readout_forward(params, off, H, O, h, logits):
    """Affine readout.

    Shapes: params (P,) with W_o (O, H) at off and b_o (O,) after it; h (H,); logits (O,).
    Math: logits = W_o h + b_o.
    Writes: logits.
    """
    ob = off + O * H
    for o in range(O):
        acc = 0.0
        w_o = params[off + o * H : off + (o + 1) * H]
        for k in range(H):
            acc += w_o[k] * h[k]
        logits[o] = acc + params[ob + o]


@jit
def head_output(loss, logits, O, out):
    """The head's output: identity (MSE), sigmoid (BCE) or softmax (CE).

    Shapes: logits, out (O,).
    Writes: out.
    """
    if loss == MSE:
        for o in range(O):
            out[o] = logits[o]
    elif loss == BCE:
        for o in range(O):
            out[o] = sigmoid(logits[o])
    else:
        mx = logits[0]
        for o in range(1, O):
            if logits[o] > mx:
                mx = logits[o]
        tot = 0.0
        for o in range(O):
            e = math.exp(logits[o] - mx)
            out[o] = e
            tot += e
        for o in range(O):
            out[o] = out[o] / tot


@jit
def loss_and_grad(loss, logits, y, O, scale, dlogits):
    """Per-step loss and its gradient w.r.t. the logits, scaled by ``scale``.

    Shapes: logits, y, dlogits (O,).
    Math: MSE d = 2 (l - y) / O;  BCE d = (s(l) - y) / O;  CE d = softmax(l) sum(y) - y;
          each multiplied by ``scale`` (1 / number of target steps in the window).
    Writes: dlogits. Returns the unscaled per-step loss.
    """
    val = 0.0
    if loss == MSE:
        for o in range(O):
            e = logits[o] - y[o]
            val += e * e
            dlogits[o] = scale * 2.0 * e / O
        return val / O
    if loss == BCE:
        for o in range(O):
            lo = logits[o]
            val += max(lo, 0.0) - lo * y[o] + math.log1p(math.exp(-abs(lo)))
            dlogits[o] = scale * (sigmoid(lo) - y[o]) / O
        return val / O
    mx = logits[0]
    for o in range(1, O):
        if logits[o] > mx:
            mx = logits[o]
    tot = 0.0
    ysum = 0.0
    for o in range(O):
        tot += math.exp(logits[o] - mx)
        ysum += y[o]
    lse = mx + math.log(tot)
    for o in range(O):
        val += y[o] * (lse - logits[o])
        dlogits[o] = scale * (math.exp(logits[o] - lse) * ysum - y[o])
    return val


@jit
def target_domain_error(loss, y, O):
    """Index of the first target value outside the loss's domain, or -1.

    BCE targets lie in [0, 1]; CE targets are non-negative and sum to more than 0.
    """
    if loss == BCE:
        for o in range(O):
            if y[o] < 0.0 or y[o] > 1.0:
                return o
    elif loss == CE:
        tot = 0.0
        for o in range(O):
            if y[o] < 0.0:
                return o
            tot += y[o]
        if not tot > 0.0:
            return 0
    return -1


@jit
def readout_backward(params, grad, off, H, O, h, dlogits, dh):
    """Backward through the readout.

    Shapes: params, grad (P,); h, dh (H,); dlogits (O,).
    Math: dW_o += dlogits h^T;  db_o += dlogits;  dh += W_o^T dlogits.
    Writes: grad (accumulated), dh (accumulated).
    """
    ob = off + O * H
    for o in range(O):
        d = dlogits[o]
        grad[ob + o] += d
        g_o = grad[off + o * H : off + (o + 1) * H]
        w_o = params[off + o * H : off + (o + 1) * H]
        for k in range(H):
            g_o[k] += d * h[k]
            dh[k] += w_o[k] * d
