"""Classification that needs memory: the label is the XOR of the two previous bits.

A stream of random bits; at each step the label is ``bit[t-1] XOR bit[t-2]``, so the
current sample alone says nothing about it: any model without memory (river's logistic
regression here) stays at chance, 50%. ``RNNClassifier`` carries the past in its hidden
state and learns the rule online, predicting each label before learning it.

Usage: python examples/classification.py [N]    (N: samples, default 4000)
"""

import sys

import numpy as np
from river import linear_model, metrics

from streamrnn.adapters.river import RNNClassifier


def main(n=4000):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, n + 2)
    stream = [({"bit": float(bits[t])}, bool(bits[t - 1] ^ bits[t - 2])) for t in range(2, n + 2)]
    models = {
        "streamrnn RNNClassifier": RNNClassifier(hidden_size=16, k1=1, k2=4, lr=0.01, seed=0),
        "river LogisticRegression": linear_model.LogisticRegression(),
    }
    half = n // 2
    print(f"label = bit[t-1] XOR bit[t-2]; {n} samples, each predicted before it is learned")
    results = {}
    for name, model in models.items():
        first, second = metrics.Accuracy(), metrics.Accuracy()
        for t, (x, y) in enumerate(stream):
            (first if t < half else second).update(y, model.predict_one(x))
            model.learn_one(x, y)
        results[name] = (first.get(), second.get())
        print(f"  {name:<26} accuracy: first half {first.get():6.1%}, second half {second.get():6.1%}")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
