"""Hypothesis: the keyed model's eviction policy equals an OrderedDict reference, and
rejected samples never touch it, for any capacity, ttl and sequence of operations."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import streamrnn as sr
from streamrnn.testing.keymap import KeyMapRef

KEYS = st.sampled_from([0, 1, 2, 3, 4, 5, -1, 2**63 - 1, -(2**63), 1 << 40])
OPS = st.lists(
    st.tuples(st.sampled_from(["learn", "learn", "learn", "bad", "predict", "forget"]), KEYS),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 5), ttl=st.one_of(st.none(), st.integers(1, 6)), ops=OPS,
       run=st.booleans())
def test_policy_matches_reference(capacity, ttl, ops, run):
    m = sr.KeyedStreamRNN(cell="elman", input_size=1, hidden_size=2, k1=2, capacity=capacity, ttl=ttl)
    ref = KeyMapRef(capacity, ttl)
    for op, key in ops:
        if op == "learn":
            new = ref.learn(key)
            steps = 1 if new else m.key_steps(key) + 1
            if run:
                m.run(np.array([key]), [[0.5]], [[0.1]])
            else:
                m.learn(key, [0.5], [0.1])
            assert m.key_steps(key) == steps
        elif op == "bad":
            try:
                m.learn(key, [float("nan")])
            except ValueError:
                pass
            else:
                raise AssertionError("a NaN input was accepted")
        elif op == "predict":
            m.predict(key, [0.5])
        else:
            m.reset_state(key)
            ref.forget(key)
        assert m.keys() == ref.keys()
        d = m.diagnostics()
        assert (d["evictions"], d["expired"], d["keys_held"], d["steps"]) == (
            ref.evictions, ref.expired, len(ref.last), ref.clock)
