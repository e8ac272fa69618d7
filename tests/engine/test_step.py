"""The engine-neutral step: state bytes, ``step`` == a model's loop, ``shared_step`` == a
keyed slab, and hostile bytes rejected before any kernel sees them."""

import io
import json
import zipfile

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import step as S
from streamrnn.kernels import layout as L
from streamrnn.testing.probe import assert_same_arrays, snapshot

CFG = dict(cell="gru", input_size=3, hidden_size=5, output_size=2, k1=4, k2=7, lr=0.05, clip=1.0, seed=3)


def records(rng, T=60, D=3, O=2, p_target=0.7):
    X = rng.normal(size=(T, D))
    Y = np.tanh(np.cumsum(X[:, :O], axis=0) / 4.0)
    has = rng.uniform(size=T) < p_target
    return [(X[t], Y[t] if has[t] else None) for t in range(T)]


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k2", [4, 7])
def test_step_loop_equals_the_model_loop_bit_for_bit(cell, dtype, k2, rng):
    cfg = dict(CFG, cell=cell, dtype=dtype, k2=k2, optimizer="adam")
    m = sr.StreamRNN(**cfg)
    s = S.initial_state(**cfg)
    for x, y in records(rng):
        s, out = S.step(s, (x, y))
        expected = m.predict(x)
        m.learn(x, y)
        assert out.dtype == np.dtype(dtype) and out.tobytes() == expected.tobytes()
    assert m.diagnostics()["updates"] >= 10
    assert_same_arrays(snapshot(S.decode(s)), snapshot(m))
    assert S.encode(m) == s


def test_state_bytes_are_deterministic_and_round_trip(rng):
    s = S.initial_state(**CFG)
    for rec in records(rng, T=9):
        s, _ = S.step(s, rec)
    assert S.encode(S.decode(s)) == s
    again = S.initial_state(**CFG)
    for rec in records(np.random.default_rng(12345), T=9):
        again, _ = S.step(again, rec)
    assert again == s
    assert S.step(s, records(rng, T=1)[0])[0] != s


def test_step_leaves_its_input_alone_and_rejects_bad_records(rng):
    s = S.initial_state(**CFG)
    s1, _ = S.step(s, records(rng, T=1)[0])
    for bad, match in [
        (([np.nan, 0, 0], None), r"x\[0\] is nan"),
        (([0, 0, 0], [0, np.inf]), r"y\[1\] is inf"),
        (([0, 0], None), r"x must have shape \(3,\)"),
        (([0, 0, 0],), "record must be a pair"),
        ("abc", "record must be a pair"),
    ]:
        with pytest.raises(ValueError, match=match):
            S.step(s1, bad)
    assert S.step(s1, ([0, 0, 0], None))[0] == S.step(s1, ([0, 0, 0], None))[0]


