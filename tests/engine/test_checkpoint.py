"""Checkpoints: bit-for-bit resume in a new process, refusal of bad files, atomic writes."""

import copy
import io
import pickle
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import checkpoint
from streamrnn.kernels import layout as L
from streamrnn.testing.probe import assert_same_arrays, snapshot

CELLS = ["elman", "gru", "lstm"]
OPTIMIZERS = {
    "sgd": dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": dict(optimizer="adam", weight_decay=1e-3),
    "rmsprop": dict(optimizer="rmsprop", momentum=0.5, centered=True),
}
N = 120


def make(cell="gru", opt="adam", dtype="float64", **kw):
    cfg = dict(
        cell=cell, input_size=3, hidden_size=5, output_size=2, k1=3, k2=7, lr=0.02, clip=1.0, seed=7,
        dtype=dtype, history=5, **OPTIMIZERS[opt],
    )
    cfg.update(kw)
    return sr.StreamRNN(**cfg)


def stream(seed, T=N, D=3, O=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, D))
    Y = np.tanh(np.cumsum(X[:, :O], axis=0) / 4.0)
    mask = rng.uniform(size=T) < 0.8
    return X, Y, mask


def feed(m, X, Y, mask, start, stop):
    """Predict then learn rows start..stop-1; return the predictions."""
    out = []
    for t in range(start, stop):
        out.append(m.predict(X[t]))
        m.learn(X[t], Y[t] if mask[t] else None)
    return np.array(out).reshape(-1, m.output_size)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------ resume
RESUME_CHILD = r"""
import json, sys
import numpy as np
import streamrnn as sr

for job in json.load(open(sys.argv[1])):
    d = np.load(job["data"])
    X, Y, mask = d["X"], d["Y"], d["mask"]
    m = sr.StreamRNN.load(job["checkpoint"], cell=job["cell"], dtype=job["dtype"])
    out = []
    for t in range(job["start"], len(X)):
        out.append(m.predict(X[t]))
        m.learn(X[t], Y[t] if mask[t] else None)
    np.save(job["predictions"], np.array(out).reshape(-1, m.output_size))
    m.save(job["final"])
"""


