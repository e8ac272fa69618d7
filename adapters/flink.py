"""Apache Flink (PyFlink): one model per key, or shared weights with one stream per key,
kept in Flink's managed keyed state, so a failed job resumes with nothing lost.

Two modes, both built on the engine-neutral step (``streamrnn.step``):

* ``shared=False``: **one model per key**. Flink's key is the record's key; its state is
  that key's whole model.
* ``shared=True``: **shared weights per group, one stream per key**. A record's key
  is hashed to one of ``groups`` group ids (``group_of``), and Flink's key is the group:
  its state is the shared model (weights, optimizer, statistics) plus one row per key
  (hidden state, window buffer, step count) in a ``MapState``. The weights must live in
  keyed state: PyFlink offers no operator state to a Python function other than
  broadcast state, which the keyed side may only read, so a "per subtask" model is
  a per *group* model, and Flink moves groups (with their state) between subtasks on
  rescaling. Use ``groups`` >= the parallelism (Flink hashes group ids to subtasks).

``predict(stream, config, ...)`` keys a stream and returns the predictions;
``process_function`` gives the ``KeyedProcessFunction`` itself. Run it in thread mode
(``python.execution-mode: thread``): the Python code then runs inside the JVM. All
Python functions of one TaskManager share one interpreter, so one GIL: scale out with
more TaskManagers (processes), not more slots per TaskManager.

Every record yields ``(key, seq, prediction)``: the prediction for ``x`` made before
learning ``(x, y)`` (prequential) and ``seq``, how many records of that key came before
it. ``(key, seq)`` names an output uniquely, and the same input always gives the same
output bit for bit, so a replay after a failure re-emits identical values: an
exactly-once sink (Flink's ``FileSink``, Kafka in exactly-once mode) writes each output
once, and an at-least-once sink can be de-duplicated on ``(key, seq)``.

What is guaranteed: each key's records are applied once each, in the order Flink
delivers them (a key's records keep their order along one path from a source split),
so one model per key equals ``step`` looped over that key's records. In shared mode
a group's result also depends on how its keys interleave: it equals ``shared_step``
looped over the group's records in arrival order, which is deterministic when that
order is (one source split, e.g. one file, at any parallelism), and still exactly-once
otherwise.

What Flink stores, per Flink key
--------------------------------
``model`` (``ValueState``, a string): base64 of the step state (``streamrnn.step``) as
of the last compaction; ``log`` (``ListState``): the records applied since, in order
(each as its exact input values); in shared mode ``rows`` (``MapState``: key -> base64
row bytes). The current model is always ``model`` followed by a replay of ``log``.
Every ``compact_every`` records the log is folded into ``model`` (1 writes the model
every record).

The function keeps decoded models in memory (at most ``cache_size`` Flink keys per
subtask), so a record costs one ``log`` append rather than a decode and an encode of
the whole model. This never changes a result: the cache is emptied in ``open()``, and
Flink restores keyed state only when it initialises an operator, before ``open()``;
while it runs, only this function writes its state, and it changes a cached model and
the state in the same call (a call that fails drops its entry). So a cached model always
equals ``model`` replayed through ``log``, the value a fresh start would compute.

Example
-------
Without PyFlink installed, the state logic runs on in-memory stand-ins of Flink's
state (as the tests do):

>>> from streamrnn.adapters.flink import KeyedModels, MemoryState
>>> logic = KeyedModels({"cell": "gru", "input_size": 1, "hidden_size": 4, "k1": 2}, compact_every=3)
>>> state = MemoryState()
>>> logic.open(state)
>>> for key, record in [("a", ([0.5], [1.0])), ("b", ([1.0], None)), ("a", ([0.2], [0.0]))]:
...     state.set_key(key)
...     seq, prediction = logic.process(key, record)
...     print(key, seq, prediction.shape)
a 0 (1,)
b 0 (1,)
a 1 (1,)
>>> state.set_key("a"); len(state.log.get())
2
"""

import base64
import binascii
import collections
import zlib

import numpy as np

from streamrnn import step as _step

FINAL_STATES = "streamrnn-final-states"
REJECTED = "streamrnn-rejected"
_MAX_TIMESTAMP = 2**63 - 1  # Long.MAX_VALUE: fires when a bounded input ends


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text, what):
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise ValueError(f"{what} in Flink state is not base64 ({exc})") from None


