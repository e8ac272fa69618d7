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

State bytes are an ``.npz`` archive (loaded with ``allow_pickle=False``, so loading never
executes code) holding the model's arrays and a JSON header with the format, version
and constructor arguments. A value that is truncated, corrupted or not ours raises
``ValueError``; every offset and size in it is checked against the configuration before
any kernel sees it.

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
import io
import json
import math
import struct
import zipfile
import zlib

import numpy as np

from .engine import StreamRNN
from .kernels import layout as L

FORMAT = "streamrnn.state"
ROW_FORMAT = "streamrnn.row"
VERSION = 1

ARRAYS = ("_meta", "_fmeta", "_mem", "_slab", "_counts")
ROW_ARRAYS = ("_slab", "_counts")
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the zip epoch, for every member
_NPY_HEADERS = {}  # (dtype, shape) -> .npy header bytes, for writing
_NPY_READ = {}  # .npy header bytes -> (dtype, shape), for reading
_TEMPLATES = {}  # config JSON -> a StreamRNN built from it

# meta entries that change as the model learns; every other entry is fixed by the config
_COUNTERS = (L.OPT_STEP, L.N_UPDATES, L.N_SKIPPED, L.N_CLIPPED, L.N_STEPS, L.HIST_POS, L.HIST_COUNT, L.N_NO_TARGET)
# fmeta entries fixed by the config (hyper-parameters and the dtype's largest value)
_FIXED_F = (L.LR, L.MOMENTUM, L.DAMPENING, L.WEIGHT_DECAY, L.BETA1, L.BETA2, L.EPS, L.ALPHA, L.CLIP, L.EMA, L.FMAX)


# ---------------------------------------------------------------------- bytes <-> model
def _npy(arr):
    """``arr`` in ``.npy`` format (version 1.0, as ``np.save`` writes it)."""
    arr = np.ascontiguousarray(arr)
    key = (arr.dtype.str, arr.shape)
    head = _NPY_HEADERS.get(key)
    if head is None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
        head = _NPY_HEADERS[key] = buf.getvalue()
    return head + arr.tobytes()


