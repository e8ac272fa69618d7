"""Keyed online models on Apache Flink: a CSV file in, one prediction per record out.

Reads ``key,x_1,x_2,y`` lines from a file (a bounded ``FileSource``), keys them, and runs
a GRU per key (or, with ``--shared``, shared weights per group with a hidden state per
key) whose state lives in Flink's keyed state, with checkpointing on. Writes
``key,seq,prediction`` lines with ``FileSink``, which commits its files on checkpoints
(exactly-once). Runs in Flink's local mini-cluster (thread mode); the same script runs
on a cluster with ``flink run --python examples/flink_job.py ...``.

``--fail-after N`` demonstrates recovery: the job fails once, after N records have
been read and a checkpoint has completed; Flink restarts it from that checkpoint, and
the output still holds every prediction exactly once. ``--raw-log FILE`` also appends
every prediction as it is emitted, outside any transaction: after the restart it holds
the replayed ones twice, identical, as an at-least-once sink would.

Usage: python examples/flink_job.py --output DIR [--input FILE | --records N --keys K]
       [--shared --groups G] [--parallelism P] [--interval-ms MS] [--fail-after N]
       [--final-states] [--raw-log FILE] [--compact-every C]
"""

import argparse
import glob
import os
import sys
import time

import numpy as np

CONFIG = dict(cell="gru", input_size=2, hidden_size=8, output_size=1, k1=4, optimizer="adam", lr=0.02, clip=1.0, seed=0)


def make_data(path, records, keys, seed=0):
    """``records`` lines over ``keys`` keys: each key a noisy sine with its own period;
    x = (s_t, s_t - s_{t-1}), y = s_{t+1}; one line in ten has no target."""
    rng = np.random.default_rng(seed)
    key_of = rng.integers(0, keys, records)
    t = np.zeros(keys, dtype=int)
    period = 5.0 + 10.0 * rng.uniform(size=keys)
    with open(path, "w") as f:
        for i in range(records):
            k = key_of[i]
            s = [float(np.sin((t[k] + j) / period[k]) + 0.05 * rng.normal()) for j in (-1, 0, 1)]
            y = "" if rng.uniform() < 0.1 else repr(s[2])
            f.write(f"key{k},{s[1]!r},{s[1] - s[0]!r},{y}\n")
            t[k] += 1


def uri(path):
    """``path`` as Flink wants it: URIs (``s3://``, ``hdfs://``, ``file://``) as given,
    local paths made absolute."""
    return path if "://" in path else "file://" + os.path.abspath(path)


def is_local(path):
    return "://" not in path or path.startswith("file://")


def local_path(path):
    return path[len("file://") :] if path.startswith("file://") else path


def read_lines(directory):
    """Lines of every finished part file under ``directory`` (in-progress files start with '.')."""
    lines = []
    for path in sorted(glob.glob(os.path.join(directory, "**", "*"), recursive=True)):
        if os.path.isfile(path) and not os.path.basename(path).startswith("."):
            with open(path) as f:
                lines.extend(line.rstrip("\n") for line in f)
    return lines


def environment(args):
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    conf = Configuration()
    conf.set_string("python.execution-mode", "thread")
    conf.set_string("execution.checkpointing.interval", f"{args.interval_ms} ms")
    conf.set_string("execution.checkpointing.dir", uri(args.checkpoints))
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", "3")
    conf.set_string("restart-strategy.fixed-delay.delay", "200 ms")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(args.parallelism)
    return env