def group_of(key, groups):
    """The group (0 .. groups-1) of ``key`` in shared mode: crc32 of its UTF-8, stable
    across processes (Python's ``hash`` of a string is not).

    >>> [group_of(k, 4) for k in ("sensor-1", "sensor-2", "sensor-3")]
    [3, 1, 3]
    """
    return zlib.crc32(str(key).encode("utf-8")) % groups


class _Codec:
    """Exact text form of a validated record (model dtype values) for the replay log."""

    def __init__(self, model):
        self.dtype = model._np_dtype
        self.d = model.input_size
        self.o = model.output_size

    def encode(self, x, y):
        if y is None:
            return "0" + _b64(x.tobytes())
        return "1" + _b64(x.tobytes() + y.tobytes())

    def decode(self, text):
        flag, raw = text[:1], _unb64(text[1:], "a log entry")
        vals = np.frombuffer(raw, dtype=self.dtype)
        n = self.d + (self.o if flag == "1" else 0)
        if flag not in ("0", "1") or vals.size != n:
            raise ValueError("a log entry in Flink state is malformed")
        return vals[: self.d].copy(), (vals[self.d :].copy() if flag == "1" else None)


class _Entry:
    """A decoded model in the cache and the number of records in its stored log."""

    __slots__ = ("model", "n_log", "rows", "dirty")

    def __init__(self, model, n_log):
        self.model = model
        self.n_log = n_log
        self.rows = {}  # shared mode: key -> (slab row, count) of keys touched since loading
        self.dirty = set()  # shared mode: keys whose row differs from the stored one


