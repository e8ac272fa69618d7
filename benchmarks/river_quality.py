"""Prequential quality of the river estimators next to river's own models, on river's data sets.

Every model sees each stream once, in order, predicting each sample before learning it
(progressive validation, as ``evaluate.progressive_val_score``). The RNN rows run several
seeds and print the mean and the range; river's models here are deterministic.

* TrumpApproval (MAE): all samples, and from the 2nd sample on (the first prediction of
  every model is made from nothing; the "last value" baseline has none to make).
* AirlinePassengers (MAE): one-step-ahead forecasts from month 13 on (the first year is
  the warm-up a seasonal model needs), and river's ``evaluate.evaluate`` with horizon 12
  (the mean of the 12 horizon MAEs; the first forecasts are made after 12 months).
* Phishing and ImageSegments (accuracy).

Usage: python benchmarks/river_quality.py [--seeds 5]
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from river import datasets, evaluate, linear_model, metrics, preprocessing, time_series

from streamrnn.adapters.river import RNNClassifier, RNNForecaster, RNNRegressor


def prequential_errors(model, data):
    errs = []
    for x, y in data:
        errs.append(abs(model.predict_one(x) - y))
        model.learn_one(x, y)
    return np.array(errs)


class LastValue:
    """Predicts the previous target (0 before the first)."""

    def __init__(self):
        self.last = 0.0

    def predict_one(self, x):
        return self.last

    def learn_one(self, x, y):
        self.last = y


def with_changes(data):
    """Adds each feature's change since the previous sample (a user-side transform)."""
    out, prev = [], None
    for x, y in data:
        xx = dict(x)
        if prev is not None:
            xx.update({f"d_{k}": v - prev[k] for k, v in x.items()})
        prev = x
        out.append((xx, y))
    return out


def spread(values, fmt):
    """'mean (min .. max)' of a list of per-seed results."""
    return f"{fmt(statistics.mean(values))} ({fmt(min(values))} .. {fmt(max(values))})"


def row(name, *columns):
    return "| " + " | ".join([name, *columns]) + " |"


def trump(seeds):
    data = list(datasets.TrumpApproval())
    print("\n### TrumpApproval, MAE (prequential)\n")
    print("| model | all samples | from the 2nd sample |")
    print("|---|---:|---:|")
    river_models = {
        "last value": lambda: LastValue(),
        "StandardScaler \\| LinearRegression": lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
        "TargetStandardScaler(StandardScaler \\| LinearRegression)": lambda: preprocessing.TargetStandardScaler(
            preprocessing.StandardScaler() | linear_model.LinearRegression()
        ),
    }
    for name, make in river_models.items():
        e = prequential_errors(make(), data)
        print(f"| {name} | {e.mean():.4f} | {e[1:].mean():.4f} |")
    rnn_models = {
        "StandardScaler \\| RNNRegressor() (defaults)": (dict(), data),
        "StandardScaler \\| RNNRegressor(elman, H=16, k1=1, k2=2, lr=0.003, diff_target)": (
            dict(cell="elman", hidden_size=16, k1=1, k2=2, lr=0.003, diff_target=True),
            data,
        ),
        "... same, feed_target": (
            dict(cell="elman", hidden_size=16, k1=1, k2=2, lr=0.003, diff_target=True, feed_target=True),
            data,
        ),
        "... same as the 2nd, with feature changes as extra features": (
            dict(cell="elman", hidden_size=16, k1=1, k2=2, lr=0.003, diff_target=True),
            with_changes(data),
        ),
    }
    for name, (cfg, stream) in rnn_models.items():
        alls, seconds = [], []
        for seed in range(seeds):
            e = prequential_errors(preprocessing.StandardScaler() | RNNRegressor(seed=seed, **cfg), stream)
            alls.append(e.mean())
            seconds.append(e[1:].mean())
        f4 = "{:.4f}".format
        print(row(name, spread(alls, f4), spread(seconds, f4)))


