"""The engine-neutral step: a model's state is bytes, and ``state, output = step(state, record)``.

A stream processor (Flink, Beam, a database trigger, a plain loop) keeps one opaque
value per key and calls a pure function on it; nothing here knows which engine does so.

Two shapes of state:

* **one model per key**: the state is a whole model (weights, optimizer moments,
  hidden state, ring buffer, counters), ``initial_state(**config)`` then
  ``state, output = step(state, record)``.
* **shared weights, one stream per key**: the weights (and optimizer, and statistics)
  are one shared value, each key owns one *row* (its hidden state, window start states,
  ring buffer and step count), ``shared, row, output = shared_step(shared, row, record)``
  with ``row = None`` for a key seen for the first time. This is the keyed engine's
  layout (DESIGN section 4) with the slab cut into one value per key.

A record is a pair ``(x, y)``: ``x`` of shape (input_size,), ``y`` of shape
(output_size,) or None (no target: the state still advances). The output is the
prediction for ``x`` made *before* learning from ``y`` (prequential), exactly
``model.predict(x)`` followed by ``model.learn(x, y)``.

State bytes are checkpoint bytes (``streamrnn.checkpoint``): the very bytes
``StreamRNN.save`` writes for the same model, so a state read out of a stream
processor loads with ``StreamRNN.load`` and a saved file can seed a state. A row is
a checkpoint of kind ``"StreamRNN.row"``. Loading never executes code; a value that is
truncated, corrupted or not ours raises ``CheckpointError`` (a ``ValueError``), and
every array is checked against the configuration before any kernel sees it.

Examples
--------
>>> from streamrnn import step
>>> s = step.initial_state(cell="gru", input_size=2, hidden_size=4, k1=2, seed=0)
>>> for t in range(4):
...     s, out = step.step(s, ([t, -t], [t / 10]))
>>> m = step.decode(s)
>>> m.steps, m.diagnostics()["updates"]
(4, 2)

Shared weights, one row per key:

>>> w = step.initial_shared(cell="gru", input_size=2, hidden_size=4, k1=2, seed=0)
>>> rows = {}
>>> for key, x, y in [("a", [1, 0], [0.1]), ("b", [0, 1], None), ("a", [1, 1], [0.2])]:
...     w, rows[key], out = step.shared_step(w, rows.get(key), (x, y))
>>> [step.row_steps(rows[k]) for k in ("a", "b")], step.decode(w).diagnostics()["steps"]
([2, 1], 3)
"""

import copy
import json

import numpy as np

from . import checkpoint
from .cells import aligned_zeros
from .checkpoint import CheckpointError
from .engine import StreamRNN
from .health import HealthMonitor
from .kernels import layout as L

KIND = StreamRNN._checkpoint_kind
ROW_KIND = KIND + ".row"
_TEMPLATES = {}  # config JSON -> a StreamRNN built from it


# ---------------------------------------------------------------------- bytes <-> model
def _dumps(model):
    """A model's complete state (everything ``learn`` reads or writes): its checkpoint bytes."""
    return checkpoint.dumps(KIND, model._config(), checkpoint.engine_arrays(model))


def _fresh(config):
    """A new ``StreamRNN(**config)`` with its own state arrays: a copy of one built (and
    validated) the first time this config was seen, since building runs the checks and
    the weight init again."""
    key = json.dumps(config, sort_keys=True)
    template = _TEMPLATES.get(key)
    if template is None:
        template = checkpoint.construct(StreamRNN, config, {}, "state")
        if len(_TEMPLATES) < 64:
            _TEMPLATES[key] = template
    model = copy.copy(template)  # new scratch arrays (__setstate__); state arrays still shared
    model._meta, model._fmeta = template._meta.copy(), template._fmeta.copy()  # restore_engine checks against these
    for name in ("_mem", "_slab", "_counts"):  # restore_engine fills these
        ref = getattr(template, name)
        setattr(model, name, aligned_zeros(ref.shape, ref.dtype))
    if model._health is not None:
        model._health = HealthMonitor()
    return model


def _loads(data):
    """The model whose state is ``data``; CheckpointError (a ValueError) if anything does not fit."""
    ck = checkpoint.loads(data, kind=KIND, what="state")
    return _fresh(ck.config)._restore(ck, "state")


def _dump_row(model):
    """Stream row 0 of ``model`` (state, start states, buffer, step count) as bytes."""
    config = {"dtype": model.dtype, "row_size": int(model._slab.shape[1])}
    return checkpoint.dumps(ROW_KIND, config, {"slab": model._slab[:1], "counts": model._counts[:1]})