class _Models:
    """What both modes share: configuration, the cache, and the record checks."""

    def __init__(self, config, compact_every=64, cache_size=1024):
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict of StreamRNN arguments, got {type(config).__name__}")
        for name, value in (("compact_every", compact_every), ("cache_size", cache_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.config = dict(config)
        self.compact_every = compact_every
        self.cache_size = cache_size
        self._initial = _step.initial_state(**self.config)  # validates the config now
        self._cache = None

    def open(self, state):
        """Bind the state handles (``state.model``, ``state.log``, ``state.rows``) and
        empty the cache: called whenever Flink (re)initialises the operator."""
        self.state = state
        self._cache = collections.OrderedDict()
        self._codec = _Codec(_step.decode(self._initial))

    def _remember(self, fkey, entry):
        self._cache[fkey] = entry
        self._cache.move_to_end(fkey)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _stored_model(self):
        text = self.state.model.value()
        return _step.decode(self._initial if text is None else _unb64(text, "a model"))

    def _check(self, model, record):
        """Validated (x, y) in the model dtype; ValueError (nothing changes) if not finite."""
        x, y = _step._parse(model, record)
        for name, v in (("x", x), ("y", y)):
            if v is not None and not np.all(np.isfinite(v)):
                raise ValueError(f"{name} has non-finite values {v.tolist()}; the record was rejected")
        return x, y


class KeyedModels(_Models):
    """One model per key: the logic of the per-key ``KeyedProcessFunction``, on
    Flink-like state handles (``value/update`` and ``get/add/clear``) scoped to the
    current key.
    """

    def _entry(self, key):
        entry = self._cache.get(key)
        if entry is not None:
            self._cache.move_to_end(key)
            return entry
        model = self._stored_model()
        n = 0
        for text in self.state.log.get() or ():
            _step.apply(model, self._codec.decode(text))
            n += 1
        entry = _Entry(model, n)
        self._remember(key, entry)
        return entry

    def process(self, key, record):
        """Predict then learn ``record`` for ``key`` (the current Flink key); return ``(seq, prediction)``.

        A bad record raises ValueError and changes nothing.
        """
        fkey = self.state.current_key()
        if str(key) != str(fkey):
            raise ValueError(f"record key {key!r} differs from the stream's key {fkey!r}: key the stream by record key")
        entry = self._entry(fkey)
        model = entry.model
        x, y = self._check(model, record)
        seq = model.steps
        try:
            out = _step.apply(model, (x, y))
            if self.compact_every == 1:
                self.state.model.update(_b64(_step.encode(model)))
            elif entry.n_log + 1 >= self.compact_every:
                self.state.model.update(_b64(_step.encode(model)))
                self.state.log.clear()
                entry.n_log = 0
            else:
                self.state.log.add(self._codec.encode(x, y))
                entry.n_log += 1
        except BaseException:
            self._cache.pop(fkey, None)
            raise
        return seq, out

    def final(self, key):
        """``[("model", key, base64 state)]``: the key's current model."""
        return [("model", key, _b64(_step.encode(self._entry(key).model)))]


class SharedModels(_Models):
    """Shared weights per group, one stream row per key: the logic of the shared-mode
    ``KeyedProcessFunction`` (Flink's key is the group; ``state.rows`` maps keys to rows).
    """

    def _entry(self, group):
        entry = self._cache.get(group)
        if entry is not None:
            self._cache.move_to_end(group)
            return entry
        entry = _Entry(self._stored_model(), 0)
        for text in self.state.log.get() or ():
            key, _, rec = text.partition(",")
            key = _unb64(key, "a log key").decode("utf-8")
            self._advance(entry, key, self._codec.decode(rec))
            entry.n_log += 1
        self._remember(group, entry)
        return entry

    def _row(self, entry, key):
        row = entry.rows.get(key)
        if row is not None:
            return row
        text = self.state.rows.get(key)
        m = entry.model
        if text is None:
            row = (np.zeros_like(m._slab[0]), 0)
        else:
            _step._load_row(m, _unb64(text, "a row"))
            row = (m._slab[0].copy(), int(m._counts[0, 0]))
        entry.rows[key] = row
        return row

    def _advance(self, entry, key, record):
        m = entry.model
        slab_row, count = self._row(entry, key)
        m._slab[0] = slab_row
        m._counts[0, 0] = count
        _step._forget_stream_caches(m)
        out = _step.apply(m, record)
        entry.rows.pop(key, None)  # re-insert: the dict's order is least recently used first
        entry.rows[key] = (m._slab[0].copy(), int(m._counts[0, 0]))
        entry.dirty.add(key)
        return count, out

    def process(self, key, record):
        """Predict then learn ``record`` on ``key``'s stream in the current group; return
        ``(seq, prediction)``. A bad record raises ValueError and changes nothing."""
        key = str(key)  # the rows' MapState is keyed by strings
        group = self.state.current_key()
        entry = self._entry(group)
        x, y = self._check(entry.model, record)
        try:
            seq, out = self._advance(entry, key, (x, y))
            if entry.n_log + 1 >= self.compact_every:
                self._compact(entry)
            else:
                self.state.log.add(_b64(key.encode("utf-8")) + "," + self._codec.encode(x, y))
                entry.n_log += 1
        except BaseException:
            self._cache.pop(group, None)
            raise
        return seq, out

    def _shared_bytes(self, entry):
        m = entry.model
        m.reset_state()
        return _step.encode(m)

    def _row_bytes(self, entry, key):
        m = entry.model
        m._slab[0], m._counts[0, 0] = entry.rows[key]
        return _step._dump_row(m)

    def _compact(self, entry):
        self.state.model.update(_b64(self._shared_bytes(entry)))
        for key in sorted(entry.dirty):
            self.state.rows.put(key, _b64(self._row_bytes(entry, key)))
        self.state.log.clear()
        entry.n_log = 0
        entry.dirty.clear()
        while len(entry.rows) > self.cache_size:  # all rows are stored now: forget the oldest
            del entry.rows[next(iter(entry.rows))]

    def final(self, group):
        """``[("shared", group, base64 shared state), ("row", key, base64 row), ...]``
        for the current group, rows sorted by key."""
        entry = self._entry(group)
        keys = set(self.state.rows.keys() or ()) | set(entry.rows)
        for key in keys:
            self._row(entry, key)
        rows = [("row", key, _b64(self._row_bytes(entry, key))) for key in sorted(keys)]
        return [("shared", str(group), _b64(self._shared_bytes(entry)))] + rows


# ---------------------------------------------------------------------- in-memory state
class _Slot:
    def __init__(self, store, name):
        self._store, self._name = store, name

    def _data(self):
        return self._store._data.setdefault(self._name, {})


class _Value(_Slot):
    def value(self):
        return self._data().get(self._store.key)

    def update(self, v):
        self._data()[self._store.key] = v

    def clear(self):
        self._data().pop(self._store.key, None)


class _List(_Slot):
    def get(self):
        return list(self._data().get(self._store.key, ()))

    def add(self, v):
        self._data().setdefault(self._store.key, []).append(v)

    def clear(self):
        self._data().pop(self._store.key, None)


class _Map(_Slot):
    def get(self, k):
        return self._data().get(self._store.key, {}).get(k)

    def put(self, k, v):
        self._data().setdefault(self._store.key, {})[k] = v

    def keys(self):
        return list(self._data().get(self._store.key, {}))


class MemoryState:
    """In-memory stand-in for the keyed state Flink gives the function: ``model``
    (value), ``log`` (list) and ``rows`` (map), scoped to the key set by ``set_key``.
    ``snapshot()`` and ``MemoryState(snapshot)`` play a checkpoint and a restore.
    """

    def __init__(self, snapshot=None):
        self._data = {} if snapshot is None else _deep_copy(snapshot)
        self.key = None
        self.model = _Value(self, "model")
        self.log = _List(self, "log")
        self.rows = _Map(self, "rows")

    def set_key(self, key):
        self.key = key

    def current_key(self):
        return self.key

    def snapshot(self):
        return _deep_copy(self._data)


def _deep_copy(data):
    return {
        name: {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in d.items()}
        for name, d in data.items()
    }


# ---------------------------------------------------------------------- records
class CsvRecords:
    """Parse ``key,x_1,...,x_D,y_1,...,y_O`` lines into ``(key, (x, y))``; empty target
    fields mean no target. ``key(line)`` reads only the key.

    >>> parse = CsvRecords(input_size=2, output_size=1)
    >>> parse("s1,0.5,-1,2")
    ('s1', ([0.5, -1.0], [2.0]))
    >>> parse("s1,0.5,-1,")
    ('s1', ([0.5, -1.0], None))
    """

    def __init__(self, input_size, output_size=1):
        self.input_size = input_size
        self.output_size = output_size

    def key(self, line):
        return line.split(",", 1)[0]

    def __call__(self, line):
        parts = line.rstrip("\r\n").split(",")
        d, o = self.input_size, self.output_size
        if len(parts) != 1 + d + o:
            raise ValueError(f"line has {len(parts)} fields, expected 1 + {d} + {o}: {line!r:.80}")
        try:
            x = [float(v) for v in parts[1 : 1 + d]]
            ys = parts[1 + d :]
            y = None if all(v.strip() == "" for v in ys) else [float(v) for v in ys]
        except ValueError as exc:
            raise ValueError(f"line has a non-numeric field ({exc}): {line!r:.80}") from None
        return parts[0], (x, y)


def _pair(element):
    key, record = element
    return key, record


def format_csv(output):
    """``key,seq,p_1,...,p_O`` with each float written exactly (``repr`` round-trips).

    >>> format_csv(("s1", 3, (0.25, 1e-300)))
    's1,3,0.25,1e-300'
    """
    key, seq, pred = output
    return ",".join([key, str(seq), *(repr(float(v)) for v in pred)])


# ---------------------------------------------------------------------- PyFlink glue
_classes = {}


def _pyflink():
    """Import PyFlink (only here: the rest of streamrnn never needs it)."""
    try:
        from pyflink.common import Types
        from pyflink.datastream import KeyedProcessFunction, OutputTag
        from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("streamrnn.adapters.flink needs PyFlink: pip install apache-flink") from exc
    return Types, KeyedProcessFunction, OutputTag, ValueStateDescriptor, ListStateDescriptor, MapStateDescriptor


def output_type():
    """Flink type of the predictions: ``(key, seq, prediction)``, the prediction a list of
    floats (a primitive array does not cross from Python to Java in thread mode)."""
    Types = _pyflink()[0]
    return Types.TUPLE([Types.STRING(), Types.LONG(), Types.LIST(Types.DOUBLE())])


def final_states_tag():
    """Side output of ``(kind, name, base64 state)`` emitted when a bounded input ends:
    ``("model", key, state)`` per key, or ``("shared", group, state)`` and
    ``("row", key, row)`` in shared mode (only with ``final_states=True``)."""
    Types, _, OutputTag = _pyflink()[:3]
    return OutputTag(FINAL_STATES, Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING()]))