def airline(seeds):
    ys = [y for _, y in datasets.AirlinePassengers()]
    series = [({}, y) for y in ys]

    def one_step(model):
        errs = []
        for t, y in enumerate(ys):
            if t >= 13:
                errs.append(abs(model.forecast(1)[0] - y))
            model.learn_one(y)
        return statistics.mean(errs)

    def horizon(model):
        res = evaluate.evaluate(series, model, metrics.MAE(), horizon=12)
        return statistics.mean(m.get() for m in res.metrics)

    print("\n### AirlinePassengers, MAE\n")
    print("| model | one step ahead, from month 13 | horizon 12 (mean of +1..+12) |")
    print("|---|---:|---:|")
    naive = statistics.mean(abs(ys[t - 1] * ys[t - 12] / ys[t - 13] - ys[t]) for t in range(13, len(ys)))
    print(f"| naive y[t-1] * y[t-12] / y[t-13] | {naive:.2f} | - |")
    anchors = {
        "SNARIMAX(p=12, d=1, q=12, m=12, sd=1)": lambda: time_series.SNARIMAX(p=12, d=1, q=12, m=12, sd=1),
        "HoltWinters(0.3, 0.1, 0.6, 12, multiplicative)": lambda: time_series.HoltWinters(
            alpha=0.3, beta=0.1, gamma=0.6, seasonality=12, multiplicative=True
        ),
    }
    for name, make in anchors.items():
        print(f"| {name} | {one_step(make()):.2f} | {horizon(make()):.2f} |")
    cfg = dict(hidden_size=16, k1=4, lr=0.01, d=1, m=12, sd=1, log=True, lags=(1, 12))
    a = [one_step(RNNForecaster(seed=s, **cfg)) for s in range(seeds)]
    b = [horizon(RNNForecaster(seed=s, **cfg)) for s in range(seeds)]
    name = "RNNForecaster(H=16, k1=4, lr=0.01, d=1, m=12, sd=1, log, lags=(1, 12))"
    f2 = "{:.2f}".format
    print(row(name, spread(a, f2), spread(b, f2)))


def classification(seeds):
    print("\n### Classification, accuracy (prequential)\n")
    print("| data set | model | accuracy |")
    print("|---|---|---:|")

    def acc(model, ds):
        return evaluate.progressive_val_score(ds, model, metrics.Accuracy()).get()

    print(
        f"| Phishing | StandardScaler \\| LogisticRegression | "
        f"{acc(preprocessing.StandardScaler() | linear_model.LogisticRegression(), datasets.Phishing()):.4f} |"
    )
    for name, cfg in (
        ("RNNClassifier(H=64, k1=1, sgd, lr=0.2)", dict(hidden_size=64, k1=1, optimizer="sgd", lr=0.2)),
        ("RNNClassifier() (defaults)", dict()),
    ):
        vals = [
            acc(preprocessing.StandardScaler() | RNNClassifier(seed=s, **cfg), datasets.Phishing())
            for s in range(seeds)
        ]
        print(row("Phishing", f"StandardScaler \\| {name}", spread(vals, "{:.4f}".format)))
    print(
        f"| ImageSegments | StandardScaler \\| SoftmaxRegression | "
        f"{acc(preprocessing.StandardScaler() | linear_model.SoftmaxRegression(), datasets.ImageSegments()):.4f} |"
    )
    vals = [
        acc(
            preprocessing.StandardScaler() | RNNClassifier(hidden_size=32, k1=1, k2=2, lr=0.01, seed=s),
            datasets.ImageSegments(),
        )
        for s in range(seeds)
    ]
    name = "StandardScaler \\| RNNClassifier(H=32, k1=1, k2=2, lr=0.01)"
    print(row("ImageSegments", name, spread(vals, "{:.4f}".format)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    t = time.perf_counter()
    print(f"Prequential quality; RNN rows: mean (min .. max) over seeds 0..{a.seeds - 1}")
    trump(a.seeds)
    airline(a.seeds)
    classification(a.seeds)
    print(f"\n({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
