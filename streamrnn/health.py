"""Training health: watch a model's update counters and name what goes wrong, with a remedy.

Recurrent nets fail in known ways. Gradients through T steps multiply T Jacobians
(``diag(1 - h_t^2) W_hh`` for Elman), so they vanish or explode; the symptoms are a loss
that turns non-finite, gradient norms that spike far above their running mean, and
weights whose norm keeps growing. The kernels already record what is needed to see them
(``StreamRNN.diagnostics()``); ``HealthMonitor`` reads those records and logs a warning
through the ``streamrnn`` logger when a symptom appears:

================  =====================================================================
symptom           when
================  =====================================================================
``nonfinite``     an update was skipped: non-finite loss, gradient or weight step
``grad_spike``    gradient norm (before clipping) > ``spike`` x its running mean, after
                  ``warmup`` applied updates
``weight_growth`` the weight norm, sampled every ``window`` applied updates, grew at each
                  of the last ``patience`` samples, by ``growth`` x in total, without
                  slowing down (the later half of the samples gained at least half as
                  much as the earlier half), while the loss's running mean did not fall
                  by 10%: not a model that grows its weights as it learns, but weights
                  that grow without bound, saturate the cell and stall learning
================  =====================================================================

Records are logged at level WARNING, except spikes in a model that clips (``clip`` set),
which are logged at INFO: the remedy is in place and bounds every update. Each carries
the symptom's name as ``record.symptom``. Each symptom is logged at most once per
``quiet`` updates (per level); the events in between are counted (``counts``) and the
next record says how many were not shown.

The monitor reads only the arrays every engine shares (the ``meta`` counters and the
``fmeta`` statistics of ``kernels.layout``), so any engine built on these kernels can
call it: ``poll(meta, fmeta)`` after each call that may have updated the weights. It is
cheap when nothing happened (two integer reads) and does real work only when the update
counters moved.

What a poll can see
-------------------
After one ``learn`` (at most one update), a poll sees that update exactly. After ``run``
(many updates in one compiled call), a poll sees the counters (so every skipped update
is counted) and, if the model keeps a history ring (``history=N``), the last N update
records, which it replays in order: spikes and weight growth are checked per update, as
if ``learn`` had been called. Without a history ring it sees only the last update of the
call: a spike earlier in the call goes unnoticed, and the weight norm is sampled once per
call.

Examples
--------
``StreamRNN(warn=True)`` (the default) keeps a monitor and polls it after every update:

>>> import streamrnn as sr
>>> m = sr.StreamRNN(cell="elman", input_size=1, hidden_size=4, k1=2, lr=0.1)
>>> m.learn([0.5], [0.0])
>>> m.learn([0.5], [1e300])  # the squared error overflows: the update is skipped, and a
>>> m.health.counts          # "nonfinite" warning goes to the streamrnn logger
{'nonfinite': 1, 'grad_spike': 0, 'weight_growth': 0}

Another engine on these kernels does the same with its own arrays:

>>> monitor = HealthMonitor(quiet=0)
>>> monitor.sync(m._meta, m._fmeta)  # start from the counters as they are
>>> m.learn([0.5], [0.0])
>>> m.learn([0.5], [1e300])
>>> monitor.poll(m._meta, m._fmeta, most=2)  # two learn calls: at most two updates
1
>>> monitor.counts["nonfinite"], m.health.counts["nonfinite"]
(1, 2)
"""

import logging
import math
import numbers

import numpy as np

from .kernels import layout as L

LOGGER = logging.getLogger("streamrnn")

SYMPTOMS = ("nonfinite", "grad_spike", "weight_growth")


def _positive(name, value, integer=False, low=0.0):
    if integer:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > low
    if not ok:
        kind = f"an integer >= {low}" if integer else f"a finite number > {low}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