def file_sink(path):
    from pyflink.common import Encoder
    from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink

    return (
        FileSink.for_row_format(path, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )


class FailOnceKey:
    """The key function, which also fails the job once (``--fail-after``): after N
    records of a source subtask, 300 records after the latest completed checkpoint
    (so that records processed since are replayed). Until then it paces reading at
    1 ms a record, so that checkpoints complete early in a short job.

    With ``progress`` (the raw log) it also waits until predictions made after that
    checkpoint have reached the log: records read are not yet records processed (they
    may sit in the buffers between operators, more so on a busy machine), and a failure
    before any of them is processed would leave nothing to replay."""

    def __init__(self, key, fail_after, marker, checkpoints, progress=None):
        self.key, self.fail_after, self.marker, self.progress = key, fail_after, marker, progress
        self.pattern = os.path.join(checkpoints, "*", "chk-*", "_metadata")
        self.seen = 0
        self.latest = (None, 0, 0)  # newest completed checkpoint seen, when, and the log's size then

    def _logged(self):
        try:
            return os.path.getsize(self.progress) if self.progress else 0
        except OSError:
            return 0

    def __call__(self, line):
        if not os.path.exists(self.marker):
            self.seen += 1
            time.sleep(0.001)
            newest = max(glob.glob(self.pattern), default=None, key=lambda p: int(p.split("chk-")[1].split(os.sep)[0]))
            if newest != self.latest[0]:
                self.latest = (newest, self.seen, self._logged())
            processed = self.progress is None or self._logged() - self.latest[2] >= 1000  # ~40 predictions
            if self.seen >= self.fail_after and newest and self.seen - self.latest[1] >= 300 and processed:
                open(self.marker, "w").close()
                raise RuntimeError(f"injected failure after {self.seen} records")
        return self.key(line)


def raw_log(path, marker):
    """A pass-through map appending each prediction, tagged with the attempt (1 before
    the injected failure, 2 after), to ``path`` outside any transaction: what an
    at-least-once sink would write."""
    from pyflink.datastream import MapFunction

    class RawLog(MapFunction):
        def open(self, ctx):
            self.attempt = 2 if os.path.exists(marker) else 1
            self.f = open(path, "a")

        def map(self, line):
            self.f.write(f"{self.attempt},{line}\n")
            self.f.flush()
            return line

        def close(self):
            self.f.close()

    return RawLog()


def build(env, args):
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

    from streamrnn.adapters import flink as srf

    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), uri(args.input)).build()
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "csv records")
    parse = srf.CsvRecords(CONFIG["input_size"], CONFIG["output_size"])
    marker = os.path.join(local_path(args.output), "failed-once")
    key = parse.key
    if args.fail_after:
        key = FailOnceKey(
            parse.key, args.fail_after, marker, os.path.abspath(local_path(args.checkpoints)), args.raw_log
        )
    predictions = srf.predict(
        lines,
        CONFIG,
        shared=args.shared,
        groups=args.groups,
        parse=parse,
        key=key,
        compact_every=args.compact_every,
        final_states=args.final_states,
    )
    text = predictions.map(srf.format_csv, output_type=Types.STRING())
    if args.raw_log:
        text = text.map(raw_log(args.raw_log, marker), output_type=Types.STRING())
    text.sink_to(file_sink(uri(os.path.join(args.output, "predictions"))))
    joined = Types.STRING()
    rejected = predictions.get_side_output(srf.rejected_tag()).map(lambda r: f"{r[0]}: {r[1]}", output_type=joined)
    rejected.sink_to(file_sink(uri(os.path.join(args.output, "rejected"))))
    if args.final_states:
        states = predictions.get_side_output(srf.final_states_tag()).map(",".join, output_type=joined)
        states.sink_to(file_sink(uri(os.path.join(args.output, "states"))))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", required=True, help="directory for predictions/, states/, rejected/")
    p.add_argument("--input", help="CSV of key,x1,x2,y lines (default: generate one in OUTPUT)")
    p.add_argument("--records", type=int, default=5000)
    p.add_argument("--keys", type=int, default=20)
    p.add_argument("--shared", action="store_true", help="shared weights per group, a hidden state per key")
    p.add_argument("--groups", type=int, default=None, help="groups of keys sharing weights (default: parallelism)")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--interval-ms", type=int, default=500, help="checkpoint interval")
    p.add_argument("--checkpoints", help="checkpoint directory (default: OUTPUT/checkpoints)")
    p.add_argument("--compact-every", type=int, default=64)
    p.add_argument("--fail-after", type=int, default=0, help="fail once after N records (and a checkpoint)")
    p.add_argument("--final-states", action="store_true", help="write every key's final state to OUTPUT/states")
    p.add_argument("--raw-log", help="also append each prediction, unsynchronised, to this file")
    args = p.parse_args(argv)
    args.checkpoints = args.checkpoints or os.path.join(args.output, "checkpoints")
    args.groups = args.groups or args.parallelism
    return args


def summary(args, elapsed):
    """Count the predictions written, and their error against the next value, per half."""
    import math

    from streamrnn.adapters.flink import CsvRecords

    parse = CsvRecords(CONFIG["input_size"], CONFIG["output_size"])
    truth, seqs, n = {}, {}, 0
    with open(local_path(args.input)) as f:
        for line in f:
            n += 1
            try:
                key, (x, y) = parse(line)
            except ValueError:
                continue
            if all(map(math.isfinite, x)):  # what the model accepts, so its seq counts it
                seqs[key] = seqs.get(key, 0) + 1
                if y is not None:
                    truth[(key, seqs[key] - 1)] = y[0]
    rows = [line.split(",") for line in read_lines(os.path.join(local_path(args.output), "predictions"))]
    scored = sorted((int(seq), abs(float(p) - truth[(k, int(seq))])) for k, seq, p in rows if (k, int(seq)) in truth)
    errors = [e for _, e in scored]  # in order of each key's sequence number
    half = len(errors) // 2
    mode = f"shared weights in {args.groups} groups" if args.shared else "one model per key"
    print(f"{mode}: {n} records in, {len(rows)} predictions out, {elapsed:.1f} s (job start included)")
    if errors:
        print(f"MAE first half: {np.mean(errors[:half]):.4f}  second half: {np.mean(errors[half:]):.4f}")
    return len(rows)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    local = is_local(args.output) and (args.input is None or is_local(args.input))
    if local:
        os.makedirs(local_path(args.output), exist_ok=True)
    if not args.input:
        args.input = os.path.join(local_path(args.output), "input.csv")
        make_data(args.input, args.records, args.keys)
    env = environment(args)
    build(env, args)
    start = time.perf_counter()
    env.execute("streamrnn keyed models")
    elapsed = time.perf_counter() - start
    if not local:
        print(f"finished in {elapsed:.1f} s; predictions in {args.output}/predictions")
        return None
    return summary(args, elapsed)


if __name__ == "__main__":
    main()
