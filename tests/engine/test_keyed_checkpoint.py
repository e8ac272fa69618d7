"""KeyedStreamRNN checkpoints: resume bit for bit in a new process (shared and unshared, int
and string keys, evictions on both sides of the save), and refusal of broken key maps."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import checkpoint
from streamrnn.kernels import keymap as KM
from streamrnn.testing.probe import assert_same_arrays, snapshot

N = 240
CASES = [(shared, kind) for shared in (True, False) for kind in ("int", "str")]


def make(shared, **kw):
    cfg = dict(cell="gru", input_size=3, hidden_size=4, output_size=2, k1=3, k2=5, optimizer="adam", lr=0.02,
               clip=1.0, seed=5, capacity=4, ttl=7, shared=shared, history=3)
    cfg.update(kw)
    return sr.KeyedStreamRNN(**cfg)


def stream(seed, kind):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 7, N)
    keys = ids if kind == "int" else np.array([f"key-{i}" for i in ids])
    return keys, rng.normal(size=(N, 3)), rng.normal(size=(N, 2)), rng.uniform(size=N) < 0.8


def feed(m, keys, X, Y, mask, start, stop):
    out = []
    for t in range(start, stop):
        k = str(keys[t]) if keys.dtype.kind == "U" else int(keys[t])
        out.append(m.predict(k, X[t]))
        m.learn(k, X[t], Y[t] if mask[t] else None)
    return np.array(out).reshape(-1, 2)


CHILD = r"""
import json, sys
import numpy as np
import streamrnn as sr
sys.path.insert(0, sys.argv[2])
from tests.engine.test_keyed_checkpoint import feed, stream, N

for job in json.load(open(sys.argv[1])):
    keys, X, Y, mask = stream(job["seed"], job["kind"])
    m = sr.KeyedStreamRNN.load(job["checkpoint"], shared=job["shared"])
    np.save(job["predictions"], feed(m, keys, X, Y, mask, job["start"], N))
    m.save(job["final"])
