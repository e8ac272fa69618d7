"""Plain numpy twins of the kernels, written for clarity, not speed.

Dimension letters: D input, H hidden, O outputs, T window length. Weights are a dict of
arrays under PyTorch's names (see ``streamrnn.cells``).
"""

import numpy as np

from ..cells import param_slices


def unflatten(cell, input_size, hidden_size, output_size, flat):
    """Split a flat parameter vector into ``{torch name: array}`` (views)."""
    return {
        name: flat[sl].reshape(shape)
        for name, (sl, shape) in param_slices(cell, input_size, hidden_size, output_size).items()
    }


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def elman_forward_step_ref(w, x, h):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh)."""
    return np.tanh(w["weight_ih_l0"] @ x + w["bias_ih_l0"] + w["weight_hh_l0"] @ h + w["bias_hh_l0"])


def gru_forward_step_ref(w, x, h):
    """PyTorch's GRU step, gates r | z | n."""
    gi = w["weight_ih_l0"] @ x + w["bias_ih_l0"]
    gh = w["weight_hh_l0"] @ h + w["bias_hh_l0"]
    H = h.shape[0]
    r = _sigmoid(gi[:H] + gh[:H])
    z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
    n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
    return (1.0 - z) * n + z * h


def lstm_forward_step_ref(w, x, s):
    """PyTorch's LSTM step, gates i | f | g | o; the state is h | c."""
    H = s.shape[0] // 2
    h, c = s[:H], s[H:]
    a = w["weight_ih_l0"] @ x + w["bias_ih_l0"] + w["weight_hh_l0"] @ h + w["bias_hh_l0"]
    i, f, g, o = _sigmoid(a[:H]), _sigmoid(a[H : 2 * H]), np.tanh(a[2 * H : 3 * H]), _sigmoid(a[3 * H :])
    c2 = f * c + i * g
    return np.concatenate([o * np.tanh(c2), c2])


STEP_REF = {"elman": elman_forward_step_ref, "gru": gru_forward_step_ref, "lstm": lstm_forward_step_ref}


def head_output_ref(loss, logits):
    """Identity, sigmoid or softmax."""
    if loss == "mse":
        return logits
    if loss == "bce":
        return _sigmoid(logits)
    e = np.exp(logits - logits.max())
    return e / e.sum()


def step_loss_ref(loss, logits, y):
    """One step's loss as PyTorch's MSELoss / BCEWithLogitsLoss / CrossEntropyLoss (mean over outputs)."""
    if loss == "mse":
        return np.mean((logits - y) ** 2)
    if loss == "bce":
        p = _sigmoid(logits)
        return np.mean(-(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))
    lse = logits.max() + np.log(np.sum(np.exp(logits - logits.max())))
    return -np.sum(y * (logits - lse))


def window_loss_ref(cell, loss, w, xs, ys, mask, s0, n_loss=None):
    """Loss of a window run from state ``s0``: mean over the target steps among the last ``n_loss``.

    Shapes: xs (T, D); ys (T, O); mask (T,) bool; s0 (S,).
    """
    T = xs.shape[0]
    n_loss = T if n_loss is None else n_loss
    step = STEP_REF[cell]
    H = w["weight_hh_l0"].shape[1]
    s = s0
    losses = []
    for t in range(T):
        s = step(w, xs[t], s)
        if t >= T - n_loss and mask[t]:
            logits = w["readout.weight"] @ s[:H] + w["readout.bias"]
            losses.append(step_loss_ref(loss, logits, ys[t]))
    return float(np.mean(losses))


def predict_ref(cell, loss, w, x, s):
    """(output, new state) of one step."""
    H = w["weight_hh_l0"].shape[1]
    s2 = STEP_REF[cell](w, x, s)
    logits = w["readout.weight"] @ s2[:H] + w["readout.bias"]
    return head_output_ref(loss, logits), s2


def central_difference(f, theta, eps=1e-6):
    """Gradient of scalar ``f`` at ``theta`` by central differences, one coordinate at a time."""
    theta = np.array(theta, dtype=np.float64)
    g = np.zeros_like(theta)
    for i in range(theta.size):
        old = theta[i]
        theta[i] = old + eps
        fp = f(theta)
        theta[i] = old - eps
        fm = f(theta)
        theta[i] = old
        g[i] = (fp - fm) / (2.0 * eps)
    return g
