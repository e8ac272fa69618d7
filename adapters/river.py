"""river estimators backed by ``StreamRNN``: put a recurrent network wherever a river model goes.

``RNNRegressor``, ``RNNMultiTargetRegressor``, ``RNNClassifier``, ``RNNForecaster`` and
``RNNAnomalyDetector`` follow river's conventions (``river.base``): every ``__init__``
argument is stored verbatim, defaults are immutable, learned state is ``_``-prefixed and
created by the first ``learn_one``, ``predict_one``/``predict_proba_one``/``score_one``/
``forecast`` change nothing, and ``learn_one`` copies values out of ``x`` and never keeps
the dict. They pass ``river.checks``, bare and behind a ``StandardScaler``
(``RNNForecaster._unit_test_skips`` names the two checks a river ``Pipeline`` cannot call
for a forecaster, and why).

Features
--------
A model sees ``x`` as a vector whose columns are the feature names in order of first
appearance; names that first appear in the same sample are taken in sorted order, so the
key order of a dict can never change a prediction. A feature that first appears late
grows the input layer: its weight column, optimizer moments and its entries in the ring
buffer of past inputs start at zero (``StreamRNN._resize``), so the model predicts and
learns exactly as before for as long as the new feature is 0. A missing feature counts as
0 for that step (with a ``StandardScaler`` in front, 0 is the feature's running mean); so
does ``None``. (``RNNAnomalyDetector`` standardises features itself: a missing one counts
as its running mean and is left out of the score.) Values must be numbers: bools count as
0/1, anything else (a string, a list) raises ``TypeError`` naming the feature, and NaN/inf
raise ``ValueError`` naming it, as do ints beyond the float range and values that
overflow ``dtype`` (1e308 in float32). A rejected sample leaves the model exactly as it
was. Features the model has never learned from are ignored by the inference methods
(their weights would be zero).

State
-----
Everything an estimator learns is a ``StreamRNN`` (flat numpy arrays), plain Python
scalars, lists and dicts, and small numpy arrays; per-call scratch (the cached column plan
and reusable buffers) is dropped when pickling and rebuilt on demand, so ``pickle.dumps``
of a model is the same before and after any inference call.

Keys and checkpoints
--------------------
``key="sensor"`` (all but ``RNNForecaster``) keeps one hidden state per value of
``x["sensor"]`` with shared weights, on a ``KeyedStreamRNN`` (see each estimator's notes
on keys). ``model.save(path)`` and ``Cls.load(path)`` write and read everything an
estimator has learned, keyed or not, to a ``streamrnn.checkpoint`` file: a resumed model
continues bit for bit. ``diagnostics()`` and ``health`` give the engine's training health
(``warn=True`` logs symptoms).
"""

import copy
import math
import numbers
import operator
import secrets

import numpy as np
from river import base
from river.time_series.base import Forecaster

from streamrnn import checkpoint
from streamrnn.checkpoint import CheckpointError
from streamrnn.engine import StreamRNN, _check_int
from streamrnn.keyed import KeyedStreamRNN

__all__ = [
    "RNNAnomalyDetector",
    "RNNClassifier",
    "RNNForecaster",
    "RNNMultiTargetRegressor",
    "RNNRegressor",
]

_NUMERIC_KINDS = "fiub"
# river's checks that feed a data set (all need the key field of a keyed configuration)
_DATASET_CHECKS = (
    "check_learn_one",
    "check_pickling",
    "check_shuffle_features_no_impact",
    "check_emerging_features",
    "check_disappearing_features",
    "check_radically_disappearing_features",
    "check_predict_one_pure",
    "check_predict_one_before_any_learn",
    "check_no_state_aliasing_with_input",
    "check_clone_is_independent",
    "check_seeding_is_idempotent",
    "check_debug_one",
    "check_predict_proba_one",
    "check_predict_proba_one_binary",
    "check_classifier_tracks_seen_labels",
    "check_roc_auc",
    "check_bounded_memory_growth",
)
_F64 = np.dtype(np.float64)
_NO_KEY = object()  # the key of an estimator without key=


def _sorted_names(names):
    """Names in sorted order; mixed types that do not compare sort by ``repr``."""
    try:
        return sorted(names)
    except TypeError:
        return sorted(names, key=repr)


def _values(x):
    """The values of ``x`` as a float64 vector, in the dict's order.

    Numbers and bools (0/1) convert directly; None counts as 0 (missing); anything else
    raises TypeError naming the feature.
    """
    try:
        vals = np.array(list(x.values()))
    except (ValueError, TypeError):  # ragged values (lists, arrays): found below
        vals = None
    if vals is not None and vals.ndim == 1 and vals.dtype.kind in _NUMERIC_KINDS:
        if vals.dtype != np.float64:
            vals = vals.astype(np.float64)
        return vals
    out = np.empty(len(x), dtype=np.float64)
    for i, (name, v) in enumerate(x.items()):
        if v is None:
            out[i] = 0.0
        elif isinstance(v, (numbers.Real, np.bool_)):
            try:
                out[i] = float(v)
            except OverflowError:  # an int beyond the float range
                raise ValueError(
                    f"feature {name!r} is {v!r:.40}...: too large for a float; the sample was rejected"
                ) from None
        else:
            raise TypeError(
                f"feature {name!r} is {v!r:.60} ({type(v).__name__}): RNN estimators take numbers "
                "(bools count as 0/1, None as missing); encode it first, e.g. with preprocessing.OneHotEncoder"
            )
    return out


