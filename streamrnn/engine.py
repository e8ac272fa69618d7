"""StreamRNN: one recurrent model learning online from one stream by truncated BPTT.

See DESIGN sections 2-5. The model is a few flat arrays (``kernels.layout``); every
method validates in Python only what it must and hands the arrays to one compiled call.
"""

import math
import numbers

import numba
import numpy as np

from . import cells, checkpoint
from ._config import DEFAULT_DTYPE, DTYPES
from .health import HealthMonitor
from .kernels import layout as L
from .kernels.tbptt import learn_step, predict_step, refresh_transposed, reset_stream, run_rows

_ERR_NAMES = {L.ERR_X: "x", L.ERR_Y: "y"}


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_float(name, value, low, high=math.inf, low_open=False, high_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


_ENTRY = {}


def _entry(kernel, dtype, args):
    """The compiled entry point of ``kernel`` for the types of ``args``, cached per ``dtype``.

    Calling it skips numba's per-call type dispatch (about 0.3 us of each per-sample
    call). Only for call sites whose argument types follow from the model dtype alone:
    the model's own arrays and inputs from ``_as_vector``. Cached per process, keyed on
    the dtype, so a model built or decoded anew (``streamrnn.step`` does so per record)
    does not pay for ``numba.typeof`` on every argument again.
    """
    key = (kernel, dtype)
    fn = _ENTRY.get(key)
    if fn is None:
        fn = _ENTRY[key] = kernel.compile(tuple(numba.typeof(a) for a in args))
    return fn


def _own_arrays(obj):
    """After unpickling: make every array attribute of ``obj`` writable and C-contiguous
    (pickle protocol 5 can hand back read-only out-of-band buffers, which the kernels must
    never write through), ``_mem`` 64-byte aligned again (unpickled arrays lose the
    alignment of ``cells.aligned_zeros``; ``_work`` is allocated anew), and the model dtype
    numpy's own dtype object (the fast path of ``predict``/``learn`` compares dtypes by
    identity)."""
    for name, value in list(obj.__dict__.items()):
        if isinstance(value, np.ndarray):
            f = value.flags
            if not (f.writeable and f.c_contiguous) or (name == "_mem" and not cells.is_aligned(value)):
                own = cells.aligned_zeros(value.shape, value.dtype)
                own[...] = value
                setattr(obj, name, own)
    obj._np_dtype = np.dtype(obj.dtype)


def _norm(v):
    """L2 norm without overflow for huge entries."""
    v = np.asarray(v, dtype=np.float64)
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.sqrt(np.sum((v / scale) ** 2)))