def rejected_tag():
    """Side output of ``(key, message)`` for records that were rejected (not learned)."""
    Types, _, OutputTag = _pyflink()[:3]
    return OutputTag(REJECTED, Types.TUPLE([Types.STRING(), Types.STRING()]))


class _FlinkState:
    """The keyed state handles in the shape ``KeyedModels``/``SharedModels`` use."""

    def __init__(self, ctx, shared):
        Types, _, _, VSD, LSD, MSD = _pyflink()
        self.model = ctx.get_state(VSD("model", Types.STRING()))
        self.log = ctx.get_list_state(LSD("log", Types.STRING()))
        self.rows = ctx.get_map_state(MSD("rows", Types.STRING(), Types.STRING())) if shared else None
        self.key = None

    def current_key(self):
        return self.key


def _function_class():
    if "fn" in _classes:
        return _classes["fn"]
    KeyedProcessFunction = _pyflink()[1]

    class StreamRNNFunction(KeyedProcessFunction):
        """The ``KeyedProcessFunction``: see ``process_function``."""

        def __init__(self, logic, parse, final_states):
            self.logic = logic
            self.parse = parse
            self.final_states = final_states

        def open(self, runtime_context):
            self.state = _FlinkState(runtime_context, isinstance(self.logic, SharedModels))
            self.logic.open(self.state)
            self.final_tag = final_states_tag()
            self.rejected_tag = rejected_tag()

        def process_element(self, value, ctx):
            self.state.key = ctx.get_current_key()
            try:
                key, record = self.parse(value)
                seq, out = self.logic.process(key, record)
            except (ValueError, TypeError) as exc:
                yield self.rejected_tag, (str(self.state.key), str(exc))
                return
            if self.final_states:
                ctx.timer_service().register_event_time_timer(_MAX_TIMESTAMP)
            yield key, seq, [float(v) for v in out]

        def on_timer(self, timestamp, ctx):
            self.state.key = ctx.get_current_key()
            for item in self.logic.final(self.state.key):
                yield self.final_tag, item

    StreamRNNFunction.__module__ = __name__
    _classes["fn"] = StreamRNNFunction
    return StreamRNNFunction


