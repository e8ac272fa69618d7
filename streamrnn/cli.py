"""The ``streamrnn`` command (also ``python -m streamrnn``).

Commands
--------
``streamrnn demo``
    Learn a data set that ships with river (no download) online, in progressive
    validation, with a progress bar; print a table against a river model and the
    last-value baseline; write a plot, the predictions and a checkpoint.
``streamrnn run``
    Learn a CSV or JSON Lines stream (a file or stdin), writing one prediction per
    record as JSON Lines, each made before the record is learned and flushed at once,
    so it works inside a Unix pipe. Checkpoints, resume, keyed streams.
``streamrnn bench``
    Samples/s of streamrnn against the PyTorch loops that do the same training.

``streamrnn COMMAND --help`` shows each command's options, with examples.

Exit codes
----------
=====  ======================================================================
0      done: the input ended (``run``: malformed records were reported and
       skipped) or the command finished
1      an error in the data or while running: a malformed record under
       ``--strict``, a CSV header that cannot be used, a checkpoint that
       cannot be written
2      usage: a bad option, an input or checkpoint that cannot be opened or
       read, a checkpoint that does not match the options given
130    ``run`` stopped by SIGINT (Ctrl-C), after writing its checkpoint
141    ``run`` stopped because the reader of its output went away (broken
       pipe), after writing its checkpoint
143    ``run`` stopped by SIGTERM, after writing its checkpoint
=====  ======================================================================
"""

import argparse
import os
import signal
import sys
import threading

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PIPE = 141

EXIT_CODES_HELP = """exit codes:
  0    done: the input ended (malformed records were reported and skipped)
  1    a malformed record under --strict, an unusable CSV header, a failed checkpoint write
  2    usage: a bad option, an unreadable input or checkpoint, a checkpoint that
       does not match the options given
  130  stopped by SIGINT (Ctrl-C), after writing the checkpoint (--save)
  141  the reader of the output went away (broken pipe), after writing the checkpoint
  143  stopped by SIGTERM, after writing the checkpoint (--save)"""


class UsageError(Exception):
    """A problem with the command line or the files it names (exit code 2)."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=100)


# ---------------------------------------------------------------------------------- run
RUN_DESCRIPTION = """\
Learn a stream of records online and write one prediction per record.

Reads CSV (a header line, then one record per line) or JSON Lines (one object per line)
from a file or from stdin (-), line by line as it arrives. For each record it writes one
JSON line to the output and flushes it: the prediction for that record, made before the
model learns it (prequential), so every prediction is out-of-sample. Then it learns the
record. It works inside a pipe: a prediction comes out as soon as its line goes in.

