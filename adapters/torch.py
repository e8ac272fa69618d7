"""PyTorch weight interop: a ``StreamRNN`` from ``nn.RNN/GRU/LSTM`` + ``nn.Linear``, and back.

Also ``loop_rates``: the PyTorch training loops that ``streamrnn bench`` measures.

The engine uses PyTorch's parameter names, shapes and gate orders (DESIGN section 2), so
the conversion copies six tensors: ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0`` of the recurrent module and ``weight``, ``bias`` of the readout (called
``readout.weight``, ``readout.bias`` in ``StreamRNN.state_dict()``).

Supported modules: single-layer, unidirectional ``nn.RNN`` (tanh), ``nn.GRU`` and
``nn.LSTM`` with biases and without projections, either ``batch_first``, plus an
``nn.Linear(hidden_size, output_size)`` readout with a bias. Anything else is refused
with a ValueError naming the attribute. torch is imported inside the functions, so
importing this module does not import torch.

Examples
--------
>>> import numpy as np
>>> import torch
>>> from streamrnn.adapters.torch import from_torch, to_torch
>>> _ = torch.manual_seed(0)
>>> rnn = torch.nn.GRU(3, 8, batch_first=True, dtype=torch.float64)
>>> readout = torch.nn.Linear(8, 1, dtype=torch.float64)
>>> m = from_torch(rnn, readout, k1=4, optimizer="adam", lr=0.01)
>>> m.cell, m.input_size, m.hidden_size, m.output_size, m.dtype
('gru', 3, 8, 1, 'float64')
>>> X = np.random.default_rng(0).normal(size=(50, 3))
>>> with torch.no_grad():
...     out, _ = rnn(torch.from_numpy(X)[None])
...     expected = readout(out)[0].numpy()
>>> bool(np.max(np.abs(m.run(X) - expected)) < 1e-12)
True
>>> rnn2, readout2 = to_torch(m, batch_first=True)
>>> all(torch.equal(a, b) for a, b in zip(rnn.parameters(), rnn2.parameters()))
True
"""

import time

from streamrnn.engine import StreamRNN

_MODES = {"RNN_TANH": "elman", "GRU": "gru", "LSTM": "lstm"}
_DTYPES = ("float64", "float32")
_RNN_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is optional
        raise ImportError("streamrnn.adapters.torch needs PyTorch: pip install torch") from exc
    return torch


def _check_modules(torch, rnn, readout):
    """The cell name of ``rnn``; raise for anything the engine cannot represent."""
    if not isinstance(rnn, torch.nn.RNNBase):
        raise TypeError(f"rnn must be a torch.nn.RNN, GRU or LSTM module, got {type(rnn).__name__}")
    if rnn.mode == "RNN_RELU":
        raise ValueError("rnn.nonlinearity='relu' is not supported: nn.RNN must use tanh (cell 'elman')")
    if rnn.mode not in _MODES:
        raise ValueError(f"rnn.mode={rnn.mode!r} is not supported: use nn.RNN (tanh), nn.GRU or nn.LSTM")
    if rnn.num_layers != 1:
        raise ValueError(f"rnn.num_layers={rnn.num_layers} is not supported: only single-layer modules")
    if rnn.bidirectional:
        raise ValueError("rnn.bidirectional=True is not supported: only unidirectional modules")
    if not rnn.bias:
        raise ValueError("rnn.bias=False is not supported: the engine needs bias_ih_l0 and bias_hh_l0")
    if getattr(rnn, "proj_size", 0):
        raise ValueError(f"rnn.proj_size={rnn.proj_size} is not supported: LSTM projections are not")
    if not isinstance(readout, torch.nn.Linear):
        raise TypeError(f"readout must be a torch.nn.Linear, got {type(readout).__name__}")
    if readout.in_features != rnn.hidden_size:
        raise ValueError(
            f"readout.in_features={readout.in_features} must equal rnn.hidden_size={rnn.hidden_size}"
        )
    if readout.bias is None:
        raise ValueError("readout.bias is None: the readout must be nn.Linear(..., bias=True)")
    return _MODES[rnn.mode]


def _dtype_of(rnn, readout):
    found = {str(p.dtype).replace("torch.", "") for p in (*rnn.parameters(), *readout.parameters())}
    if len(found) != 1:
        raise ValueError(f"rnn and readout have different dtypes {sorted(found)}: pass dtype= to choose one")
    (dtype,) = found
    if dtype not in _DTYPES:
        raise ValueError(f"the modules have dtype {dtype}: pass dtype='float32' or 'float64' to convert")
    return dtype


