"""What ``streamrnn run`` learns: records in, one prediction per record out, prequentially.

``StreamModel`` turns records (dicts from ``streamrnn.records``) into features, a target
and a key, standardises the features online, and hands them to a river estimator of
``streamrnn.adapters.river`` (``RNNRegressor``, ``RNNClassifier`` or ``RNNForecaster``).
``run_records`` drives it over a reader: for each record it writes the prediction, made
before the record is learned, as one JSON line, flushed at once.

Columns
-------
The target column is ``target``; the key column (``key``), if any, selects the stream:
one hidden state per key, shared weights. Features are the columns listed in
``features``, or else every column except the target, the key, the ``echo`` columns
(copied to the output as they are) and the ``ignore`` columns. Feature values are
numbers: in CSV, any text ``float()`` reads (an empty field is a missing value); in JSON,
numbers, booleans (0/1), numeric strings, and null (missing). A missing feature counts
as its running mean. A value that is not a finite number makes the record malformed.

Targets: a number for ``regress`` and ``forecast``; a label (text, or a JSON string,
integer or boolean) for ``classify``. A record whose target is empty, null or absent is
predicted but not learned from: the model does not see it at all, so its hidden state
does not move either.

Standardisation (``scale=True``): each feature is replaced by ``(v - mean) / std`` over
the values learned so far (0 while its std is 0), with the running mean and std updated
before learning a record, as river's ``StandardScaler`` does in a pipeline.
"""

import io
import json
import math
import os
import signal
import tempfile

import numpy as np

from . import checkpoint
from .checkpoint import CheckpointError
from .records import RecordError

TASKS = ("regress", "classify", "forecast")
KIND = "streamrnn-run"

# the estimator arguments ``streamrnn run`` exposes, with their defaults
MODEL_DEFAULTS = {
    "cell": "gru",
    "hidden_size": 32,
    "k1": 16,
    "k2": None,
    "optimizer": "adam",
    "lr": 0.005,
    "clip": 1.0,
    "seed": 0,
    "diff_target": False,
    "diff_features": False,
    "feed_target": False,
    "history": 0,
    "capacity": 1024,
}


def _number(value, column):
    """A finite float from a record's value, None for a missing one; raises ValueError."""
    t = type(value)
    if t is str:
        try:
            v = float(value)
        except ValueError:
            if not value.strip():
                return None
            raise ValueError(f"column {column!r} is {value!r:.60}, not a number") from None
    elif t is float:
        v = value
    elif t is int:
        try:
            v = float(value)
        except OverflowError:
            raise ValueError(f"column {column!r} is {value!r:.40}...: too large for a float") from None
    elif value is None:
        return None
    elif t is bool:
        return 1.0 if value else 0.0
    else:
        raise ValueError(f"column {column!r} is {json.dumps(value)[:60]}, not a number")
    if not math.isfinite(v):
        raise ValueError(f"column {column!r} is {value!r:.60}: values must be finite")
    return v