Features are every column except the target, the key and the --echo/--ignore columns
(or exactly --features). Values must be numbers; an empty field, null or a missing
column is a missing value (it counts as the feature's running mean). Features are
standardised online (--no-scale to turn it off).

Records whose target is empty, null or missing are predicted but not learned from: the
model does not see them (its hidden state does not move either).

A malformed record (bad CSV or JSON, a value that is not a number, ...) is reported on
stderr with its line number and skipped; with --strict it stops the run (exit code 1).

Output lines: {"n": N, "key": ..., <echo columns>, "prediction": ...} where n counts the
records predicted over the model's life (it continues after --resume); classify adds
"proba" (label -> probability).

Checkpoints: --save CKPT writes the whole state (model, optimizer, hidden states, feature
scaling, record count) atomically at the end of the input, every --every N records, and
before exiting on SIGINT/SIGTERM or a broken pipe; a stopped run says how many records of
its input it handled. --resume CKPT continues exactly where it stopped (feed it the rest of
the input, or the same input with --skip N): the predictions are those of a run that
never stopped."""

RUN_EXAMPLES = """\
examples:
  # learn a CSV file, predictions to a file
  streamrnn run --input sensors.csv --target temp --output predictions.jsonl

  # inside a pipe, one state per machine, checkpoint every 1000 records
  tail -f events.jsonl | streamrnn run --input - --target latency --key host \\
      --save model.ckpt --every 1000 | jq -c 'select(.prediction > 200)'

  # classify, copy the id column into each output line
  streamrnn run --input mail.csv --target label --task classify --echo id

  # stopped (Ctrl-C, SIGTERM) after 1500 records? continue from the checkpoint
  streamrnn run --input data.csv --resume model.ckpt --skip 1500 --save model.ckpt
  cat rest.csv | streamrnn run --input - --resume model.ckpt    # or feed the rest

  # one step ahead forecast of a series, with the other columns as exogenous inputs
  streamrnn run --input load.csv --target load --task forecast --ignore timestamp
"""


def _csv_names(text):
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"a comma-separated list of column names is expected, got {text!r}")
    return names


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer is expected, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _count(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer is expected, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {v}")
    return v


def _add_run(sub):
    p = sub.add_parser(
        "run",
        help="learn a CSV / JSON Lines stream, one prediction per record",
        description=RUN_DESCRIPTION,
        epilog=RUN_EXAMPLES + "\n" + EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    io = p.add_argument_group("input and output")
    io.add_argument("--input", "-i", required=True, metavar="FILE|-", help="a CSV or JSON Lines file, or - for stdin")
    io.add_argument("--output", "-o", default="-", metavar="FILE|-", help="where predictions go (default: - stdout)")
    io.add_argument(
        "--format", choices=("csv", "jsonl"), default=None,
        help="input format (default: from the file extension, else from the first line)",
    )
    io.add_argument(
        "--delimiter", default=None, metavar="CHAR",
        help="CSV field separator; 'tab' or '\\t' for a tab (default: , or tab for .tsv)"
    )
    io.add_argument("--strict", action="store_true", help="stop at the first malformed record (exit code 1)")
    io.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr (errors are still reported)")

    cols = p.add_argument_group("columns")
    cols.add_argument("--target", "-t", metavar="COL", help="the target column (required unless --resume)")
    cols.add_argument("--key", metavar="COL", help="a key column: one hidden state per key value, shared weights")
    cols.add_argument(
        "--capacity", type=_positive_int, default=None, metavar="N",
        help="with --key: keys held at most; a new key evicts the least recently seen (default: 1024)",
    )
    cols.add_argument("--features", type=_csv_names, metavar="A,B,...", help="exactly these feature columns")
    cols.add_argument(
        "--ignore", type=_csv_names, default=None, metavar="A,B,...", help="columns that are not features"
    )
    cols.add_argument(
        "--echo", type=_csv_names, default=None, metavar="A,B,...",
        help="columns copied into each output line (not features)",
    )

    model = p.add_argument_group("model (fixed by the checkpoint with --resume)")
    model.add_argument(
        "--task", choices=("regress", "classify", "forecast"), default=None,
        help="regress a number, classify a label, forecast the target's next value (default: regress)",
    )
    model.add_argument("--cell", choices=("gru", "lstm", "elman"), default=None, help="recurrent cell (default: gru)")
    model.add_argument("--hidden", type=_positive_int, default=None, metavar="H", help="hidden size (default: 32)")
    model.add_argument(
        "--k", type=_positive_int, default=None, metavar="K", help="TBPTT: update every K records (default: 16)"
    )
    model.add_argument("--k2", type=_positive_int, default=None, help="TBPTT: backpropagate K2 >= K steps (default: K)")
    model.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default=None, help="(default: adam)")
    model.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.005)")
    model.add_argument("--clip", type=float, default=None, help="gradient norm clip, 0 for none (default: 1.0)")
    model.add_argument("--seed", type=int, default=None, help="weight init seed (default: 0)")
    model.add_argument(
        "--diff-target", action="store_true", default=None,
        help="regress: learn the change of the target since the previous record",
    )
    model.add_argument(
        "--diff-features", action="store_true", default=None,
        help="regress: feed each feature's change since the previous record instead of its value",
    )
    model.add_argument(
        "--feed-target", action="store_true", default=None,
        help="regress: also feed the previous target as an input",
    )
    model.add_argument("--no-scale", action="store_true", default=None, help="do not standardise features")

    ck = p.add_argument_group("checkpoints")
    ck.add_argument("--save", metavar="CKPT", help="write the checkpoint here (at the end, every N, on a signal)")
    ck.add_argument("--every", type=_positive_int, metavar="N", help="also write it every N records (needs --save)")
    ck.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint")
    ck.add_argument(
        "--skip", type=_count, default=0, metavar="N",
        help="pass over the first N records of the input (those the checkpoint has seen: "
        "a stopped run says how many)",
    )
    p.set_defaults(func=_cmd_run)
    return p


# model options: (argparse name, StreamModel name or None for top-level config)
_MODEL_OPTIONS = {
    "cell": "cell",
    "hidden": "hidden_size",
    "k": "k1",
    "k2": "k2",
    "optimizer": "optimizer",
    "lr": "lr",
    "clip": "clip",
    "seed": "seed",
    "diff_target": "diff_target",
    "diff_features": "diff_features",
    "feed_target": "feed_target",
    "capacity": "capacity",
}


def _model_from_args(args):
    from .runner import StreamModel

    if args.resume:
        return _resumed_model(args)
    if not args.target:
        raise UsageError("--target is required (unless --resume gives it)")
    model = {}
    for opt, name in _MODEL_OPTIONS.items():
        v = getattr(args, opt)
        if v is not None:
            model[name] = v
    if model.get("clip") == 0:
        model["clip"] = None
    try:
        return StreamModel(
            task=args.task or "regress",
            target=args.target,
            key=args.key,
            features=args.features,
            ignore=args.ignore or (),
            echo=args.echo or (),
            scale=not args.no_scale,
            **model,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _resumed_model(args):
    from .checkpoint import CheckpointError
    from .runner import StreamModel

    try:
        sm = StreamModel.load(args.resume)
    except FileNotFoundError:
        raise UsageError(f"--resume {args.resume}: no such file") from None
    except (CheckpointError, OSError) as exc:
        raise UsageError(f"--resume: {exc}") from None
    given = {
        "task": args.task,
        "target": args.target,
        "key": args.key,
        "features": args.features,
        "ignore": args.ignore,
        "echo": args.echo,
        "scale": None if args.no_scale is None else not args.no_scale,
    }
    cfg = sm.config()
    for name, v in given.items():
        if v is not None and v != cfg[name]:
            flag = "--no-scale" if name == "scale" else f"--{name}"
            raise UsageError(f"{flag} {v!r} differs from the checkpoint's {cfg[name]!r} ({args.resume})")
    for opt, name in _MODEL_OPTIONS.items():
        v = getattr(args, opt)
        if name == "clip" and v == 0:
            v = None
            if cfg["model"]["clip"] is None:
                continue
        if v is not None and v != cfg["model"][name]:
            raise UsageError(
                f"--{opt.replace('_', '-')} {v!r} differs from the checkpoint's {cfg['model'][name]!r} ({args.resume})"
            )
    return sm


class _Signals:
    """SIGINT/SIGTERM handlers for ``run``: note the signal; raise ``Interrupted`` only while waiting for input."""

    def __init__(self):
        from .runner import Interrupted

        self.Interrupted = Interrupted
        self.signum = None
        self.waiting = False
        self._old = {}

    def _handle(self, signum, frame):
        self.signum = signum
        if self.waiting:
            raise self.Interrupted(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _open_input(path):
    if path == "-":
        return sys.stdin.buffer, "<stdin>"
    try:
        return open(path, "rb"), path
    except OSError as exc:
        raise UsageError(f"--input {path}: {exc.strerror}") from None


def _open_output(path):
    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output {path}: {exc.strerror}") from None


def _cmd_run(args):
    from .records import Reader
    from .runner import run_records

    if args.every and not args.save:
        raise UsageError("--every needs --save (where to write the checkpoint)")
    if args.delimiter in ("\\t", "tab"):  # a tab is hard to type in a shell
        args.delimiter = "\t"
    model = _model_from_args(args)
    stream, name = _open_input(args.input)
    try:
        reader = Reader(stream, fmt=args.format, delimiter=args.delimiter, name=name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = _open_output(args.output)

    def report(message):
        sys.stderr.write(f"streamrnn run: {message}\n")
        sys.stderr.flush()

    try:
        with _Signals() as signals:
            return run_records(
                model, reader, out, report,
                save=args.save, every=args.every, strict=args.strict, signals=signals, quiet=args.quiet,
                skip=args.skip,
            )
    finally:
        if out is not sys.stdout:
            out.close()
        if stream is not sys.stdin.buffer:
            stream.close()


# -------------------------------------------------------------------------------- bench
BENCH_EXAMPLES = """\
examples:
  streamrnn bench                      # GRU, H=64, D=8, K=16
  streamrnn bench --all --hidden 32    # the three cells
  streamrnn bench --steps 2000 --torch-steps 500   # a quick look
"""


def _add_bench(sub):
    from . import bench

    p = sub.add_parser(
        "bench",
        help="samples/s against the PyTorch training loops (torch optional)",
        description=bench.__doc__.split("\n\nExamples")[0],
        epilog=BENCH_EXAMPLES + "\nexit codes:\n  0    done\n  2    usage: a bad option",
        formatter_class=_Formatter,
    )
    bench.add_arguments(p)
    p.set_defaults(func=_cmd_bench)
    return p


def _cmd_bench(args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    from . import bench

    try:
        bench.run(args, out=lambda line: print(line, flush=True))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


# --------------------------------------------------------------------------------- demo
DEMO_EXAMPLES = """\
examples:
  streamrnn demo                       # outputs in ./streamrnn-output
  streamrnn demo --out /tmp/demo       # elsewhere
  streamrnn demo --n 300               # the first 300 samples only (quick)
"""


DEMO_DESCRIPTION = """\
The whole idea in one minute, offline.

A recurrent network learns river's TrumpApproval data set (1,001 days of poll averages,
shipped with river: no download) online, one day at a time: each day it predicts the
approval rating before it learns that day's truth (progressive validation), so every
prediction is out-of-sample. A progress bar shows it learning.

