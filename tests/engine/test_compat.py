"""What streamrnn 0.1.0 wrote still loads: checkpoints and step states of format 1, and
pickled models, whose ``meta`` lacks the entries added since (derived work offsets).

A 0.1.0 ``meta`` is rebuilt here from a current one exactly as 0.1.0 laid it out: the
entries of ``cells.META_ADDED`` dropped and the work size as it was (the new scratch
region was appended at the end of ``work``, so the old size is where it starts).
"""

import pickle

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import cells, checkpoint
from streamrnn import step as S
from streamrnn.kernels import layout as L
from streamrnn.testing.probe import assert_same_arrays, snapshot

OLD_META_SIZE = L.META_SIZE - len(cells.META_ADDED)


def old_meta(meta):
    old = meta[..., :OLD_META_SIZE].copy()
    old[..., L.W_SIZE] = meta[..., L.W_TGI]
    return old


def stream(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


def engine():
    m = sr.StreamRNN(cell="gru", input_size=3, hidden_size=5, output_size=2, k1=3, k2=7, optimizer="adam",
                     clip=1.0, seed=1, history=4)
    X, Y = stream()
    m.run(X[:40], Y[:40])
    return m


def keyed():
    m = sr.KeyedStreamRNN(cell="lstm", input_size=3, hidden_size=4, output_size=2, k1=3, capacity=4,
                          shared=False, seed=2)
    X, Y = stream()
    m.run(np.arange(40) % 3, X[:40], Y[:40])
    return m


def continue_both(a, b, keyed_model):
    X, Y = stream(seed=1)
    if keyed_model:
        pa = a.run(np.arange(20) % 3, X[:20], Y[:20])
        pb = b.run(np.arange(20) % 3, X[:20], Y[:20])
    else:
        pa, pb = a.run(X[:20], Y[:20]), b.run(X[:20], Y[:20])
    assert pa.tobytes() == pb.tobytes()
    assert_same_arrays(snapshot(a), snapshot(b))


@pytest.mark.parametrize("make", [engine, keyed], ids=["StreamRNN", "KeyedStreamRNN-unshared"])
def test_a_format_1_checkpoint_loads_and_continues_bit_for_bit(make, tmp_path, monkeypatch):
    m = make()
    cls = type(m)
    names = [n for n in ("_meta", "_init_meta") if hasattr(m, n)]
    current = {n: getattr(m, n) for n in names}
    with monkeypatch.context() as mp:  # save as 0.1.0 did: format 1, the old meta
        mp.setattr(checkpoint, "FORMAT_VERSION", 1)
        for n in names:
            mp.setattr(m, n, old_meta(current[n]))
        path = m.save(str(tmp_path / "old.npz"))
    assert checkpoint.read(path).format_version == 1
    assert checkpoint.read(path).arrays["meta"].shape[-1] == OLD_META_SIZE
    loaded = cls.load(path)
    assert_same_arrays(snapshot(loaded), snapshot(m))  # meta as this version lays it out
    continue_both(loaded, m, make is keyed)


def test_a_format_1_step_state_still_steps(monkeypatch):
    config = dict(cell="gru", input_size=2, hidden_size=3, k1=2)
    state = S.initial_state(**config)
    for t in range(5):
        state, _ = S.step(state, ([t / 5, 1.0], [0.1 * t]))
    model = S.decode(state)
    with monkeypatch.context() as mp:
        mp.setattr(checkpoint, "FORMAT_VERSION", 1)
        mp.setattr(model, "_meta", old_meta(model._meta))
        old_state = S.encode(model)
    assert checkpoint.loads(old_state).format_version == 1
    new_state, p_old = S.step(old_state, ([0.3, 1.0], [0.2]))
    ref_state, p_ref = S.step(state, ([0.3, 1.0], [0.2]))
    assert p_old.tobytes() == p_ref.tobytes() and new_state == ref_state


@pytest.mark.parametrize("make", [engine, keyed], ids=["StreamRNN", "KeyedStreamRNN-unshared"])
def test_a_model_pickled_by_0_1_0_unpickles_and_continues_bit_for_bit(make):
    m = make()
    state = m.__getstate__()
    for n in ("_meta", "_init_meta"):
        if n in state:
            state[n] = old_meta(state[n])
    old = type(m).__new__(type(m))
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old._meta.shape == m._meta.shape
    continue_both(old, m, make is keyed)


def test_a_meta_of_any_other_length_is_refused(tmp_path):
    m = engine()
    with pytest.raises(ValueError, match="meta has 40 entries"):
        m._layout.upgrade_meta(m._meta[:40])
    data = open(m.save(str(tmp_path / "m.npz")), "rb").read()
    ck = checkpoint.loads(data)
    arrays = dict(ck.arrays, meta=ck.arrays["meta"][:40])
    fresh = sr.StreamRNN(**ck.config)
    with pytest.raises(sr.CheckpointError, match="array 'meta' is int64 \\(40,\\)"):
        checkpoint.restore_engine(fresh, arrays, "test")