def _label(value, column):
    """A class label from a record's value, None for a missing one; raises ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    raise ValueError(f"column {column!r} is {json.dumps(value)[:60]}, not a label (text, integer or boolean)")


class _Scaler:
    """Running mean and std per feature (Welford): ``stats[name] = (n, mean, m2)``, plain floats."""

    def __init__(self):
        self.stats = {}

    def transform(self, x, stats=None):
        """``x`` standardised by ``stats`` (default: this scaler's); unknown features give 0."""
        stats = self.stats if stats is None else stats
        out = {}
        for name, v in x.items():
            s = stats.get(name)
            if s is None:
                out[name] = 0.0
                continue
            n, mean, m2 = s
            sd = math.sqrt(m2 / n) if n > 0 else 0.0
            out[name] = (v - mean) / sd if sd > 0 else 0.0
        return out

    def updated(self, x):
        """The entries of ``stats`` after learning the values of ``x`` (nothing is changed)."""
        new = {}
        get = self.stats.get
        for name, v in x.items():
            n, mean, m2 = get(name) or (0.0, 0.0, 0.0)
            n += 1.0
            d = v - mean
            mean += d / n
            m2 += d * (v - mean)
            new[name] = (n, mean, m2)
        return new


class StreamModel:
    """Records to features, target and key; a river estimator that learns them online.

    Parameters
    ----------
    task : {"regress", "classify", "forecast"}
        ``RNNRegressor``, ``RNNClassifier``, or ``RNNForecaster`` (one step ahead, the
        other columns as exogenous features).
    target : str
        The target column.
    key : str or None
        The key column: one hidden state per key value (shared weights).
    features : list of str or None
        The feature columns; None: every column but the target, key, echo and ignore ones.
    ignore, echo : list of str
        Columns that are not features; ``echo`` columns are copied into the output.
    scale : bool
        Standardise features online.
    **model
        Estimator arguments (``MODEL_DEFAULTS`` lists them and their defaults).

    Examples
    --------
    >>> m = StreamModel("regress", target="y", echo=["id"], hidden_size=4, k1=2)
    >>> m.parse({"id": "a", "x": "0.5", "z": "", "y": "1.0"}, lineno=2)
    ({'x': 0.5, 'z': None}, 1.0, None)
    >>> try:
    ...     m.parse({"id": "b", "x": "0.5", "z": "high", "y": ""}, lineno=3)
    ... except RecordError as exc:
    ...     print(exc)
    <input>, line 3: column 'z' is 'high', not a number
    >>> x, y, _ = m.parse({"id": "c", "x": "0.5", "z": "2", "y": "1.0"}, lineno=4)
    >>> m.predict(x), m.learned
    ({'prediction': 0.0}, 0)
    >>> m.learn(x, y)
    >>> m.learned
    1
    """

    def __init__(self, task, target, key=None, features=None, ignore=(), echo=(), scale=True, **model):
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        if not isinstance(target, str) or not target:
            raise ValueError(f"target must be a column name, got {target!r}")
        unknown = set(model) - set(MODEL_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown model arguments {sorted(unknown)}")
        self.task = task
        self.target = target
        self.key = key
        self.features = None if features is None else list(features)
        self.ignore = list(ignore)
        self.echo = list(echo)
        self.scale = bool(scale)
        self.model = {**MODEL_DEFAULTS, **model}
        if self.features is not None:
            clash = {target, key} & set(self.features)
            if clash:
                raise ValueError(f"column {sorted(clash, key=str)[0]!r} cannot be both a feature and the target/key")
        self._skip = {target, key, *self.ignore, *self.echo} - {None}
        self.estimator = self._make_estimator()
        self.scaler = _Scaler()
        self.records = 0  # records predicted, over the model's life
        self.learned = 0  # records learned

    def config(self):
        """Everything that defines the model, as JSON data."""
        return {
            "task": self.task,
            "target": self.target,
            "key": self.key,
            "features": self.features,
            "ignore": self.ignore,
            "echo": self.echo,
            "scale": self.scale,
            "model": self.model,
        }

    def _make_estimator(self):
        from .adapters import river as rv

        m = dict(self.model)
        common = {k: m[k] for k in ("cell", "hidden_size", "k1", "k2", "optimizer", "lr", "clip", "seed", "history")}
        if self.key is not None:
            if self.task == "forecast":
                raise ValueError("a key column is not available with task 'forecast' (one series per model)")
            common.update(key=self.key, capacity=m["capacity"])
        if self.task == "regress":
            return rv.RNNRegressor(
                **common, diff_target=m["diff_target"], diff_features=m["diff_features"], feed_target=m["feed_target"]
            )
        for name in ("diff_target", "diff_features", "feed_target"):
            if m[name]:
                raise ValueError(f"{name} applies to task 'regress' only, not {self.task!r}")
        if self.task == "classify":
            return rv.RNNClassifier(**common)
        return rv.RNNForecaster(**common)

    # ------------------------------------------------------------------ records
    def parse(self, record, lineno, name="<input>"):
        """``(features, target, key)`` of a record; raises ``RecordError`` naming the line."""
        try:
            if self.features is None:
                cols = [c for c in record if c not in self._skip]
            else:
                missing = [c for c in self.features if c not in record]
                if missing:
                    raise ValueError(f"the record has no column {missing[0]!r}")
                cols = self.features
            x = {c: _number(record[c], c) for c in cols}
            raw = record.get(self.target)
            y = _label(raw, self.target) if self.task == "classify" else _number(raw, self.target)
            key = None
            if self.key is not None:
                key = record.get(self.key)
                if isinstance(key, str):
                    key = key.strip()
                if key is None or key == "" or isinstance(key, (bool, float, list, dict)):
                    raise ValueError(f"key column {self.key!r} is {json.dumps(key)[:60]}: a key is text or an integer")
        except ValueError as exc:
            raise RecordError(str(exc), lineno, name) from None
        return x, y, key

    def _features(self, x):
        """The feature dict the estimator sees: present values, standardised if ``scale``."""
        present = {c: v for c, v in x.items() if v is not None}
        return self.scaler.transform(present) if self.scale else present

    # ------------------------------------------------------------------ predict / learn
    def predict(self, x, key=None):
        """The output record's prediction fields for features ``x`` (nothing changes)."""
        est, z = self.estimator, self._features(x)
        if self.key is not None:
            z[self.key] = key
        if self.task == "regress":
            return {"prediction": float(est.predict_one(z))}
        if self.task == "forecast":
            return {"prediction": float(est.forecast(1, xs=[z])[0])}
        if est.engine is None:  # no label seen yet
            return {"prediction": None, "proba": {}}
        proba = est.predict_proba_one(z)
        best = max(proba, key=proba.get)
        return {"prediction": best, "proba": {str(k): float(v) for k, v in proba.items()}}

    def learn(self, x, y, key=None):
        """Learn one record (``y`` must not be None).

        A ValueError or TypeError from the estimator (a refused record) leaves the whole
        model, scaler included, as it was.
        """
        present = {c: v for c, v in x.items() if v is not None}
        new = None
        if self.scale:
            new = self.scaler.updated(present)
            present = self.scaler.transform(present, new)
        if self.key is not None:
            present[self.key] = key
        if self.task == "forecast":
            self.estimator.learn_one(y, present)
        else:
            self.estimator.learn_one(present, y)
        if new:
            self.scaler.stats.update(new)
        self.learned += 1

    # ------------------------------------------------------------------ checkpoints
    def save(self, path):
        """Write the whole model to a checkpoint at ``path``, atomically; return ``path``.

        One ``streamrnn.checkpoint`` file of kind ``"streamrnn-run"``: the configuration,
        the record counts, the feature scaler (names in the header, ``(n, mean, m2)`` per
        feature in the array ``scaler``) and the estimator's own checkpoint, embedded whole
        as the bytes of the array ``estimator`` (its own format, checksum included).
        """
        with tempfile.TemporaryDirectory() as tmp:
            inner = os.path.join(tmp, "estimator.ckpt")
            self.estimator.save(inner)
            with open(inner, "rb") as f:
                blob = np.frombuffer(f.read(), dtype=np.uint8)
        names = list(self.scaler.stats)
        stats = np.array([self.scaler.stats[n] for n in names], dtype=np.float64).reshape(len(names), 3)
        extra = {
            "records": self.records,
            "learned": self.learned,
            "scaler_names": names,
            "estimator": type(self.estimator).__name__,
        }
        return checkpoint.write(path, KIND, self.config(), {"estimator": blob, "scaler": stats}, extra=extra)

    @classmethod
    def load(cls, path):
        """Read a model written by ``save``; raises ``FileNotFoundError`` or ``CheckpointError``."""
        where = checkpoint.describe(path)
        ck = checkpoint.read(path, kind=KIND)
        cfg, extra, arrays = ck.config, ck.extra, ck.arrays
        try:
            model = cls(
                task=cfg["task"], target=cfg["target"], key=cfg["key"], features=cfg["features"],
                ignore=cfg["ignore"], echo=cfg["echo"], scale=cfg["scale"], **cfg["model"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: invalid configuration in the checkpoint: {exc}") from None
        est_cls = type(model.estimator)
        names, records, learned = extra.get("scaler_names"), extra.get("records"), extra.get("learned")
        if extra.get("estimator") != est_cls.__name__ or set(arrays) != {"estimator", "scaler"}:
            raise CheckpointError(f"{where}: not the checkpoint of a {est_cls.__name__} run")
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)):
            raise CheckpointError(f"{where}: malformed scaler names in the checkpoint")
        stats = arrays["scaler"]
        if stats.dtype != np.float64 or stats.shape != (len(names), 3) or not np.isfinite(stats).all():
            raise CheckpointError(f"{where}: the scaler array does not fit its {len(names)} names")
        for value in (records, learned):
            if type(value) is not int or value < 0:
                raise CheckpointError(f"{where}: malformed record counts in the checkpoint")
        blob = arrays["estimator"]
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise CheckpointError(f"{where}: the embedded estimator is not a byte array")
        inner = io.BytesIO(blob.tobytes())
        inner.name = f"{where} (embedded {est_cls.__name__})"
        model.estimator = est_cls.load(inner, **model.estimator._get_params())
        model.scaler.stats = {n: tuple(float(v) for v in row) for n, row in zip(names, stats)}
        model.records, model.learned = records, learned
        return model

    def __repr__(self):
        return (
            f"StreamModel(task={self.task!r}, target={self.target!r}, key={self.key!r}, "
            f"records={self.records}, learned={self.learned}, estimator={type(self.estimator).__name__})"
        )


# ---------------------------------------------------------------------------------- loop
class Interrupted(Exception):
    """Raised by a signal handler to stop waiting for input (the record being read is dropped)."""


_SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def run_records(model, reader, out, report, save=None, every=None, strict=False, signals=None, quiet=False, skip=0):
    """Predict, write, then learn each record of ``reader``; return the exit code.

    ``out`` is a text stream: one JSON line per record, flushed at once. ``report(text)``
    receives the messages for stderr (malformed records, checkpoints, the summary).
    ``save``/``every``: the checkpoint path and how many records between checkpoints
    (None: only at the end and when stopped). ``signals`` is the caller's signal guard
    (``signum`` and ``waiting`` attributes; its handler raises ``Interrupted`` while
    ``waiting``). ``skip``: pass over the first ``skip`` records of the input (malformed
    ones count), e.g. those a resumed checkpoint has already seen. Exit codes are those
    of ``streamrnn.cli``.
    """
    records = iter(reader)
    first = skip
    since_save = 0
    consumed = 0  # records of this input handled after the skipped ones (the one --strict stops at excluded)
    malformed = 0
    code = 0
    start = model.records

    def checkpoint_now():
        try:
            model.save(save)
        except OSError as exc:
            report(f"cannot write the checkpoint {save}: {exc}")
            return False
        return True

    while True:
        if signals is not None and signals.signum is not None:
            break
        try:
            if signals is not None:
                signals.waiting = True
            item = next(records, None)
        except Interrupted:
            item = None
        except RecordError as exc:  # the CSV header
            report(str(exc))
            code = 1
            break
        finally:
            if signals is not None:
                signals.waiting = False
        if item is None:
            break
        if skip > 0:
            skip -= 1
            continue
        lineno, record = item
        try:
            if isinstance(record, RecordError):
                raise record
            x, y, key = model.parse(record, lineno, reader.name)
        except RecordError as exc:
            malformed += 1
            if strict:
                report(f"{exc} (--strict: stopping)")
                code = 1
                break
            consumed += 1
            report(f"{exc}; record skipped")
            continue
        fields = model.predict(x, key)
        line = {"n": model.records + 1}
        if model.key is not None:
            line["key"] = key
        for c in model.echo:
            line[c] = record.get(c)
        line.update(fields)
        try:
            out.write(json.dumps(line) + "\n")
            out.flush()
        except BrokenPipeError:
            code = 141
            break
        model.records += 1
        if y is not None:
            try:
                model.learn(x, y, key)
            except (TypeError, ValueError) as exc:
                malformed += 1
                msg = f"{reader.name}, line {lineno}: not learned: {exc}"
                if strict:
                    model.records -= 1  # as if never read: a resumed run predicts it again
                    report(msg + " (--strict: stopping)")
                    code = 1
                    break
                report(msg)
        consumed += 1
        since_save += 1
        if save and every and since_save >= every:
            if not checkpoint_now():
                return 1
            since_save = 0

    stopped = signals.signum if signals is not None else None
    saved = bool(save) and checkpoint_now()
    if save and not saved:
        return 1
    done = model.records - start
    counts = f"{model.records} predicted over the model's life, {model.learned} learned"
    if stopped is not None or code:
        why = {141: "the output was closed"}.get(code, "")
        if stopped is not None:
            why = f"stopped by {_SIGNAL_NAMES.get(stopped, f'signal {stopped}')}"
        elif code == 1:
            why = "stopped"
        where = f"checkpoint: {save}" if saved else "no --save: nothing written"
        report(f"{why} after {consumed} records of this input ({counts}); {where}")
        if saved:
            report(f"to continue on the same input: --resume {save} --skip {first + consumed}")
        return 128 + int(stopped) if stopped is not None else code
    if not quiet or malformed:
        where = f"; checkpoint: {save}" if saved else ""
        report(f"{done} records predicted, {malformed} skipped ({counts}){where}")
    return code
