"""``streamrnn demo``: the whole idea in a minute, offline.

A recurrent network learns river's TrumpApproval data set (FiveThirtyEight's daily
approval rating, with five pollsters' numbers as features; it ships with river) online:
each day it predicts the rating, then learns the truth (progressive validation). The
same loop runs a river model and the last-value baseline; a table compares their errors
and speeds, and a plot, the predictions, the data as CSV and a checkpoint are written.

The network is exactly what ``streamrnn run`` builds from the options printed at the end,
so ``streamrnn run`` on the CSV written here gives the same predictions.
"""

import csv
import datetime
import os
import sys
import time

import numpy as np

from ._version import __version__
from .progress import Progress, Ticker

DATASET = "TrumpApproval"
TARGET = "five_thirty_eight"
# the RNNRegressor doctest's configuration (chosen in benchmarks/river_quality.py): the
# network learns how the changes of the polls move the rating
MODEL = {
    "cell": "gru", "hidden_size": 16, "k1": 1, "k2": 8, "lr": 0.005, "diff_target": True, "diff_features": True,
    "seed": 42,
}
RUN_OPTIONS = "--cell gru --hidden 16 --k 1 --k2 8 --lr 0.005 --diff-target --diff-features --seed 42"
WINDOW = 50  # days in the rolling error


def _warm(cell):
    """Compile (or load from the cache) the kernels the demo calls."""
    from .engine import StreamRNN

    m = StreamRNN(cell=cell, input_size=2, hidden_size=2, k1=1, history=1)
    x = np.zeros(2)
    m.predict(x)
    m.learn(x, np.zeros(1))


def _timed_loop(pairs, predict, learn, bar=None):
    """Prequential loop: predictions (made before learning each pair) and CPU samples/s."""
    preds = np.empty(len(pairs))
    start = time.process_time()
    for i, (x, y) in enumerate(pairs):
        preds[i] = predict(x)
        learn(x, y)
        if bar is not None:
            bar.update()
    elapsed = time.process_time() - start
    return preds, (len(pairs) / elapsed if elapsed > 0 else float("inf"))