def process_function(config, shared=False, parse=_pair, compact_every=64, cache_size=1024, final_states=False):
    """A PyFlink ``KeyedProcessFunction`` running ``StreamRNN(**config)`` per key.

    ``parse`` maps a stream element to ``(key, (x, y))`` (default: the element is that
    pair). With ``shared=False`` the stream must be keyed by the record's key; with
    ``shared=True`` by ``group_of(key, groups)``. Emits ``(key, seq, prediction)``
    (``output_type()``); rejected records go to ``rejected_tag()``; with
    ``final_states=True``, every key's final state goes to ``final_states_tag()`` when
    a bounded input ends (an event-time timer at the largest timestamp).

    In thread mode, keep it the only Python operator of its task: call
    ``.disable_chaining()`` on the stream ``process`` returns (``predict`` does). A
    second Python operator chained in the same task (a ``map`` after it, or the one
    ``get_side_output`` adds) made the compiled kernels hang in PyFlink 2.3.
    """
    cls = SharedModels if shared else KeyedModels
    return _function_class()(cls(config, compact_every, cache_size), parse, bool(final_states))


class _GroupKey:
    def __init__(self, key, groups):
        self.key, self.groups = key, groups

    def __call__(self, element):
        return group_of(self.key(element), self.groups)


class _RecordKey:
    def __init__(self, parse):
        self.parse = parse

    def __call__(self, element):
        return self.parse(element)[0]


def predict(stream, config, shared=False, groups=None, parse=_pair, key=None, **options):
    """Key ``stream``, run the models, and return the stream of ``(key, seq, prediction)``.

    ``key`` maps an element to its key (default: ``parse(element)[0]``); in shared mode
    the stream is keyed by ``group_of(key, groups)`` (``groups`` defaults to the
    stream's parallelism). ``options`` go to ``process_function``. Side outputs:
    ``result.get_side_output(rejected_tag())`` and ``final_states_tag()``.
    """
    Types = _pyflink()[0]
    key = key or _RecordKey(parse)
    fn = process_function(config, shared=shared, parse=parse, **options)
    if shared:
        groups = groups or stream.get_execution_environment().get_parallelism()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be an integer >= 1, got {groups!r}")
        keyed = stream.key_by(_GroupKey(key, groups), key_type=Types.INT())
    else:
        keyed = stream.key_by(key, key_type=Types.STRING())
    # Alone in its task: in thread mode every Python operator of a task gets its own
    # interpreter thread state on the task's thread, and a compiled kernel called from
    # the second one deadlocks (seen with PyFlink 2.3; ``get_side_output`` itself adds
    # a Python operator). Operators after this one run in their own tasks.
    return keyed.process(fn, output_type=output_type()).disable_chaining()