def resume_cases():
    """(cell, optimizer, dtype, save step): random steps at a boundary, inside a window, and early."""
    rng = np.random.default_rng(2024)
    cases = []
    for dtype in ("float64", "float32"):
        for cell in CELLS:
            for opt in OPTIMIZERS:
                k1 = 3
                boundary = k1 * int(rng.integers(3, N // k1 - 1))  # the update has just run
                mid = boundary + 1 + int(rng.integers(0, k1 - 1))  # inside a window
                early = int(rng.integers(1, 7))  # before the first k2 = 7 steps have filled the buffer
                cases += [(cell, opt, dtype, s) for s in (boundary, mid, early)]
    return cases


def test_resume_in_a_new_process_is_bit_for_bit(tmp_path):
    """Train, save at step s, continue in a fresh interpreter: every prediction and the
    final state equal the uninterrupted run, bit for bit (3 cells x 3 optimizers x 2 dtypes)."""
    cases = resume_cases()
    assert any(s % 3 for *_, s in cases) and any(s % 3 == 0 for *_, s in cases)
    jobs, expected = [], []
    for i, (cell, opt, dtype, s) in enumerate(cases):
        X, Y, mask = stream(i)
        data = tmp_path / f"data{i}.npz"
        np.savez(data, X=X, Y=Y, mask=mask)
        m = make(cell, opt, dtype)
        feed(m, X, Y, mask, 0, s)
        m.predict(X[s])  # a live predict cache at the save must not matter
        m.save(tmp_path / f"ckpt{i}.npz")
        later = feed(m, X, Y, mask, s, N)  # the uninterrupted run
        expected.append((later, checkpoint.engine_arrays(m), m.diagnostics()))
        jobs.append(
            dict(
                data=str(data), checkpoint=str(tmp_path / f"ckpt{i}.npz"), cell=cell, dtype=dtype, start=s,
                predictions=str(tmp_path / f"pred{i}.npy"), final=str(tmp_path / f"final{i}.npz"),
            )
        )
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    res = subprocess.run(
        [sys.executable, "-c", RESUME_CHILD, str(tmp_path / "jobs.json")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    for i, (later, arrays, diag) in enumerate(expected):
        got = np.load(tmp_path / f"pred{i}.npy")
        assert same_bits(got, later), f"case {cases[i]}: predictions differ"
        final = checkpoint.read(tmp_path / f"final{i}.npz", kind="StreamRNN")
        for name, arr in arrays.items():
            assert same_bits(final.arrays[name], arr), f"case {cases[i]}: {name} differs"
        resumed = sr.StreamRNN.load(tmp_path / f"final{i}.npz")
        assert resumed.diagnostics()["updates"] == diag["updates"] > 0


@pytest.mark.parametrize("cell", CELLS)
def test_load_restores_every_array_and_saving_again_writes_the_same_bytes(cell, tmp_path):
    X, Y, mask = stream(1, T=40)
    m = make(cell, "rmsprop")
    feed(m, X, Y, mask, 0, 40)
    path = m.save(tmp_path / "a.npz")
    assert path == tmp_path / "a.npz"
    loaded = sr.StreamRNN.load(path)
    assert_same_arrays(snapshot(m), snapshot(loaded))
    assert loaded._config() == m._config()
    loaded.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    d1, d2 = m.diagnostics(), loaded.diagnostics()
    assert d1.keys() == d2.keys() and all(np.array_equal(d1[k], d2[k]) for k in d1 if k != "history")


def test_checkpoint_is_a_plain_npz_with_a_json_header(tmp_path):
    m = make("lstm", "sgd")
    path = m.save(str(tmp_path / "m.npz"))
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.keys()) == ["__header__", "counts", "fmeta", "mem", "meta", "slab"]
        header = json.loads(str(z["__header__"]))
    assert header["format"] == "streamrnn-checkpoint" and header["format_version"] == checkpoint.FORMAT_VERSION == 2
    assert header["library_version"] == sr.__version__ and header["kind"] == "StreamRNN"
    assert header["config"] == json.loads(json.dumps(m._config()))
    assert header["checksum"].startswith("sha256:") and len(header["checksum"]) == 7 + 64


def test_generic_write_read_round_trips_extra_and_arrays(tmp_path):
    arrays = {
        "weights": np.arange(6, dtype=np.float32).reshape(2, 3),
        "flags": np.array([True, False]),
        "names": np.array(["a", "bé"]),
        "empty": np.zeros((0, 4)),
        "scalar": np.int64(3),
    }
    extra = {"features": ["x", "ü"], "classes": {"0": 1}, "n": None}
    path = checkpoint.write(tmp_path / "t.npz", "Thing", {"k": 1.5}, arrays, extra=extra)
    ck = checkpoint.read(path)
    assert ck.kind == "Thing" and ck.config == {"k": 1.5} and ck.extra == extra
    assert ck.format_version == checkpoint.FORMAT_VERSION and ck.library_version == sr.__version__
    assert ck.arrays.keys() == arrays.keys()
    for name, arr in arrays.items():
        assert same_bits(ck.arrays[name], np.asarray(arr)), name
        assert ck.arrays[name].flags.writeable


@pytest.mark.parametrize(
    "arrays,extra,error,match",
    [
        ({"x": np.array([object()])}, None, TypeError, r"arrays\['x'\] has dtype object"),
        ({"x": np.zeros(2, dtype=complex)}, None, TypeError, "only bool, integer, float and unicode"),
        ({"__header__": np.zeros(2)}, None, ValueError, "array name"),
        ({"a/b": np.zeros(2)}, None, ValueError, "array name"),
        ({}, {"v": float("nan")}, ValueError, "extra must be JSON data with finite numbers"),
        ({}, {"v": np.int64(1)}, TypeError, "extra must be JSON data"),
    ],
)
def test_write_refuses_what_cannot_be_stored_before_touching_the_disk(tmp_path, arrays, extra, error, match):
    with pytest.raises(error, match=match):
        checkpoint.write(tmp_path / "t.npz", "Thing", {}, arrays, extra=extra)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bad files
@pytest.fixture
def saved(tmp_path):
    """A small real checkpoint, mid-window, with history: (model, path, bytes)."""
    m = sr.StreamRNN(cell="gru", input_size=2, hidden_size=2, output_size=1, k1=2, k2=3, optimizer="adam", history=2)
    X, Y, mask = stream(3, T=9, D=2, O=1)
    feed(m, X, Y, mask, 0, 9)
    path = m.save(tmp_path / "good.npz")
    return m, path, path.read_bytes()


def members(data):
    """(zip member name, offset of its local header, offset of its data, data length) per member."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name_len, extra_len = np.frombuffer(data[info.header_offset + 26 : info.header_offset + 30], "<u2")
            start = info.header_offset + 30 + int(name_len) + int(extra_len)
            out.append((info.filename, info.header_offset, start, info.compress_size))
    return out


def test_every_truncation_is_refused(saved, tmp_path):
    """Every length of a real checkpoint (read from memory; a few from disk through load)."""
    m, _, data = saved
    boundaries = sorted({b for _, h, s, n in members(data) for b in (h, s, s + n)})
    assert len(data) < 12_000
    for n in range(len(data)):
        with pytest.raises(sr.CheckpointError):
            checkpoint.read(io.BytesIO(data[:n]))
    bad = tmp_path / "bad.npz"
    for n in [0, 1, 3, 4, 100, *boundaries, len(data) - 22, len(data) - 1]:
        bad.write_bytes(data[:n])
        with pytest.raises(sr.CheckpointError):
            sr.StreamRNN.load(bad)
    bad.write_bytes(data)
    assert_same_arrays(snapshot(m), snapshot(sr.StreamRNN.load(bad)))


def test_a_flipped_byte_is_refused_or_harmless(saved):
    """Inside any member (header JSON, array headers, array values) a flipped byte is
    refused; in zip bookkeeping that no reader uses (timestamps, versions) it may load,
    and then only as the exact original model."""
    m, path, data = saved
    original = checkpoint.read(path)
    inside = [p for _, _, s, n in members(data) for p in range(s, s + n)]
    structure = sorted(set(range(len(data))) - set(inside))
    refused = 0
    for pos in inside[::5] + inside[-40:] + structure:  # every byte of zip structure
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        try:
            ck = checkpoint.read(io.BytesIO(bytes(flipped)), kind="StreamRNN")
        except sr.CheckpointError:
            refused += 1
            continue
        assert pos not in inside, f"byte {pos} inside a member was flipped and the file loaded"
        assert ck.config == original.config and ck.arrays.keys() == original.arrays.keys()
        assert all(same_bits(ck.arrays[k], original.arrays[k]) for k in ck.arrays)
    assert refused > len(inside[::5])


def rewrite(data, replace=(), drop=(), add=()):
    """A copy of a checkpoint's bytes with members replaced (name -> array, pickled if object)."""
    out = io.BytesIO()
    replace = dict(replace)
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            name = info.filename[: -len(".npy")]
            if name in drop:
                continue
            if name in replace:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(replace[name]), allow_pickle=True)
                dst.writestr(info.filename, buf.getvalue())
            else:
                dst.writestr(info.filename, src.read(info))
        for name, arr in add:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=True)
            dst.writestr(name + ".npy", buf.getvalue())
    return out.getvalue()


def header_of(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return json.loads(str(z["__header__"]))


def with_header(data, **changes):
    header = header_of(data)
    header.update(changes)
    return rewrite(data, replace={"__header__": np.array(json.dumps(header))})


def test_changed_values_with_valid_zip_crcs_fail_the_checksum(saved, tmp_path):
    _, _, data = saved
    with np.load(io.BytesIO(data)) as z:
        mem = z["mem"].copy()
    mem[0] += 1e-12
    bad = tmp_path / "bad.npz"
    bad.write_bytes(rewrite(data, replace={"mem": mem}))
    with pytest.raises(sr.CheckpointError, match="checksum mismatch"):
        sr.StreamRNN.load(bad)
    header = header_of(data)
    header["config"]["lr"] = 0.5  # a config edit is caught too
    bad.write_bytes(rewrite(data, replace={"__header__": np.array(json.dumps(header))}))
    with pytest.raises(sr.CheckpointError, match="checksum mismatch"):
        sr.StreamRNN.load(bad)


@pytest.mark.parametrize("version", [3, 0, "2", None, True, 1.0])
def test_unknown_format_version_is_refused(saved, tmp_path, version):
    _, _, data = saved
    bad = tmp_path / "bad.npz"
    bad.write_bytes(with_header(data, format_version=version))
    with pytest.raises(sr.CheckpointError, match="unknown checkpoint format version"):
        sr.StreamRNN.load(bad)


def test_foreign_and_non_npz_files_are_refused(saved, tmp_path):
    _, _, data = saved
    cases = {
        "empty.npz": (b"", "the file is empty"),
        "text.npz": (b"hello, world\n", r"not an \.npz \(zip\) file"),
        "pickle.npz": (b"\x80\x04K\x01.", r"not an \.npz \(zip\) file"),
    }
    buf = io.BytesIO()
    np.save(buf, np.arange(3.0))
    cases["array.npy"] = (buf.getvalue(), r"not an \.npz \(zip\) file")
    buf = io.BytesIO()
    np.savez(buf, meta=np.zeros(3), mem=np.ones(4))
    cases["foreign.npz"] = (buf.getvalue(), "an .npz without a streamrnn header")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__header__.npy", b"not an npy member")
    cases["garbage-header.npz"] = (buf.getvalue(), "truncated or corrupted")
    cases["no-format.npz"] = (with_header(data, format="something-else"), "not a streamrnn checkpoint")
    cases["header-not-json.npz"] = (
        rewrite(data, replace={"__header__": np.array("{not json")}),
        "unreadable header",
    )
    cases["header-not-text.npz"] = (rewrite(data, replace={"__header__": np.zeros(3)}), "not a JSON string")
    cases["missing-member.npz"] = (rewrite(data, drop={"slab"}), r"missing \['slab.npy'\]")
    cases["extra-member.npz"] = (rewrite(data, add=[("more", np.zeros(2))]), r"unexpected \['more.npy'\]")
    for name, (content, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(sr.CheckpointError, match=match):
            sr.StreamRNN.load(tmp_path / name)


def test_a_checkpoint_of_another_kind_is_refused(tmp_path):
    path = checkpoint.write(tmp_path / "k.npz", "KeyedStreamRNN", {}, {"meta": np.zeros(3)})
    with pytest.raises(sr.CheckpointError, match="a checkpoint of kind 'KeyedStreamRNN', expected 'StreamRNN'"):
        sr.StreamRNN.load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sr.StreamRNN.load(tmp_path / "nope.npz")


class Payload:
    """Unpickling this object creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_object_arrays_are_refused_without_unpickling(saved, tmp_path):
    _, _, data = saved
    marker = tmp_path / "code-ran"
    payload = np.array([Payload(str(marker))], dtype=object)
    evil = {
        "foreign.npz": None,
        "mem-swapped.npz": rewrite(data, replace={"mem": payload}),
        "header-swapped.npz": rewrite(data, replace={"__header__": payload}),
    }
    buf = io.BytesIO()
    np.savez(buf, __header__=payload, meta=payload)
    evil["foreign.npz"] = buf.getvalue()
    for name, content in evil.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(sr.CheckpointError, match="refused: it has dtype object"):
            sr.StreamRNN.load(tmp_path / name)
        with pytest.raises(sr.CheckpointError, match="refused: it has dtype object"):
            checkpoint.read(tmp_path / name)
        assert not marker.exists(), f"{name}: loading ran code"
    with pytest.raises(sr.CheckpointError, match="array 'mem' refused: it has dtype object"):
        sr.StreamRNN.load(tmp_path / "mem-swapped.npz")
    # the payload is live: a pickle-enabled load of the same file does run it
    with np.load(tmp_path / "mem-swapped.npz", allow_pickle=True) as z:
        z["mem"]
    assert marker.exists()


# ------------------------------------------------------------------ wrong model
def test_expected_configuration_is_checked(saved):
    _, path, _ = saved
    assert sr.StreamRNN.load(path, cell="gru", hidden_size=2, k2=3, betas=(0.9, 0.999), lr=0.01).cell == "gru"
    for kw, match in [
        (dict(cell="lstm"), "the checkpoint has cell='gru', expected cell='lstm'"),
        (dict(hidden_size=3), "has hidden_size=2, expected hidden_size=3"),
        (dict(dtype="float32"), "has dtype='float64', expected dtype='float32'"),
        (dict(k2=None), "has k2=3, expected k2=None"),
        (dict(optimizer="sgd"), "has optimizer='adam'"),
    ]:
        with pytest.raises(sr.CheckpointError, match=match):
            sr.StreamRNN.load(path, **kw)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['colour'\\]"):
        sr.StreamRNN.load(path, colour="red")


def forge(tmp_path, config, arrays):
    return checkpoint.write(tmp_path / "forged.npz", "StreamRNN", config, arrays)


def test_arrays_that_do_not_fit_the_stored_config_are_refused(tmp_path):
    """A well-formed file whose arrays disagree with its config: a different cell or size,
    edited configuration entries, counters out of range, non-finite weights."""
    small = make("gru", "adam", hidden_size=4)
    X, Y, mask = stream(5, T=20)
    feed(small, X, Y, mask, 0, 20)
    cases = [
        (make("lstm", "adam", hidden_size=4)._config(), {}, r"array 'mem' .* \(a different cell or size\)"),
        (make("gru", "adam", hidden_size=5)._config(), {}, "a different cell or size"),
        (make("gru", "adam", hidden_size=4, dtype="float32")._config(), {}, "a different cell or size"),
        (dict(small._config(), lr=0.5), {}, "'fmeta' disagrees with the stored configuration"),
        (dict(small._config(), loss="bce"), {}, "'meta' disagrees with the stored configuration"),
        (dict(small._config(), colour=1), {}, "options this StreamRNN does not know: \\['colour'\\]"),
        (dict(small._config(), hidden_size=-1), {}, "invalid configuration in checkpoint: hidden_size"),
    ]
    base = {k: v.copy() for k, v in checkpoint.engine_arrays(small).items()}
    meta = base["meta"].copy()
    meta[L.HIST_POS] = 99
    cases.append((small._config(), {"meta": meta}, "counters out of range"))
    counts = base["counts"].copy()
    counts[0, 0] = -3
    cases.append((small._config(), {"counts": counts}, "counters out of range"))
    mem = base["mem"].copy()
    mem[1] = np.nan
    cases.append((small._config(), {"mem": mem}, "non-finite parameters"))
    slab = base["slab"].copy()
    slab[0, 0] = np.inf
    cases.append((small._config(), {"slab": slab}, "non-finite stream state"))
    cases.append((small._config(), {"extra": np.zeros(2)}, r"unexpected arrays \['extra'\]"))
    no_counts = dict(base)
    del no_counts["counts"]
    for config, changes, match in cases:
        path = forge(tmp_path, config, {**base, **changes})
        with pytest.raises(sr.CheckpointError, match=match):
            sr.StreamRNN.load(path)
    with pytest.raises(sr.CheckpointError, match="has no array 'counts'"):
        sr.StreamRNN.load(forge(tmp_path, small._config(), no_counts))


def test_a_checkpoint_without_newer_options_loads_with_their_defaults(tmp_path):
    m = make("elman", "sgd", history=0)
    config = m._config()
    del config["ema"], config["history"]  # as if written before these options existed
    path = forge(tmp_path, config, checkpoint.engine_arrays(m))
    assert_same_arrays(snapshot(m), snapshot(sr.StreamRNN.load(path)))


# ------------------------------------------------------------------ atomic writes
class FillsUp:
    """A file that takes the first ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            self.f.write(bytes(memoryview(data)[: self.room]))
            self.room = 0
            raise OSError("disk full")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def crash_cases(monkeypatch):
    real_fdopen = os.fdopen

    def half_then_fail(fd, *args, **kwargs):  # the disk fills up inside the first array
        return FillsUp(real_fdopen(fd, *args, **kwargs), room=1200)

    def fail(*args, **kwargs):
        raise OSError("simulated crash")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    return {
        "write": lambda: monkeypatch.setattr(os, "fdopen", half_then_fail),
        "fsync": lambda: monkeypatch.setattr(os, "fsync", fail),
        "rename": lambda: monkeypatch.setattr(os, "replace", fail),
        "interrupt": lambda: monkeypatch.setattr(os, "fsync", interrupt),
    }


@pytest.mark.parametrize("where", ["write", "fsync", "rename", "interrupt"])
def test_a_crash_during_save_keeps_the_previous_checkpoint(where, tmp_path, monkeypatch):
    m = make("gru", "adam")
    X, Y, mask = stream(9, T=30)
    feed(m, X, Y, mask, 0, 10)
    path = m.save(tmp_path / "model.npz")
    before = path.read_bytes()
    feed(m, X, Y, mask, 10, 30)
    with monkeypatch.context() as mp:
        crash_cases(mp)[where]()
        with pytest.raises((OSError, KeyboardInterrupt)):
            m.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no stray temporary file
    assert path.read_bytes() == before
    assert sr.StreamRNN.load(path).steps == 10
    m.save(path)  # and the next save works
    assert sr.StreamRNN.load(path).steps == 30


def test_save_into_a_missing_directory_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        make().save(tmp_path / "missing" / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_pickle_and_deepcopy_still_work_and_disk_files_hold_no_pickle(tmp_path):
    m = make("lstm", "sgd")
    X, Y, mask = stream(2, T=17)
    feed(m, X, Y, mask, 0, 17)
    assert_same_arrays(snapshot(m), snapshot(copy.deepcopy(m)))
    path = m.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fp:
                assert np.lib.format.read_magic(fp) == (1, 0)
                _, _, dtype = np.lib.format.read_array_header_1_0(fp)
                assert dtype.kind in "iufU" and not dtype.hasobject, info.filename


def test_an_engine_can_share_a_file_with_other_state(tmp_path):
    """What an estimator does: its own config, an engine under a prefix, its maps in extra."""
    m = make("gru", "sgd")
    X, Y, mask = stream(4, T=25)
    feed(m, X, Y, mask, 0, 25)
    arrays = {**checkpoint.engine_arrays(m, prefix="engine."), "classes": np.array(["no", "yes"])}
    extra = {"engine_config": m._config(), "features": ["a", "b", "c"]}
    path = checkpoint.write(tmp_path / "est.npz", "RNNClassifier", {"hidden_size": 5}, arrays, extra=extra)
    ck = checkpoint.read(path, kind="RNNClassifier")
    engine = checkpoint.construct(sr.StreamRNN, ck.extra["engine_config"], {}, str(path))
    checkpoint.restore_engine(engine, ck.arrays, str(path), prefix="engine.")
    assert_same_arrays(snapshot(m), snapshot(engine))
    assert ck.arrays["classes"].tolist() == ["no", "yes"] and ck.extra["features"] == ["a", "b", "c"]
    with pytest.raises(sr.CheckpointError, match="has no array 'meta'"):  # the prefix matters
        checkpoint.restore_engine(engine, ck.arrays, str(path))


def test_load_reads_file_objects(saved):
    m, _, data = saved
    assert_same_arrays(snapshot(m), snapshot(sr.StreamRNN.load(io.BytesIO(data))))
    with pytest.raises(sr.CheckpointError, match="^<file object>: truncated"):
        sr.StreamRNN.load(io.BytesIO(data[:-1]))


def test_compressed_or_oversized_members_are_refused(saved):
    """Member sizes decide how much is allocated: a compressed member (a few bytes that
    could inflate to gigabytes) or one claiming more bytes than the file has is refused."""
    _, _, data = saved
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(sr.CheckpointError, match="'__header__.npy' is compressed or its sizes"):
        checkpoint.read(io.BytesIO(deflated.getvalue()))
    entry = data.index(b"PK\x01\x02")  # the central directory's entry of the first member
    while not data[entry + 46 :].startswith(b"mem.npy"):
        entry = data.index(b"PK\x01\x02", entry + 4)
    huge = bytearray(data)  # its compressed and uncompressed sizes, at offsets 20 and 24
    huge[entry + 20 : entry + 28] = np.array([2**31, 2**31], "<u4").tobytes()
    with pytest.raises(sr.CheckpointError, match="'mem.npy' is compressed or its sizes"):
        checkpoint.read(io.BytesIO(bytes(huge)))


def test_negative_dimensions_and_many_members(saved):
    """An .npy header with negative dimensions is refused by both readers; 65,535 members
    and more go through zip64 records and read back."""
    m, _, data = saved
    arrays = dict(checkpoint.read(io.BytesIO(data)).arrays)
    crafted = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(crafted, "w") as dst:
        for info in src.infolist():
            blob = src.read(info)
            if info.filename == "counts.npy":
                blob = blob.replace(b"'shape': (1, 1)", b"'shape': (-1, -1)")
            dst.writestr(info.filename, blob)
    for read in (lambda b: checkpoint.loads(b), lambda b: checkpoint.read(io.BytesIO(b))):
        with pytest.raises(sr.CheckpointError):
            read(crafted.getvalue())
    many = {f"a{i}": np.full(1, i) for i in range(0xFFFF)}
    back = checkpoint.loads(checkpoint.dumps("Many", {}, dict(many, **arrays)))
    assert len(back.arrays) == 0xFFFF + len(arrays) and back.arrays["a65534"][0] == 65534


def test_unpickled_read_only_buffers_are_never_written(saved):
    """Pickle protocol 5 can hand arrays back as read-only views of the caller's buffers:
    the model takes copies, so learning never writes into them."""
    m, _, _ = saved
    for model in (m, sr.KeyedStreamRNN(cell="gru", input_size=m.input_size, hidden_size=2, k1=2, capacity=2)):
        buffers = []
        payload = pickle.dumps(model, protocol=5, buffer_callback=buffers.append)
        frozen = [bytes(b.raw()) for b in buffers]  # immutable: numpy views of them are read-only
        expected = [bytes(bytearray(b)) for b in frozen]  # separate copies of their contents
        twin = pickle.loads(payload, buffers=[pickle.PickleBuffer(b) for b in frozen])
        x, y = np.ones(m.input_size), np.ones(m.output_size)
        for _ in range(5):
            twin.predict(x) if model is m else twin.predict("k", x)
            twin.learn(x, y) if model is m else twin.learn("k", x, y)
        assert frozen == expected
        steps = (twin.steps - model.steps) if model is m else twin.diagnostics()["steps"]
        assert steps == 5