def _read_row(data):
    """The ``(slab, counts)`` arrays of row bytes, with their shapes checked against each other."""
    ck = checkpoint.loads(data, kind=ROW_KIND, what="row")
    slab, counts = ck.arrays.get("slab"), ck.arrays.get("counts")
    if slab is None or counts is None or set(ck.arrays) != {"slab", "counts"}:
        raise CheckpointError("row: a row holds exactly the arrays 'slab' and 'counts'")
    if counts.dtype != np.int64 or counts.shape != (1, 1) or counts[0, 0] < 0:
        raise CheckpointError("row: malformed step count")
    if slab.ndim != 2 or slab.shape[0] != 1 or not np.all(np.isfinite(slab)):
        raise CheckpointError("row: malformed or non-finite stream state")
    return slab, counts


def _load_row(model, data):
    """Put a row from ``_dump_row`` (or a fresh zero row if ``data`` is None) into stream 0."""
    if data is None:
        slab = np.zeros_like(model._slab[:1])
        counts = np.zeros_like(model._counts[:1])
    else:
        slab, counts = _read_row(data)
        if slab.dtype != model._slab.dtype or slab.shape != model._slab[:1].shape:
            need = model._slab[:1]
            raise CheckpointError(
                f"row is {slab.dtype}{slab.shape}, the shared model needs {need.dtype}{need.shape}"
            )
    model._slab[:1] = slab
    model._counts[:1] = counts
    _forget_stream_caches(model)


def _forget_stream_caches(model):
    """Drop the predict cache and the recorded window: they belong to the previous row."""
    model._iwork[L.CACHE_VALID] = 0
    model._iwork[L.WIN_SLOT] = -1


def _parse(model, record):
    """Validated ``(x, y)`` arrays (y None: no target) of ``record``; raises before any change."""
    if not isinstance(record, (tuple, list)) or len(record) != 2:
        raise ValueError(f"record must be a pair (x, y) with y None for no target, got {record!r:.80}")
    x, y = record
    x = model._as_vector(x, "x", model.input_size)
    if y is not None:
        y = model._as_vector(y, "y", model.output_size)
    return x, y


def apply(model, record):
    """Predict ``record``'s x on stream 0 of ``model``, then learn ``record``; return the prediction.

    The in-memory form of ``step``, for callers that keep the model object between
    records (they own its consistency with the stored bytes).
    """
    x, y = _parse(model, record)
    out = model.predict(x)
    model.learn(x, y)
    return out


# ---------------------------------------------------------------------- public API
def initial_state(**config):
    """The state of a fresh ``StreamRNN(**config)``."""
    return _dumps(StreamRNN(**config))


def encode(model):
    """The state of ``model`` (a ``StreamRNN``), as ``step`` takes it."""
    if not isinstance(model, StreamRNN):
        raise TypeError(f"model must be a StreamRNN, got {type(model).__name__}")
    return _dumps(model)


def decode(state):
    """The ``StreamRNN`` whose state is ``state`` (a new object; the bytes stay as they are)."""
    return _loads(state)


def step(state, record):
    """``state, output = step(state, (x, y))``: predict x, then learn (x, y).

    A pure function of its arguments: the input bytes are not changed, equal inputs give
    equal outputs bit for bit, and a loop of ``step`` equals one model's loop of
    ``predict(x); learn(x, y)``. A rejected record raises ValueError.
    """
    model = _loads(state)
    out = apply(model, record)
    return _dumps(model), out


def initial_shared(**config):
    """The shared state (weights, optimizer, statistics) of a fresh ``StreamRNN(**config)``."""
    return _dumps(StreamRNN(**config))


def shared_step(shared, row, record):
    """``shared, row, output = shared_step(shared, row, (x, y))`` for one key's stream.

    ``shared`` holds the weights all keys learn; ``row`` is this key's stream (None for
    a new key). The stream runs on the shared weights exactly as one row of a keyed
    engine's slab: records of many keys applied in some order through ``shared_step``
    equal one model with one slab row per key fed in that same order. The returned
    ``shared`` carries no stream (its row is zero), so it does not depend on which key
    came last.
    """
    model = _loads(shared)
    _load_row(model, row)
    out = apply(model, record)
    row = _dump_row(model)
    model.reset_state()
    return _dumps(model), row, out


def row_steps(row):
    """Samples the stream ``row`` has consumed."""
    return int(_read_row(row)[1][0, 0])