def from_torch(rnn, readout, **config):
    """A ``StreamRNN`` holding the weights of ``rnn`` and ``readout``.

    ``config`` holds the other ``StreamRNN`` arguments (``k1``, ``loss``, ``optimizer``,
    ``lr``...). The cell, sizes and dtype come from the modules; ``dtype`` may be given
    to convert, and ``cell``/``input_size``/``hidden_size``/``output_size`` may be given
    only if they agree. The model starts from a zero state, as the modules do without
    ``h0``, and with fresh optimizer state.
    """
    torch = _torch()
    cell = _check_modules(torch, rnn, readout)
    derived = {
        "cell": cell,
        "input_size": rnn.input_size,
        "hidden_size": rnn.hidden_size,
        "output_size": readout.out_features,
    }
    for name, value in derived.items():
        if name in config and config[name] != value:
            raise ValueError(f"{name}={config[name]!r} disagrees with the modules, which have {name}={value!r}")
    config = {**config, **derived}
    if "dtype" not in config:
        config["dtype"] = _dtype_of(rnn, readout)
    model = StreamRNN(**config)
    weights = {name: getattr(rnn, name) for name in _RNN_NAMES}
    weights["readout.weight"] = readout.weight
    weights["readout.bias"] = readout.bias
    model.load_state_dict({name: t.detach().cpu().numpy() for name, t in weights.items()})
    return model


def to_torch(model, batch_first=False):
    """``(rnn, readout)``: new PyTorch modules holding ``model``'s weights.

    ``rnn`` is an ``nn.RNN`` (tanh), ``nn.GRU`` or ``nn.LSTM`` with ``batch_first`` as
    given and the model's dtype; ``readout`` an ``nn.Linear``. Apply the model's head
    yourself (identity for ``loss="mse"``, sigmoid for ``"bce"``, softmax for ``"ce"``).
    The modules are built without drawing from torch's random generator. To continue
    from the model's carried state, pass ``h0`` built from ``model.hidden`` (shape
    ``(1, H)``, or ``(1, 1, H)`` for a batch of one; ``(h0, c0)`` for an LSTM).
    """
    torch = _torch()
    module = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[model.cell]
    dtype = {"float64": torch.float64, "float32": torch.float32}[model.dtype]
    rnn = module(model.input_size, model.hidden_size, batch_first=batch_first, device="meta", dtype=dtype)
    readout = torch.nn.Linear(model.hidden_size, model.output_size, device="meta", dtype=dtype)
    rnn = rnn.to_empty(device="cpu")
    readout = readout.to_empty(device="cpu")
    named = model.named_parameters()
    targets = {name: getattr(rnn, name) for name in _RNN_NAMES}
    targets["readout.weight"] = readout.weight
    targets["readout.bias"] = readout.bias
    with torch.no_grad():
        for name, param in targets.items():
            param.copy_(torch.from_numpy(named[name].copy()))
    return rnn, readout


def loop_rates(cell, X, Y, hidden_size, k, lr=0.01, seed=0):
    """Samples/s of the two PyTorch loops a user would write to train on ``X``, ``Y`` by TBPTT(k).

    Both run ``nn.RNN/GRU/LSTM(D, hidden_size)`` + ``nn.Linear(hidden_size, O)`` in
    the dtype of ``X`` with SGD(lr) and ``MSELoss``, on one thread (this calls
    ``torch.set_num_threads(1)``), from ``torch.manual_seed(seed)``:

    * ``"per-sample"``: one module call per sample, its prediction read at once
      (``.item()``), and every ``k`` samples ``loss.backward(); opt.step(); h =
      h.detach()``: the loop for a stream, where each prediction is needed before the
      next sample arrives.
    * ``"chunked"``: one module call per chunk of ``k`` samples (batch of one), then
      the same update: it needs the whole chunk before predicting, so it is not a
      streaming loop; it is the fastest way to run TBPTT(k, k) in PyTorch.

    ``X`` is (T, D), ``Y`` (T, O), numpy arrays of one dtype (float64 or float32). Returns
    ``{"per-sample": samples/s, "chunked": samples/s}``, in CPU time of this process.
    ``streamrnn bench`` sets these against the engine (``streamrnn.bench``).
    """
    torch = _torch()
    torch.set_num_threads(1)
    module = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    dtype = {"float64": torch.float64, "float32": torch.float32}[X.dtype.name]
    rates = {}
    for mode in ("per-sample", "chunked"):
        torch.manual_seed(seed)
        rnn = module(X.shape[1], hidden_size, dtype=dtype)
        readout = torch.nn.Linear(hidden_size, Y.shape[1], dtype=dtype)
        opt = torch.optim.SGD(list(rnn.parameters()) + list(readout.parameters()), lr=lr)
        crit = torch.nn.MSELoss()
        xt, yt = torch.from_numpy(X), torch.from_numpy(Y)
        h = None
        start = time.process_time()
        if mode == "per-sample":
            outs = []
            for i in range(len(xt)):
                out, h = rnn(xt[i : i + 1], h)
                outs.append(readout(out))
                outs[-1].item()  # the prediction, available now
                if len(outs) == k:
                    opt.zero_grad()
                    crit(torch.cat(outs), yt[i + 1 - k : i + 1]).backward()
                    opt.step()
                    h = tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()
                    outs = []
        else:
            for s in range(0, len(xt) - k + 1, k):
                opt.zero_grad()
                out, h = rnn(xt[s : s + k], h)
                crit(readout(out), yt[s : s + k]).backward()
                opt.step()
                h = tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()
        rates[mode] = len(xt) / (time.process_time() - start)
    return rates


__all__ = ["from_torch", "loop_rates", "to_torch"]