def _check_finite(x, vals):
    """Raise ValueError naming the first feature of ``x`` whose value is NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(vals))
    if bad.size:
        name = list(x)[int(bad[0])]
        raise ValueError(f"feature {name!r} is {x[name]}: values must be finite; the sample was rejected")


def _number(value, name):
    """A finite float from a number (bools count as 0/1), or a TypeError/ValueError naming ``name``."""
    if not isinstance(value, (numbers.Real, np.bool_)):
        raise TypeError(f"{name} must be a number, got {value!r:.60} ({type(value).__name__})")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} is {value!r:.40}...: too large for a float; the sample was rejected") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} is {v}: values must be finite; the sample was rejected")
    return v


class _Welford:
    """Running mean and population variance (Welford), as plain floats."""

    @staticmethod
    def update(stats, v):
        """Return ``[n, mean, m2]`` after adding ``v`` (``stats`` is not modified)."""
        n, mean, m2 = stats
        n += 1.0
        d = v - mean
        mean += d / n
        m2 += d * (v - mean)
        return [n, mean, m2]

    @staticmethod
    def std(stats):
        n, _, m2 = stats
        return math.sqrt(m2 / n) if n > 0 and m2 > 0 else 0.0


class _Scratch:
    """Per-call scratch: how to read ``x`` into engine columns, and reusable buffers.

    Never pickled: it holds nothing that is not rebuilt from the model's state.
    ``getter`` reads the known features in column order (the fast path, when ``x`` has
    exactly the known features); ``keys``/``dst``/``src``/``new`` cache the column plan
    of the last other key order.
    """

    __slots__ = (
        "n", "getter", "lo", "full", "direct", "last_row", "last_input",
        "keys", "dst", "src", "complete", "new", "buf", "ybuf", "narrow",
    )

    def __init__(self, names, n_extra, width, n_out, dtype):
        self.n = len(names)
        if len(names) > 1:
            self.getter = operator.itemgetter(*names)
        elif names:
            name = names[0]
            self.getter = lambda d: (d[name],)
        else:
            self.getter = lambda d: ()
        self.lo = n_extra
        self.full = width == n_extra + len(names)
        self.direct = self.full and n_extra == 0 and dtype == np.float64
        self.last_row = self.last_input = None
        self.keys = None
        self.dst = self.src = None
        self.complete = False
        self.new = ()
        self.buf = np.zeros(width, dtype=dtype)
        self.ybuf = np.zeros(n_out, dtype=dtype)
        self.narrow = dtype != np.float64  # casting into buf may overflow (to inf, refused later)


class _RNNEstimator:
    """What every estimator here shares: engine configuration, feature columns, scratch.

    Subclasses set ``_loss`` and define ``__init__`` with their full signature (river reads
    the parameters from it), then call ``_check_params``.
    """

    _loss = "mse"

    # ------------------------------------------------------------------ parameters
    def _check_params(self):
        """Validate the parameters now (the engine's checks name the field)."""
        if self.key is not None:
            try:
                hash(self.key)
            except TypeError:
                raise TypeError(f"key must be a feature name (hashable), got {type(self.key).__name__}") from None
            _check_int("capacity", self.capacity, 1)
            if self.ttl is not None:
                _check_int("ttl", self.ttl, 1)
        StreamRNN(**self._engine_kwargs(1, 2, seed=0))

    def _engine_kwargs(self, input_size, output_size, seed):
        return dict(
            cell=self.cell,
            input_size=input_size,
            hidden_size=self.hidden_size,
            output_size=output_size,
            k1=self.k1,
            k2=self.k2,
            loss=self._loss,
            optimizer=self.optimizer,
            lr=self.lr,
            lr_end=self.lr_end,
            lr_tau=self.lr_tau,
            clip=self.clip,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            history=self.history,
            seed=seed,
            dtype=self.dtype,
            warn=self.warn,
        )

    def _new_engine(self, input_size, output_size, seed):
        """A fresh engine: a ``StreamRNN``, or with ``key`` a ``KeyedStreamRNN`` with shared weights."""
        kw = self._engine_kwargs(input_size, output_size, seed)
        if self.key is None:
            return StreamRNN(**kw)
        return KeyedStreamRNN(**kw, capacity=self.capacity, ttl=self.ttl, shared=True)

    # ------------------------------------------------------------------ keys
    def _split_key(self, x):
        """``(key value, x without the key field)`` for a keyed estimator; x is not modified."""
        name = self.key
        try:
            k = x[name]
        except KeyError:
            raise ValueError(
                f"x has no key field {name!r}: an estimator with key={name!r} needs it in every sample"
            ) from None
        if type(k) is not int and type(k) is not str:
            if isinstance(k, (str, np.str_)):
                k = str(k)
            elif isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, (bool, np.bool_)):
                k = int(k)
            else:
                raise TypeError(
                    f"key field {name!r} is {k!r:.60} ({type(k).__name__}): keys must be int or str (a scaler in "
                    "front of the model must leave the key field alone, see the estimator's notes on keys)"
                )
        if type(k) is int and not -(2**63) <= k < 2**63:
            raise ValueError(f"key field {name!r} is {k}: int keys must fit in int64")
        eng = self.__dict__.get("_engine")
        if eng is not None:
            kind = eng._key_kind
            if kind is not None and kind != ("str" if type(k) is str else "int"):
                raise TypeError(
                    f"key field {name!r} is {k!r:.60} ({type(k).__name__}) but this model's keys are {kind}s "
                    "(one model takes one kind)"
                )
        rest = dict(x)
        del rest[name]
        return k, rest

    def _slot(self, k):
        """The engine slot of key ``k`` (-1 when the key is not held)."""
        eng = self.__dict__.get("_engine")
        return -1 if eng is None else eng._slot(k)

    @classmethod
    def _keyed_test_params(cls):
        """A keyed configuration for river's checks (see ``_unit_test_skips``)."""
        return {"hidden_size": 3, "k1": 2, "seed": 3, "key": "stream", "capacity": 2, "ttl": 5}

    def _unit_test_skips(self):
        # A keyed configuration needs its key field in every sample; the data sets of
        # river's checks have none. The checks that only feed a data set are therefore
        # run by this project's test suite on the same data sets with a key field added
        # (tests/adapters/test_river_checks.py); the three that drop features at random
        # (the key field among them) are covered there by the keyed estimators' own tests.
        return set(_DATASET_CHECKS) if self.key is not None else set()

    # ------------------------------------------------------------------ introspection of training
    def diagnostics(self):
        """The engine's training health (``StreamRNN.diagnostics``, or ``KeyedStreamRNN``'s
        with key counts); an empty dict before the first ``learn_one``."""
        eng = self.__dict__.get("_engine")
        return {} if eng is None else eng.diagnostics()

    @property
    def health(self):
        """The engine's ``HealthMonitor`` (None before the first ``learn_one`` or with warn=False)."""
        eng = self.__dict__.get("_engine")
        return None if eng is None else eng.health if self.key is None else eng._health

    @property
    def _n_extra(self):
        """Engine input columns placed before the features."""
        return 0

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k1": 2, "k2": 3, "seed": 1}
        yield {"cell": "lstm", "hidden_size": 3, "k1": 3, "optimizer": "sgd", "lr": 0.05, "seed": 2}
        yield {"cell": "elman", "hidden_size": 3, "k1": 2, "optimizer": "rmsprop", "lr": 0.01}
        yield cls._keyed_test_params()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_tmp", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ------------------------------------------------------------------ features
    @property
    def _ready(self):
        return self.__dict__.get("_engine") is not None

    def _scratch(self):
        t = self.__dict__.get("_tmp")
        if t is None:
            names = list(self.__dict__.get("_columns") or {})
            if self._ready:
                width, n_out = self._engine.input_size, self._engine.output_size
            else:
                width, n_out = max(1, self._n_extra + len(names)), 1
            t = self._tmp = _Scratch(names, self._n_extra, width, n_out, np.dtype(self.dtype))
        return t

    def _encode(self, x):
        """Return (engine input for ``x``, names of the features the model does not know).

        The input is scratch that the next call overwrites. Unknown features are left out,
        missing ones are 0, and the leading extra columns are left for the caller to fill.
        """
        t = self.__dict__.get("_tmp") or self._scratch()
        if len(x) == t.n and t.full:
            try:
                row = t.getter(x)
            except KeyError:
                pass
            else:
                if row == t.last_row:
                    return t.last_input, ()  # the same values as the last call (predict, then learn)
                try:
                    vals = np.array(row)
                except (ValueError, TypeError):  # ragged values: the slow path names the feature
                    return self._encode_slow(x, t)
                if vals.dtype is not _F64:
                    if vals.ndim != 1 or vals.dtype.kind not in _NUMERIC_KINDS:
                        return self._encode_slow(x, t)
                    vals = vals.astype(np.float64)
                if t.direct:
                    xin = vals
                elif t.narrow:
                    xin = t.buf
                    with np.errstate(over="ignore"):
                        xin[t.lo :] = vals
                else:
                    xin = t.buf
                    xin[t.lo :] = vals
                t.last_row, t.last_input = row, xin
                return xin, ()
        return self._encode_slow(x, t)

    def _encode_slow(self, x, t):
        """``_encode`` for any key set: a column plan, cached per key order."""
        t.last_row = None  # the buffer is about to change
        keys = tuple(x)
        if keys != t.keys:
            self._plan(t, keys)
        vals = _values(x)
        buf = t.buf
        if not t.complete:
            buf[:] = 0.0
        with np.errstate(over="ignore"):
            if t.src is None:
                buf[t.dst] = vals
            else:
                buf[t.dst] = vals[t.src]
        return buf, t.new

    def _plan(self, t, keys):
        """Map the key order ``keys`` to engine columns."""
        cols = self.__dict__.get("_columns") or {}
        dst, src, new = [], [], []
        for i, k in enumerate(keys):
            c = cols.get(k)
            if c is None:
                new.append(k)
            else:
                dst.append(c)
                src.append(i)
        t.complete = len(dst) == len(cols) and t.full
        t.dst = np.array(dst, dtype=np.intp)
        t.src = None if not new else np.array(src, dtype=np.intp)
        t.new = tuple(new)
        t.keys = keys

    def _encode_with(self, x, columns, width):
        """Engine input for ``x`` under an explicit column map (the slow path, when growing)."""
        vals = _values(x)
        _check_finite(x, vals)
        buf = np.zeros(width, dtype=self.dtype)
        with np.errstate(over="ignore"):
            for k, v in zip(x, vals):
                buf[columns[k]] = v
        return buf

    def _grown(self, new_names, output_size):
        """A copy of the engine (or a new one) with room for ``new_names`` and ``output_size`` outputs.

        Returns (engine, column map, seed). Nothing on ``self`` changes.
        """
        cols = dict(self.__dict__.get("_columns") or {})
        for name in _sorted_names(new_names):
            cols[name] = self._n_extra + len(cols)
        width = max(1, self._n_extra + len(cols))
        if not self._ready:
            seed = self.seed if self.seed is not None else secrets.randbits(63)
            return self._new_engine(width, output_size, seed), cols, seed
        eng = copy.deepcopy(self._engine)
        eng._resize(input_size=max(width, eng.input_size), output_size=max(output_size, eng.output_size))
        return eng, cols, self._seed

    def _commit_engine(self, eng, cols, seed):
        self._engine, self._columns, self._seed = eng, cols, seed
        self._tmp = None

    def _reraise(self, exc, x):
        """Re-raise an engine ValueError, naming the feature when a value of ``x`` is to blame."""
        if x:
            vals = _values(x)
            _check_finite(x, vals)
            with np.errstate(over="ignore"):
                cast = vals.astype(self.dtype)
            bad = np.flatnonzero(~np.isfinite(cast))
            if bad.size:
                name = list(x)[int(bad[0])]
                raise ValueError(
                    f"feature {name!r} is {x[name]}: too large for dtype={self.dtype!r}; the sample was rejected"
                ) from None
            if "hidden state non-finite" in str(exc):
                name = list(x)[int(np.argmax(np.abs(vals)))]
                raise ValueError(
                    f"the features of x made the hidden state non-finite (largest: feature {name!r} = {x[name]}); "
                    "the sample was rejected"
                ) from None
        raise exc

    def _learn_copy(self, eng, k, xin, y, x):
        """``learn`` on an engine copy (the growth path), naming a feature of ``x`` in errors."""
        try:
            if k is _NO_KEY:
                eng.learn(xin, y)
            else:
                eng.learn(k, xin, y)
        except ValueError as exc:
            self._reraise(exc, x)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path):
        """Write the estimator to a checkpoint file at ``path``, atomically; return ``path``.

        The file holds the constructor parameters, the engine's full state (weights,
        optimizer, hidden states and buffers, counters; every key's with ``key``) and all
        that the estimator has learned (feature columns, labels or targets, running
        statistics, previous values): ``load`` continues bit for bit. Names (features,
        labels, targets, key values) are stored with their types (``True`` stays a bool,
        ``"1"`` a str, tuples stay tuples); a name of a type that cannot be stored exactly
        raises TypeError before anything is written. Format: ``streamrnn.checkpoint`` (an
        ``.npz`` with a JSON header; no pickle).
        """
        config = {n: checkpoint.encode_value(v, f"parameter {n!r}") for n, v in self._get_params().items()}
        eng = self.__dict__.get("_engine")
        extra, arrays = {"engine": None}, {}
        if eng is not None:
            if self.key is None:
                arrays.update(checkpoint.engine_arrays(eng, "engine."))
            else:
                engine_arrays, extra["keys"] = eng._checkpoint_parts("engine.")
                arrays.update(engine_arrays)
            extra["engine"] = eng._config()
            extra["seed"] = self._seed
            extra["columns"] = [checkpoint.encode_value(n, "feature name") for n in self._columns]
            state_arrays, extra["state"] = self._state()
            arrays.update({"state." + n: a for n, a in state_arrays.items()})
        return checkpoint.write(path, type(self).__name__, config, arrays, extra=extra)

    @classmethod
    def load(cls, path, **expected):
        """Read an estimator written by ``save`` (``path``: a file name or a binary file object).

        Keyword arguments are parameters the file must match (``hidden_size=16``...).
        Raises ``FileNotFoundError`` for a missing file and ``streamrnn.CheckpointError``
        for a truncated, corrupted or foreign file, a checkpoint of another kind (another
        estimator class, or an engine), or parameters other than ``expected``. Loading
        never executes code from the file.
        """
        where = checkpoint.describe(path)
        ck = checkpoint.read(path, kind=cls.__name__)
        config = {n: checkpoint.decode_value(v, where) for n, v in ck.config.items()}
        model = checkpoint.construct(cls, config, expected, where)
        model._restore(ck, where)
        return model

    def _restore(self, ck, where):
        extra, arrays = ck.extra, ck.arrays
        if extra.get("engine") is None:
            if arrays or set(extra) != {"engine"}:
                raise CheckpointError(f"{where}: state stored for an estimator that has not learned")
            return
        try:
            seed, columns, state, config = extra["seed"], extra["columns"], extra["state"], extra["engine"]
        except KeyError as exc:
            raise CheckpointError(f"{where}: the checkpoint has no {exc.args[0]!r} entry") from None
        if type(seed) is not int or not isinstance(columns, list) or not isinstance(state, dict):
            raise CheckpointError(f"{where}: malformed estimator state in the checkpoint header")
        if not isinstance(config, dict):
            raise CheckpointError(f"{where}: malformed engine configuration in the checkpoint header")
        want = self._engine_kwargs(1, 1, seed)
        del want["input_size"], want["output_size"]
        if self.key is None:
            eng = checkpoint.construct(StreamRNN, config, want, where)
            checkpoint.restore_engine(eng, arrays, where, "engine.")
            engine_names = {"engine." + n for n in checkpoint.ENGINE_ARRAYS}
        else:
            want.update(capacity=self.capacity, ttl=self.ttl, shared=True)
            eng = checkpoint.construct(KeyedStreamRNN, config, want, where)
            eng._restore(arrays, extra.get("keys"), where, "engine.")
            engine_names = set(eng._checkpoint_parts("engine.")[0])
        names = [checkpoint.decode_value(c, where) for c in columns]
        cols = {name: self._n_extra + i for i, name in enumerate(names)}
        if len(cols) != len(names):
            raise CheckpointError(f"{where}: duplicate feature names in the checkpoint")
        if eng.input_size != max(1, self._n_extra + len(cols)):
            raise CheckpointError(
                f"{where}: {len(cols)} feature names do not fit the engine's input_size {eng.input_size}"
            )
        state_arrays = {n[len("state."):]: a for n, a in arrays.items() if n.startswith("state.")}
        unexpected = sorted(set(arrays) - engine_names - {"state." + n for n in state_arrays})
        if unexpected:
            raise CheckpointError(f"{where}: unexpected arrays {unexpected} in a {type(self).__name__}")
        self._engine, self._columns, self._seed = eng, cols, seed
        self._tmp = None
        self._set_state(state_arrays, state, where)

    @staticmethod
    def _stored(arrays, name, shape, dtype, where):
        """``arrays[name]``, checked to have ``shape`` and ``dtype``, or CheckpointError."""
        arr = arrays.get(name)
        if arr is None:
            raise CheckpointError(f"{where}: the checkpoint has no array 'state.{name}'")
        if arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
            raise CheckpointError(
                f"{where}: array 'state.{name}' is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {tuple(shape)}"
            )
        return arr

    def _check_state_keys(self, arrays, extra, names, extra_names, where):
        if set(arrays) != set(names) or set(extra) != set(extra_names):
            raise CheckpointError(
                f"{where}: the stored estimator state has arrays {sorted(arrays)} and entries {sorted(extra)}, "
                f"expected {sorted(names)} and {sorted(extra_names)}"
            )

    # ------------------------------------------------------------------ introspection
    @property
    def engine(self):
        """The underlying ``StreamRNN`` (None before the first ``learn_one``)."""
        return self.__dict__.get("_engine")

    @property
    def features(self):
        """Feature names in column order."""
        return list(self.__dict__.get("_columns") or {})


