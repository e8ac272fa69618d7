"""KeyedStreamRNN: one model learning online from many interleaved streams, one state per key.

See DESIGN sections 3 and 4. The weights (shared by default) are those of a ``StreamRNN``;
each key owns one row of the slabs ``_slab (capacity, ROW_SIZE)`` and
``_counts (capacity, 1)``, found through a compiled hash map (``kernels.keymap``). All
state is plain numpy arrays plus, for string keys, a dict from string to int id.
"""

import numbers

import numpy as np

from . import cells, checkpoint
from .checkpoint import CheckpointError
from .engine import StreamRNN, _check_choice, _check_int, _own_arrays
from .kernels import keymap as KM
from .kernels import layout as L
from .kernels.keyed import keyed_predict, keyed_run_rows, keyed_step

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
EVICTIONS = ("lru",)
# the arrays a checkpoint holds: the model (one row per slot when not shared), the slabs
# and the key map; with shared=False also the model new keys start from
_ARRAYS = ("meta", "fmeta", "mem", "slab", "counts", "kmeta", "table", "slots")
_INIT_ARRAYS = ("init_meta", "init_fmeta", "init_mem")
# kmeta entries fixed by the configuration
_KMETA_CONFIG = (KM.KM_CAPACITY, KM.KM_MASK, KM.KM_TTL, KM.KM_SHARED)


class _Rows:
    """One model's arrays (views into a keyed model's rows) as ``checkpoint.restore_engine`` sees a model."""

    def __init__(self, owner, meta, fmeta, mem):
        self._layout = owner._layout
        self._meta, self._fmeta, self._mem = meta, fmeta, mem
        self._slab = np.zeros((0, owner._layout.row_size), dtype=owner._np_dtype)
        self._counts = np.zeros((0, 1), dtype=np.int64)

    def _alloc_work(self):
        pass

    def arrays(self, staged, stem, prefix, row=None):
        """The stored arrays of this model as ``restore_engine`` reads them (under ``prefix + stem``)."""
        out = {prefix + stem + n: staged[stem + n] if row is None else staged[n][row] for n in ("meta", "fmeta", "mem")}
        out.update({prefix + stem + "slab": self._slab, prefix + stem + "counts": self._counts})
        return out


class _ModelView:
    """One model's arrays (the shared model, a key's, or the new-key model) seen through
    StreamRNN's weight and diagnostics methods, so both classes report them the same way."""

    params = StreamRNN.params
    n_params = StreamRNN.n_params
    named_parameters = StreamRNN.named_parameters
    state_dict = StreamRNN.state_dict
    load_state_dict = StreamRNN.load_state_dict
    diagnostics = StreamRNN.diagnostics

    def __init__(self, owner, meta, fmeta, mem):
        for name in ("cell", "input_size", "hidden_size", "output_size", "k2", "history", "_layout", "_np_dtype"):
            setattr(self, name, getattr(owner, name))
        self._iwork = owner._iwork
        self._meta, self._fmeta, self._mem = meta, fmeta, mem


