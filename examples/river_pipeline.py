"""A streamrnn estimator in a river pipeline, scored in progressive validation.

``StandardScaler() | RNNRegressor(...)`` is a river model like any other: river's
``evaluate.progressive_val_score`` predicts each sample before learning it. The data set,
TrumpApproval, ships with river. The recurrent model is set against river's linear model
and the last-value baseline on the same samples.

Usage: python examples/river_pipeline.py [N]    (N: samples, default all 1,001)
"""

import itertools
import sys

from river import datasets, evaluate, linear_model, metrics, preprocessing

from streamrnn.adapters.river import RNNRegressor


def main(n=None):
    data = list(itertools.islice(datasets.TrumpApproval(), n))
    rnn = preprocessing.StandardScaler() | RNNRegressor(
        cell="elman", hidden_size=16, k1=1, k2=2, lr=0.003, diff_target=True, seed=42
    )
    linear = preprocessing.StandardScaler() | linear_model.LinearRegression(intercept_lr=0.1)
    results = {}
    for name, model in (("streamrnn RNNRegressor", rnn), ("river LinearRegression", linear)):
        results[name] = evaluate.progressive_val_score(data, model, metrics.MAE()).get()
    last, prev = metrics.MAE(), 0.0
    for _, y in data:
        last.update(y, prev)
        prev = y
    results["last value"] = last.get()
    print(f"TrumpApproval, {len(data)} samples, progressive validation (predict, then learn)")
    for name, mae in results.items():
        print(f"  {name:<24} MAE {mae:.4f}")
    print(f"its engine after learning: {rnn[-1].engine!r}")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