"""


def test_resume_in_a_new_process_is_bit_for_bit(tmp_path, request):
    rng = np.random.default_rng(3)
    jobs, expected = [], []
    for i, (shared, kind) in enumerate(CASES):
        keys, X, Y, mask = stream(i, kind)
        start = int(rng.integers(40, N - 40))
        m = make(shared)
        feed(m, keys, X, Y, mask, 0, start)
        assert m.diagnostics()["evictions"] > 0
        m.predict(keys[start].item(), X[start])  # a live predict cache at the save must not matter
        path = m.save(tmp_path / f"k{i}.npz")
        later = feed(m, keys, X, Y, mask, start, N)
        expected.append((later, m))
        jobs.append(dict(seed=i, kind=kind, shared=shared, start=start, checkpoint=str(path),
                         predictions=str(tmp_path / f"p{i}.npy"), final=str(tmp_path / f"f{i}.npz")))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "jobs.json"), str(request.config.rootpath)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for i, (later, m) in enumerate(expected):
        got = np.load(tmp_path / f"p{i}.npy")
        assert got.tobytes() == later.tobytes(), f"case {CASES[i]}: predictions differ"
        assert (tmp_path / f"f{i}.npz").read_bytes() == m.save(tmp_path / f"e{i}.npz").read_bytes(), CASES[i]
        resumed = sr.KeyedStreamRNN.load(tmp_path / f"f{i}.npz")
        assert_same_arrays(snapshot(resumed), snapshot(m))
        assert resumed.keys() == m.keys() and resumed._str_ids == m._str_ids
        assert resumed._next_str_id == m._next_str_id and resumed._key_kind == m._key_kind
        d, e = resumed.diagnostics(), m.diagnostics()
        assert d["evictions"] == e["evictions"] > 10 and d["updates"] == e["updates"] > 0


@pytest.mark.parametrize("shared", [True, False])
def test_fresh_and_reset_models_round_trip(shared, tmp_path):
    m = make(shared)
    assert_same_arrays(snapshot(sr.KeyedStreamRNN.load(m.save(tmp_path / "a.npz"))), snapshot(m))
    keys, X, Y, mask = stream(1, "str")
    feed(m, keys, X, Y, mask, 0, 50)
    m.reset_state()
    loaded = sr.KeyedStreamRNN.load(m.save(tmp_path / "b.npz"))
    assert_same_arrays(snapshot(loaded), snapshot(m))
    assert loaded._key_kind is None and len(loaded) == 0
    loaded.learn(3, X[0])  # the key kind is free again
    assert loaded.keys() == [3]


@pytest.fixture(params=[True, False], ids=["shared", "unshared"])
def saved(request, tmp_path):
    m = make(request.param)
    keys, X, Y, mask = stream(2, "str")
    feed(m, keys, X, Y, mask, 0, 60)
    data = m.save(tmp_path / "k.npz").read_bytes()
    return m, checkpoint.read(io.BytesIO(data))


def forged(tmp_path, ck, arrays=None, extra=None, config=None):
    return checkpoint.write(tmp_path / "forged.npz", ck.kind, config or ck.config,
                            {**ck.arrays, **(arrays or {})}, extra=extra or ck.extra)


def test_broken_key_maps_and_key_tables_are_refused(saved, tmp_path):
    m, ck = saved
    slots, kmeta, table = ck.arrays["slots"], ck.arrays["kmeta"], ck.arrays["table"]
    held = np.flatnonzero(table >= 0)
    cases = []
    s = slots.copy()
    s[kmeta[KM.KM_HEAD], KM.SK_NEXT] = kmeta[KM.KM_HEAD]  # a cycle
    cases.append(({"slots": s}, "broken LRU list"))
    k = kmeta.copy()
    k[KM.KM_HELD] += 1
    cases.append(({"kmeta": k}, "broken LRU list|neither held nor free|counts out of range"))
    k = kmeta.copy()
    k[KM.KM_TTL] = 99
    cases.append(({"kmeta": k}, "configuration differs"))
    t = table.copy()
    t[:] = -1
    cases.append(({"table": t}, "does not hold exactly the held slots"))
    t = table.copy()
    t[held[0]], t[(held[0] + 1) % t.size] = -1, table[held[0]]  # moved out of its probe run
    if table[(held[0] + 1) % t.size] < 0:
        cases.append(({"table": t}, "cannot be found from its key"))
    s = slots.copy()
    s[table[held[0]], KM.SK_LAST] = kmeta[KM.KM_CLOCK] + 5
    cases.append(({"slots": s}, "last-use clocks"))
    c = ck.arrays["counts"].copy()
    c[0, 0] = -1
    cases.append(({"counts": c}, "counters out of range|negative counts"))
    for arrays, match in cases:
        with pytest.raises(sr.CheckpointError, match=match):
            sr.KeyedStreamRNN.load(forged(tmp_path, ck, arrays=arrays))
    keys = ck.extra["keys"]
    for bad, match in [
        (dict(keys, str_ids=keys["str_ids"][1:] + keys["str_ids"][:1] * 2), "duplicate string keys"),
        (dict(keys, str_ids=[]), "held string key has no entry"),
        (dict(keys, next_str_id=0), "next string id must exceed"),
        (dict(keys, key_kind="float"), "malformed key bookkeeping"),
        (dict(keys, key_kind=None), "keys are held but the checkpoint has no key kind"),
        ({"key_kind": "str"}, "malformed key bookkeeping"),
    ]:
        with pytest.raises(sr.CheckpointError, match=match):
            sr.KeyedStreamRNN.load(forged(tmp_path, ck, extra={"keys": bad}))


def test_wrong_shapes_kinds_and_configurations_are_refused(saved, tmp_path):
    m, ck = saved
    with pytest.raises(sr.CheckpointError, match="a different cell, size or capacity"):
        sr.KeyedStreamRNN.load(forged(tmp_path, ck, config=dict(ck.config, capacity=5)))
    with pytest.raises(sr.CheckpointError, match="the checkpoint has shared="):
        sr.KeyedStreamRNN.load(forged(tmp_path, ck), shared=not m.shared)
    with pytest.raises(sr.CheckpointError, match="kind 'KeyedStreamRNN', expected 'StreamRNN'"):
        sr.StreamRNN.load(tmp_path / "k.npz")
    mem = ck.arrays["init_mem" if not m.shared else "mem"].copy()
    mem[0] = np.nan
    with pytest.raises(sr.CheckpointError, match="non-finite parameters"):
        sr.KeyedStreamRNN.load(forged(tmp_path, ck, arrays={"init_mem" if not m.shared else "mem": mem}))
    with pytest.raises(sr.CheckpointError, match=r"unexpected arrays \['other'\]"):
        sr.KeyedStreamRNN.load(forged(tmp_path, ck, arrays={"other": np.zeros(1)}))
    data = (tmp_path / "k.npz").read_bytes()
    for n in (0, 50, len(data) // 2, len(data) - 1):
        with pytest.raises(sr.CheckpointError):
            sr.KeyedStreamRNN.load(io.BytesIO(data[:n]))
