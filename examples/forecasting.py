"""Forecasting a seasonal series several steps ahead with ``RNNForecaster``.

An hourly series with a daily cycle, a slow drift and noise. At every hour the model
forecasts the next 6 hours, then learns the hour that arrived; each forecast is scored
when its hour comes. Baselines: the last value, and the seasonal naive forecast (the
value 24 hours earlier).

Usage: python examples/forecasting.py [N]    (N: hours, default 3000)
"""

import sys

import numpy as np

from streamrnn.adapters.river import RNNForecaster

HORIZON = 6
PERIOD = 24


def main(n=3000):
    rng = np.random.default_rng(0)
    t = np.arange(n)
    noise = np.convolve(rng.normal(scale=0.3, size=n), np.ones(3) / 3, mode="same")
    series = 20 + 5 * np.sin(2 * np.pi * t / PERIOD) + 2 * np.sin(2 * np.pi * t / (7 * PERIOD)) + noise
    # seasonal differencing (m, sd): the network learns how this hour differs from the same
    # hour yesterday, reading the last two values and the one a period back
    model = RNNForecaster(hidden_size=32, k1=4, k2=24, lr=0.005, d=0, m=PERIOD, sd=1, lags=(1, 2, PERIOD), seed=0)
    errors = {"streamrnn RNNForecaster": [], "last value": [], "seasonal naive": []}
    for i, y in enumerate(series):
        if PERIOD <= i <= n - HORIZON:
            truth = series[i : i + HORIZON]
            errors["streamrnn RNNForecaster"].append(np.abs(np.array(model.forecast(HORIZON)) - truth))
            errors["last value"].append(np.abs(series[i - 1] - truth))
            errors["seasonal naive"].append(np.abs(series[i - PERIOD : i - PERIOD + HORIZON] - truth))
        model.learn_one(float(y))
    half = len(errors["last value"]) // 2
    print(f"{n} hours; at each hour, forecast the next {HORIZON}; MAE over the second half, by horizon")
    print(f"  {'':<26}" + "".join(f"{f'+{h}':>7}" for h in range(1, HORIZON + 1)))
    results = {}
    for name, errs in errors.items():
        mae = np.mean(errs[half:], axis=0)
        results[name] = mae
        print(f"  {name:<26}" + "".join(f"{v:7.3f}" for v in mae))
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
