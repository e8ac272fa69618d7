"""PyTorch references for the parity tests: the chunked TBPTT loop and TBPTT(k1, k2).

Written the way a PyTorch user would write them; float64 throughout unless asked.
"""

import numpy as np
import torch

MODULES = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def make_torch(model, dtype=torch.float64):
    """An ``nn.RNN/GRU/LSTM`` and an ``nn.Linear`` holding ``model``'s weights."""
    rnn = MODULES[model.cell](model.input_size, model.hidden_size).to(dtype)
    lin = torch.nn.Linear(model.hidden_size, model.output_size).to(dtype)
    sd = model.state_dict()
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(sd[name].astype(np.float64)))
        lin.weight.copy_(torch.from_numpy(sd["readout.weight"].astype(np.float64)))
        lin.bias.copy_(torch.from_numpy(sd["readout.bias"].astype(np.float64)))
    return rnn, lin


def torch_state_dict(rnn, lin):
    """Weights as numpy arrays under streamrnn's names."""
    out = {name: p.detach().numpy().copy() for name, p in rnn.named_parameters()}
    out["readout.weight"] = lin.weight.detach().numpy().copy()
    out["readout.bias"] = lin.bias.detach().numpy().copy()
    return out


def zero_state(cell, hidden_size, dtype=torch.float64):
    h = torch.zeros(1, hidden_size, dtype=dtype)
    return (h, torch.zeros(1, hidden_size, dtype=dtype)) if cell == "lstm" else h


def detach(cell, h):
    return (h[0].detach(), h[1].detach()) if cell == "lstm" else h.detach()


def head(loss, logits):
    if loss == "mse":
        return logits
    if loss == "bce":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


def criterion(loss):
    return {
        "mse": torch.nn.MSELoss(),
        "bce": torch.nn.BCEWithLogitsLoss(),
        "ce": torch.nn.CrossEntropyLoss(),
    }[loss]


def make_optimizer(name, params, lr, **kw):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **kw)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **kw)
    return torch.optim.RMSprop(params, lr=lr, **kw)


def chunked_loop(cell, rnn, lin, X, Y, K, loss="mse", optimizer="sgd", lr=0.01, clip=None, **opt_kw):
    """DESIGN section 2's loop: per chunk of K, forward from the detached state, backward, step.

    Returns the predictions of every step (made with the weights of their chunk).
    """
    params = list(rnn.parameters()) + list(lin.parameters())
    opt = make_optimizer(optimizer, params, lr, **opt_kw)
    crit = criterion(loss)
    h = zero_state(cell, rnn.hidden_size)
    X = torch.from_numpy(X)
    Y = torch.from_numpy(Y)
    preds = []
    for s in range(0, X.shape[0] - X.shape[0] % K, K):
        opt.zero_grad()
        out, h = rnn(X[s : s + K], h)
        logits = lin(out)
        preds.append(head(loss, logits).detach().numpy())
        crit(logits, Y[s : s + K]).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        h = detach(cell, h)
    return np.concatenate(preds)


def tbptt_loop(cell, rnn, lin, X, Y, mask, k1, k2, loss="mse", optimizer="sgd", lr=0.01, clip=None, **opt_kw):
    """TBPTT(k1, k2) as DESIGN section 2 defines it, one sample at a time.

    The carried state is computed as samples arrive (no graph); every k1 steps the last
    min(k2, t) steps are re-run from the carried state before them, and the mean loss over
    the target steps among the last min(k1, .) is backpropagated.
    """
    params = list(rnn.parameters()) + list(lin.parameters())
    opt = make_optimizer(optimizer, params, lr, **opt_kw)
    crit = criterion(loss)
    X = torch.from_numpy(X)
    Y = torch.from_numpy(Y)
    states = [zero_state(cell, rnn.hidden_size)]
    preds = []
    for t in range(X.shape[0]):
        with torch.no_grad():
            out, h = rnn(X[t : t + 1], states[-1])
            preds.append(head(loss, lin(out[0])).numpy())
        states.append(h)
        count = t + 1
        if count % k1 == 0:
            T = min(k2, count)
            start = count - T
            n_loss = min(k1, T)
            sel = [i for i in range(count - n_loss, count) if mask[i]]
            if not sel:
                continue
            opt.zero_grad()
            out, _ = rnn(X[start:count], states[start])
            logits = lin(out)
            idx = torch.tensor([i - start for i in sel])
            crit(logits[idx], Y[sel]).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
    return np.stack(preds)


def window_grads(cell, rnn, lin, xs, ys, mask, loss):
    """Autograd gradient of a window's mean loss over its target steps, from the zero state."""
    for p in list(rnn.parameters()) + list(lin.parameters()):
        p.grad = None
    out, _ = rnn(torch.from_numpy(xs), zero_state(cell, rnn.hidden_size))
    logits = lin(out)
    idx = torch.tensor(np.flatnonzero(mask))
    value = criterion(loss)(logits[idx], torch.from_numpy(ys)[idx])
    value.backward()
    grads = {name: p.grad.numpy().copy() for name, p in rnn.named_parameters()}
    grads["readout.weight"] = lin.weight.grad.numpy().copy()
    grads["readout.bias"] = lin.bias.grad.numpy().copy()
    return grads, float(value.detach())