class KeyedStreamRNN:
    """Many streams (keys) through one recurrent model: a hidden state and buffer per key.

    Each key is a stream of its own, exactly as if it had its own ``StreamRNN``: its own
    hidden state and ring buffer, and a TBPTT update at its own every ``k1``-th sample.
    By default all keys share one set of weights (and optimizer state), which learns
    from every key's updates; ``shared=False`` gives each key its own weights and
    optimizer state too.

    At most ``capacity`` keys are held. A new key arriving when all slots are taken
    evicts the least recently used key (recency counts learned samples; ``predict``
    does not touch a key). With ``ttl=T``, a key is also evicted once more than ``T``
    samples (of any other keys) have been learned since its own last sample: counting the
    model's samples from 0, a key last seen at sample ``s`` continues its state if it comes
    back by sample ``s + T + 1``, and is evicted as soon as sample ``s + T + 1`` is learned
    for another key. With ``ttl=2``, a key seen at sample 10 continues at sample 11, 12 or
    13; if sample 13 is another key's, it is gone once 13 is learned. A key that comes back
    after an eviction starts again from the zero state (and, with ``shared=False``, from the initial
    weights), like a new ``StreamRNN``. ``diagnostics()`` counts evictions.

    Keys are ints (any int64 value) or strings; one model takes one kind. Strings map to
    int ids through a dict, then use the same compiled map.

    Parameters
    ----------
    cell, input_size, hidden_size, output_size, k1, k2, loss, optimizer, lr, clip, seed, dtype,
    momentum, dampening, nesterov, weight_decay, betas, eps, alpha, centered, history, ema, warn,
    lr_end, lr_tau
        As for ``StreamRNN`` (``warn`` watches the shared weights; with ``shared=False``
        the per-key models are not monitored).
    capacity : int
        Keys held at most.
    eviction : {"lru"}
        Which key makes room for a new one when all slots are taken.
    ttl : int or None
        Evict keys idle for more than this many samples of the model (see above).
    shared : bool
        True: one set of weights for all keys. False: each key has its own weights and
        optimizer state, initialised identically (from ``seed``).

    Memory
    ------
    Per slot, with S the state width (H; 2H for LSTM), M = ceil(k2 / k1), ``b`` the
    dtype's bytes and B the hash table's buckets (a power of two in [2, 4) * capacity)::

        b * (S * (1 + M) + k2 * (D + O + 1))      slab row: state | window starts | xs | ys | mask
        + 8 + 32 + 8 * B / capacity               step count, slot record, hash table

    For GRU, H=32, D=8, O=1, k1=k2=16, float32 that is 896 + 8 + 32 + 16 = 952 bytes per
    key at capacity 2**20 (``bytes_per_key``). ``shared=False`` adds each key's model::

        b * (P * (n_moments + 2) + G*H*(D+H) + pad) + 8 * (META_SIZE + F_LAGS + 2 * k2 + 4 * history)

    (P parameters; n_moments 1 for sgd, 2 adam, 3 rmsprop; G gates; pad < 64 elements that
    align the regions (``cells.Layout.mem_offsets``); META_SIZE and F_LAGS from
    ``kernels.layout``, 50 and 19 today): at the same sizes with adam that is 80,576 + 808
    bytes, about 81 KB per key (P = 4,065).

    Examples
    --------
    >>> import numpy as np
    >>> import streamrnn as sr
    >>> m = sr.KeyedStreamRNN(cell="gru", input_size=1, hidden_size=8, k1=4, optimizer="adam",
    ...                       lr=0.01, capacity=100)
    >>> t = np.arange(3000)
    >>> ids = t % 3                                    # three interleaved sensors
    >>> names = np.array(["pump", "fan", "valve"])[ids]
    >>> u, period = t // 3, 2.0 + 1.5 * ids            # each sensor's own clock and period
    >>> X, Y = np.sin(u / period), np.sin((u + 1) / period)   # predict its next reading
    >>> P = m.run(names, X[:, None], Y[:, None])
    >>> print(f"MAE of the last 300 predictions: {np.mean(np.abs(P[-300:, 0] - Y[-300:])):.3f}")
    MAE of the last 300 predictions: 0.035
    >>> m.keys(), m.key_steps("fan")                   # most recently learned first
    (['valve', 'fan', 'pump'], 1000)
    >>> d = m.diagnostics()
    >>> d["steps"], d["updates"], d["keys_held"], d["evictions"]
    (3000, 750, 3, 0)
    """

    def __init__(
        self,
        cell="gru",
        input_size=1,
        hidden_size=32,
        output_size=1,
        k1=16,
        k2=None,
        loss="mse",
        optimizer="sgd",
        lr=0.01,
        clip=None,
        seed=0,
        dtype="float64",
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
        weight_decay=0.0,
        betas=(0.9, 0.999),
        eps=1e-8,
        alpha=0.99,
        centered=False,
        history=0,
        ema=0.95,
        warn=True,
        lr_end=None,
        lr_tau=None,
        capacity=1024,
        eviction="lru",
        ttl=None,
        shared=True,
    ):
        proto = StreamRNN(
            cell=cell, input_size=input_size, hidden_size=hidden_size, output_size=output_size,
            k1=k1, k2=k2, loss=loss, optimizer=optimizer, lr=lr, clip=clip, seed=seed, dtype=dtype,
            momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay,
            betas=betas, eps=eps, alpha=alpha, centered=centered, history=history, ema=ema, warn=warn,
            lr_end=lr_end, lr_tau=lr_tau,
        )
        for name in proto._config():
            setattr(self, name, getattr(proto, name))
        self.capacity = _check_int("capacity", capacity, 1)
        self.eviction = _check_choice("eviction", eviction, EVICTIONS)
        self.ttl = None if ttl is None else _check_int("ttl", ttl, 1)
        if not isinstance(shared, (bool, np.bool_)):
            raise ValueError(f"shared must be True or False, got {shared!r}")
        self.shared = bool(shared)
        self._layout = lay = proto._layout
        self._np_dtype = proto._np_dtype
        cap = self.capacity
        if self.shared:
            self._meta, self._fmeta, self._mem = proto._meta, proto._fmeta, proto._mem
        else:
            # the pristine model each new key starts from; slot rows are filled on first use
            self._init_meta, self._init_fmeta, self._init_mem = proto._meta, proto._fmeta, proto._mem
            self._meta = np.zeros((cap, proto._meta.size), dtype=np.int64)
            self._fmeta = np.zeros((cap, proto._fmeta.size), dtype=np.float64)
            self._mem = cells.aligned_zeros((cap, proto._mem.size), self._np_dtype)
        self._slab = np.zeros((cap, lay.row_size), dtype=self._np_dtype)
        self._counts = np.zeros((cap, 1), dtype=np.int64)
        self._kmeta, self._table, self._slots = KM.new_keymap(cap, self.ttl, self.shared)
        self._key_kind = None  # "int" or "str" once a key has been learned
        self._str_ids = {}  # str key -> int id (ids of strings no longer held are pruned)
        self._next_str_id = 0
        # training health of the shared weights (per-key models are not monitored)
        self._health = proto._health if self.shared else None
        self._alloc_work()

    # ------------------------------------------------------------------ construction
    def _config(self):
        """The constructor arguments, as stored."""
        cfg = StreamRNN._config(self)
        cfg.update(capacity=self.capacity, eviction=self.eviction, ttl=self.ttl, shared=self.shared)
        return cfg

    def _alloc_work(self):
        StreamRNN._alloc_work(self)
        self._zero = np.zeros((1, self._layout.state_width), dtype=self._np_dtype)
        if self.shared:
            models = (self._meta.reshape(1, -1), self._fmeta.reshape(1, -1), self._mem.reshape(1, -1))
            init = (self._meta, self._fmeta, self._mem)
        else:
            models = (self._meta, self._fmeta, self._mem)
            init = (self._init_meta, self._init_fmeta, self._init_mem)
        keymap = (self._kmeta, self._table, self._slots, self._zero)
        # the argument tuples of the keyed kernels (views; rebuilt after unpickling)
        self._kargs = (*models, self._slab, self._counts, self._work, self._iwork, *keymap, *init)
        self._pargs = (models[0], models[2], self._slab, self._work, self._iwork, *keymap, init[0], init[2])

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_work", "_iwork", "_no_target", "_zero", "_kargs", "_pargs"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        _own_arrays(self)
        for name in ("_meta", "_init_meta"):  # pickled by 0.1.0: fewer entries
            if isinstance(getattr(self, name, None), np.ndarray):
                setattr(self, name, self._layout.upgrade_meta(getattr(self, name)))
        self._alloc_work()

    _as_vector = StreamRNN._as_vector
    _as_rows = StreamRNN._as_rows
    _run_inputs = StreamRNN._run_inputs
    _raise = StreamRNN._raise

    def _resize(self, input_size=None, output_size=None):
        """Grow the input and/or output layer of the shared weights, keeping every key's state.

        Exactly ``StreamRNN._resize`` applied to the shared model and every slot of the
        slab (new weight columns/rows, moments and buffered entries are zero). Only for
        ``shared=True``.
        """
        if not self.shared:
            raise ValueError("_resize needs shared=True")
        StreamRNN._resize(self, input_size, output_size)
        return self

    # ------------------------------------------------------------------ checkpoints
    _checkpoint_kind = "KeyedStreamRNN"

    def _checkpoint_parts(self, prefix=""):
        """``(arrays, extra)``: every array that defines the model (under ``prefix``) and the
        string-key bookkeeping as JSON."""
        names = _ARRAYS + (() if self.shared else _INIT_ARRAYS)
        arrays = {prefix + n: getattr(self, "_" + n) for n in names}
        extra = {
            "key_kind": self._key_kind,
            "str_ids": [[s, kid] for s, kid in self._str_ids.items()],
            "next_str_id": self._next_str_id,
        }
        return arrays, extra

    def save(self, path):
        """Write every key's state and the weights to a checkpoint at ``path``, atomically.

        The file holds the configuration, the weights and optimizer state (shared, or each
        slot's own and the ones new keys start from), every slot's stream state and step
        count, the compiled key map (slots, hash table, LRU order, clock, ttl stamps,
        eviction counters) and the string keys: ``load`` continues bit for bit, evictions
        included. Format: ``streamrnn.checkpoint``; no pickle.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import streamrnn as sr
        >>> m = sr.KeyedStreamRNN(input_size=1, hidden_size=4, k1=3, capacity=2)
        >>> P = m.run(["a", "b", "c", "a"], np.ones((4, 1)), np.zeros((4, 1)))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> m2 = sr.KeyedStreamRNN.load(m.save(os.path.join(tmp.name, "keyed.npz")))
        >>> m2.keys(), m2.diagnostics()["evictions"], bool((m2.predict("c", [1.0]) == m.predict("c", [1.0])).all())
        (['a', 'c'], 2, True)
        >>> tmp.cleanup()
        """
        arrays, extra = self._checkpoint_parts()
        return checkpoint.write(path, self._checkpoint_kind, self._config(), arrays, extra={"keys": extra})

    @classmethod
    def load(cls, path, **expected):
        """Read a model written by ``save``; keyword arguments are constructor arguments the
        file must match (as for ``StreamRNN.load``). Raises ``CheckpointError`` for a bad,
        foreign or mismatched file; never executes code from it."""
        where = checkpoint.describe(path)
        ck = checkpoint.read(path, kind=cls._checkpoint_kind)
        model = checkpoint.construct(cls, ck.config, expected, where)
        names = set(_ARRAYS + (() if model.shared else _INIT_ARRAYS))
        unexpected = sorted(set(ck.arrays) - names)
        if unexpected:
            raise CheckpointError(f"{where}: unexpected arrays {unexpected} in a {cls._checkpoint_kind}")
        return model._restore(ck.arrays, ck.extra.get("keys"), where)

    def _restore(self, arrays, keys, where, prefix=""):
        """Check the stored arrays and key bookkeeping against this (freshly built) model and
        copy them in; CheckpointError for anything that does not fit."""
        names = _ARRAYS + (() if self.shared else _INIT_ARRAYS)
        staged = {}
        for n in names:
            have, own = arrays.get(prefix + n), getattr(self, "_" + n)
            if have is None:
                raise CheckpointError(f"{where}: the checkpoint has no array {prefix + n!r}")
            if n in ("meta", "init_meta"):
                have = checkpoint.upgraded_meta(have, own, self._layout)
            if have.dtype != own.dtype or have.shape != own.shape:
                raise CheckpointError(
                    f"{where}: array {prefix + n!r} is {have.dtype} {have.shape}, but the stored configuration "
                    f"needs {own.dtype} {own.shape} (a different cell, size or capacity)"
                )
            staged[n] = have
        kind, str_ids, next_id = _check_key_extra(keys, where)
        held = _check_keymap(staged["kmeta"], staged["table"], staged["slots"], self._kmeta, where, prefix)
        if kind is None and held.size:
            raise CheckpointError(f"{where}: keys are held but the checkpoint has no key kind")
        if kind == "str":
            ids = set(str_ids.values())
            if not set(staged["slots"][held, KM.SK_KEY].tolist()) <= ids:
                raise CheckpointError(f"{where}: a held string key has no entry in the string table")
            if ids and max(ids) >= next_id:
                raise CheckpointError(f"{where}: the next string id must exceed every stored id")
        elif str_ids:
            raise CheckpointError(f"{where}: string ids stored for a model without string keys")
        for n in ("kmeta", "table", "slots"):
            getattr(self, "_" + n)[...] = staged[n]
        if self.shared:
            checkpoint.restore_engine(self, arrays, where, prefix)
        else:
            rows = _Rows(self, self._init_meta, self._init_fmeta, self._init_mem)
            checkpoint.restore_engine(rows, rows.arrays(staged, "init_", prefix), where, prefix + "init_")
            for n in ("meta", "fmeta", "mem", "slab", "counts"):
                getattr(self, "_" + n)[...] = staged[n]
            for slot in held.tolist():  # the rows of keys not held are overwritten when a key takes them
                rows = _Rows(self, self._meta[slot], self._fmeta[slot], self._mem[slot])
                checkpoint.restore_engine(rows, rows.arrays(staged, "", prefix, slot), where, prefix)
            if not np.all(np.isfinite(self._slab)) or np.any(self._counts < 0):
                raise CheckpointError(f"{where}: non-finite stream state or negative counts in '{prefix}slab'")
            self._alloc_work()
        self._key_kind, self._str_ids, self._next_str_id = kind, str_ids, next_id
        return self

    # ------------------------------------------------------------------ keys
    def _key_id(self, key):
        """``(int id, new string or None)`` for one key, or raise TypeError/ValueError."""
        if type(key) is int and _INT64_MIN <= key <= _INT64_MAX and self._key_kind != "str":
            return key, None  # the common case, without the abc checks below
        if isinstance(key, str):
            if self._key_kind == "int":
                raise TypeError(f"key {key!r} is a str but this model's keys are ints (one model takes one kind)")
            if "\x00" in key:
                raise ValueError(f"key {key!r} contains a NUL character (numpy string arrays drop them)")
            kid = self._str_ids.get(key)
            return (self._next_str_id, key) if kid is None else (kid, None)
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
            raise TypeError(f"key must be an int or a str, got {type(key).__name__} {key!r:.80}")
        kid = int(key)
        if not _INT64_MIN <= kid <= _INT64_MAX:
            raise ValueError(f"key {kid} is outside the int64 range")
        if self._key_kind == "str":
            raise TypeError(f"key {kid!r} is an int but this model's keys are strings (one model takes one kind)")
        return kid, None

    def _key_ids(self, keys, n):
        """``(int64 ids (n,), [(first row, string, id)] of new strings, "int" or "str")``."""
        if n == 0 and np.shape(keys) in ((0,), ()) and len(keys) == 0:
            return np.zeros(0, dtype=np.int64), [], self._key_kind
        if isinstance(keys, np.ndarray) and keys.dtype.kind != "O":
            arr = keys
            if arr.shape != (n,):
                raise ValueError(f"keys must have shape ({n},) (one key per row of X), got {arr.shape}")
            kind = arr.dtype.kind
        else:
            if isinstance(keys, np.ndarray):
                if keys.shape != (n,):
                    raise ValueError(f"keys must have shape ({n},) (one key per row of X), got {keys.shape}")
                values = keys.tolist()
            else:
                try:
                    values = list(keys)
                except TypeError:
                    kind = type(keys).__name__
                    raise TypeError(f"keys must be a sequence of ints or of strings, got {kind}") from None
                if len(values) != n:
                    raise ValueError(f"keys must have {n} entries (one key per row of X), got {len(values)}")
            if all(isinstance(k, str) for k in values):
                arr, kind = np.array(values, dtype=str).reshape(n), "U"
            elif all(isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)) for k in values):
                if any(not _INT64_MIN <= int(k) <= _INT64_MAX for k in values):
                    raise ValueError("keys must fit in int64")
                arr, kind = np.array([int(k) for k in values], dtype=np.int64).reshape(n), "i"
            else:
                raise TypeError("keys must be all ints or all strings")
        if kind in "iu":
            if self._key_kind == "str":
                raise TypeError("keys are ints but this model's keys are strings (one model takes one kind)")
            if kind == "u" and n and int(arr.max()) > _INT64_MAX:
                raise ValueError("keys must fit in int64")
            return np.ascontiguousarray(arr, dtype=np.int64), [], "int"
        if kind != "U":
            raise TypeError(f"keys must be ints or strings, got an array of dtype {arr.dtype}")
        if self._key_kind == "int":
            raise TypeError("keys are strings but this model's keys are ints (one model takes one kind)")
        if arr is not keys and any("\x00" in k for k in values):  # numpy would drop trailing NULs
            raise ValueError("string keys must not contain NUL characters (numpy string arrays drop them)")
        uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
        uid = np.empty(len(uniq), dtype=np.int64)
        new = []
        nxt = self._next_str_id
        if any("\x00" in str(u) for u in uniq):
            raise ValueError("string keys must not contain NUL characters (numpy string arrays drop them)")
        for u in np.argsort(first, kind="stable"):
            s = str(uniq[u])
            kid = self._str_ids.get(s)
            if kid is None:
                kid = nxt
                nxt += 1
                new.append((int(first[u]), s, kid))
            uid[u] = kid
        return uid[inverse.reshape(n)], new, "str"

    def _commit_keys(self, kind, new):
        """After learning: fix the key kind and record new strings (``[(string, id)]``)."""
        self._key_kind = kind
        if not new:
            return
        for s, kid in new:
            self._str_ids[s] = kid
        self._next_str_id = new[-1][1] + 1
        if len(self._str_ids) > 2 * self.capacity + 1024:
            held = set(self._slots[self._held_slots(), KM.SK_KEY].tolist())
            self._str_ids = {s: kid for s, kid in self._str_ids.items() if kid in held}

    def _held_slots(self):
        order = np.empty(int(self._kmeta[KM.KM_HELD]), dtype=np.int64)
        KM.keymap_order(self._kmeta, self._slots, order)
        return order

    def _slot(self, key):
        """The slot holding ``key``, or -1."""
        kid, new = self._key_id(key)
        if new is not None:
            return -1
        return int(KM.keymap_find(self._kmeta, self._table, self._slots, kid))

    # ------------------------------------------------------------------ streaming API
    def predict(self, key, x):
        """Return the output for the next step of ``key`` given input ``x``, changing nothing.

        A key that is not held is predicted from the zero state (with the initial weights
        when ``shared=False``), as its first step would be.
        """
        kid, _ = self._key_id(key)
        x = self._as_vector(x, "x", self.input_size)
        out = np.empty(self.output_size, dtype=self._np_dtype)
        code = keyed_predict(*self._pargs, kid, x, out)
        if code:
            self._raise(code, x, None)
        return out

    def learn(self, key, x, y=None):
        """Consume one sample of ``key``; at the key's every k1-th sample, update the weights.

        A new key takes a slot (evicting the least recently used key when all are taken)
        and starts from the zero state. A rejected sample (NaN/inf, wrong shape, bad key)
        raises and changes nothing: no slot is taken, no key is evicted.
        """
        kid, new = self._key_id(key)
        x = self._as_vector(x, "x", self.input_size)
        if y is None:
            y, has_y = self._no_target, False
        else:
            y, has_y = self._as_vector(y, "y", self.output_size), True
        out = np.empty(self.output_size, dtype=self._np_dtype)  # written only for a new key
        code = keyed_step(*self._kargs, kid, x, y, has_y, out, False)
        if code:
            self._raise(code, x, y if has_y else None)
        self._commit_keys("str" if isinstance(key, str) else "int", [] if new is None else [(new, kid)])
        if self._health is not None:
            self._health.poll(self._meta, self._fmeta, 1)

    def run(self, keys, X, Y=None, mask=None):
        """Predict then learn each row in one compiled call; return the predictions.

        Exactly the loop ``P[t] = predict(keys[t], X[t]); learn(keys[t], X[t], Y[t] if
        mask[t] else None)``, evictions included. ``keys`` (T,): ints (the fast path is an
        int64 array) or strings; ``X`` (T, input_size); ``Y`` (T, output_size) or None;
        ``mask`` (T,) bool marks the rows that have a target (default: all rows when Y is
        given). Bad keys or non-finite values in X or Y raise before anything is learned.
        """
        X, Y, mask = self._run_inputs(X, Y, mask)
        n = X.shape[0]
        ids, new, kind = self._key_ids(keys, n)
        out = np.empty((n, self.output_size), dtype=self._np_dtype)
        done = keyed_run_rows(*self._kargs, ids, X, Y, mask, out)
        if done:
            self._commit_keys(kind, [(s, kid) for first, s, kid in new if first < done])
        if self._health is not None:
            self._health.poll(self._meta, self._fmeta, done)
        if done < n:
            self._raise(
                int(self._iwork[L.ERR_CODE]), X[done], Y[done],
                where=f"row {done} (rows before it were learned): ",
            )
        return out

    def reset_state(self, key=None):
        """Forget one key (its slot is freed), or every key when ``key`` is None.

        The weights (shared, or the initial weights of new keys) and the optimizer state
        are kept, and so are the counters; forgetting is not counted as an eviction.
        """
        if key is None:
            KM.keymap_clear(self._kmeta, self._table, self._slots)
            self._key_kind = None
            self._str_ids = {}
        else:
            slot = self._slot(key)
            if slot >= 0:
                KM.keymap_release(self._kmeta, self._table, self._slots, slot)
                if isinstance(key, str):
                    del self._str_ids[key]
        self._iwork[L.CACHE_VALID] = 0
        return self

    # ------------------------------------------------------------------ weights
    def _model(self, key=None):
        """The model ``key`` steps with: the shared one; or the key's own (``shared=False``),
        or the initial one new keys start from (key None or not held)."""
        if self.shared:
            if key is not None:
                self._key_id(key)
            return _ModelView(self, self._meta, self._fmeta, self._mem)
        slot = -1 if key is None else self._slot(key)
        if slot < 0:
            return _ModelView(self, self._init_meta, self._init_fmeta, self._init_mem)
        return _ModelView(self, self._meta[slot], self._fmeta[slot], self._mem[slot])

    @property
    def n_params(self):
        """Parameters of one model (the shared one, or each key's)."""
        return self._layout.n_params

    @property
    def params(self):
        """The flat parameter vector: shared, or (``shared=False``) the one new keys start from."""
        return self._model().params

    def named_parameters(self, key=None):
        """``{torch name: read-only view}`` of the weights ``key`` uses (see ``params``)."""
        return self._model(key).named_parameters()

    def state_dict(self, key=None):
        """Copies of the weights ``key`` uses, under PyTorch's names.

        Shared weights whatever the key; with ``shared=False`` the key's own weights, or
        for ``key=None`` (or a key not held) the weights a new key starts from.
        """
        return self._model(key).state_dict()

    def load_state_dict(self, state_dict, key=None):
        """Set weights from ``{name: array}`` (names and shapes of ``state_dict()``).

        Shared: the shared weights (``key`` must be None). ``shared=False``: ``key=None``
        sets the weights new keys start from (held keys keep theirs); a held key sets
        that key's weights. Optimizer moments and the stream states are kept.
        """
        if key is not None:
            if self.shared:
                raise ValueError("the weights are shared: call load_state_dict(state_dict) without a key")
            if self._slot(key) < 0:
                raise ValueError(f"key {key!r} is not held; load_state_dict(state_dict) without a key sets "
                                 "the weights new keys start from")
        self._model(key).load_state_dict(state_dict)
        return self

    # ------------------------------------------------------------------ state views
    def __len__(self):
        """Keys held."""
        return int(self._kmeta[KM.KM_HELD])

    def __contains__(self, key):
        try:
            return self._slot(key) >= 0
        except (TypeError, ValueError):
            return False

    def keys(self):
        """The keys held, most recently learned first."""
        ids = self._slots[self._held_slots(), KM.SK_KEY].tolist()
        if self._key_kind == "str":
            names = {kid: s for s, kid in self._str_ids.items()}
            return [names[k] for k in ids]
        return ids

    @property
    def steps(self):
        """Samples learned so far, over all keys."""
        return int(self._kmeta[KM.KM_CLOCK])

    def key_steps(self, key):
        """Samples learned by ``key`` since it last started (0 when not held)."""
        slot = self._slot(key)
        return 0 if slot < 0 else int(self._counts[slot, 0])

    def hidden(self, key):
        """A copy of ``key``'s carried state: h, or (h, c) for an LSTM (zeros when not held)."""
        slot = self._slot(key)
        s = self._zero[0].copy() if slot < 0 else self._slab[slot, : self._layout.state_width].copy()
        if self.cell == "lstm":
            return s[: self.hidden_size], s[self.hidden_size :]
        return s

    @property
    def bytes_per_key(self):
        """Bytes of state per slot: the arrays with one row per slot, plus the hash table,
        divided by capacity (the shared weights and scratch are not counted)."""
        per_slot = [self._slab, self._counts, self._slots, self._table]
        if not self.shared:
            per_slot += [self._meta, self._fmeta, self._mem]
        return sum(a.nbytes for a in per_slot) / self.capacity

    def diagnostics(self, key=None):
        """Training health plus the key map's counts.

        Always: ``steps`` (samples learned over all keys), ``keys_held``, ``capacity``,
        ``evictions`` (LRU evictions plus ttl expiries) and ``expired`` (the ttl's share).
        Shared weights: also everything ``StreamRNN.diagnostics`` reports for the model.
        ``shared=False``: ``updates``, ``skipped``, ``clipped`` and ``no_target`` summed
        over the keys held; ``diagnostics(key)`` gives that key's own ``StreamRNN``
        diagnostics (those of a fresh model when it is not held).
        """
        if key is not None:
            if self.shared:
                raise ValueError("per-key diagnostics need shared=False: with shared weights the "
                                 "model's diagnostics are diagnostics()")
            return self._model(key).diagnostics()
        km = self._kmeta
        out = self._model().diagnostics() if self.shared else {}
        out.update(
            steps=int(km[KM.KM_CLOCK]),
            keys_held=int(km[KM.KM_HELD]),
            capacity=self.capacity,
            evictions=int(km[KM.KM_EVICTIONS]),
            expired=int(km[KM.KM_EXPIRED]),
        )
        if not self.shared:
            held = self._held_slots()
            for name, idx in (("updates", L.N_UPDATES), ("skipped", L.N_SKIPPED),
                              ("clipped", L.N_CLIPPED), ("no_target", L.N_NO_TARGET)):
                out[name] = int(self._meta[held, idx].sum())
        return out

    def __repr__(self):
        return (
            f"KeyedStreamRNN(cell={self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"output_size={self.output_size}, k1={self.k1}, k2={self.k2}, loss={self.loss!r}, "
            f"optimizer={self.optimizer!r}, lr={self.lr}, clip={self.clip}, dtype={self.dtype!r}, "
            f"capacity={self.capacity}, ttl={self.ttl}, shared={self.shared})"
        )


