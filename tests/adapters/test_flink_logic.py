"""The Flink function's state logic, without Flink: checkpoints, failures and restores
played on in-memory state, against plain loops of ``step`` / ``shared_step``.

What Flink guarantees (and ``MemoryState`` plays): a restore brings back the keyed state
of a checkpoint together with the input position of that checkpoint, and reopens the
function. What the logic must add: every record applied exactly once to the state, and
re-emitted outputs identical to the first ones, whatever the cache holds.
"""

import base64
import functools

import numpy as np
import pytest

from streamrnn import step as S
from streamrnn.adapters.flink import CsvRecords, KeyedModels, MemoryState, SharedModels, format_csv, group_of

CFG = dict(cell="gru", input_size=2, hidden_size=4, output_size=1, k1=3, k2=5, optimizer="adam", lr=0.02, seed=1)


def keyed_records(seed, n=100, keys=5):
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        key = f"k{rng.integers(keys)}"
        x = rng.normal(size=2)
        y = [float(np.sin(x.sum()))] if rng.uniform() < 0.8 else None
        out.append((key, (x, y)))
    return out


def replay(logic, records, flink_key, checkpoints=(), failures=(), reopen_same=True):
    """Run ``records`` through ``logic`` on MemoryState; snapshot before each index in
    ``checkpoints``; at each index in ``failures`` (once) restore the latest snapshot and
    resume from its position. Returns every emitted (key, seq, bytes) and the final state."""
    state = MemoryState()
    logic.open(state)
    snap = (state.snapshot(), 0)
    pending = sorted(failures)
    emitted = []
    i = 0
    while i < len(records):
        if i in checkpoints:
            snap = (state.snapshot(), i)
        if pending and i == pending[0]:
            pending.pop(0)
            state = MemoryState(snap[0])
            logic = logic if reopen_same else type(logic)(logic.config, logic.compact_every, logic.cache_size)
            logic.open(state)
            i = snap[1]
            continue
        key, rec = records[i]
        state.set_key(flink_key(key))
        seq, out = logic.process(key, rec)
        emitted.append((key, seq, out.tobytes()))
        i += 1
    finals = {}
    for fk in sorted({flink_key(k) for k, _ in records}, key=str):
        state.set_key(fk)
        for kind, name, b64 in logic.final(fk):
            finals[(kind, name)] = base64.b64decode(b64)
    return emitted, finals


def exactly_once(emitted):
    """{(key, seq): bytes} after checking that every duplicate is identical."""
    seen = {}
    for key, seq, out in emitted:
        assert seen.setdefault((key, seq), out) == out, f"re-emitted output differs for {key} #{seq}"
    return seen


@functools.lru_cache(maxsize=None)
def per_key_reference(seed):
    records = keyed_records(seed)
    states, outs = {}, {}
    for key, rec in records:
        s = states.get(key, S.initial_state(**CFG))
        seq = sum(1 for k, _ in outs if k == key)
        states[key], out = S.step(s, rec)
        outs[(key, seq)] = out.tobytes()
    return states, outs


@functools.lru_cache(maxsize=None)
def shared_reference(seed, keys, groups):
    records = keyed_records(seed, keys=keys)
    shared, rows, outs = {}, {}, {}
    for key, rec in records:
        g = group_of(key, groups)
        w = shared.get(g, S.initial_shared(**CFG))
        seq = sum(1 for k, _ in outs if k == key)
        shared[g], rows[key], out = S.shared_step(w, rows.get(key), rec)
        outs[(key, seq)] = out.tobytes()
    return shared, rows, outs


SCHEDULES = [
    ((), ()),  # no failure
    ((30, 60), (41, 85)),  # two failures, each after a checkpoint
    ((0,), (55,)),  # a failure with only the empty checkpoint: start again from scratch
    ((10, 11, 12, 70), (12, 99)),  # fail exactly at a checkpoint, and at the last record
]


@pytest.mark.parametrize("compact_every,cache_size", [(1, 1024), (4, 1), (7, 2), (64, 1024)])
@pytest.mark.parametrize("checkpoints,failures", SCHEDULES)
def test_per_key_models_survive_failures_exactly_once(compact_every, cache_size, checkpoints, failures):
    records = keyed_records(seed=5)
    states, ref_outs = per_key_reference(5)
    logic = KeyedModels(CFG, compact_every=compact_every, cache_size=cache_size)
    emitted, finals = replay(logic, records, lambda k: k, set(checkpoints), failures)
    assert exactly_once(emitted) == ref_outs
    assert len(emitted) > len(records) or not failures
    assert finals == {("model", k): s for k, s in states.items()}  # bit for bit