_COMMON_DOC = """
    cell : {"gru", "lstm", "elman"}
        The recurrent cell.
    hidden_size : int
        H, the size of the hidden state.
    k1 : int
        Steps between weight updates (truncated BPTT).
    k2 : int or None
        Steps backpropagated per update (>= k1); None means k1.
    optimizer : {"adam", "sgd", "rmsprop"}
        PyTorch's update formulas.
    lr : float
        Learning rate.
    clip : float or None
        Clip the gradient to this global L2 norm; None: no clipping.
    momentum : float
        Momentum (sgd, rmsprop).
    weight_decay : float
        L2 penalty, as in PyTorch's optimizers.
    history : int
        Keep the last ``history`` per-update records (loss, gradient norm, clipped, weight
        norm) in the engine, for plots: ``model.engine.diagnostics()["history"]``.
    seed : int or None
        Seed of the weight init; None draws one at the first ``learn_one``. Two models with
        the same seed and data are bit-identical.
    dtype : {"float64", "float32"}
        Floating point type of weights, state and buffers."""

_KEY_DOC = """
    key : hashable or None
        The name of a field of ``x`` that says which stream a sample belongs to (a sensor,
        a user, a machine): the model keeps one hidden state (and ring buffer) per key
        value, with shared weights, as ``KeyedStreamRNN`` does, and the field is not a
        feature. Its values must be ints or strs (one kind per model); a sample without
        the field raises ValueError naming it. None: one stream.
    capacity : int
        With ``key``: the most keys held; a new key beyond it evicts the least recently
        learned one (which starts again from the zero state if it comes back).
    ttl : int or None
        With ``key``: also evict a key once more than ``ttl`` samples of other keys have
        been learned since its last one.
    warn : bool
        Log training symptoms (non-finite loss, exploding gradients, growing weights) with
        their remedies to the ``streamrnn`` logger (``streamrnn.health``).
    lr_end, lr_tau : float or None
        A decaying learning rate: the t-th update uses ``lr_end + (lr - lr_end) * lr_tau /
        (lr_tau + t)``; both None (default): ``lr`` throughout."""

_KEY_NOTES = """
    Keys
    ----
    With ``key="sensor"`` each value of ``x["sensor"]`` is a stream of its own: its own
    hidden state, ring buffer and TBPTT schedule (an update at its own every ``k1``-th
    sample), while all keys share the weights, which learn from every key. What is
    learned about the data as a whole is shared too: feature columns, labels, target and
    feature statistics. What belongs to one stream is per key: the previous target
    (``diff_target``, ``feed_target``) and the anomaly detector's previous sample; it is
    forgotten with the key when the key is evicted. A keyed model fed a single key is
    exactly (bit for bit) the unkeyed model. Keep the key field away from scalers:
    ``(compose.Discard("sensor") | preprocessing.StandardScaler()) + compose.Select("sensor")``
    in front of the model passes it through unscaled.
"""