class StreamRNN:
    """A recurrent network (Elman, GRU or LSTM) trained online by TBPTT(k1, k2).

    Each ``learn(x, y)`` advances the hidden state by one step and stores the sample in a
    ring buffer; every ``k1`` steps the model re-runs its last ``k2`` steps from the
    stored (detached) start state, backpropagates the mean loss of the target steps among
    the last ``k1``, clips, and updates. ``k1 = k2 = K`` is exactly PyTorch's chunked loop
    ``out, h = rnn(chunk, h); loss.backward(); opt.step(); h = h.detach()``.

    Parameters
    ----------
    cell : {"gru", "lstm", "elman"}
        The recurrent cell; "elman" is ``nn.RNN`` with tanh.
    input_size, hidden_size, output_size : int
        D, H and O.
    k1 : int
        Steps between updates.
    k2 : int or None
        Steps backpropagated per update (>= k1); None means k1.
    loss : {"mse", "bce", "ce"}
        The head: identity with mean squared error, sigmoid with binary log loss, or
        softmax with cross-entropy (targets are probability vectors, e.g. one-hot).
        ``predict`` returns the head's output (value, probability, or distribution).
    optimizer : {"sgd", "adam", "rmsprop"}
        PyTorch's update formulas; the options below default to PyTorch's defaults.
    lr : float
        Learning rate.
    lr_end, lr_tau : float or None
        A decaying learning rate: the t-th update (t = 0, 1, ...) uses
        ``lr_end + (lr - lr_end) * lr_tau / (lr_tau + t)``, from ``lr`` down to ``lr_end``
        (half-way after ``lr_tau`` updates), as PyTorch's ``LambdaLR`` stepped after every
        ``opt.step()`` would. Both None (the default): ``lr`` throughout.
    clip : float or None
        Clip the gradient to this global L2 norm (``clip_grad_norm_``); None: no clipping.
    seed : int
        Seed of the weight init (PyTorch's uniform init bounds).
    dtype : {"float64", "float32"}
        Floating point type of weights, state and buffers.
    momentum, dampening, nesterov, weight_decay : sgd (and rmsprop: momentum, weight_decay)
    betas, eps : adam (eps also for rmsprop)
    alpha, centered : rmsprop
    history : int
        Keep the last ``history`` per-update records (loss, gradient norm, clipped, weight
        norm) for plotting; 0 keeps none.
    ema : float
        Decay of the running means reported by ``diagnostics()``.
    warn : bool
        Log training symptoms (non-finite loss, gradient spikes, weights that keep
        growing), each with its usual remedy, to the ``streamrnn`` logger; see
        ``streamrnn.health``. ``health`` gives the monitor (thresholds, event counts).

    Input policy
    ------------
    ``x`` and ``y`` are sequences or arrays of real numbers of shape (input_size,) and
    (output_size,) (a plain number when the size is 1), converted to ``dtype``. Booleans
    count as numbers, ``True`` as 1.0 and ``False`` as 0.0, so flags can be features and
    ``True``/``False`` can be ``bce`` targets. Everything else is refused with a
    ValueError naming the field (``x``, ``y``, ``X``, ``Y`` or ``mask``) before anything
    changes: NaN or infinity (also values that overflow ``dtype``, such as 1e308 in
    float32), a wrong shape or an empty input, strings, None inside an array, complex
    numbers, objects. A step whose input is finite but so large that the hidden state
    would overflow is refused the same way. A non-finite loss, gradient or update skips
    the update (weights and optimizer state unchanged) and is counted in
    ``diagnostics()["skipped"]``.

    Examples
    --------
    >>> import numpy as np
    >>> import streamrnn as sr
    >>> m = sr.StreamRNN(cell="gru", input_size=1, hidden_size=8, k1=4, optimizer="adam", lr=0.01)
    >>> wave = np.sin(np.arange(1000) / 5.0)
    >>> P = m.run(wave[:-1, None], wave[1:, None])  # predict, then learn, each step
    >>> print(f"MAE of the last 100 predictions: {np.mean(np.abs(P[-100:, 0] - wave[-100:])):.3f}")
    MAE of the last 100 predictions: 0.073
    >>> m.learn([wave[-1]], [np.sin(1000 / 5.0)])
    >>> m.diagnostics()["updates"]
    250
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
        dtype=DEFAULT_DTYPE,
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
    ):
        self.cell = _check_choice("cell", cell, cells.CELLS)
        self.input_size = _check_int("input_size", input_size, 1)
        self.hidden_size = _check_int("hidden_size", hidden_size, 1)
        self.output_size = _check_int("output_size", output_size, 1)
        self.k1 = _check_int("k1", k1, 1)
        self.k2 = self.k1 if k2 is None else _check_int("k2", k2, 1)
        if self.k2 < self.k1:
            raise ValueError(f"k2 must be >= k1 (or None), got k1={self.k1}, k2={self.k2}")
        self.loss = _check_choice("loss", loss, cells.LOSSES)
        if self.loss == "ce" and self.output_size < 2:
            raise ValueError(f"loss='ce' needs output_size >= 2, got {self.output_size}")
        self.optimizer = _check_choice("optimizer", optimizer, cells.OPTIMIZERS)
        self.lr = _check_float("lr", lr, 0.0)
        self.clip = None if clip is None else _check_float("clip", clip, 0.0, low_open=True)
        if (lr_end is None) != (lr_tau is None):
            raise ValueError(f"lr_end and lr_tau go together (a schedule) or are both None, got {lr_end!r}, {lr_tau!r}")
        self.lr_end = None if lr_end is None else _check_float("lr_end", lr_end, 0.0)
        self.lr_tau = None if lr_tau is None else _check_float("lr_tau", lr_tau, 0.0, low_open=True)
        self.seed = _check_int("seed", seed, 0)
        self.dtype = _check_choice("dtype", dtype, DTYPES)
        self.momentum = _check_float("momentum", momentum, 0.0)
        self.dampening = _check_float("dampening", dampening, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0 (as in torch.optim.SGD)")
        self.weight_decay = _check_float("weight_decay", weight_decay, 0.0)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            _check_float("betas[0]", betas[0], 0.0, 1.0, high_open=True),
            _check_float("betas[1]", betas[1], 0.0, 1.0, high_open=True),
        )
        self.eps = _check_float("eps", eps, 0.0)
        self.alpha = _check_float("alpha", alpha, 0.0, 1.0)
        self.centered = bool(centered)
        self.history = _check_int("history", history, 0)
        self.ema = _check_float("ema", ema, 0.0, 1.0, high_open=True)
        self.warn = bool(warn)
        self._build()
        self._health = HealthMonitor() if self.warn else None
        self._poll_in = self.k1  # learn calls until the next TBPTT boundary
        rng = np.random.default_rng(self.seed)
        p0 = cells.init_params(self.cell, self.input_size, self.hidden_size, self.output_size, rng)
        self._mem[: self._layout.n_params] = p0
        refresh_transposed(self._meta, self._mem)

    # ------------------------------------------------------------------ construction
    def _config(self):
        """The constructor arguments, as stored."""
        return {
            "cell": self.cell,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "k1": self.k1,
            "k2": self.k2,
            "loss": self.loss,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "clip": self.clip,
            "seed": self.seed,
            "dtype": self.dtype,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "betas": list(self.betas),
            "eps": self.eps,
            "alpha": self.alpha,
            "centered": self.centered,
            "history": self.history,
            "ema": self.ema,
            "warn": self.warn,
            "lr_end": self.lr_end,
            "lr_tau": self.lr_tau,
        }

    def _build(self, n_streams=1):
        """Allocate zeroed arrays for the current configuration."""
        lay = cells.Layout(
            self.cell,
            self.input_size,
            self.hidden_size,
            self.output_size,
            self.k1,
            self.k2,
            self.optimizer,
            self.history,
        )
        self._layout = lay
        self._np_dtype = np.dtype(self.dtype)
        self._meta = np.zeros(L.META_SIZE, dtype=np.int64)
        lay.fill_meta(self._meta, self.loss, self.nesterov, self.centered)
        self._fmeta = np.zeros(L.fmeta_size(self.k2, self.history), dtype=np.float64)
        f = self._fmeta
        f[L.LR] = self.lr
        f[L.LR_END] = 0.0 if self.lr_end is None else self.lr_end
        f[L.LR_TAU] = 0.0 if self.lr_tau is None else self.lr_tau
        f[L.MOMENTUM] = self.momentum
        f[L.DAMPENING] = self.dampening
        f[L.WEIGHT_DECAY] = self.weight_decay
        f[L.BETA1], f[L.BETA2] = self.betas
        f[L.EPS] = self.eps
        f[L.ALPHA] = self.alpha
        f[L.CLIP] = 0.0 if self.clip is None else self.clip
        f[L.EMA] = self.ema
        f[L.FMAX] = float(np.finfo(self._np_dtype).max)
        self._mem = cells.aligned_zeros(lay.mem_size, self._np_dtype)
        self._slab = np.zeros((n_streams, lay.row_size), dtype=self._np_dtype)
        self._counts = np.zeros((n_streams, 1), dtype=np.int64)
        self._alloc_work()

    def _alloc_work(self):
        self._work = cells.aligned_zeros(self._layout.work_size, self._np_dtype)
        self._iwork = np.zeros(L.IWORK_SIZE, dtype=np.int64)
        self._iwork[L.CACHE_SLOT] = -1
        self._iwork[L.WIN_SLOT] = -1
        self._no_target = np.zeros(self.output_size, dtype=self._np_dtype)
        self._x_shape, self._y_shape = (self.input_size,), (self.output_size,)  # the fast path's checks
        self._predict_fn = self._learn_fn = None  # entry points, found on first use

    def _resize(self, input_size=None, output_size=None):
        """Grow the input layer (D) and/or the output layer (O) in place, keeping what was learned.

        New entries are zero: the new columns of ``weight_ih_l0``, the new rows of
        ``readout.weight`` and entries of ``readout.bias``, their optimizer moments and
        gradient entries, and the new input/target entries of every step in the ring
        buffer. Everything else is copied: weights, moments, hidden state and window start
        states, buffered inputs and targets, counters, statistics and step counts.

        So feeding zeros in new input columns gives exactly the predictions and gradients
        of the model before growing, and a new output row starts at logit 0 (value 0 for
        mse, probability 0.5 for bce, weight ``exp(0)`` in the softmax for ce). Note that
        mse and bce average over outputs, so growing O rescales the loss.
        None keeps a size. Sizes can only grow; a rejected call changes nothing.
        """
        d_old, o_old = self.input_size, self.output_size
        d_new = d_old if input_size is None else _check_int("input_size", input_size, 1)
        o_new = o_old if output_size is None else _check_int("output_size", output_size, 1)
        if d_new < d_old or o_new < o_old:
            raise ValueError(
                f"sizes can only grow: input_size {d_old} -> {d_new}, output_size {o_old} -> {o_new}"
            )
        if (d_new, o_new) == (d_old, o_old):
            return self
        cell, h = self.cell, self.hidden_size
        lay = cells.Layout(cell, d_new, h, o_new, self.k1, self.k2, self.optimizer, self.history)
        meta = self._meta.copy()  # keeps the counters; configuration and offsets rewritten
        lay.fill_meta(meta, self.loss, self.nesterov, self.centered)
        old_sl = cells.param_slices(cell, d_old, h, o_old)
        new_sl = cells.param_slices(cell, d_new, h, o_new)
        mem = cells.aligned_zeros(lay.mem_size, self._np_dtype)
        old_meta = self._meta
        # params, each moment vector and the gradient share the parameter layout
        starts = [(0, 0)]
        starts += [
            (int(old_meta[L.OFF_MOM]) + j * int(old_meta[L.P]), int(meta[L.OFF_MOM]) + j * int(meta[L.P]))
            for j in range(int(meta[L.N_MOM]))
        ]
        starts.append((int(old_meta[L.OFF_GRAD]), int(meta[L.OFF_GRAD])))
        for src0, dst0 in starts:
            for name, (so, shape_o) in old_sl.items():
                sn, shape_n = new_sl[name]
                src = self._mem[src0 + so.start : src0 + so.stop].reshape(shape_o)
                dst = mem[dst0 + sn.start : dst0 + sn.stop].reshape(shape_n)
                dst[tuple(slice(0, s) for s in shape_o)] = src
        n, k2 = self._slab.shape[0], self.k2
        slab = np.zeros((n, lay.row_size), dtype=self._np_dtype)
        xs_o, ys_o, mask_o = (int(old_meta[i]) for i in (L.ROW_XS, L.ROW_YS, L.ROW_MASK))
        xs_n, ys_n, mask_n = (int(meta[i]) for i in (L.ROW_XS, L.ROW_YS, L.ROW_MASK))
        slab[:, :xs_n] = self._slab[:, :xs_o]  # state and window start states
        slab[:, xs_n:ys_n].reshape(n, k2, d_new)[:, :, :d_old] = self._slab[:, xs_o:ys_o].reshape(n, k2, d_old)
        slab[:, ys_n:mask_n].reshape(n, k2, o_new)[:, :, :o_old] = self._slab[:, ys_o:mask_o].reshape(n, k2, o_old)
        slab[:, mask_n : mask_n + k2] = self._slab[:, mask_o : mask_o + k2]
        refresh_transposed(meta, mem)
        # ---- commit: nothing above changed the model ----
        self.input_size, self.output_size = d_new, o_new
        self._layout, self._meta, self._mem, self._slab = lay, meta, mem, slab
        self._alloc_work()
        return self

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_work", "_iwork", "_no_target", "_predict_fn", "_learn_fn", "_x_shape", "_y_shape"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        _own_arrays(self)
        self._meta = self._layout.upgrade_meta(self._meta)  # pickled by 0.1.0: fewer entries
        self._alloc_work()

    # ------------------------------------------------------------------ checkpoints
    _checkpoint_kind = "StreamRNN"

    def save(self, path):
        """Write everything to a checkpoint file at ``path``, atomically; return ``path``.

        The file holds the configuration, the weights, the optimizer moments and step
        count, the carried state (h, and c for an LSTM), the ring buffer with its
        position, the counters and the statistics: ``load`` continues bit for bit as if
        the run had never stopped. It is an ``.npz`` with a JSON header (format in
        ``streamrnn.checkpoint``); no pickle is involved. A failure while writing leaves
        any previous file at ``path`` as it was.

        Examples
        --------
        >>> import os, tempfile
        >>> import streamrnn as sr
        >>> m = sr.StreamRNN(cell="lstm", input_size=2, hidden_size=4, k1=3)
        >>> for t in range(10):
        ...     m.learn([t / 10, 1.0], [t / 20])
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = m.save(os.path.join(tmp.name, "model.npz"))
        >>> m2 = sr.StreamRNN.load(path, cell="lstm")
        >>> m2.steps, bool((m2.predict([0.5, 1.0]) == m.predict([0.5, 1.0])).all())
        (10, True)
        >>> try:
        ...     sr.StreamRNN.load(path, hidden_size=8)
        ... except sr.CheckpointError as exc:
        ...     print(str(exc).replace(path, "<path>"))
        <path>: the checkpoint has hidden_size=4, expected hidden_size=8
        >>> tmp.cleanup()
        """
        return checkpoint.write(path, self._checkpoint_kind, self._config(), checkpoint.engine_arrays(self))

    @classmethod
    def load(cls, path, **expected):
        """Read a model written by ``save`` (``path``: a file name or a binary file object).

        Keyword arguments are constructor arguments the file must match (for example
        ``cell="gru", hidden_size=32``); an unknown name raises TypeError. Raises
        ``FileNotFoundError`` if ``path`` does not exist, and ``streamrnn.CheckpointError``
        (a ValueError) for a truncated, corrupted or foreign file, an unknown format
        version, a checkpoint of another kind, or a configuration other than
        ``expected``. Loading never executes code from the file.
        """
        where = checkpoint.describe(path)
        ck = checkpoint.read(path, kind=cls._checkpoint_kind)
        return checkpoint.construct(cls, ck.config, expected, where)._restore(ck, where)

    def _restore(self, ck, where):
        """Take the engine arrays of checkpoint ``ck`` into this model, freshly built from
        its config (``checkpoint.restore_engine`` checks them and re-aligns the health
        checks); return the model. ``streamrnn.step`` decodes states through it too."""
        unexpected = sorted(set(ck.arrays) - set(checkpoint.ENGINE_ARRAYS))
        if unexpected:
            raise checkpoint.CheckpointError(f"{where}: unexpected arrays {unexpected} in a {self._checkpoint_kind}")
        return checkpoint.restore_engine(self, ck.arrays, where)

    # ------------------------------------------------------------------ input checks
    def _as_vector(self, value, name, size):
        """Convert to a contiguous 1-D array of the model dtype, or raise ValueError."""
        if (
            type(value) is np.ndarray
            and value.dtype == self._np_dtype
            and value.shape == (size,)
            and value.flags.c_contiguous
        ):
            return value
        if isinstance(value, numbers.Real) and size == 1:  # bools included: True is 1.0
            try:
                with np.errstate(over="ignore"):
                    return np.array([value], dtype=self._np_dtype)
            except (OverflowError, TypeError, ValueError):  # ints beyond the float range
                raise ValueError(
                    f"{name} is {value!r:.40} (too large for {self.dtype}); the sample was rejected"
                ) from None
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name} must be a numeric array of shape ({size},): {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} must be numeric (real numbers), got an array of dtype {arr.dtype} ({value!r:.80})"
            )
        if arr.shape != (size,) and not (arr.ndim == 0 and size == 1):
            raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(arr.reshape(size), dtype=self._np_dtype)

    def _raise(self, code, x, y, where=""):
        i = int(self._iwork[L.ERR_INDEX])
        if code in (L.ERR_X, L.ERR_Y):
            name = _ERR_NAMES[code]
            v = (x if code == L.ERR_X else y)[i]
            raise ValueError(
                f"{where}{name}[{i}] is {v} (as {self.dtype}): values must be finite; the sample was rejected"
            )
        if code == L.ERR_Y_DOMAIN:
            if self.loss == "bce":
                raise ValueError(
                    f"{where}y[{i}] is {y[i]}: loss='bce' needs targets in [0, 1]; the sample was rejected"
                )
            raise ValueError(
                f"{where}y is {y!r}: loss='ce' needs non-negative targets with a positive sum (a probability "
                "vector such as one-hot); the sample was rejected"
            )
        raise ValueError(
            f"{where}x made the hidden state non-finite (values too large for {self.dtype}?); the sample was rejected"
        )

    # ------------------------------------------------------------------ streaming API
    def predict(self, x):
        """Return the output for the next step given input ``x``, changing nothing.

        ``x`` has shape (input_size,). The result has shape (output_size,): a value
        (mse), probabilities (bce) or a distribution (ce).
        """
        dt = self._np_dtype
        # ready arrays skip _as_vector; the check is written out here and in learn because a
        # helper call costs 0.2 us per sample (3% of the predict + learn loop, measured)
        if not (type(x) is np.ndarray and x.dtype is dt and x.shape == self._x_shape and x.flags.c_contiguous):
            x = self._as_vector(x, "x", self.input_size)
        out = np.empty(self.output_size, dtype=dt)
        fn = self._predict_fn
        if fn is None:
            args = (self._meta, self._mem, self._slab, 0, self._work, self._iwork, out, out)
            fn = self._predict_fn = _entry(predict_step, self._np_dtype, args)
        code = fn(self._meta, self._mem, self._slab, 0, self._work, self._iwork, x, out)
        if code:
            self._raise(code, x, None)
        return out

    def learn(self, x, y=None):
        """Consume one sample: advance the state; at every k1-th step, update the weights.

        ``y`` (shape (output_size,), or a number when output_size is 1) is the target of
        this step; None means no target (the state still advances). A rejected sample
        (NaN/inf, wrong shape, non-numeric) raises ValueError and changes nothing.
        """
        dt = self._np_dtype
        if not (type(x) is np.ndarray and x.dtype is dt and x.shape == self._x_shape and x.flags.c_contiguous):
            x = self._as_vector(x, "x", self.input_size)
        fn = self._learn_fn
        if fn is None:
            fn = self._learn_fn = _entry(learn_step, self._np_dtype, (
                self._meta, self._fmeta, self._mem, self._slab, self._counts, 0,
                self._work, self._iwork, self._no_target, self._no_target, True,
            ))
        if y is None:
            code = fn(
                self._meta, self._fmeta, self._mem, self._slab, self._counts, 0,
                self._work, self._iwork, x, self._no_target, False,
            )
        else:
            if not (type(y) is np.ndarray and y.dtype is dt and y.shape == self._y_shape and y.flags.c_contiguous):
                y = self._as_vector(y, "y", self.output_size)
            code = fn(
                self._meta, self._fmeta, self._mem, self._slab, self._counts, 0,
                self._work, self._iwork, x, y, True,
            )
        if code:
            self._raise(code, x, y)
        if self._health is not None:
            self._poll_in -= 1
            if self._poll_in <= 0:  # a TBPTT boundary: maybe an update to check
                self._poll_in = self.k1
                self._health.poll(self._meta, self._fmeta, 1)

    def _advance(self, x):
        """Return ``predict(x)`` and move the carried state on to that step's state.

        Nothing is stored in the ring buffer, no step is counted and nothing is learned:
        this rolls a forecast forward on a throwaway copy (``copy.deepcopy(model)``), where
        only ``predict`` and ``_advance`` follow. Learning after it would backpropagate
        from a window whose stored inputs do not lead to the carried state.
        """
        out = self.predict(x)
        s = self._layout.state_width
        c = int(self._meta[L.W_CACHE_S])
        self._slab[0, :s] = self._work[c : c + s]
        self._iwork[L.CACHE_VALID] = 0
        return out

    def _as_rows(self, values, name, width):
        try:
            arr = np.asarray(values)
        except Exception as exc:
            raise ValueError(f"{name} must be a numeric array of shape (T, {width}): {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
        if arr.ndim == 1 and width == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"{name} must have shape (T, {width}), got {arr.shape}")
        with np.errstate(over="ignore"):
            arr = np.ascontiguousarray(arr, dtype=self._np_dtype)
        bad = ~np.isfinite(arr)
        if bad.any():
            t, j = np.argwhere(bad)[0]
            raise ValueError(
                f"{name}[{t}, {j}] is {arr[t, j]} (as {self.dtype}): values must be finite; nothing was learned"
            )
        return arr

    def _run_inputs(self, X, Y, mask):
        """``(X, Y, mask)`` for a compiled loop: checked, converted, Y zeros when None.

        Raises ValueError naming ``X``, ``Y`` or ``mask`` before anything changes.
        """
        X = self._as_rows(X, "X", self.input_size)
        n = X.shape[0]
        has_y = Y is not None
        if has_y:
            Y = self._as_rows(Y, "Y", self.output_size)
            if Y.shape[0] != n:
                raise ValueError(f"Y has {Y.shape[0]} rows but X has {n}")
        else:
            Y = np.zeros((n, self.output_size), dtype=self._np_dtype)
        if mask is None:
            mask = np.full(n, has_y, dtype=np.bool_)
        else:
            try:
                mask = np.asarray(mask)
            except Exception as exc:  # ragged lists and the like
                raise ValueError(f"mask must be a bool array of shape ({n},): {exc}") from None
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(f"mask must be a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
            if not has_y and mask.any():
                raise ValueError("mask marks rows with targets but Y is None")
        return X, Y, mask

    def run(self, X, Y=None, mask=None):
        """Predict then learn each row of ``X`` in one compiled call; return the predictions.

        Exactly the loop ``P[t] = predict(X[t]); learn(X[t], Y[t] if mask[t] else None)``.
        ``X`` (T, input_size); ``Y`` (T, output_size) or None; ``mask`` (T,) bool marks the
        rows that have a target (default: all rows when Y is given). Non-finite values in
        X or Y raise ValueError before anything is learned; an X with no rows returns an
        empty (0, output_size) array and changes nothing. If a row is refused inside the
        loop (a target outside the loss's domain, such as 2.0 for ``bce``, or a step that
        would make the hidden state non-finite) the ValueError names the row, and the rows
        before it stay learned.

        With ``warn=True`` the health checks run once, after the call: every skipped update
        is counted, but only the last update's gradient norm is judged, unless the model
        keeps a history ring (``history=N``), in which case the last N updates are replayed
        and judged one by one, as ``learn`` would (see ``streamrnn.health``).
        """
        X, Y, mask = self._run_inputs(X, Y, mask)
        n = X.shape[0]
        out = np.empty((n, self.output_size), dtype=self._np_dtype)
        done = run_rows(
            self._meta, self._fmeta, self._mem, self._slab, self._counts,
            self._work, self._iwork, X, Y, mask, out,
        )
        if self._health is not None:
            self._health.poll(self._meta, self._fmeta, -(-n // self.k1))
            self._poll_in = self.k1 - self._counts.item(0) % self.k1
        if done < n:
            self._raise(
                int(self._iwork[L.ERR_CODE]), X[done], Y[done],
                where=f"row {done} (rows before it were learned): ",
            )
        return out

    def reset_state(self):
        """Forget the stream: zero the hidden state, the buffer and the step count.

        The weights and the optimizer state are kept.
        """
        reset_stream(self._slab, self._counts, 0, self._iwork)
        self._poll_in = self.k1
        return self

    # ------------------------------------------------------------------ parameters
    @property
    def n_params(self):
        return self._layout.n_params

    @property
    def params(self):
        """The flat parameter vector (read-only view; use ``load_state_dict`` to change it)."""
        v = self._mem[: self._layout.n_params].view()
        v.flags.writeable = False
        return v

    def named_parameters(self):
        """``{torch name: read-only view}`` into the flat parameter vector."""
        flat = self.params
        return {
            name: flat[sl].reshape(shape)
            for name, (sl, shape) in cells.param_slices(
                self.cell, self.input_size, self.hidden_size, self.output_size
            ).items()
        }

    def state_dict(self):
        """Copies of the weights under PyTorch's names (``weight_ih_l0`` ... ``readout.bias``)."""
        return {name: v.copy() for name, v in self.named_parameters().items()}

    def load_state_dict(self, state_dict):
        """Set the weights from ``{name: array}`` with exactly the names and shapes of ``state_dict()``.

        Arrays may be numpy arrays or anything ``np.asarray`` takes (CPU torch tensors too).
        Optimizer moments and the stream state are kept.
        """
        slices = cells.param_slices(self.cell, self.input_size, self.hidden_size, self.output_size)
        missing = set(slices) - set(state_dict)
        extra = set(state_dict) - set(slices)
        if missing or extra:
            raise ValueError(f"state_dict keys differ: missing {sorted(missing)}, unexpected {sorted(extra)}")
        staged = []
        for name, (sl, shape) in slices.items():
            v = state_dict[name]
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            arr = np.asarray(v)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"state_dict[{name!r}] must be numeric, got dtype {arr.dtype}")
            if arr.shape != shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {shape}, got {arr.shape}")
            arr = arr.astype(self._np_dtype)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"state_dict[{name!r}] has non-finite values")
            staged.append((sl, arr.ravel()))
        for sl, arr in staged:
            self._mem[sl] = arr
        refresh_transposed(self._meta, self._mem)
        self._iwork[L.CACHE_VALID] = 0
        self._iwork[L.WIN_SLOT] = -1
        return self

    # ------------------------------------------------------------------ state views
    @property
    def health(self):
        """The ``HealthMonitor`` behind ``warn=True`` (None when warn=False).

        Its thresholds are attributes (``m.health.spike = 20.0``); ``m.health.counts``
        counts the events per symptom, logged or not.
        """
        return self._health

    @property
    def steps(self):
        """Samples learned so far."""
        return int(self._counts[0, 0])

    @property
    def hidden(self):
        """A copy of the carried state: h, or (h, c) for an LSTM."""
        s = self._slab[0, : self._layout.state_width].copy()
        if self.cell == "lstm":
            return s[: self.hidden_size], s[self.hidden_size :]
        return s

    def diagnostics(self):
        """Training health: counts, losses, gradient norms and per-lag gradient flow.

        An *update* is a TBPTT boundary (every k1-th step of the stream) with at least one
        target among its last k1 steps. It re-runs the window of the last
        ``min(k2, steps)`` steps, computes the loss L (mean over those target steps, and
        over outputs for mse) and its gradient, then applies it, or skips it (weights and
        optimizer state kept) if the loss, the gradient or the optimizer step is non-finite.

        Returns a dict:

        - ``steps``: samples learned over the model's life (``reset_state`` does not zero
          it, unlike the ``steps`` property).
        - ``updates``: updates applied. ``skipped``: updates skipped. ``clipped``: applied
          updates whose gradient norm exceeded ``clip`` (and was scaled down to it).
          ``no_target``: boundaries without a target (nothing computed).
        - ``loss``, ``grad_norm``: L and the global L2 norm of its gradient before
          clipping, for the last update, applied or skipped (0.0 before the first).
        - ``loss_ema``, ``grad_norm_ema``: running means over applied updates: the first
          sets them, each next one does ``mean = ema * mean + (1 - ema) * value``.
        - ``weight_norm``: the L2 norm of all parameters now.
        - ``lag_grad_norm``: array (k2,); entry k is ``||dL/dh_{t-k}||`` for the last
          update, where t is the last step of its window and ``h_{t-k}`` the hidden state
          after step t-k (h only, not an LSTM's cell state c): the whole gradient reaching
          that state, through its own readout and through the later steps, before
          clipping. Entries at lags beyond the window (early in the stream) are 0. With a
          single target, at the last step, ``lag_grad_norm[k] / lag_grad_norm[0]`` is
          what k backward steps (k Jacobians) leave of the gradient: how fast it vanishes
          or explodes with the lag (``examples/vanishing_gradients.py``).
        - ``lag_grad_norm_ema``: its running mean over applied updates (as above, per lag).
        - ``history`` (only with ``history=N``): a dict of arrays, oldest first, with one
          entry per update, applied or skipped, for the last N: ``loss``, ``grad_norm``,
          ``clipped`` (bool) and ``weight_norm`` (after the update; a skipped update
          repeats the previous value).

        Examples
        --------
        >>> import numpy as np
        >>> import streamrnn as sr
        >>> m = sr.StreamRNN(cell="elman", input_size=1, hidden_size=4, k1=4, k2=8, lr=0.01)
        >>> m.run(np.ones((20, 1)), np.zeros((20, 1))).shape
        (20, 1)
        >>> d = m.diagnostics()
        >>> d["updates"], d["skipped"], d["clipped"], d["lag_grad_norm"].shape
        (5, 0, 0, (8,))
        """
        m, f, k2 = self._meta, self._fmeta, self.k2
        out = {
            "steps": int(m[L.N_STEPS]),
            "updates": int(m[L.N_UPDATES]),
            "skipped": int(m[L.N_SKIPPED]),
            "clipped": int(m[L.N_CLIPPED]),
            "no_target": int(m[L.N_NO_TARGET]),
            "loss": float(f[L.LAST_LOSS]),
            "loss_ema": float(f[L.EMA_LOSS]),
            "grad_norm": float(f[L.LAST_GNORM]),
            "grad_norm_ema": float(f[L.EMA_GNORM]),
            "weight_norm": _norm(self.params),
            "lag_grad_norm": f[L.F_LAGS : L.F_LAGS + k2].copy(),
            "lag_grad_norm_ema": f[L.F_LAGS + k2 : L.F_LAGS + 2 * k2].copy(),
        }
        if self.history:
            n = int(m[L.HIST_COUNT])
            recs = f[L.F_LAGS + 2 * k2 :].reshape(self.history, L.HIST_WIDTH)
            order = (np.arange(n) + (int(m[L.HIST_POS]) - n)) % self.history
            recs = recs[order]
            out["history"] = {
                "loss": recs[:, 0].copy(),
                "grad_norm": recs[:, 1].copy(),
                "clipped": recs[:, 2].astype(bool),
                "weight_norm": recs[:, 3].copy(),
            }
        return out

    def __repr__(self):
        return (
            f"StreamRNN(cell={self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"output_size={self.output_size}, k1={self.k1}, k2={self.k2}, loss={self.loss!r}, "
            f"optimizer={self.optimizer!r}, lr={self.lr}, clip={self.clip}, dtype={self.dtype!r})"
        )
