"""Throughput, side by side: streamrnn against the PyTorch loops that do the same training.

Same cell, sizes, K, optimizer (SGD), dtype (float64 by default; ``--dtype float32``
runs both sides in float32, PyTorch's default) and data; one thread each; times
are CPU time of this process (so a busy machine does not skew the ratios). Columns:

* torch per-sample: the loop a PyTorch user writes for a stream: one module call per
  sample (its prediction read before the next sample), and every K samples
  ``loss.backward(); opt.step(); h = h.detach()``. Every ratio is against it.
* torch chunked: the batch-of-one chunked loop (K steps per module call), which needs
  the whole chunk before predicting, so it is not a streaming loop; for reference.
* streamrnn loop: ``p = m.predict(x); m.learn(x, y)`` per sample, from Python.
* streamrnn run: ``m.run(X, Y)``, the same loop in one compiled call.

The PyTorch loops live in ``streamrnn.adapters.torch.loop_rates`` (torch is imported
there only). ``streamrnn bench`` and ``benchmarks/throughput.py`` print this table.

Examples
--------
>>> from streamrnn import bench
>>> X, Y = bench.make_stream(5, 2)
>>> X.shape, Y.shape, bool((Y[:-1, 0] == X[1:, 0]).all())
((5, 2), (5, 1), True)
>>> rows = [{"cell": "gru", "loop": v, "run": 2 * v, "torch": {"per-sample": v / 20, "chunked": v / 10}}
...         for v in (3.0e4, 1.0e5, 4.0e4)]
>>> bench.median_row(rows)["loop"], bench.median_row(rows)["torch"]["per-sample"]
(40000.0, 2000.0)
>>> print(bench.format_row({"cell": "gru", "loop": 61234.5, "run": 420000.0,
...                         "torch": {"per-sample": 3000.0, "chunked": 9000.0}}))
| gru | 3,000 (1x) | 9,000 (3.0x) | 61,234 (20x) | 420,000 (140x) |
"""

import time

import numpy as np

CELLS = ("elman", "gru", "lstm")
HEADER = (
    "| cell | torch per-sample | torch chunked | streamrnn loop | streamrnn run |\n"
    "|---|---:|---:|---:|---:|"
)


def make_stream(steps, input_size, seed=0):
    """A noisy multi-frequency sine stream: ``X`` (steps, D) and the next value of column 0, ``Y`` (steps, 1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1)[:, None]
    X = np.sin(t / (3.0 + np.arange(input_size))) + 0.1 * rng.normal(size=(steps + 1, input_size))
    return X[:-1].copy(), X[1:, :1].copy()


def streamrnn_rates(cell, X, Y, hidden_size, k, lr=0.01):
    """Samples/s of ``predict``/``learn`` from Python and of ``run``, as ``(loop, run)``.

    The model's dtype is that of ``X``. Kernels are compiled (or loaded from the cache)
    before timing.
    """
    from .engine import StreamRNN

    def model():
        return StreamRNN(
            cell=cell, input_size=X.shape[1], hidden_size=hidden_size, output_size=Y.shape[1], k1=k, lr=lr, seed=0,
            dtype=X.dtype.name,
        )

    m = model()
    m.run(X[:64], Y[:64])
    m.predict(X[0])
    m.learn(X[0], Y[0])
    m = model()
    start = time.process_time()
    m.run(X, Y)
    run_rate = len(X) / (time.process_time() - start)
    m = model()
    predict, learn = m.predict, m.learn
    start = time.process_time()
    for i in range(len(X)):
        predict(X[i])
        learn(X[i], Y[i])
    loop_rate = len(X) / (time.process_time() - start)
    return loop_rate, run_rate


def have_torch():
    """True if PyTorch can be imported."""
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def measure(cell, hidden_size=64, input_size=8, k=16, steps=20000, torch_steps=3000, lr=0.01, torch=None,
            dtype="float64"):
    """One row of the table: ``{"cell", "loop", "run", "torch"}`` (``torch`` is None without PyTorch).

    ``torch=None`` measures the PyTorch loops when torch is installed; False skips them.
    Both sides compute in ``dtype``.
    """
    if torch is None:
        torch = have_torch()
    X, Y = (a.astype(dtype) for a in make_stream(steps, input_size))
    loop, run = streamrnn_rates(cell, X, Y, hidden_size, k, lr)
    row = {"cell": cell, "loop": loop, "run": run, "torch": None}
    if torch:
        from .adapters.torch import loop_rates

        n = min(torch_steps, steps)
        row["torch"] = loop_rates(cell, X[:n], Y[:n], hidden_size, k, lr)
    return row


def median_row(rows):
    """One row from several measurements of the same cell: the median of every rate."""
    med = lambda values: float(np.median(values))  # noqa: E731
    t = [r["torch"] for r in rows]
    return {
        "cell": rows[0]["cell"],
        "loop": med([r["loop"] for r in rows]),
        "run": med([r["run"] for r in rows]),
        "torch": None if t[0] is None else {k: med([x[k] for x in t]) for k in t[0]},
    }


def format_row(row):
    """A markdown table row for ``measure``'s result."""
    loop, run, t = row["loop"], row["run"], row["torch"]
    if t is None:
        return f"| {row['cell']} | - | - | {loop:,.0f} | {run:,.0f} |"
    base = t["per-sample"]
    return (
        f"| {row['cell']} | {base:,.0f} (1x) | {t['chunked']:,.0f} ({t['chunked'] / base:.1f}x) "
        f"| {loop:,.0f} ({loop / base:.0f}x) | {run:,.0f} ({run / base:.0f}x) |"
    )


def add_arguments(parser):
    """The benchmark's options, shared by ``streamrnn bench`` and ``benchmarks/throughput.py``."""
    parser.add_argument("--cell", default="gru", choices=CELLS, help="recurrent cell (default: gru)")
    parser.add_argument("--all", action="store_true", help="all three cells")
    parser.add_argument("--hidden", type=int, default=64, metavar="H", help="hidden size (default: 64)")
    parser.add_argument("--input", type=int, default=8, metavar="D", help="input size (default: 8)")
    parser.add_argument("--k", type=int, default=16, help="TBPTT window, k1 = k2 (default: 16)")
    parser.add_argument("--steps", type=int, default=20000, help="samples for streamrnn (default: 20000)")
    parser.add_argument(
        "--torch-steps", type=int, default=3000, help="samples for the PyTorch loops (default: 3000)"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch loops")
    parser.add_argument(
        "--dtype", default="float64", choices=("float64", "float32"), help="both sides' dtype (default: float64)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure N times, print the medians (default: 1)")


def run(args, out=print):
    """Print the table for parsed ``args``; return the rows."""
    for name in ("hidden", "input", "k", "steps", "torch_steps", "repeat"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    torch = not args.no_torch and have_torch()
    if not torch and not args.no_torch:
        out("torch is not installed (pip install torch): only the streamrnn columns are measured")
    out(
        f"H={args.hidden} D={args.input} K={args.k}, SGD, {args.dtype}, one thread; "
        "samples/s (ratio to torch per-sample)" + (f", medians of {args.repeat} runs" if args.repeat > 1 else "")
    )
    out(HEADER)
    rows = []
    for cell in CELLS if args.all else (args.cell,):
        row = median_row([
            measure(cell, args.hidden, args.input, args.k, args.steps, args.torch_steps, torch=torch, dtype=args.dtype)
            for _ in range(args.repeat)
        ])
        out(format_row(row))
        rows.append(row)
    return rows