def _pack_zip64(members):
    """The same archive through ``zipfile`` with zip64 records (members of 4 GiB and more)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            with zf.open(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as f:
                f.write(data)
    return buf.getvalue()


def _pack(header, arrays):
    """An ``.npz`` archive (a zip of ``.npy`` members, stored, as ``np.savez`` writes) with
    fixed timestamps, so equal states are equal bytes. Written directly: zipfile's
    per-member machinery costs more than the data for small models."""
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    members = [(name, _npy(arr)) for name, arr in (("header", blob), *arrays.items())]
    if sum(len(data) + 100 for _, data in members) >= 0xFFFFFFFF:
        return _pack_zip64(members)
    out, central = [], []
    offset = 0
    for name, data in members:
        fname = (name + ".npy").encode()
        crc = zlib.crc32(data)
        size = len(data)
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, _DOS_DATE, crc, size, size, len(fname), 0)
        central.append(
            struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, _DOS_DATE, crc, len(data), len(data),
                        len(fname), 0, 0, 0, 0, 0o600 << 16, offset) + fname
        )
        out += [local, fname, data]
        offset += len(local) + len(fname) + len(data)
    cd = b"".join(central)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), len(cd), offset, 0)
    return b"".join(out) + cd + end


def _npy_array(body):
    """The array in ``.npy`` bytes ``body``, or None if it is not a plain C-order array.

    A header seen before is looked up instead of parsed again (numpy parses it with
    ``ast.literal_eval``, the slow part of loading a small array)."""
    if body[:6] != b"\x93NUMPY" or body[6:7] != b"\x01" or len(body) < 10:
        return None
    head = body[: 10 + struct.unpack_from("<H", body, 8)[0]]
    meta = _NPY_READ.get(head)
    if meta is None:
        try:
            arr = np.lib.format.read_array(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError, SyntaxError):
            return None
        if b"'fortran_order': False" in head and len(_NPY_READ) < 1024:
            _NPY_READ[head] = (arr.dtype, arr.shape)
        return arr
    dtype, shape = meta
    count = math.prod(shape)
    if len(body) - len(head) != count * dtype.itemsize:
        return None
    return np.frombuffer(body, dtype=dtype, count=count, offset=len(head)).reshape(shape).copy()


def _read_fast(data):
    """``{name: array}`` of an archive laid out as ``_pack`` writes it (every member
    stored, sizes in the local headers, CRCs checked, the central directory right after
    the last member), or None for anything else (numpy's reader then decides)."""
    arrays = {}
    pos = 0
    while data[pos : pos + 4] == b"PK\x03\x04" and pos + 30 <= len(data):
        _, _, flags, method, _, _, crc, csize, usize, nlen, xlen = struct.unpack_from("<4s5H3L2H", data, pos)
        start = pos + 30 + nlen + xlen
        body = data[start : start + csize]
        name = data[pos + 30 : pos + 30 + nlen]
        if flags or method or csize != usize or len(body) != csize or not name.endswith(b".npy"):
            return None
        if zlib.crc32(body) != crc:
            return None
        arr = _npy_array(body)
        if arr is None:
            return None
        arrays[name[:-4].decode("utf-8", "replace")] = arr
        pos = start + csize
    end = len(data) - 22
    if end < pos or data[end : end + 4] != b"PK\x05\x06" or data[pos : pos + 4] != b"PK\x01\x02":
        return None
    _, _, _, n_here, n_total, _, cd_offset, comment = struct.unpack_from("<4s4H2LH", data, end)
    if n_here != len(arrays) or n_total != len(arrays) or cd_offset != pos or comment:
        return None
    return arrays


def _unpack(data, names, fmt, what):
    """The header dict and the named arrays of an archive in format ``fmt``, or ValueError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(b"PK\x03\x04"):
        raise ValueError(f"{what} is truncated, corrupted or not a streamrnn state (no archive header)")
    try:
        members = _read_fast(data)
        if members is None:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                members = {n: z[n] for n in z.files}
        header = json.loads(members["header"].tobytes().decode()) if "header" in members else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is truncated, corrupted or not a streamrnn state ({exc})") from None
    if isinstance(header, dict):
        _check_header(header, fmt, what)
    missing = sorted({"header", *names} - set(members))
    if missing:
        raise ValueError(f"{what} is not a streamrnn state: missing {missing}")
    if not isinstance(header, dict):
        raise ValueError(f"{what} has a malformed header")
    return header, {n: members[n] for n in names}


class _FormatError(ValueError):
    """A well-formed archive of another format or version."""


def _check_header(header, fmt, what):
    if header.get("format") != fmt:
        raise _FormatError(f"{what} has format {header.get('format')!r}, expected {fmt!r}")
    if header.get("version") != VERSION:
        raise _FormatError(f"{what} has format version {header.get('version')!r}; this library reads {VERSION}")


def _dumps(model):
    """A model's complete state (everything ``learn`` reads or writes) as bytes."""
    header = {"format": FORMAT, "version": VERSION, "config": model._config()}
    return _pack(header, {n: getattr(model, n) for n in ARRAYS})


def _fresh(config):
    """A new ``StreamRNN(**config)``: a copy of one built (and validated) the first time
    this config was seen, since building runs the checks and the weight init again. The
    caller replaces every state array of the copy."""
    key = json.dumps(config, sort_keys=True)
    template = _TEMPLATES.get(key)
    if template is None:
        try:
            template = StreamRNN(**config)
        except TypeError as exc:
            raise ValueError(f"state has an unknown config: {exc}") from None
        if len(_TEMPLATES) < 64:
            _TEMPLATES[key] = template
    return copy.copy(template)  # new scratch arrays (__setstate__); state arrays shared until replaced


def _loads(data):
    """The model whose ``_dumps`` is ``data``; ValueError if anything does not fit."""
    header, arrays = _unpack(data, ARRAYS, FORMAT, "state")
    config = header.get("config")
    if not isinstance(config, dict):
        raise ValueError("state has no config in its header")
    model = _fresh(config)
    for name in ARRAYS:
        ref, arr = getattr(model, name), arrays[name]
        if arr.dtype != ref.dtype or arr.shape != ref.shape:
            raise ValueError(
                f"state array {name} is {arr.dtype}{arr.shape}, the config needs {ref.dtype}{ref.shape}"
            )
    meta, fmeta = arrays["_meta"], arrays["_fmeta"]
    fixed = np.ones(L.META_SIZE, dtype=bool)
    fixed[list(_COUNTERS)] = False
    if not np.array_equal(meta[fixed], model._meta[fixed]):
        bad = int(np.flatnonzero(fixed & (meta != model._meta))[0])
        raise ValueError(f"state _meta[{bad}] = {meta[bad]} does not match its config ({model._meta[bad]})")
    if np.any(meta[list(_COUNTERS)] < 0) or np.any(arrays["_counts"] < 0):
        raise ValueError("state has negative counters")
    hist = int(meta[L.HIST])
    if (hist and meta[L.HIST_POS] >= hist) or meta[L.HIST_COUNT] > hist:
        raise ValueError("state has history counters out of range")
    fixed_f = list(_FIXED_F)
    if fmeta[fixed_f].tobytes() != model._fmeta[fixed_f].tobytes():
        raise ValueError("state hyper-parameters (_fmeta) do not match its config")
    for name in ARRAYS:
        setattr(model, name, np.ascontiguousarray(arrays[name]))
    return model


def _dump_row(model):
    """Stream row 0 of ``model`` (state, start states, buffer, step count) as bytes."""
    header = {"format": ROW_FORMAT, "version": VERSION, "row_size": int(model._slab.shape[1]), "dtype": model.dtype}
    return _pack(header, {"_slab": model._slab[:1], "_counts": model._counts[:1]})


def _load_row(model, data):
    """Put a row from ``_dump_row`` (or a fresh zero row if ``data`` is None) into stream 0."""
    if data is None:
        slab = np.zeros_like(model._slab[:1])
        counts = np.zeros_like(model._counts[:1])
    else:
        header, arrays = _unpack(data, ROW_ARRAYS, ROW_FORMAT, "row")
        slab, counts = arrays["_slab"], arrays["_counts"]
        if slab.dtype != model._slab.dtype or slab.shape != model._slab[:1].shape:
            need = model._slab[:1]
            raise ValueError(f"row is {slab.dtype}{slab.shape}, the shared model needs {need.dtype}{need.shape}")
        if counts.dtype != np.int64 or counts.shape != (1, 1) or counts[0, 0] < 0:
            raise ValueError("row has a malformed step count")
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
    header, arrays = _unpack(row, ROW_ARRAYS, ROW_FORMAT, "row")
    return int(arrays["_counts"][0, 0])