def _check_key_extra(keys, where):
    """``(key kind, str -> id dict, next id)`` from a checkpoint's JSON, or CheckpointError."""
    bad = CheckpointError(f"{where}: malformed key bookkeeping in the checkpoint header")
    if not isinstance(keys, dict) or set(keys) != {"key_kind", "str_ids", "next_str_id"}:
        raise bad
    kind, pairs, next_id = keys["key_kind"], keys["str_ids"], keys["next_str_id"]
    if kind not in (None, "int", "str") or type(next_id) is not int or next_id < 0 or not isinstance(pairs, list):
        raise bad
    ids = {}
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) is int):
            raise bad
        ids[pair[0]] = pair[1]
    if len(ids) != len(pairs) or len(set(ids.values())) != len(ids) or any(v < 0 for v in ids.values()):
        raise CheckpointError(f"{where}: duplicate string keys or ids in the checkpoint")
    return kind, ids, next_id


def _check_keymap(kmeta, table, slots, fresh, where, prefix=""):
    """Check a stored key map's structure (so compiled code can walk it safely); return the held slots.

    ``fresh`` is the kmeta of a model built from the stored configuration. Checked: the
    configuration entries, counters in range, the LRU list (a chain of exactly the held
    slots, links consistent), the free list (exactly the other used slots), and the hash
    table (exactly the held slots, each found from its key).
    """
    def fail(what):
        raise CheckpointError(f"{where}: corrupted key map in '{prefix}kmeta'/'{prefix}table'/'{prefix}slots': {what}")

    idx = np.asarray(_KMETA_CONFIG)
    if np.any(kmeta[idx] != fresh[idx]):
        fail("its configuration differs from the stored one")
    cap = int(kmeta[KM.KM_CAPACITY])
    held, fresh_from = int(kmeta[KM.KM_HELD]), int(kmeta[KM.KM_FRESH])
    if not (0 <= held <= fresh_from <= cap) or kmeta[KM.KM_CLOCK] < 0:
        fail("counts out of range")
    if not 0 <= kmeta[KM.KM_EXPIRED] <= kmeta[KM.KM_EVICTIONS]:
        fail("eviction counters out of range")
    prev, nxt = slots[:, KM.SK_PREV], slots[:, KM.SK_NEXT]
    order, seen, s, before = [], np.zeros(cap, dtype=bool), int(kmeta[KM.KM_HEAD]), -1
    while s != -1:
        if not 0 <= s < fresh_from or seen[s] or len(order) >= held or prev[s] != before:
            fail("broken LRU list")
        seen[s] = True
        order.append(s)
        before, s = s, int(nxt[s])
    if len(order) != held or int(kmeta[KM.KM_TAIL]) != before:
        fail("broken LRU list")
    s, n_free = int(kmeta[KM.KM_FREE]), 0
    while s != -1:
        if not 0 <= s < fresh_from or seen[s]:
            fail("broken free list")
        seen[s] = True
        n_free += 1
        s = int(nxt[s])
    if held + n_free != fresh_from:
        fail("used slots are neither held nor free")
    order = np.array(order, dtype=np.int64)
    if table.shape[0] != int(kmeta[KM.KM_MASK]) + 1 or np.any(table < -1) or np.any(table >= cap):
        fail("table entries out of range")
    entries = table[table >= 0]
    if entries.size != held or not np.array_equal(np.sort(entries), np.sort(order)):
        fail("the table does not hold exactly the held slots")
    for slot in order.tolist():
        if KM.keymap_find(kmeta, table, slots, slots[slot, KM.SK_KEY]) != slot:
            fail(f"slot {slot} cannot be found from its key")
    if held and (np.any(slots[order, KM.SK_LAST] < 0) or np.any(slots[order, KM.SK_LAST] > kmeta[KM.KM_CLOCK])):
        fail("last-use clocks out of range")
    return order