class HealthMonitor:
    """Log named training symptoms, with the usual remedy, from a model's update records.

    Parameters
    ----------
    spike : float
        A gradient norm above ``spike`` times its running mean is a spike.
    warmup : int
        Applied updates before spikes are judged (the running mean needs a few).
    growth : float
        Growth factor of the weight norm over ``patience`` windows that, with growth at
        every window, no slowing down and no progress of the loss (see the table above),
        counts as weights that keep growing.
    window : int
        Applied updates between two samples of the weight norm (and of the loss's
        running mean).
    patience : int
        Consecutive growing windows needed.
    quiet : int
        Updates during which a symptom, once logged, is counted but not logged again.

    Attributes
    ----------
    counts : dict
        Events seen per symptom (logged or not).
    """

    def __init__(self, spike=20.0, warmup=20, growth=1.5, window=500, patience=10, quiet=1000):
        self.spike = _positive("spike", spike, low=1.0)
        self.warmup = _positive("warmup", warmup, integer=True, low=1)
        self.growth = _positive("growth", growth, low=1.0)
        self.window = _positive("window", window, integer=True, low=1)
        self.patience = _positive("patience", patience, integer=True, low=1)
        self.quiet = _positive("quiet", quiet, integer=True, low=0)
        self.counts = dict.fromkeys(SYMPTOMS, 0)
        self._suppressed = {}  # (symptom, level) -> events not logged since the last record
        self._quiet_until = {}  # (symptom, level) -> first update at which to log again
        self._updates = 0  # meta[N_UPDATES] at the last poll
        self._skipped = 0  # meta[N_SKIPPED] at the last poll
        self._ema = 0.0  # fmeta[EMA_GNORM] at the last poll
        self._lema = 0.0  # fmeta[EMA_LOSS] at the last poll
        self._marks = []  # (weight norm, loss running mean) at the last patience + 1 window marks
        self._last_mark = 0  # applied updates at the last mark

    # ------------------------------------------------------------------ polling
    def sync(self, meta, fmeta):
        """Take the current counters as seen, silently (e.g. after the arrays were replaced)."""
        self._updates = meta.item(L.N_UPDATES)
        self._skipped = meta.item(L.N_SKIPPED)
        self._ema = fmeta.item(L.EMA_GNORM)
        self._lema = fmeta.item(L.EMA_LOSS)
        self._marks = []
        self._last_mark = self._updates

    def poll(self, meta, fmeta, most=None):
        """Check the updates made since the last poll; log symptoms; return how many were seen.

        ``most`` is the largest number of updates the caller's last call could have made
        (1 after ``learn``); more than that, or counters that went backwards, means the
        arrays were replaced (a loaded checkpoint), and the monitor syncs silently.
        """
        updates = meta.item(L.N_UPDATES)
        skipped = meta.item(L.N_SKIPPED)
        n_new = (updates - self._updates) + (skipped - self._skipped)
        if n_new == 0:
            return 0
        if updates < self._updates or skipped < self._skipped or (most is not None and n_new > most):
            self.sync(meta, fmeta)
            return 0
        new_skips = skipped - self._skipped
        decay = fmeta.item(L.EMA)
        if n_new == 1:
            # exactly the last update: the kernel's own record, and its EMA before it
            records = [(fmeta.item(L.LAST_LOSS), fmeta.item(L.LAST_GNORM), fmeta.item(L.WNORM), new_skips == 0)]
            ema, lema, n_before, seeded = self._ema, self._lema, self._updates, self.warmup
        elif meta.item(L.HIST) > 0 and meta.item(L.HIST_COUNT) > 0:
            records = self._history(meta, fmeta, n_new)
            if len(records) == n_new:  # every update of the call: replay from the last poll's EMA
                ema, lema, n_before, seeded = self._ema, self._lema, self._updates, self.warmup
            else:  # the ring overflowed: the running means restart at its oldest record
                ema, lema, seeded = None, None, 0
                n_before = updates - sum(r[3] for r in records)
        else:
            # no ring: only the last update; its EMA before it is recovered from the one after
            loss, g, w = fmeta.item(L.LAST_LOSS), fmeta.item(L.LAST_GNORM), fmeta.item(L.WNORM)
            applied = math.isfinite(loss) and math.isfinite(g) and updates > self._updates
            records = [(loss, g, w, applied)]
            n_before = updates - 1 if applied else updates
            ema = (fmeta.item(L.EMA_GNORM) - (1.0 - decay) * g) / decay if applied else None
            lema = (fmeta.item(L.EMA_LOSS) - (1.0 - decay) * loss) / decay if applied else None
            seeded = self.warmup
        at = updates + skipped - len(records)
        if new_skips:
            loss, g = fmeta.item(L.LAST_LOSS), fmeta.item(L.LAST_GNORM)
            what = "the update was" if n_new == 1 else f"{new_skips} of the last {n_new} updates were"
            self._event(
                "nonfinite",
                updates + skipped,
                f"{what} skipped for a non-finite loss, gradient or weight step (last update: "
                f"loss={loss:.4g}, gradient norm={g:.4g}; {skipped} skipped in all). Usual remedies: clip "
                "the gradient (clip=1.0), lower lr, scale inputs and targets to about unit size, or a "
                "gated cell (cell='gru' or 'lstm').",
            )
        clip = fmeta.item(L.CLIP)
        for loss, g, w, applied in records:
            at += 1
            if not applied:
                continue
            judged = ema is not None and n_before >= self.warmup and seeded >= self.warmup and ema > 0.0
            if judged and g > self.spike * ema:
                level = logging.INFO if clip > 0.0 else logging.WARNING
                self._event("grad_spike", at, self._spike_message(g, ema, n_before + 1, clip), level)
            ema = g if (ema is None or n_before == 0) else decay * ema + (1.0 - decay) * g
            lema = loss if (lema is None or n_before == 0) else decay * lema + (1.0 - decay) * loss
            seeded += 1
            n_before += 1
            if n_before // self.window > self._last_mark // self.window:
                self._last_mark = n_before
                self._mark(w, lema, n_before, at)
        self._updates, self._skipped = updates, skipped
        self._ema = fmeta.item(L.EMA_GNORM)
        self._lema = fmeta.item(L.EMA_LOSS)
        return n_new

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _history(meta, fmeta, n_new):
        """The last min(n_new, records kept) history records, oldest first."""
        cap = meta.item(L.HIST)
        take = min(n_new, meta.item(L.HIST_COUNT))
        base = L.F_LAGS + 2 * meta.item(L.K2)
        recs = fmeta[base : base + cap * L.HIST_WIDTH].reshape(cap, L.HIST_WIDTH)
        order = (np.arange(take) + (meta.item(L.HIST_POS) - take)) % cap
        out = []
        for loss, g, _clipped, w in recs[order].tolist():
            out.append((loss, g, w, math.isfinite(loss) and math.isfinite(g)))
        return out

    def _spike_message(self, g, ema, update, clip):
        if clip > 0.0:
            if g > clip:
                first = f"clipping (clip={clip:g}) scaled this update down to norm {clip:g}; if spikes recur, lower lr"
            else:
                first = f"clipping bounds such updates at clip={clip:g} (not reached here); if spikes recur, lower lr"
        else:
            first = f"clip the gradient (e.g. clip={max(2.0 * ema, 1e-12):.2g}, twice the running mean), lower lr"
        return (
            f"gradient norm {g:.4g} at update {update} is {g / ema:.1f}x its running mean {ema:.4g} "
            f"(exploding gradients). Usual remedies: {first}, or a gated cell (cell='gru' or 'lstm'); "
            "a shorter k2 multiplies fewer Jacobians."
        )

    def _mark(self, wnorm, loss_mean, update, at):
        if not (math.isfinite(wnorm) and wnorm > 0.0 and math.isfinite(loss_mean)):
            self._marks = []
            return
        self._marks.append((wnorm, loss_mean))
        del self._marks[: -(self.patience + 1)]
        if len(self._marks) < self.patience + 1:
            return
        w = [m[0] for m in self._marks]
        first_loss, last_loss = self._marks[0][1], self._marks[-1][1]
        half = self.patience // 2
        if (
            all(b > a for a, b in zip(w, w[1:]))
            and w[-1] >= self.growth * w[0]
            and w[-1] - w[-1 - half] >= 0.5 * (w[half] - w[0])
            and last_loss >= 0.9 * first_loss
        ):
            span = self.patience * self.window
            self._event(
                "weight_growth",
                at,
                f"weight norm grew from {w[0]:.4g} to {w[-1]:.4g} over about {span} updates (to update "
                f"{update}), growing at every sample and not slowing down, while the loss did not improve "
                f"(running mean {first_loss:.4g} -> {last_loss:.4g}); weights that grow without bound "
                "saturate the cell and stall learning. Usual remedies: lower lr, weight_decay, clip the "
                "gradient, a gated cell (cell='gru' or 'lstm'), or a longer k2 if the dependencies to "
                "learn are longer than the window.",
            )

    def _event(self, symptom, at, message, level=logging.WARNING):
        self.counts[symptom] += 1
        key = (symptom, level)
        if at < self._quiet_until.get(key, -1):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        hidden = self._suppressed.pop(key, 0)
        self._quiet_until[key] = at + self.quiet
        note = f" ({hidden} more since the last such record)" if hidden else ""
        if self.quiet:
            note += f" [{symptom}: not logged again for {self.quiet} updates]"
        LOGGER.log(level, "%s: %s%s", symptom, message, note, extra={"symptom": symptom})

    def __repr__(self):
        return (
            f"HealthMonitor(spike={self.spike}, warmup={self.warmup}, growth={self.growth}, "
            f"window={self.window}, patience={self.patience}, quiet={self.quiet})"
        )