Then it prints a table: the network's mean absolute error and samples/s against a river
model (StandardScaler | LinearRegression) and against the last-value baseline (predict
yesterday's value). It writes, to --out:

  demo.png          prediction against truth, the rolling error, the gradient norm per
                    update (needs matplotlib: pip install "streamrnn[plot]")
  predictions.csv   truth and every model's prediction, day by day
  trump_approval.csv  the data set, to try `streamrnn run` on
  model.ckpt        the model's checkpoint; `streamrnn run --resume` continues from it

The first run compiles the kernels (cached on disk afterwards)."""


def _add_demo(sub):
    p = sub.add_parser(
        "demo",
        help="learn a river data set online; table, plot and checkpoint (start here)",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EXAMPLES + "\nexit codes:\n  0    done\n  1    an output could not be written\n"
        "  2    usage: a bad option",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--out", default="streamrnn-output", metavar="DIR", help="output directory (default: ./streamrnn-output)"
    )
    p.add_argument("--n", type=_positive_int, default=None, metavar="N", help="use the first N samples only")
    p.add_argument("--no-plot", action="store_true", help="skip the plot")
    p.set_defaults(func=_cmd_demo)
    return p


def _cmd_demo(args):
    from . import demo

    return demo.main(out_dir=args.out, n=args.n, plot_png=not args.no_plot)


# --------------------------------------------------------------------------------- main
def build_parser():
    """The ``streamrnn`` argument parser."""
    from ._version import __version__

    p = argparse.ArgumentParser(
        prog="streamrnn",
        description="Recurrent networks (Elman, GRU, LSTM) that learn online, one sample at a time.",
        epilog="Start with: streamrnn demo\n\n" + EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    p.add_argument("--version", action="version", version=f"streamrnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    _add_run(sub)
    _add_bench(sub)
    return p


def main(argv=None):
    """Run the ``streamrnn`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse exits with 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as exc:
        sys.stderr.write(f"streamrnn {args.command}: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE


def _quiet_stdout():
    """After a broken pipe, point stdout at devnull so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