@pytest.mark.parametrize("compact_every,cache_size", [(1, 1024), (5, 1), (64, 2)])
@pytest.mark.parametrize("checkpoints,failures", SCHEDULES)
def test_shared_models_survive_failures_exactly_once(compact_every, cache_size, checkpoints, failures):
    groups = 2
    records = keyed_records(seed=7, keys=7)
    shared, rows, ref_outs = shared_reference(7, 7, groups)
    logic = SharedModels(CFG, compact_every=compact_every, cache_size=cache_size)
    emitted, finals = replay(logic, records, lambda k: group_of(k, groups), set(checkpoints), failures)
    assert exactly_once(emitted) == ref_outs
    expected = {("shared", str(g)): w for g, w in shared.items()}
    expected.update({("row", k): r for k, r in rows.items()})
    assert finals == expected


def test_a_fresh_function_object_after_the_restore_gives_the_same_result():
    records = keyed_records(seed=3)
    logic = KeyedModels(CFG, compact_every=4)
    a = replay(logic, records, lambda k: k, {40}, [70], reopen_same=True)
    b = replay(KeyedModels(CFG, compact_every=4), records, lambda k: k, {40}, [70], reopen_same=False)
    assert a == b


class _StaleCache(KeyedModels):
    """What the logic must not do: keep decoded models across a restore."""

    def open(self, state):
        cache = self._cache
        super().open(state)
        if cache is not None:
            self._cache = cache


def test_the_harness_catches_a_cache_kept_across_a_restore():
    records = keyed_records(seed=5)
    _, ref_outs = per_key_reference(5)
    emitted, _ = replay(_StaleCache(CFG, compact_every=8), records, lambda k: k, {40}, [70])
    with pytest.raises(AssertionError):
        assert exactly_once(emitted) == ref_outs


def test_rejected_records_change_nothing_and_log_nothing():
    logic = KeyedModels(CFG, compact_every=8)
    state = MemoryState()
    logic.open(state)
    state.set_key("a")
    logic.process("a", ([0.1, 0.2], [0.3]))
    before = state.snapshot()
    for bad, match in [
        (([np.nan, 0.0], [0.1]), "non-finite"),
        (([0.0, 0.0], [np.inf]), "non-finite"),
        (([0.0], None), r"x must have shape \(2,\)"),
        ("xy", "record must be a pair"),
    ]:
        with pytest.raises(ValueError, match=match):
            logic.process("a", bad)
    assert state.snapshot() == before
    assert logic.process("a", ([0.0, 0.0], None))[0] == 1
    with pytest.raises(ValueError, match="differs from the stream's key"):
        logic.process("b", ([0.0, 0.0], None))


def test_corrupted_state_in_flink_is_reported():
    logic = KeyedModels(CFG, compact_every=1)
    state = MemoryState()
    logic.open(state)
    state.set_key("a")
    state.model.update("not base64 !")
    with pytest.raises(ValueError, match="not base64"):
        logic.process("a", ([0.0, 0.0], None))
    state.model.update(base64.b64encode(b"PK\x03\x04junk").decode())
    with pytest.raises(ValueError, match="truncated or corrupted checkpoint"):
        logic.process("a", ([0.0, 0.0], None))


@pytest.mark.parametrize("kw,match", [({"compact_every": 0}, "compact_every"), ({"cache_size": 1.5}, "cache_size")])
def test_bad_options_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        KeyedModels(CFG, **kw)
    with pytest.raises(ValueError, match="hidden_size"):
        KeyedModels(dict(CFG, hidden_size=0))


def test_csv_records_and_exact_output_text():
    parse = CsvRecords(input_size=2, output_size=1)
    assert parse.key("s9,1,2,3") == "s9"
    with pytest.raises(ValueError, match="5 fields, expected 1 \\+ 2 \\+ 1"):
        parse("s9,1,2,3,4")
    with pytest.raises(ValueError, match="non-numeric"):
        parse("s9,1,a,3")
    v = np.nextafter(0.1, 1.0)
    assert float(format_csv(("k", 0, (v,))).split(",")[2]) == v
