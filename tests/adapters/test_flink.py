"""The example job on Flink's local mini-cluster (thread mode, checkpointing on), with one
failure injected mid-stream: predictions and final per-key states equal plain loops of
``step`` / ``shared_step`` over the same records, bit for bit.

Needs PyFlink (its own environment: see ``.ci/flink``); skipped without it.
"""

import base64
import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

pytest.importorskip("pyflink.datastream")

from streamrnn import step as S  # noqa: E402
from streamrnn.adapters.flink import CsvRecords, group_of  # noqa: E402

pytestmark = pytest.mark.flink

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flink_job.py"


@pytest.fixture(scope="module", autouse=True)
def compiled_kernels():
    """Compile the kernels into numba's disk cache before any job starts. The job injects
    its failure only after a checkpoint has completed; a first compile inside the job
    (tens of seconds on a cold cache) can hold checkpoints back until the whole input has
    been read, and then no failure is injected at all."""
    import streamrnn

    streamrnn.warmup()


def load_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("flink_job", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_job(out, *args):
    env = dict(os.environ)
    # thread mode runs Python inside the JVM, which finds packages through PYTHONPATH
    paths = [sysconfig.get_paths()["purelib"], str(ROOT), *env.get("PYTHONPATH", "").split(os.pathsep)]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    cmd = [sys.executable, str(EXAMPLE), "--output", str(out), "--raw-log", str(out / "raw.log"), "--final-states"]
    cmd += args
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res.stdout


def records_by_key(path):
    """(key, record) of every well-formed line, in file order."""
    parse = CsvRecords(2, 1)
    order = []
    with open(path) as f:
        for line in f:
            try:
                order.append(parse(line))
            except ValueError:
                pass
    return order


def check_outputs(out, reference_outputs):
    """FileSink holds each (key, seq) once with the reference value; the raw log shows a
    failure, a restore from a checkpoint (not from scratch) and identical re-emissions.
    Returns how many predictions were emitted twice."""
    ex = load_example()
    lines = ex.read_lines(out / "predictions")
    got = {}
    for line in lines:
        key, seq, value = line.split(",")
        assert (key, int(seq)) not in got, f"{key} #{seq} written twice"
        got[(key, int(seq))] = value
    assert got == reference_outputs  # exact text of repr(float): equal bits
    attempts = {}
    for line in (out / "raw.log").read_text().splitlines():
        attempt, key, seq, value = line.split(",")
        assert value == reference_outputs[(key, int(seq))]  # re-emitted values are identical too
        attempts.setdefault(attempt, set()).add((key, int(seq)))
    assert (out / "failed-once").exists() and set(attempts) == {"1", "2"}
    first, second = attempts["1"], attempts["2"]
    assert first | second == set(reference_outputs)
    assert first & second, "the records after the checkpoint were not replayed"
    assert first - second, "the restart did not resume from a checkpoint"
    return len(first & second)


def final_states(out):
    ex = load_example()
    states = {}
    for line in ex.read_lines(out / "states"):
        kind, name, b64 = line.split(",")
        assert (kind, name) not in states
        states[(kind, name)] = base64.b64decode(b64)
    return states


def test_one_model_per_key_recovers_from_a_failure_exactly_once(tmp_path):
    ex = load_example()
    data = tmp_path / "input.csv"
    ex.make_data(data, 2000, 12)
    lines = data.read_text().splitlines(keepends=True)
    bad = ["key3,nan,0.5,0.1\n", "key4,0.5,0.1\n"]  # a NaN input; a line with a field missing
    data.write_text("".join(lines[:300] + bad[:1] + lines[300:900] + bad[1:] + lines[900:]))
    out = tmp_path / "per-key"
    stdout = run_job(out, "--input", str(data), "--parallelism", "2", "--interval-ms", "500", "--fail-after", "400")
    assert "2002 records in, 2000 predictions out" in stdout
    rejected = sorted(ex.read_lines(out / "rejected"))
    assert len(rejected) == 2 and rejected[0].startswith("key3: x has non-finite values")
    assert rejected[1].startswith("key4: line has 3 fields")
    states, outputs = {}, {}
    for key, record in records_by_key(data):
        s = states.get(key) or S.initial_state(**ex.CONFIG)
        seq = S.decode(s).steps
        try:
            states[key], p = S.step(s, record)
        except ValueError:
            continue
        outputs[(key, seq)] = repr(float(p[0]))
    assert len(outputs) == 2000
    check_outputs(out, outputs)
    assert final_states(out) == {("model", k): s for k, s in states.items()}  # bit for bit


def test_shared_weights_per_group_recover_from_a_failure_exactly_once(tmp_path):
    """One file, one source split: each group sees its records in file order, whatever
    the parallelism, so the reference is one shared_step loop per group in file order."""
    out = tmp_path / "shared"
    groups = 3
    stdout = run_job(out, "--records", "2000", "--keys", "12", "--parallelism", "2", "--interval-ms", "500",
                     "--fail-after", "400", "--shared", "--groups", str(groups), "--compact-every", "16")
    assert "2000 records in, 2000 predictions out" in stdout
    config = load_example().CONFIG
    shared, rows, outputs = {}, {}, {}
    for key, record in records_by_key(out / "input.csv"):
        g = group_of(key, groups)
        w = shared.get(g) or S.initial_shared(**config)
        seq = S.row_steps(rows[key]) if key in rows else 0
        shared[g], rows[key], p = S.shared_step(w, rows.get(key), record)
        outputs[(key, seq)] = repr(float(p[0]))
    check_outputs(out, outputs)
    expected = {("shared", str(g)): w for g, w in shared.items()}
    expected.update({("row", k): r for k, r in rows.items()})
    assert final_states(out) == expected