def _archive(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {n: z[n] for n in z.files}


def _rebuild(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _with_header(arrays, **changes):
    header = json.loads(arrays["header"].tobytes().decode())
    header.update(changes)
    out = dict(arrays)
    out["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return out


def test_hostile_state_bytes_raise_before_any_kernel_runs(rng):
    s = S.initial_state(**CFG)
    s, _ = S.step(s, records(rng, T=1)[0])
    arrays = _archive(s)
    meta = arrays["_meta"].copy()
    meta[L.ROW_SIZE] += 1
    short_mem = dict(arrays, _mem=arrays["_mem"][:-1])
    neg = arrays["_meta"].copy()
    neg[L.N_STEPS] = -1
    lr = arrays["_fmeta"].copy()
    lr[L.LR] = 0.5
    cases = [
        (s[: len(s) // 2], "truncated, corrupted or not a streamrnn state"),
        (b"not a zip at all", "truncated, corrupted or not a streamrnn state"),
        (s[:200] + bytes([s[200] ^ 1]) + s[201:], "truncated, corrupted|does not match|not a streamrnn"),
        (_rebuild({"a": np.zeros(3)}), r"missing \['_counts', '_fmeta', '_mem', '_meta', '_slab', 'header'\]"),
        (_rebuild(_with_header(arrays, format="other")), "format 'other'"),
        (_rebuild(_with_header(arrays, version=99)), "format version 99"),
        (_rebuild(_with_header(arrays, config={**CFG, "bogus": 1})), "unknown config"),
        (_rebuild(_with_header(arrays, config={**CFG, "hidden_size": 0})), "hidden_size must be"),
        (_rebuild(dict(arrays, _meta=meta)), rf"_meta\[{L.ROW_SIZE}\]"),
        (_rebuild(short_mem), r"_mem is float64\(\d+,\), the config needs"),
        (_rebuild(dict(arrays, _meta=neg)), "negative counters"),
        (_rebuild(dict(arrays, _fmeta=lr)), "hyper-parameters"),
        (_rebuild(dict(arrays, _slab=np.array([object()] * 3))), "truncated, corrupted|not a streamrnn|pickle"),
    ]
    for data, match in cases:
        with pytest.raises(ValueError, match=match):
            S.decode(data)
    with pytest.raises(TypeError, match="state must be bytes"):
        S.decode("text")
    with pytest.raises(TypeError, match="model must be a StreamRNN"):
        S.encode(object())


def test_state_holds_no_pickle(rng):
    s, _ = S.step(S.initial_state(**CFG), records(rng, T=1)[0])
    with zipfile.ZipFile(io.BytesIO(s)) as zf:
        names = sorted(zf.namelist())
        assert names == ["_counts.npy", "_fmeta.npy", "_mem.npy", "_meta.npy", "_slab.npy", "header.npy"]
        for name in names:
            assert b"'descr': '|O'" not in zf.read(name)[:128]


# ---------------------------------------------------------------------- shared weights
def keyed_reference(cfg, keyed_records):
    """One model with shared weights and one stream per key: ``KeyedStreamRNN.run``."""
    keys = sorted({k for k, _ in keyed_records})
    m = sr.KeyedStreamRNN(**cfg, capacity=len(keys))
    X = np.array([r[0] for _, r in keyed_records], dtype=m._np_dtype)
    Y = np.array([r[1] if r[1] is not None else np.zeros(m.output_size) for _, r in keyed_records], dtype=m._np_dtype)
    mask = np.array([r[1] is not None for _, r in keyed_records])
    out = m.run([k for k, _ in keyed_records], X, Y, mask=mask)
    return m, {k: m._slot(k) for k in keys}, out


@pytest.mark.parametrize("cell,k1,k2", [("gru", 4, 4), ("lstm", 3, 7), ("elman", 5, 5)])
def test_shared_step_equals_one_model_with_a_row_per_key(cell, k1, k2, rng):
    cfg = dict(CFG, cell=cell, k1=k1, k2=k2, optimizer="sgd", momentum=0.9)
    keyed = [(f"k{int(k)}", r) for k, r in zip(rng.integers(0, 4, 90), records(rng, T=90))]
    ref, slot, ref_out = keyed_reference(cfg, keyed)
    shared = S.initial_shared(**cfg)
    rows = {}
    for t, (key, rec) in enumerate(keyed):
        shared, rows[key], out = S.shared_step(shared, rows.get(key), rec)
        assert out.tobytes() == ref_out[t].tobytes(), t
    assert ref.diagnostics()["updates"] >= 10
    model = S.decode(shared)
    assert not model._slab.any() and not model._counts.any()
    for name in ("_meta", "_fmeta", "_mem"):
        assert getattr(model, name).tobytes() == getattr(ref, name).tobytes(), name
    for key, row in rows.items():
        m = S.decode(shared)
        S._load_row(m, row)
        assert m._slab[0].tobytes() == ref._slab[slot[key]].tobytes()
        assert S.row_steps(row) == ref._counts[slot[key], 0] == sum(k == key for k, _ in keyed)


def test_shared_step_with_one_key_is_the_plain_step(rng):
    s = S.initial_state(**CFG)
    w, row = S.initial_shared(**CFG), None
    for rec in records(rng, T=30):
        s, out = S.step(s, rec)
        w, row, out2 = S.shared_step(w, row, rec)
        assert out.tobytes() == out2.tobytes()
    m = S.decode(w)
    S._load_row(m, row)
    assert_same_arrays(snapshot(m), snapshot(S.decode(s)))


def test_rows_that_do_not_fit_the_shared_model_are_rejected(rng):
    w, row, _ = S.shared_step(S.initial_shared(**CFG), None, records(rng, T=1)[0])
    other, _, _ = S.shared_step(S.initial_shared(**dict(CFG, hidden_size=6)), None, records(rng, T=1)[0])
    _, other_row, _ = S.shared_step(other, None, records(rng, T=1)[0])
    with pytest.raises(ValueError, match="the shared model needs"):
        S.shared_step(w, other_row, records(rng, T=1)[0])
    with pytest.raises(ValueError, match="format 'streamrnn.state'"):
        S.shared_step(w, w, records(rng, T=1)[0])
    with pytest.raises(ValueError, match="format 'streamrnn.row'"):
        S.shared_step(row, None, records(rng, T=1)[0])


def test_every_single_byte_corruption_is_rejected_or_harmless(rng):
    """Flip each byte of a state in turn: decoding either raises ValueError or gives the
    very same model (a flip in a zip field nobody reads); never another model."""
    s, _ = S.step(S.initial_state(**dict(CFG, hidden_size=2)), records(rng, T=1)[0])
    ref = snapshot(S.decode(s))
    harmless = 0
    for i in range(len(s)):
        bad = s[:i] + bytes([s[i] ^ 0x5A]) + s[i + 1 :]
        try:
            m = S.decode(bad)
        except ValueError:
            continue
        assert_same_arrays(snapshot(m), ref)
        harmless += 1
    assert harmless < len(s) // 4


def test_archives_written_by_numpy_are_read_too(rng):
    s, _ = S.step(S.initial_state(**CFG), records(rng, T=5)[0])
    arrays = _archive(s)
    for compress in (False, True):
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **arrays)
        assert_same_arrays(snapshot(S.decode(buf.getvalue())), snapshot(S.decode(s)))
    assert S.encode(S.decode(buf.getvalue())) == s


def test_the_zip64_layout_for_huge_models_reads_back_the_same(rng):
    """Members of 4 GiB and more are written through zipfile's zip64 records instead."""
    s, _ = S.step(S.initial_state(**CFG), records(rng, T=3)[0])
    members = [(name, S._npy(arr)) for name, arr in _archive(s).items()]
    assert S.encode(S.decode(S._pack_zip64(members))) == s