def _maes(preds, truth):
    err = np.abs(preds - truth)
    return float(err.mean()), float(err[len(err) // 2 :].mean())


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _rolling(err, window):
    c = np.cumsum(np.r_[0.0, err])
    out = np.empty(len(err))
    for i in range(len(err)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot(path, days, truth, preds, grad_norm, clipped, clip):
    """Write the demo's figure to ``path`` (PNG): prediction vs truth, rolling error, gradient norms.

    ``preds`` maps a label to predictions (the first is the network's). Needs matplotlib
    (imported here, without pyplot: nothing global changes).
    """
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    names = list(preds)
    colors = dict(zip(names, ("tab:blue", "tab:orange", "tab:gray")))
    rnn = preds[names[0]]
    fig = Figure(figsize=(9, 8), dpi=80, layout="constrained")
    axes = fig.subplot_mosaic([["full", "full", "zoom"], ["err", "err", "err"], ["grad", "grad", "grad"]])
    fig.suptitle(f"streamrnn demo: {DATASET}, learned online, one day at a time (progressive validation)")

    # 1. prediction against truth, the whole stream and its last 60 days
    ax = axes["full"]
    ax.plot(days, truth, color="black", lw=1.4, label="truth (FiveThirtyEight)")
    ax.plot(days, rnn, color=colors[names[0]], lw=1.0, label=f"{names[0]}, predicted before learning the day")
    lo, hi = float(truth.min()), float(truth.max())
    pad = 0.1 * (hi - lo) + 0.1
    ax.set_ylim(lo - pad, hi + pad)  # the first prediction (0: nothing learned yet) is off the chart
    ax.set_ylabel("approval rating (%)")
    ax.set_title("Prediction against truth", loc="left", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(labelsize=8)
    zoom = slice(max(0, len(days) - 60), len(days))
    ax = axes["zoom"]
    ax.plot(days[zoom], truth[zoom], color="black", lw=1.4)
    ax.plot(days[zoom], rnn[zoom], color=colors[names[0]], lw=1.0, marker=".", ms=3)
    ax.set_title(f"last {len(days[zoom])} days", loc="left", fontsize=10)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=4))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    ax.tick_params(labelsize=8)

    # 2. rolling absolute error of every model
    ax = axes["err"]
    for name, p in preds.items():
        err = _rolling(np.abs(p[1:] - truth[1:]), WINDOW)
        ax.plot(days[1:], err, color=colors[name], lw=1.2, label=f"{name} (MAE {np.abs(p - truth).mean():.3f})")
    ax.set_yscale("log")
    ax.set_ylabel(f"MAE, last {WINDOW} days")
    ax.set_title("Rolling absolute error, from day 2 (every prediction out-of-sample)", loc="left", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.tick_params(labelsize=8)

    # 3. training health: the gradient norm of each update, from the engine's history ring
    ax = axes["grad"]
    steps = np.arange(1, len(grad_norm) + 1)
    ax.plot(steps, grad_norm, color=colors[names[0]], lw=0.5, alpha=0.8, label="gradient norm, before clipping")
    if len(grad_norm) >= WINDOW:
        med = np.array([np.median(grad_norm[max(0, i - WINDOW + 1) : i + 1]) for i in range(len(grad_norm))])
        ax.plot(steps, med, color="black", lw=1.2, label=f"median of the last {WINDOW}")
    if clip:
        ax.axhline(clip, color="tab:red", lw=1.0, ls="--",
                   label=f"clip = {clip:g}: {int(clipped.sum())} of {len(clipped)} updates scaled down to it")
    ax.set_yscale("log")
    ax.set_xlabel("update (truncated BPTT; one per day here)")
    ax.set_ylabel("global L2 norm")
    ax.set_title("Training health: gradient norm per update, diagnostics()['history']", loc="left", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(labelsize=8)
    fig.savefig(path, pil_kwargs={"optimize": True})


def main(out_dir="streamrnn-output", n=None, plot_png=True, stdout=None, stderr=None):
    """Run the demo; return the exit code (0, or 1 if an output cannot be written)."""
    from .adapters.river import linear_baseline, shipped_dataset
    from .runner import StreamModel

    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr

    def say(text=""):
        out.write(text + "\n")
        out.flush()

    pairs = shipped_dataset(DATASET)
    if n is not None:
        pairs = pairs[:n]
    truth = np.array([y for _, y in pairs])
    days = np.array([datetime.date.fromordinal(int(x["ordinal_date"])) for x, _ in pairs])
    say(f"streamrnn {__version__} demo: {DATASET} (ships with river), {len(pairs):,} days, {days[0]} to {days[-1]}")
    say("Each day a recurrent network predicts FiveThirtyEight's approval rating from five pollsters'")
    say("numbers, then learns the truth: every prediction is made before its day is learned.")
    say()
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        err.write(f"streamrnn demo: cannot create {out_dir}: {exc.strerror}\n")
        return 1

    with Ticker("preparing kernels (compiled on the first run, then cached on disk)", stream=err):
        _warm(MODEL["cell"])

    model = StreamModel("regress", TARGET, history=max(len(pairs), 1), **MODEL)

    def rnn_predict(x):
        return model.predict(x)["prediction"]

    def rnn_learn(x, y):
        model.records += 1
        model.learn(x, y)

    bar = Progress(len(pairs), "learning online", stream=err)
    rnn, rnn_rate = _timed_loop(pairs, rnn_predict, rnn_learn, bar)
    bar.close()

    river_model = linear_baseline()
    lin, lin_rate = _timed_loop(pairs, river_model.predict_one, river_model.learn_one)

    last = {"v": 0.0}

    def last_learn(x, y):
        last["v"] = y

    naive, naive_rate = _timed_loop(pairs, lambda x: last["v"], last_learn)

    rows = [
        (f"streamrnn  {MODEL['cell'].upper()}, H={MODEL['hidden_size']}", rnn, rnn_rate),
        ("river      StandardScaler | LinearRegression", lin, lin_rate),
        ("last value (yesterday's rating)", naive, naive_rate),
    ]
    say(f"{'model':<46}{'MAE':>8}{'MAE, 2nd half':>15}{'samples/s':>12}")
    for name, p, rate in rows:
        mae, mae2 = _maes(p, truth)
        say(f"{name:<46}{mae:>8.3f}{mae2:>15.3f}{rate:>12,.0f}")
    say(f"(mean absolute error in rating points over {len(pairs):,} days, progressive validation; CPU time)")
    say()

    written = []
    try:
        data_path = os.path.join(out_dir, "trump_approval.csv")
        cols = list(pairs[0][0]) if pairs else []
        _write_csv(data_path, cols + [TARGET], ([x[c] for c in cols] + [y] for x, y in pairs))
        written.append((data_path, "the data set as CSV, for streamrnn run"))
        pred_path = os.path.join(out_dir, "predictions.csv")
        _write_csv(
            pred_path,
            ["date", "truth", "streamrnn", "river", "last_value"],
            ([str(d), t, a, b, c] for d, t, a, b, c in zip(days, truth, rnn, lin, naive)),
        )
        written.append((pred_path, "truth and each model's prediction, day by day"))
        ckpt_path = os.path.join(out_dir, "model.ckpt")
        model.save(ckpt_path)
        written.append((ckpt_path, "the model's checkpoint"))
    except OSError as exc:
        err.write(f"streamrnn demo: cannot write to {out_dir}: {exc}\n")
        return 1

    png_path = os.path.join(out_dir, "demo.png")
    skipped = None
    if plot_png:
        hist = model.estimator.engine.diagnostics()["history"]
        try:
            plot(
                png_path, days, truth, {"streamrnn": rnn, "river": lin, "last value": naive},
                hist["grad_norm"], hist["clipped"], model.estimator.clip,
            )
        except ImportError:
            skipped = 'plot skipped: matplotlib is not installed (pip install "streamrnn[plot]")'
        except OSError as exc:
            err.write(f"streamrnn demo: cannot write {png_path}: {exc}\n")
            return 1
        else:
            written.insert(0, (png_path, "the plot"))
    else:
        skipped = "plot skipped (--no-plot)"

    width = max(len(path) for path, _ in written)
    for path, what in written:
        say(f"wrote {path:<{width}}  ({what})")
    if skipped:
        say(skipped)
    say()
    say("Stream the same data through the same model from the shell (same predictions):")
    say(f"  streamrnn run --input {data_path} --target {TARGET} {RUN_OPTIONS}")
    say("Continue learning from the checkpoint on new records:")
    say(f"  streamrnn run --input NEW.csv --resume {ckpt_path}")
    return 0
