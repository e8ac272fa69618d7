"""Records/s of keyed models on Flink's local mini-cluster against plain Python on the same records.

Rows (the model of ``examples/flink_job.py``: GRU, D=2, H=8, k1=4, adam; the same CSV):

* python step loop    : ``state, out = step(state, record)`` per record, one state per
  key (decode and encode the whole model every record: the engine-neutral contract).
* python models       : one ``StreamRNN`` object per key in a dict, predict then learn
  (what the compute costs with nothing stored).
* adapter logic       : the Flink function's state logic on in-memory state (cache,
  replay log, compaction every C records), without Flink.
* flink ...           : the example job in the mini-cluster (thread mode, checkpoints
  every 2 s, FileSink). The rate is (N - n) / (T_N - T_n) for two input sizes, so the
  ~10 s job start-up cancels out; the wall time of the big job is shown too.

Needs PyFlink for the flink rows (run it with the Flink environment's Python; see
``.ci/flink``); without it only the plain Python rows run.

Usage: python benchmarks/flink_throughput.py [--records 40000] [--keys 100]
       [--python-records 5000] [--no-flink]
"""

import argparse
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flink_job.py"


def load_example():
    spec = importlib.util.spec_from_file_location("flink_job", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_records(path, limit):
    from streamrnn.adapters.flink import CsvRecords

    parse = CsvRecords(2, 1)
    with open(path) as f:
        return [parse(line) for _, line in zip(range(limit), f)]


def bench_step_loop(config, records):
    from streamrnn import step as S

    states = {}
    init = S.initial_state(**config)
    t = time.perf_counter()
    for key, rec in records:
        states[key], _ = S.step(states.get(key, init), rec)
    return len(records) / (time.perf_counter() - t)


def bench_models(config, records):
    import streamrnn as sr
    from streamrnn import step as S

    models = {}
    t = time.perf_counter()
    for key, rec in records:
        m = models.get(key)
        if m is None:
            m = models[key] = sr.StreamRNN(**config)
        S.apply(m, rec)
    return len(records) / (time.perf_counter() - t)


def bench_logic(config, records, compact_every):
    from streamrnn.adapters.flink import KeyedModels, MemoryState

    logic = KeyedModels(config, compact_every=compact_every)
    state = MemoryState()
    logic.open(state)
    t = time.perf_counter()
    for key, rec in records:
        state.set_key(key)
        logic.process(key, rec)
    return len(records) / (time.perf_counter() - t)


def run_job(example, out, input_path, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(EXAMPLE), "--output", out, "--input", input_path, "--interval-ms", "2000", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    n_in, n_out, secs = re.search(r"(\d+) records in, (\d+) predictions out, ([\d.]+) s", res.stdout).groups()
    assert n_in == n_out, res.stdout
    return float(secs)


def bench_flink(example, big, small, n_big, n_small, *args):
    with tempfile.TemporaryDirectory() as tmp:
        t_small = run_job(example, os.path.join(tmp, "small"), small, *args)
        t_big = run_job(example, os.path.join(tmp, "big"), big, *args)
    return (n_big - n_small) / (t_big - t_small), t_big


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=40000)
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--python-records", type=int, default=5000)
    p.add_argument("--no-flink", action="store_true")
    args = p.parse_args(argv)
    example = load_example()
    config = example.CONFIG
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.csv")
        example.make_data(big, args.records, args.keys)
        small = os.path.join(tmp, "small.csv")
        with open(big) as f, open(small, "w") as g:
            g.writelines(line for _, line in zip(range(args.small), f))
        records = read_records(big, args.python_records)
        bench_models(config, records[:200])  # compile / load the kernels
        print(f"model: {config}")
        print(f"{args.records} records over {args.keys} keys (python rows: the first {len(records)})\n")
        print(f"{'path':44s} {'records/s':>10s}")
        rows = [
            ("python step loop (decode+encode per record)", bench_step_loop(config, records)),
            ("python models (one StreamRNN per key)", bench_models(config, records)),
            ("adapter logic, compact every 64", bench_logic(config, records, 64)),
            ("adapter logic, compact every 1", bench_logic(config, records, 1)),
        ]
        for name, rate in rows:
            print(f"{name:44s} {rate:10.0f}", flush=True)
        if args.no_flink:
            return
        try:
            import pyflink  # noqa: F401
        except ImportError:
            print("(no PyFlink here: run with the Flink environment's Python for the flink rows)")
            return
        jobs = [
            ("flink per key, p=1, compact 64", ("--parallelism", "1")),
            ("flink per key, p=2, compact 64", ("--parallelism", "2")),
            ("flink per key, p=1, compact 1", ("--parallelism", "1", "--compact-every", "1")),
            ("flink shared, p=1, 1 group", ("--parallelism", "1", "--shared", "--groups", "1")),
            ("flink shared, p=2, 2 groups", ("--parallelism", "2", "--shared", "--groups", "2")),
        ]
        for name, job_args in jobs:
            rate, wall = bench_flink(example, big, small, args.records, args.small, *job_args)
            print(f"{name:44s} {rate:10.0f}   (wall {wall:.1f} s for {args.records}, start-up included)", flush=True)


if __name__ == "__main__":
    main()