class RNNRegressor(_RNNEstimator, base.Regressor):
    __doc__ = (
        """A recurrent network that regresses one target, learning online.

    The network sees the stream in order: its hidden state carries what it has seen, so a
    prediction may depend on past samples as well as on ``x``. For several targets use
    ``RNNMultiTargetRegressor``.

    Parameters
    ----------"""
        + _COMMON_DOC
        + """
    scale_target : bool
        Learn the target standardised by its running mean and standard deviation (and
        predict back in the original units), so the target's scale needs no pipeline.
    feed_target : bool
        Also feed the previous target (standardised) as an input: the model knows the last
        value when predicting the next one (as any autoregressive model on a series does;
        in progressive validation the last target is known when predicting).
    diff_target : bool
        Learn the change of the target since the previous sample, and predict the previous
        target plus the predicted change: a model that predicts no change is the "last value"
        forecast, and the network learns what moves the target from there. For targets that
        form a series (autocorrelated), with each target learned before the next prediction.
        With ``key``, a key's first prediction is 0.0 (no previous value of its own yet).
    diff_features : bool
        Feed each feature's change since the previous ``learn_one`` instead of its value.
        A feature's change is 0 at its first appearance; a missing feature counts as 0
        (see Features). With ``diff_target``, the network learns how the changes of the
        features move the target.
        Not available with ``key`` (a feature's change would need a previous value per key)."""
        + _KEY_DOC
        + """

    Targets
    -------
    ``y`` is a real number (bools count as 0/1); None, strings and other types raise
    TypeError, NaN and infinities ValueError, all naming ``y``. A finite ``y`` so large
    that the target statistics would overflow (the running variance of values near
    1e308, or the change since a previous value of opposite sign) raises ValueError
    too. A rejected sample changes nothing.
"""
    + _KEY_NOTES
    + """
    Examples
    --------
    >>> from river import datasets, evaluate, metrics, preprocessing
    >>> from streamrnn.adapters.river import RNNRegressor

    TrumpApproval's target is a smooth series, so the model learns how the changes of
    the polls move it (the last value alone scores 0.1947):

    >>> model = preprocessing.StandardScaler() | RNNRegressor(
    ...     hidden_size=16, k1=1, k2=8, lr=0.005, diff_target=True, diff_features=True, seed=42
    ... )
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: 0.184746

    Three sensors interleaved in one stream, one hidden state each (shared weights), then
    a checkpoint that resumes exactly:

    >>> import math, os, tempfile
    >>> model = RNNRegressor(hidden_size=8, k1=4, lr=0.01, key="sensor", capacity=16, seed=42)
    >>> mae = metrics.MAE()
    >>> for t in range(900):
    ...     u, period = t // 3, 2.0 + t % 3   # each sensor's own clock and period
    ...     x = {"sensor": f"s{t % 3}", "v": math.sin(u / period)}
    ...     y = math.sin((u + 1) / period)
    ...     mae.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> mae
    MAE: 0.207526
    >>> model.diagnostics()["keys_held"], model.features
    (3, ['v'])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> same = RNNRegressor.load(model.save(os.path.join(tmp.name, "model.npz")))
    >>> same.predict_one({"sensor": "s1", "v": 0.5}) == model.predict_one({"sensor": "s1", "v": 0.5})
    True
    >>> tmp.cleanup()

    """
    )

    def __init__(
        self,
        cell="gru",
        hidden_size=32,
        k1=16,
        k2=None,
        optimizer="adam",
        lr=0.005,
        clip=1.0,
        momentum=0.0,
        weight_decay=0.0,
        history=0,
        scale_target=True,
        feed_target=False,
        diff_target=False,
        diff_features=False,
        seed=None,
        dtype="float64",
        key=None,
        capacity=1024,
        ttl=None,
        warn=True,
        lr_end=None,
        lr_tau=None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip = clip
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.history = history
        self.scale_target = scale_target
        self.feed_target = feed_target
        self.diff_target = diff_target
        self.diff_features = diff_features
        self.seed = seed
        self.dtype = dtype
        self.key = key
        self.capacity = capacity
        self.ttl = ttl
        self.warn = warn
        self.lr_end = lr_end
        self.lr_tau = lr_tau
        if diff_features and key is not None:
            raise ValueError("diff_features=True is not available with key= (it needs a previous value per key)")
        self._check_params()

    @property
    def _n_extra(self):
        return 1 if self.feed_target else 0

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k1": 2, "k2": 3, "seed": 1}
        yield {"cell": "lstm", "hidden_size": 3, "k1": 3, "optimizer": "sgd", "lr": 0.05, "diff_target": True,
               "seed": 2}
        yield {"cell": "elman", "hidden_size": 3, "k1": 2, "optimizer": "rmsprop", "feed_target": True}
        yield {"hidden_size": 3, "k1": 1, "k2": 2, "diff_target": True, "diff_features": True, "seed": 3}
        yield dict(cls._keyed_test_params(), diff_target=True, feed_target=True)

    def _changes(self, xin):
        """The engine input with each feature column replaced by its change since the last ``learn_one``."""
        out = xin.copy()
        out[self._n_extra :] -= self._prev_x
        return out

    def predict_one(self, x):
        if self.key is not None:
            return self._predict_keyed(x)
        xin, _ = self._encode(x)
        eng = self.__dict__.get("_engine")
        if eng is None:
            return 0.0
        if self.diff_features:
            xin = self._changes(xin)
        if self.feed_target:
            xin[0] = self._prev_z
        try:
            out = float(eng.predict(xin)[0])
        except ValueError as exc:
            self._reraise(exc, x)
        mean, sd = self._y_loc_scale
        return mean + sd * out

    def _target(self, y, prev_y, stats):
        """``(y as a float, z or None, new stats)``: what the engine learns for target ``y``.

        ``z`` is None when there is nothing to learn (``diff_target`` without a previous
        value). Raises TypeError/ValueError naming ``y`` before anything changes.
        """
        yv = y if type(y) is float and math.isfinite(y) else _number(y, "y")
        n, mean, m2 = stats
        z = None
        if prev_y is not None or not self.diff_target:
            w = yv - prev_y if self.diff_target else yv
            n += 1.0
            d = w - mean
            mean += d / n
            m2 += d * (w - mean)
            if self.scale_target:
                sd = math.sqrt(m2 / n)
                z = (w - mean) / sd if sd > 0 else 0.0
            else:
                z = w
            if not (math.isfinite(m2) and math.isfinite(z)):  # w overflowing makes m2 or z non-finite
                what = "its change since the previous target" if self.diff_target else "the running variance"
                raise ValueError(f"y is {yv}: {what} overflows; the sample was rejected")
        return yv, z, (n, mean, m2)

    def _loc_scale(self, stats):
        """``(loc, scale)``: a standardised output maps back as ``loc + scale * output``."""
        n, mean, m2 = stats
        if self.scale_target:
            return mean, (math.sqrt(m2 / n) if n > 0 else 0.0)
        return 0.0, 1.0

    def learn_one(self, x, y):
        if self.key is not None:
            return self._learn_keyed(x, y)
        # the unkeyed path inlines _target and _loc_scale (the per-sample path stays lean)
        yv = y if type(y) is float and math.isfinite(y) else _number(y, "y")
        eng = self.__dict__.get("_engine")
        if eng is None:
            prev_y, prev_z, n, mean, m2 = None, 0.0, 0.0, 0.0, 0.0
        else:
            prev_y, prev_z = self._prev_y, self._prev_z
            n, mean, m2 = self._y_stats
        z = None
        if prev_y is not None or not self.diff_target:
            w = yv - prev_y if self.diff_target else yv
            n += 1.0
            d = w - mean
            mean += d / n
            m2 += d * (w - mean)
            if self.scale_target:
                sd = math.sqrt(m2 / n)
                z = (w - mean) / sd if sd > 0 else 0.0
            else:
                z = w
            if not (math.isfinite(m2) and math.isfinite(z)):  # w overflowing makes m2 or z non-finite
                what = "its change since the previous target" if self.diff_target else "the running variance"
                raise ValueError(f"y is {yv}: {what} overflows; the sample was rejected")
        xin, new = self._encode(x)
        if new or eng is None:
            eng, cols, seed = self._grown(new, 1)
            xin = self._encode_with(x, cols, eng.input_size)
            if self.diff_features:
                feats = xin[self._n_extra :].copy()
                prev_x = feats.copy()  # a feature's change is 0 at its first appearance
                known = self.__dict__.get("_prev_x")
                if known is not None:
                    prev_x[: known.shape[0]] = known
                xin[self._n_extra :] -= prev_x
            if self.feed_target:
                xin[0] = prev_z
            self._learn_copy(eng, _NO_KEY, xin, None if z is None else [z], x)
            self._commit_engine(eng, cols, seed)
        else:
            if self.diff_features:
                feats = xin[self._n_extra :].copy()
                xin = self._changes(xin)
            if self.feed_target:
                xin[0] = prev_z
            try:
                if z is None:
                    eng.learn(xin)
                else:
                    ybuf = self._tmp.ybuf
                    ybuf[0] = z
                    eng.learn(xin, ybuf)
            except ValueError as exc:
                self._reraise(exc, x)
        if self.diff_features:
            self._prev_x = feats
        self._y_stats = (n, mean, m2)
        # a standardised output maps back as y = loc + scale * output (loc includes the last target)
        if self.scale_target:
            loc, scale = mean, (math.sqrt(m2 / n) if n > 0 else 0.0)
        else:
            loc, scale = 0.0, 1.0
        self._y_loc_scale = (loc + yv, scale) if self.diff_target else (loc, scale)
        self._prev_z = 0.0 if z is None else z
        self._prev_y = yv

    # ------------------------------------------------------------------ keyed
    def _predict_keyed(self, x):
        k, x = self._split_key(x)
        xin, _ = self._encode(x)
        eng = self.__dict__.get("_engine")
        if eng is None:
            return 0.0
        loc, scale = self._y_loc_scale
        if self.diff_target or self.feed_target:  # per-key previous values
            slot = eng._slot(k)
            if slot < 0 and self.diff_target:
                return 0.0  # no previous value of this key to add a change to
            if self.feed_target:
                xin[0] = 0.0 if slot < 0 else self._key_prev[slot, 1]
            if self.diff_target:
                loc = loc + float(self._key_prev[slot, 0])
        try:
            out = float(eng.predict(k, xin)[0])
        except ValueError as exc:
            self._reraise(exc, x)
        return loc + scale * out

    def _learn_keyed(self, x, y):
        k, x = self._split_key(x)
        eng = self.__dict__.get("_engine")
        per_key = self.diff_target or self.feed_target
        slot = -1 if eng is None or not per_key else eng._slot(k)
        prev_y, prev_z = (None, 0.0) if slot < 0 else self._key_prev[slot].tolist()
        stats = (0.0, 0.0, 0.0) if eng is None else self._y_stats
        yv, z, stats = self._target(y, prev_y, stats)
        xin, new = self._encode(x)
        if new or eng is None:
            eng, cols, seed = self._grown(new, 1)
            xin = self._encode_with(x, cols, eng.input_size)
            if self.feed_target:
                xin[0] = prev_z
            self._learn_copy(eng, k, xin, None if z is None else [z], x)
            key_prev = self.__dict__.get("_key_prev")
            if key_prev is None:
                key_prev = np.zeros((self.capacity, 2))
            self._commit_engine(eng, cols, seed)
            slot = -1
        else:
            if self.feed_target:
                xin[0] = prev_z
            try:
                if z is None:
                    eng.learn(k, xin)
                else:
                    ybuf = self._tmp.ybuf
                    ybuf[0] = z
                    eng.learn(k, xin, ybuf)
            except ValueError as exc:
                self._reraise(exc, x)
            key_prev = self._key_prev
        if per_key:
            key_prev[slot if slot >= 0 else eng._slot(k)] = (yv, 0.0 if z is None else z)
        self._key_prev = key_prev
        self._y_stats = stats
        self._y_loc_scale = self._loc_scale(stats)

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        arrays = {"y_stats": np.array(self._y_stats), "y_loc_scale": np.array(self._y_loc_scale)}
        if self.key is not None:
            return dict(arrays, key_prev=self._key_prev), {}
        prev_y = self._prev_y
        arrays["prev"] = np.array([0.0 if prev_y is None else prev_y, self._prev_z])
        if self.diff_features:
            arrays["prev_x"] = np.asarray(self._prev_x, dtype=np.float64)
        return arrays, {"has_prev_y": prev_y is not None}

    def _set_state(self, arrays, extra, where):
        keyed = self.key is not None
        names = ("y_stats", "y_loc_scale", "key_prev" if keyed else "prev")
        if self.diff_features:
            names += ("prev_x",)
        self._check_state_keys(arrays, extra, names, () if keyed else ("has_prev_y",), where)
        if self._engine.output_size != 1:
            raise CheckpointError(f"{where}: a regressor's engine must have output_size 1")
        self._y_stats = tuple(self._stored(arrays, "y_stats", (3,), _F64, where).tolist())
        self._y_loc_scale = tuple(self._stored(arrays, "y_loc_scale", (2,), _F64, where).tolist())
        if keyed:
            self._key_prev = self._stored(arrays, "key_prev", (self.capacity, 2), _F64, where).copy()
            return
        if type(extra["has_prev_y"]) is not bool:
            raise CheckpointError(f"{where}: malformed estimator state in the checkpoint header")
        prev_y, self._prev_z = self._stored(arrays, "prev", (2,), _F64, where).tolist()
        self._prev_y = prev_y if extra["has_prev_y"] else None
        if self.diff_features:
            n_feat = self._engine.input_size - self._n_extra
            self._prev_x = self._stored(arrays, "prev_x", (n_feat,), _F64, where).astype(self._engine._np_dtype)


class RNNMultiTargetRegressor(_RNNEstimator, base.MultiTargetRegressor):
    __doc__ = (
        """A recurrent network that regresses several targets at once (``y`` is a dict).

    Targets are learned as they appear: a new target name grows the output layer (a zero
    row: its first prediction is its running mean). Once a target is known, every
    ``learn_one`` must give it; a missing one raises ``ValueError``. Outputs are ordered
    like features (first appearance, sorted within a sample).

    Parameters
    ----------"""
        + _COMMON_DOC
        + """
    scale_target : bool
        Learn each target standardised by its running mean and standard deviation."""
        + _KEY_DOC
        + """

    Targets
    -------
    ``y`` is a non-empty dict of real numbers (bools count as 0/1), keyed by any hashable
    target names. Anything but a dict raises TypeError; an empty dict, a missing known
    target, NaN, infinities and values whose running variance would overflow raise
    ValueError naming the target (``y['u']``); a non-number TypeError naming it. A refused
    sample changes nothing.
"""
    + _KEY_NOTES
    + """

    Examples
    --------
    >>> from river import compose, datasets, evaluate, metrics, preprocessing
    >>> from streamrnn.adapters.river import RNNMultiTargetRegressor

    >>> encode = (compose.SelectType(str) | preprocessing.OneHotEncoder()) + compose.SelectType(int)
    >>> model = encode | RNNMultiTargetRegressor(hidden_size=16, k1=1, k2=2, lr=0.005, seed=42)
    >>> metric = metrics.multioutput.MicroAverage(metrics.MAE())
    >>> evaluate.progressive_val_score(datasets.SolarFlare(), model, metric)
    MicroAverage(MAE): 0.147499

    """
    )

    def __init__(
        self,
        cell="gru",
        hidden_size=32,
        k1=16,
        k2=None,
        optimizer="adam",
        lr=0.005,
        clip=1.0,
        momentum=0.0,
        weight_decay=0.0,
        history=0,
        scale_target=True,
        seed=None,
        dtype="float64",
        key=None,
        capacity=1024,
        ttl=None,
        warn=True,
        lr_end=None,
        lr_tau=None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip = clip
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.history = history
        self.scale_target = scale_target
        self.seed = seed
        self.dtype = dtype
        self.key = key
        self.capacity = capacity
        self.ttl = ttl
        self.warn = warn
        self.lr_end = lr_end
        self.lr_tau = lr_tau
        self._check_params()

    def predict_one(self, x):
        k = _NO_KEY
        if self.key is not None:
            k, x = self._split_key(x)
        xin, _ = self._encode(x)
        if not self._ready:
            return {}
        try:
            out = self._engine.predict(xin) if k is _NO_KEY else self._engine.predict(k, xin)
        except ValueError as exc:
            self._reraise(exc, x)
        pred = {}
        for name, row in self._targets.items():
            v = float(out[row])
            if self.scale_target:
                s = self._y_stats[row]
                v = s[1] + _Welford.std(s) * v
            pred[name] = v
        return pred

    def learn_one(self, x, y):
        k = _NO_KEY
        if self.key is not None:
            k, x = self._split_key(x)
        if not isinstance(y, dict):
            raise TypeError(f"y must be a dict of targets, got {type(y).__name__}; for one target use RNNRegressor")
        if not y:
            raise ValueError("y is an empty dict: at least one target is needed")
        known = self.__dict__.get("_targets") or {}
        missing = [name for name in known if name not in y]
        if missing:
            raise ValueError(f"y lacks the target {missing[0]!r}: every known target is needed at each step")
        values = {name: _number(v, f"y[{name!r}]") for name, v in y.items()}
        targets = dict(known)
        for name in _sorted_names([n for n in y if n not in known]):
            targets[name] = len(targets)
        stats = list(self.__dict__.get("_y_stats") or [])
        stats += [[0.0, 0.0, 0.0] for _ in range(len(targets) - len(stats))]
        zs = np.zeros(len(targets))
        for name, row in targets.items():
            stats[row] = _Welford.update(stats[row], values[name])
            if self.scale_target:
                sd = _Welford.std(stats[row])
                zs[row] = (values[name] - stats[row][1]) / sd if sd > 0 else 0.0
            else:
                zs[row] = values[name]
            if not (math.isfinite(stats[row][2]) and math.isfinite(zs[row])):
                raise ValueError(
                    f"y[{name!r}] is {values[name]}: the target's running variance overflows; the sample was rejected"
                )
        xin, new = self._encode(x)
        if new or not self._ready or len(targets) > self._engine.output_size:
            eng, cols, seed = self._grown(new, len(targets))
            self._learn_copy(eng, k, self._encode_with(x, cols, eng.input_size), zs, x)
            self._commit_engine(eng, cols, seed)
        else:
            try:
                if k is _NO_KEY:
                    self._engine.learn(xin, zs)
                else:
                    self._engine.learn(k, xin, zs)
            except ValueError as exc:
                self._reraise(exc, x)
        self._targets = targets
        self._y_stats = stats

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        names = [checkpoint.encode_value(n, "target name") for n in self._targets]
        return {"y_stats": np.array(self._y_stats, dtype=np.float64).reshape(-1, 3)}, {"targets": names}

    def _set_state(self, arrays, extra, where):
        self._check_state_keys(arrays, extra, ("y_stats",), ("targets",), where)
        if not isinstance(extra["targets"], list):
            raise CheckpointError(f"{where}: malformed estimator state in the checkpoint header")
        names = [checkpoint.decode_value(n, where) for n in extra["targets"]]
        targets = {name: row for row, name in enumerate(names)}
        if len(targets) != len(names) or self._engine.output_size != len(names):
            raise CheckpointError(
                f"{where}: {len(names)} target names (distinct: {len(targets)}) do not fit the engine's "
                f"output_size {self._engine.output_size}"
            )
        self._targets = targets
        self._y_stats = self._stored(arrays, "y_stats", (len(names), 3), _F64, where).tolist()


class RNNClassifier(_RNNEstimator, base.Classifier):
    __doc__ = (
        """A recurrent network that classifies, binary or multiclass, learning online.

    Labels are learned as they appear and the softmax output grows with them: a new label
    gets a zero output row (it starts at logit 0). ``predict_proba_one`` covers every label
    seen so far and sums to 1 (normalised in float64). A bool label reserves both False
    and True, and before its first label the model answers ``{False: 0.5, True: 0.5}``,
    so a binary model always answers for both classes. (The network needs two output rows
    from the start: while only one non-bool label is known, the model advances its state
    without updating, as there is nothing to tell apart.)

    Parameters
    ----------"""
        + _COMMON_DOC
        + _KEY_DOC
        + """

    Labels
    ------
    A label is any hashable value but None and NaN. Labels are told apart as dict keys
    are, as in river's own classifiers and metrics: values that are equal with equal
    hashes, such as ``1``, ``1.0``, ``True`` and ``numpy.int64(1)``, are one class, reported
    under the spelling seen first (a numpy bool counts as a bool), while ``"1"`` is another
    class. So a stream that mixes 0/1 with False/True by accident still has two classes.
    None and NaN (not equal to itself) raise ValueError, an unhashable label TypeError,
    and a refused sample changes nothing.
"""
    + _KEY_NOTES
    + """

    Examples
    --------
    >>> from river import datasets, evaluate, metrics, preprocessing
    >>> from streamrnn.adapters.river import RNNClassifier

    A learning rate that decays from 0.5 to 0.1 (half-way after 100 updates) learns fast
    at first and settles later (StandardScaler | LogisticRegression scores 89.28%):

    >>> model = preprocessing.StandardScaler() | RNNClassifier(
    ...     hidden_size=64, k1=1, optimizer="sgd", lr=0.5, lr_end=0.1, lr_tau=100.0, seed=42
    ... )
    >>> evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
    Accuracy: 89.36%

    Seven classes, learned as they appear:

    >>> model = preprocessing.StandardScaler() | RNNClassifier(hidden_size=32, k1=1, k2=2, lr=0.01, seed=42)
    >>> evaluate.progressive_val_score(datasets.ImageSegments(), model, metrics.Accuracy())
    Accuracy: 86.41%

    """
    )

    _loss = "ce"

    def __init__(
        self,
        cell="gru",
        hidden_size=32,
        k1=16,
        k2=None,
        optimizer="adam",
        lr=0.005,
        clip=1.0,
        momentum=0.0,
        weight_decay=0.0,
        history=0,
        seed=None,
        dtype="float64",
        key=None,
        capacity=1024,
        ttl=None,
        warn=True,
        lr_end=None,
        lr_tau=None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip = clip
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.history = history
        self.seed = seed
        self.dtype = dtype
        self.key = key
        self.capacity = capacity
        self.ttl = ttl
        self.warn = warn
        self.lr_end = lr_end
        self.lr_tau = lr_tau
        self._check_params()

    @property
    def _multiclass(self):
        return True

    def predict_proba_one(self, x):
        k = _NO_KEY
        if self.key is not None:
            k, x = self._split_key(x)
        xin, _ = self._encode(x)
        if not self._ready:
            return {False: 0.5, True: 0.5}
        labels = self._labels
        if len(labels) == 1:
            return {labels[0]: 1.0}
        try:
            p = self._engine.predict(xin) if k is _NO_KEY else self._engine.predict(k, xin)
        except ValueError as exc:
            self._reraise(exc, x)
        q = p[: len(labels)].astype(np.float64)
        q /= q.sum()
        return dict(zip(labels, q.tolist()))

    def learn_one(self, x, y):
        k = _NO_KEY
        if self.key is not None:
            k, x = self._split_key(x)
        if y is None:
            raise ValueError("y is None: a label is needed")
        if isinstance(y, np.bool_):
            y = bool(y)
        try:
            index = self.__dict__.get("_label_index", {}).get(y)
        except TypeError:
            raise TypeError(f"y must be hashable to serve as a label, got {type(y).__name__}") from None
        labels = self.__dict__.get("_labels")
        if index is None:
            if y != y:
                raise ValueError(f"y is {y!r}: a label must equal itself (NaN cannot serve as a label)")
            if not labels:
                labels = [False, True] if isinstance(y, bool) else [y]
                index = int(y) if isinstance(y, bool) else 0
            else:
                labels = labels + [y]
                index = len(labels) - 1
        n_out = max(2, len(labels))
        xin, new = self._encode(x)
        if new or not self._ready or n_out > self._engine.output_size or labels is not self._labels:
            eng, cols, seed = self._grown(new, n_out)
            target = None
            if len(labels) >= 2:
                target = np.zeros(eng.output_size)
                target[index] = 1.0
            self._learn_copy(eng, k, self._encode_with(x, cols, eng.input_size), target, x)
            self._commit_engine(eng, cols, seed)
            self._labels = labels
            self._label_index = {label: i for i, label in enumerate(labels)}
            return
        ybuf = self._tmp.ybuf
        ybuf[:] = 0.0
        ybuf[index] = 1.0
        try:
            if k is _NO_KEY:
                self._engine.learn(xin, ybuf if len(labels) >= 2 else None)
            else:
                self._engine.learn(k, xin, ybuf if len(labels) >= 2 else None)
        except ValueError as exc:
            self._reraise(exc, x)

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        return {}, {"labels": [checkpoint.encode_value(label, "label") for label in self._labels]}

    def _set_state(self, arrays, extra, where):
        self._check_state_keys(arrays, extra, (), ("labels",), where)
        if not isinstance(extra["labels"], list):
            raise CheckpointError(f"{where}: malformed estimator state in the checkpoint header")
        labels = [checkpoint.decode_value(label, where) for label in extra["labels"]]
        index = {label: i for i, label in enumerate(labels)}
        if not labels or len(index) != len(labels) or self._engine.output_size != max(2, len(labels)):
            raise CheckpointError(
                f"{where}: {len(labels)} labels (distinct: {len(index)}) do not fit the engine's output_size "
                f"{self._engine.output_size}"
            )
        self._labels, self._label_index = labels, index


class RNNForecaster(_RNNEstimator, Forecaster):
    __doc__ = (
        """A recurrent network that forecasts a series, with optional exogenous features.

    It handles the scale of a raw series itself: the series is (optionally) logged,
    differenced ``d`` times and seasonally differenced ``sd`` times with period ``m``, then
    standardised online. At each step the network reads past values of that transformed
    series (``lags``: 1 is the previous value, ``m`` the same season last period) and the
    exogenous features ``x`` of the step, and learns to predict the current value.
    ``forecast`` rolls a copy of the model forward, feeding back its own predictions, and
    undoes the transforms; the model itself is untouched. Until ``d + m * sd`` values are
    known there is nothing to difference against: the model only advances its state, and
    a forecast takes the missing past as the first value (a lag not yet known reads 0).

    Parameters
    ----------"""
        + _COMMON_DOC
        + """
    d : int
        Order of differencing.
    m : int
        Seasonal period (1: none).
    sd : int
        Order of seasonal differencing.
    log : bool
        Model ``log(y)`` (a multiplicative series; ``y`` must be positive).
    lags : tuple of int
        Which past values of the transformed series the network reads at each step.
    scale_target : bool
        Standardise the transformed series by its running mean and standard deviation.
    key : None
        RNNForecaster takes no key: ``forecast(horizon)`` has no ``x`` to read a key from,
        and each series needs its own differencing and scaling. Use one forecaster per
        series (or ``KeyedStreamRNN`` on transformed series).
    warn : bool
        Log training symptoms with their remedies to the ``streamrnn`` logger.
    lr_end, lr_tau : float or None
        A decaying learning rate: the t-th update uses ``lr_end + (lr - lr_end) * lr_tau /
        (lr_tau + t)``; both None (default): ``lr`` throughout.

    Targets
    -------
    ``y`` is a real number (positive with ``log=True``); other types raise TypeError,
    NaN, infinities and values whose differences or running variance would overflow
    ValueError, all naming ``y``; a refused sample changes nothing.

    Examples
    --------
    >>> from river import datasets, evaluate, metrics
    >>> from streamrnn.adapters.river import RNNForecaster

    >>> series = [({}, y) for _, y in datasets.AirlinePassengers()]  # the series alone
    >>> model = RNNForecaster(hidden_size=16, k1=4, lr=0.01, d=1, m=12, sd=1, log=True, lags=(1, 12), seed=42)
    >>> evaluate.evaluate(series, model, metrics.MAE(), horizon=12)
    +1  MAE: 27.002574
    +2  MAE: 28.918465
    +3  MAE: 28.502035
    +4  MAE: 28.705996
    +5  MAE: 29.563955
    +6  MAE: 30.073549
    +7  MAE: 32.038796
    +8  MAE: 32.262794
    +9  MAE: 33.253466
    +10 MAE: 34.936534
    +11 MAE: 36.663229
    +12 MAE: 38.896

    """
    )

    def __init__(
        self,
        cell="gru",
        hidden_size=32,
        k1=16,
        k2=None,
        optimizer="adam",
        lr=0.005,
        clip=1.0,
        momentum=0.0,
        weight_decay=0.0,
        history=0,
        d=1,
        m=1,
        sd=0,
        log=False,
        lags=(1,),
        scale_target=True,
        seed=None,
        dtype="float64",
        key=None,
        warn=True,
        lr_end=None,
        lr_tau=None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip = clip
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.history = history
        self.d = d
        self.m = m
        self.sd = sd
        self.log = log
        self.lags = lags
        self.scale_target = scale_target
        self.seed = seed
        self.dtype = dtype
        self.key = key
        self.warn = warn
        self.lr_end = lr_end
        self.lr_tau = lr_tau
        if key is not None:
            raise ValueError(
                f"key={key!r}: RNNForecaster takes no key (forecast(horizon) has no x to read a key from, "
                "and each series needs its own differencing and scaling); use one RNNForecaster per "
                "series, or KeyedStreamRNN on the transformed series"
            )
        for name, low in (("d", 0), ("m", 1), ("sd", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if not (
            isinstance(lags, tuple)
            and lags
            and all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1 for k in lags)
        ):
            raise ValueError(f"lags must be a non-empty tuple of integers >= 1, got {lags!r}")
        self._check_params()

    @property
    def _n_extra(self):
        return len(self.lags)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k1": 2, "k2": 3, "seed": 1}
        yield {"cell": "lstm", "hidden_size": 3, "k1": 3, "m": 2, "sd": 1, "log": True, "lags": (1, 2), "seed": 2}
        yield {"cell": "elman", "hidden_size": 3, "k1": 2, "d": 0, "scale_target": False, "optimizer": "sgd"}

    def _unit_test_skips(self):
        # river's Pipeline.learn_one takes (x, y) while river's time-series checks call
        # learn_one(y, x) positionally, so these two cannot pass behind a pipeline (river's
        # evaluate.evaluate passes keywords and works). The bare forecaster runs both checks
        # in this project's test suite (tests/adapters/test_river_checks.py).
        return {"check_learn_one", "check_forecast"}

    def _lag_coefficients(self):
        """c_k of (1 - B)^d (1 - B^m)^sd = sum_k c_k B^k, as a list indexed by k (c_0 = 1)."""
        poly = [1.0]
        for step, times in ((1, self.d), (self.m, self.sd)):
            for _ in range(times):
                nxt = [0.0] * (len(poly) + step)
                for i, c in enumerate(poly):
                    nxt[i] += c
                    nxt[i + step] -= c
                poly = nxt
        return poly

    def _put_lags(self, xin, zs):
        """Write the lagged transformed values (0 where not yet known) into the leading columns."""
        n = len(zs)
        for j, lag in enumerate(self.lags):
            xin[j] = zs[n - lag] if lag <= n else 0.0

    def learn_one(self, y, x=None):
        v = _number(y, "y")
        if self.log:
            if v <= 0.0:
                raise ValueError(f"y is {v}: log=True needs positive values; the sample was rejected")
            v = math.log(v)
        x = {} if x is None else x
        coef = self._lag_coefficients()
        order = len(coef) - 1
        hist = self.__dict__.get("_history") or []
        zs = self.__dict__.get("_z_history") or []
        stats = self.__dict__.get("_w_stats") or [0.0, 0.0, 0.0]
        z = None
        if len(hist) >= order:
            w = v + sum(coef[k] * hist[-k] for k in range(1, order + 1))
            stats = _Welford.update(stats, w)
            if self.scale_target:
                sd = _Welford.std(stats)
                z = (w - stats[1]) / sd if sd > 0 else 0.0
            else:
                z = w
            if not (math.isfinite(w) and math.isfinite(stats[2]) and math.isfinite(z)):
                raise ValueError(f"y is {y!r}: the differenced series or its running variance overflows; "
                                 "the sample was rejected")
        xin, new = self._encode(x)
        if new or not self._ready:
            eng, cols, seed = self._grown(new, 1)
            xin = self._encode_with(x, cols, eng.input_size)
            self._put_lags(xin, zs)
            self._learn_copy(eng, _NO_KEY, xin, None if z is None else [z], x)
            self._commit_engine(eng, cols, seed)
        else:
            self._put_lags(xin, zs)
            try:
                if z is None:
                    self._engine.learn(xin)
                else:
                    ybuf = self._tmp.ybuf
                    ybuf[0] = z
                    self._engine.learn(xin, ybuf)
            except ValueError as exc:
                self._reraise(exc, x)
        self._history = (hist + [v])[-max(order, 1) :]
        if z is not None:
            self._z_history = (zs + [z])[-max(self.lags) :]
        self._w_stats = stats

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        zs = self.__dict__.get("_z_history")
        arrays = {
            "history": np.array(self._history, dtype=np.float64),
            "z_history": np.array(zs or [], dtype=np.float64),
            "w_stats": np.array(self._w_stats, dtype=np.float64),
        }
        return arrays, {"has_z_history": zs is not None}

    def _set_state(self, arrays, extra, where):
        self._check_state_keys(arrays, extra, ("history", "z_history", "w_stats"), ("has_z_history",), where)
        hist, zs = arrays["history"], arrays["z_history"]
        order = len(self._lag_coefficients()) - 1
        ok = (
            type(extra["has_z_history"]) is bool
            and hist.ndim == 1
            and 1 <= hist.shape[0] <= max(order, 1)
            and zs.ndim == 1
            and zs.shape[0] <= max(self.lags)
            and (extra["has_z_history"] or zs.shape[0] == 0)
            and self._engine.output_size == 1
        )
        if not ok:
            raise CheckpointError(f"{where}: the stored forecaster history does not fit its parameters")
        self._history = self._stored(arrays, "history", hist.shape, _F64, where).tolist()
        if extra["has_z_history"]:
            self._z_history = self._stored(arrays, "z_history", zs.shape, _F64, where).tolist()
        self._w_stats = self._stored(arrays, "w_stats", (3,), _F64, where).tolist()

    def forecast(self, horizon, xs=None):
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 0:
            raise ValueError(f"horizon must be an integer >= 0, got {horizon!r}")
        if xs is not None and len(xs) != horizon:
            raise ValueError(f"xs must hold one dict per step of the horizon ({horizon}), got {len(xs)}")
        hist = list(self.__dict__.get("_history") or [])
        if not hist:
            return [0.0] * horizon
        coef = self._lag_coefficients()
        order = len(coef) - 1
        if len(hist) < order:
            hist = [hist[0]] * (order - len(hist)) + hist
        zs = list(self.__dict__.get("_z_history") or [])
        stats = self._w_stats
        mean, sd = (stats[1], _Welford.std(stats)) if self.scale_target else (0.0, 1.0)
        eng = copy.deepcopy(self._engine)
        out = []
        for i in range(horizon):
            x = {} if xs is None or xs[i] is None else xs[i]
            xin, _ = self._encode(x)
            self._put_lags(xin, zs)
            try:
                zhat = float(eng._advance(xin)[0])
            except ValueError as exc:
                self._reraise(exc, x)
            v = mean + sd * zhat - sum(coef[k] * hist[-k] for k in range(1, order + 1))
            hist.append(v)
            zs.append(zhat)
            out.append(math.exp(v) if self.log else v)
        return out


class RNNAnomalyDetector(_RNNEstimator, base.AnomalyDetector):
    __doc__ = (
        """Anomaly scores from the error of a recurrent network's next-step prediction.

    The detector standardises each feature by its running mean and standard deviation and
    learns to predict the next sample's standardised features from the previous ones.
    ``score_one(x)`` is the mean squared error of that prediction over the features of
    ``x`` that the model knows, in standard deviations squared: about 1 for a sample as
    surprising as the running mean would make it, lower for a well-predicted one, high for
    an anomaly. ``learn_one(x)`` learns from the same prediction. A missing feature counts
    as its running mean (0 after standardising) and does not enter the score.

    Parameters
    ----------"""
        + _COMMON_DOC
        + _KEY_DOC
        + """

    Extreme values
    --------------
    A finite value so large that its feature's running statistics would overflow, or so
    far from its running mean that its standardised value is not finite, is refused by
    ``learn_one`` (ValueError naming the feature; nothing changes); ``score_one`` scores
    such a sample ``inf``.
"""
    + _KEY_NOTES
    + """
    Examples
    --------
    >>> from river import datasets, metrics
    >>> from streamrnn.adapters.river import RNNAnomalyDetector

    TrumpApproval with an outlier injected into every 50th sample:

    >>> model = RNNAnomalyDetector(hidden_size=16, k1=4, lr=0.01, seed=42)
    >>> auc = metrics.ROCAUC()
    >>> for i, (x, _) in enumerate(datasets.TrumpApproval()):
    ...     is_anomaly = i % 50 == 49
    ...     if is_anomaly:
    ...         x = {**x, "gallup": x["gallup"] + 10.0}
    ...     auc.update(is_anomaly, model.score_one(x))
    ...     model.learn_one(x)
    >>> auc
    ROCAUC: 93.07%

    """
    )

    def __init__(
        self,
        cell="gru",
        hidden_size=32,
        k1=16,
        k2=None,
        optimizer="adam",
        lr=0.005,
        clip=1.0,
        momentum=0.0,
        weight_decay=0.0,
        history=0,
        seed=None,
        dtype="float64",
        key=None,
        capacity=1024,
        ttl=None,
        warn=True,
        lr_end=None,
        lr_tau=None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip = clip
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.history = history
        self.seed = seed
        self.dtype = dtype
        self.key = key
        self.capacity = capacity
        self.ttl = ttl
        self.warn = warn
        self.lr_end = lr_end
        self.lr_tau = lr_tau
        self._check_params()

    @staticmethod
    def _scale(stats):
        """(mean, 1/std) per column from ``stats`` = [n, mean, m2] (1/std is 0 where std is 0)."""
        n, mean, m2 = stats
        var = np.divide(m2, n, out=np.zeros_like(m2), where=n > 0)
        inv = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=var > 0)
        return mean, inv

    def _present(self, x, new, cols):
        """Columns of the known features present in ``x`` (None: all of them); None values are missing."""
        if not new and len(x) == len(cols) and None not in x.values():
            return None
        return np.array([cols[k] for k, v in x.items() if v is not None and k in cols], dtype=np.intp)

    def _standardise(self, xin, present, scale):
        """Standardised features; missing ones are 0 (their running mean)."""
        mean, inv = scale
        z = (xin - mean) * inv
        if present is not None:
            full = np.zeros_like(z)
            full[present] = z[present]
            z = full
        return z

    def score_one(self, x):
        k = _NO_KEY
        if self.key is not None:
            k, x = self._split_key(x)
        xin, new = self._encode(x)
        eng = self.__dict__.get("_engine")
        if eng is None:
            return 0.0
        if not np.isfinite(xin).all():
            _check_finite(x, _values(x))
        present = self._present(x, new, self._columns)
        with np.errstate(over="ignore", invalid="ignore"):
            z = self._standardise(xin, present, self._x_scale)
        if k is _NO_KEY:
            p = eng.predict(self._prev)
        else:
            slot = eng._slot(k)
            prev = self._key_prev[slot] if slot >= 0 else np.zeros(eng.input_size, dtype=self.dtype)
            p = eng.predict(k, prev)
        with np.errstate(over="ignore", invalid="ignore"):
            err = z - p
            if present is not None:
                if not present.size:
                    return 0.0
                err = err[present]
            score = float(err @ err) / err.shape[0]
        return score if score == score else math.inf

    def learn_one(self, x):
        k = _NO_KEY
        if self.key is not None:
            k, x = self._split_key(x)
        xin, new = self._encode(x)
        eng = self.__dict__.get("_engine")
        keyed = k is not _NO_KEY
        if new or eng is None:
            cols = dict(self.__dict__.get("_columns") or {})
            for name in _sorted_names(new):
                cols[name] = len(cols)
            width = max(1, len(cols))
            xin = self._encode_with(x, cols, width)
            stats = np.zeros((3, width))
            prev = np.zeros((self.capacity, width) if keyed else width, dtype=self.dtype)
            if eng is None:
                seed = self.seed if self.seed is not None else secrets.randbits(63)
                eng = self._new_engine(width, width, seed)
            else:
                seed = self._seed
                stats[:, : self._x_stats.shape[1]] = self._x_stats
                if keyed:
                    prev[:, : self._key_prev.shape[1]] = self._key_prev
                else:
                    prev[: self._prev.shape[0]] = self._prev
                eng = copy.deepcopy(eng)
                eng._resize(input_size=width, output_size=width)
            scale = self._scale(stats)
        else:
            if not np.isfinite(xin).all():
                _check_finite(x, _values(x))
            cols, seed, stats, scale = self._columns, self._seed, self._x_stats, self._x_scale
            prev = self._key_prev if keyed else self._prev
        present = self._present(x, new, cols)
        with np.errstate(over="ignore", invalid="ignore"):
            z = self._standardise(xin, present, scale).astype(self.dtype)
            n, mean, m2 = stats.copy()
            idx = slice(None) if present is None else present
            v = xin[idx]
            n[idx] += 1.0
            d = v - mean[idx]
            mean[idx] += d / n[idx]
            m2[idx] += d * (v - mean[idx])
        bad = ~(np.isfinite(z) & np.isfinite(mean) & np.isfinite(m2))
        if bad.any():
            col = int(np.flatnonzero(bad)[0])
            name = next(name for name, c in cols.items() if c == col)
            raise ValueError(
                f"feature {name!r} is {x[name]}: too far from its running mean (its statistics or its "
                "standardised value would overflow); the sample was rejected"
            )
        if keyed:
            slot = eng._slot(k)
            row = prev[slot] if slot >= 0 else np.zeros(prev.shape[1], dtype=self.dtype)
        try:
            if keyed:
                eng.learn(k, row, z)
            else:
                eng.learn(prev, z)
        except ValueError as exc:
            self._reraise(exc, x)
        stats = np.stack([n, mean, m2])
        if eng is not self.__dict__.get("_engine"):
            self._commit_engine(eng, cols, seed)
        self._x_stats = stats
        self._x_scale = self._scale(stats)
        if keyed:
            prev[slot if slot >= 0 else eng._slot(k)] = z
            self._key_prev = prev
        else:
            self._prev = z

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        arrays = {"x_stats": self._x_stats}
        if self.key is None:
            arrays["prev"] = self._prev
        else:
            arrays["key_prev"] = self._key_prev
        return arrays, {}

    def _set_state(self, arrays, extra, where):
        keyed = self.key is not None
        self._check_state_keys(arrays, extra, ("x_stats", "key_prev" if keyed else "prev"), (), where)
        width = self._engine.input_size
        if self._engine.output_size != width or width != max(1, len(self._columns)):
            raise CheckpointError(f"{where}: the engine's sizes do not fit {len(self._columns)} features")
        self._x_stats = self._stored(arrays, "x_stats", (3, width), _F64, where).copy()
        self._x_scale = self._scale(self._x_stats)
        if keyed:
            self._key_prev = self._stored(arrays, "key_prev", (self.capacity, width), self.dtype, where).copy()
        else:
            self._prev = self._stored(arrays, "prev", (width,), self.dtype, where).copy()


# ---------------------------------------------------------------------------- for the demo
def shipped_dataset(name):
    """``(x, y)`` pairs, in order, of a data set that ships with river (read from disk, no download).

    ``name`` is the class name in ``river.datasets`` (``"TrumpApproval"``, ``"Phishing"``...).
    A data set that river would download is refused with a ValueError.

    Examples
    --------
    >>> from streamrnn.adapters.river import shipped_dataset
    >>> pairs = shipped_dataset("TrumpApproval")
    >>> len(pairs), sorted(pairs[0][0]), pairs[0][1]
    (1001, ['gallup', 'ipsos', 'morning_consult', 'ordinal_date', 'rasmussen', 'you_gov'], 43.75505)
    """
    from river import datasets
    from river.datasets import base as datasets_base

    cls = getattr(datasets, name, None)
    shipped = (
        isinstance(cls, type)
        and issubclass(cls, datasets_base.FileDataset)
        and not issubclass(cls, datasets_base.RemoteDataset)
    )
    if not shipped:
        raise ValueError(f"{name!r} is not a data set that ships with river (no file in river.datasets)")
    return list(cls())


def linear_baseline():
    """river's usual online baseline for regression: ``StandardScaler() | LinearRegression(intercept_lr=0.1)``."""
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.LinearRegression(intercept_lr=0.1)
