"""The engine-neutral step: state bytes, ``step`` == a model's loop, ``shared_step`` == a
keyed slab, and hostile bytes rejected before any kernel sees them."""

import io
import zipfile

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import checkpoint
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


def test_state_bytes_are_the_checkpoint_bytes(rng, tmp_path):
    """A state is what ``save`` writes: it loads as a model and a saved file steps on."""
    s = S.initial_state(**CFG)
    for rec in records(rng, T=11):
        s, _ = S.step(s, rec)
    m = S.decode(s)
    assert checkpoint._read_plain(s) is not None  # the fast reader took it
    assert m.save(tmp_path / "m.npz").read_bytes() == s
    loaded = sr.StreamRNN.load(io.BytesIO(s))
    assert_same_arrays(snapshot(loaded), snapshot(m))
    rec = records(rng, T=1)[0]
    from_file, out = S.step((tmp_path / "m.npz").read_bytes(), rec)
    assert out.tobytes() == S.step(s, rec)[1].tobytes() and from_file == S.step(s, rec)[0]


def _arrays(data):
    return dict(checkpoint.loads(data).arrays)


def _state(arrays, config=CFG, kind=S.KIND):
    """Well-formed checkpoint bytes (checksum and all) around possibly inconsistent arrays."""
    return checkpoint.dumps(kind, config, arrays)


def test_hostile_state_bytes_raise_before_any_kernel_runs(rng):
    s = S.initial_state(**CFG)
    s, _ = S.step(s, records(rng, T=1)[0])
    arrays = _arrays(s)
    meta = arrays["meta"].copy()
    meta[L.ROW_SIZE] += 1
    neg = arrays["meta"].copy()
    neg[L.N_STEPS] = -1
    lr = arrays["fmeta"].copy()
    lr[L.LR] = 0.5
    nan_w = arrays["mem"].copy()
    nan_w[0] = np.nan
    cases = [
        (s[: len(s) // 2], "truncated"),
        (b"not a zip at all", "not a streamrnn checkpoint"),
        (s[:200] + bytes([s[200] ^ 1]) + s[201:], "corrupted|checksum|not a streamrnn"),
        (_state({"a": np.zeros(3)}), r"unexpected arrays \['a'\]"),
        (_state({k: v for k, v in arrays.items() if k != "meta"}), "the checkpoint has no array 'meta'"),
        (_state(arrays, kind="Other"), "kind 'Other', expected 'StreamRNN'"),
        (_state(arrays, config={**CFG, "bogus": 1}), r"options this StreamRNN does not know: \['bogus'\]"),
        (_state(arrays, config={**CFG, "hidden_size": 0}), "invalid configuration.*hidden_size"),
        (_state(dict(arrays, meta=meta)), "'meta' disagrees with the stored configuration"),
        (_state(dict(arrays, mem=arrays["mem"][:-1])), "a different cell or size"),
        (_state(dict(arrays, meta=neg)), "counters out of range"),
        (_state(dict(arrays, fmeta=lr)), "'fmeta' disagrees with the stored configuration"),
        (_state(dict(arrays, mem=nan_w)), "non-finite parameters"),
        (_state(dict(arrays, extra=np.zeros(1))), r"unexpected arrays \['extra'\]"),
    ]
    for data, match in cases:
        with pytest.raises(sr.CheckpointError, match=match):
            S.decode(data)
        with pytest.raises(ValueError):  # a CheckpointError is a ValueError
            S.step(data, records(rng, T=1)[0])
    with pytest.raises(TypeError, match="state must be bytes"):
        S.decode("text")
    with pytest.raises(TypeError, match="model must be a StreamRNN"):
        S.encode(object())


def test_state_holds_no_pickle(rng):
    s, _ = S.step(S.initial_state(**CFG), records(rng, T=1)[0])
    with zipfile.ZipFile(io.BytesIO(s)) as zf:
        names = sorted(zf.namelist())
        assert names == ["__header__.npy", "counts.npy", "fmeta.npy", "mem.npy", "meta.npy", "slab.npy"]
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
    with pytest.raises(sr.CheckpointError, match="the shared model needs"):
        S.shared_step(w, other_row, records(rng, T=1)[0])
    with pytest.raises(sr.CheckpointError, match="kind 'StreamRNN', expected 'StreamRNN.row'"):
        S.shared_step(w, w, records(rng, T=1)[0])
    with pytest.raises(sr.CheckpointError, match="kind 'StreamRNN.row', expected 'StreamRNN'"):
        S.shared_step(row, None, records(rng, T=1)[0])
    slab, counts = (checkpoint.loads(row).arrays[n] for n in ("slab", "counts"))
    bad_rows = [
        (dict(slab=slab, counts=counts - 5), "malformed step count"),
        (dict(slab=np.full_like(slab, np.inf), counts=counts), "non-finite stream state"),
        (dict(slab=slab), "exactly the arrays 'slab' and 'counts'"),
    ]
    for arrays, match in bad_rows:
        with pytest.raises(sr.CheckpointError, match=match):
            S.shared_step(w, _state(arrays, config={}, kind=S.ROW_KIND), records(rng, T=1)[0])


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
        assert sr.StreamRNN.load(io.BytesIO(bad)) is not None  # what decodes also loads from a file
        harmless += 1
    assert harmless < len(s) // 4


def test_archives_written_by_numpy_are_read_too(rng):
    """The state is a plain .npz: numpy's own stored archive of its arrays reads back the
    same; a compressed one is refused (member sizes bound what is allocated)."""
    s, _ = S.step(S.initial_state(**CFG), records(rng, T=5)[0])
    with np.load(io.BytesIO(s), allow_pickle=False) as z:
        arrays = {n: z[n] for n in z.files}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    assert S.encode(S.decode(buf.getvalue())) == s
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with pytest.raises(sr.CheckpointError, match="is compressed"):
        S.decode(buf.getvalue())


def test_the_zip64_layout_for_huge_models_reads_back_the_same(rng, monkeypatch):
    """Archives of 4 GiB and more are written through zipfile's zip64 records instead."""
    s, _ = S.step(S.initial_state(**CFG), records(rng, T=3)[0])
    monkeypatch.setattr(checkpoint, "_ZIP64_FROM", 0)
    big = S.encode(S.decode(s))
    assert big[18:26] == b"\xff" * 8  # the local header's sizes are in its zip64 extra field
    monkeypatch.undo()
    assert S.encode(S.decode(big)) == s
