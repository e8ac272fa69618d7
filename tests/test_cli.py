"""The ``streamrnn`` command, driven as a user would: through a subprocess."""

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIRST_LINE_TIMEOUT = 300  # the first prediction may compile the kernels (cold cache)
LINE_TIMEOUT = 60


def streamrnn(*args, stdin=None, cwd=None, timeout=600):
    """Run ``python -m streamrnn ARGS``; return the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "streamrnn", *map(str, args)],
        input=stdin, capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout,
    )


def in_process(capsys, *args):
    """``streamrnn ARGS`` in this process (for help and usage errors): (exit code, stdout, stderr)."""
    from streamrnn.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


class Pipe:
    """A ``streamrnn`` process fed through stdin, its stdout lines read as they come."""

    def __init__(self, *args, cwd=None):
        self.stderr_path = pathlib.Path(cwd or ROOT) / f".stderr-{os.getpid()}-{id(self)}.txt"
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamrnn", *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, cwd=cwd or ROOT,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line.decode())
        self.lines.put(None)

    def write(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def read(self, timeout=LINE_TIMEOUT):
        """The next output line; fails if none arrives within ``timeout`` seconds."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"no output line within {timeout} s; stderr: {self.stderr()}")
        return line

    def close(self, timeout=120):
        """Close stdin, wait; return (exit code, remaining stdout lines)."""
        self.proc.stdin.close()
        code = self.proc.wait(timeout=timeout)
        rest = []
        while True:
            line = self.lines.get(timeout=10)
            if line is None:
                return code, rest
            rest.append(line)

    def stderr(self):
        self._err.flush()
        return self.stderr_path.read_text()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        self._err.close()
        self.stderr_path.unlink(missing_ok=True)


@pytest.fixture
def pipes():
    made = []

    def make(*args, cwd=None):
        p = Pipe(*args, cwd=cwd)
        made.append(p)
        return p

    yield make
    for p in made:
        p.cleanup()


def series_csv(n, seed=0, header=True):
    """A CSV stream: two features and a target that depends on the past."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n + 1)
    lines = ["a,b,y"] if header else []
    for t in range(1, n + 1):
        lines.append(f"{float(a[t])!r},{float(rng.normal())!r},{float(a[t - 1] + 0.1 * a[t])!r}")
    return "\n".join(lines) + "\n"


SMALL = ("--hidden", 4, "--k", 2)


# ------------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", ["demo", "run", "bench"])
def test_each_command_help_has_examples_and_exit_codes(command):
    res = streamrnn(command, "--help")
    assert res.returncode == 0, res.stderr
    assert "examples:" in res.stdout and "exit codes:" in res.stdout
    assert f"streamrnn {command}" in res.stdout


def test_top_level_help_and_module_docstring_document_exit_codes(capsys):
    code, out, _ = in_process(capsys, "--help")
    assert code == 0
    for c in ("0", "1", "2", "130", "141", "143"):
        assert f"\n  {c} " in out
    from streamrnn import cli

    for c in ("130", "141", "143"):
        assert f"\n{c} " in cli.__doc__
    code, _, err = in_process(capsys)
    assert code == 2 and "demo" in err


def test_run_help_says_records_without_target_are_not_learned(capsys):
    _, out, _ = in_process(capsys, "run", "--help")
    assert "predicted but not learned from" in " ".join(out.split())


def test_console_entry_point_is_declared_and_runs():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'streamrnn = "streamrnn.cli:main"' in text
    import importlib.metadata

    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    if scripts.get("streamrnn") != "streamrnn.cli:main":
        pytest.skip("the installed metadata predates the entry point: pip install -e . again")
    script = pathlib.Path(sys.executable).parent / "streamrnn"
    res = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("streamrnn ")


# ------------------------------------------------------------------------------- run
def test_run_over_a_pipe_answers_each_line_before_the_next_is_written(pipes):
    p = pipes("run", "--input", "-", "--target", "y", *SMALL)
    lines = series_csv(12).splitlines()
    p.write(lines[0] + "\n")  # the header: no output
    outputs = []
    for i, line in enumerate(lines[1:]):
        p.write(line + "\n")
        out = p.read(FIRST_LINE_TIMEOUT if i == 0 else LINE_TIMEOUT)  # the input is still open
        outputs.append(json.loads(out))
    code, rest = p.close()
    assert code == 0, p.stderr()
    assert rest == []
    assert [o["n"] for o in outputs] == list(range(1, 13))
    assert all(isinstance(o["prediction"], float) for o in outputs)
    assert "12 records predicted, 0 skipped (12 predicted over the model's life, 12 learned)" in p.stderr()


def test_run_over_a_pipe_jsonl_with_key_and_echo(pipes):
    p = pipes("run", "-i", "-", "-t", "y", "--echo", "id", *SMALL)
    for i in range(5):
        p.write(json.dumps({"id": f"r{i}", "x": i / 5, "y": i % 2}) + "\n")
        out = json.loads(p.read(FIRST_LINE_TIMEOUT))
        assert out["n"] == i + 1 and out["id"] == f"r{i}" and "prediction" in out
    assert p.close()[0] == 0


def test_run_equals_the_python_model_record_for_record(tmp_path):
    from streamrnn.runner import StreamModel

    text = series_csv(60, seed=3)
    path = tmp_path / "s.csv"
    path.write_text(text)
    res = streamrnn("run", "--input", path, "--target", "y", *SMALL, "--seed", 7)
    assert res.returncode == 0, res.stderr
    got = [json.loads(line)["prediction"] for line in res.stdout.splitlines()]
    m = StreamModel("regress", "y", hidden_size=4, k1=2, seed=7)
    want = []
    for line in text.splitlines()[1:]:
        a, b, y = map(float, line.split(","))
        want.append(m.predict({"a": a, "b": b})["prediction"])
        m.learn({"a": a, "b": b}, y)
    assert got == want


def test_a_bad_line_is_reported_with_its_number_and_skipped(tmp_path):
    lines = series_csv(8).splitlines()
    lines[3] = "0.5,oops,1.0"  # line 4 of the file
    lines[6] = "0.5,1.0"  # line 7: a missing field
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    res = streamrnn("run", "--input", path, "--target", "y", *SMALL)
    assert res.returncode == 0
    assert f"{path}, line 4: column 'b' is 'oops', not a number; record skipped" in res.stderr
    assert f"{path}, line 7: 2 fields where the header has 3; record skipped" in res.stderr
    assert len(res.stdout.splitlines()) == 6
    assert "6 records predicted, 2 skipped" in res.stderr


def test_a_bad_json_line_is_reported_and_strict_stops_there():
    data = '{"x": 1, "y": 2}\n{"x": 2, "y": \n{"x": 3, "y": 4}\n'
    res = streamrnn("run", "-i", "-", "-t", "y", *SMALL, stdin=data)
    assert res.returncode == 0
    assert "<stdin>, line 2: not valid JSON" in res.stderr
    assert len(res.stdout.splitlines()) == 2
    res = streamrnn("run", "-i", "-", "-t", "y", "--strict", *SMALL, stdin=data)
    assert res.returncode == 1
    assert "<stdin>, line 2: not valid JSON" in res.stderr and "--strict" in res.stderr
    assert len(res.stdout.splitlines()) == 1


def test_records_without_target_are_predicted_not_learned():
    data = "x,y\n1,2\n2,\n3,4\n4,\n"
    res = streamrnn("run", "-i", "-", "-t", "y", *SMALL, stdin=data)
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["n"] for line in res.stdout.splitlines()] == [1, 2, 3, 4]
    assert "4 predicted over the model's life, 2 learned" in res.stderr


def test_classify_outputs_labels_and_probabilities():
    rows = ["x,label"] + [f"{i % 2},{'odd' if i % 2 else 'even'}" for i in range(40)]
    res = streamrnn("run", "-i", "-", "-t", "label", "--task", "classify", *SMALL, stdin="\n".join(rows) + "\n")
    assert res.returncode == 0, res.stderr
    outs = [json.loads(line) for line in res.stdout.splitlines()]
    assert outs[0] == {"n": 1, "prediction": None, "proba": {}}
    last = outs[-1]
    assert set(last["proba"]) == {"even", "odd"} and last["prediction"] in ("even", "odd")
    assert abs(sum(last["proba"].values()) - 1.0) < 1e-12


def test_output_to_a_file(tmp_path):
    out = tmp_path / "p.jsonl"
    res = streamrnn("run", "-i", "-", "-t", "y", *SMALL, "--output", out, stdin=series_csv(5))
    assert res.returncode == 0 and res.stdout == ""
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "--input", "-"), "--target is required"),
        (("run", "--input", "-", "--target", "y", "--every", "5"), "--every needs --save"),
        (("run", "--input", "/nonexistent/x.csv", "--target", "y"), "--input /nonexistent/x.csv"),
        (("run", "--input", "-", "--target", "y", "--hidden", "0"), "must be at least 1"),
        (("run", "--input", "-", "--target", "y", "--task", "classify", "--diff-target"), "diff_target"),
        (("run", "--input", "-", "--target", "y", "--features", "y"), "both a feature and the target"),
        (("bench", "--steps", "0"), "must be at least 1"),
    ],
)
def test_usage_errors_exit_2(capsys, args, message):
    code, _, err = in_process(capsys, *args)
    assert code == 2
    assert message in err


def test_a_bad_csv_header_exits_1(tmp_path, capsys):
    path = tmp_path / "h.csv"
    path.write_text("x,x,y\n1,2,3\n")
    code, out, err = in_process(capsys, "run", "-i", path, "-t", "y")
    assert code == 1 and "names column 'x' twice" in err and out == ""


def test_sigterm_without_save_exits_143_and_says_nothing_was_written(pipes):
    p = pipes("run", "--input", "-", "--target", "y", *SMALL)
    p.write("x,y\n1,2\n")
    p.read(FIRST_LINE_TIMEOUT)
    p.proc.send_signal(signal.SIGTERM)  # while it waits for the next line
    assert p.proc.wait(timeout=60) == 143
    assert "stopped by SIGTERM after 1 records of this input" in p.stderr()
    assert "no --save: nothing written" in p.stderr()


def test_broken_pipe_exits_141_quietly(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(series_csv(3000))
    cmd = f"{sys.executable} -m streamrnn run --input {path} --target y --hidden 4 --k 2 | head -n 2"
    res = subprocess.run(["bash", "-c", f"{cmd}; echo ${{PIPESTATUS[0]}}"], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    out = res.stdout.splitlines()
    assert len(out) == 3 and out[-1] == "141", res.stderr
    assert "Traceback" not in res.stderr and "the output was closed after" in res.stderr


# ------------------------------------------------------------------------------- bench
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bench_prints_the_table(dtype):
    res = streamrnn("bench", "--steps", 300, "--torch-steps", 50, "--hidden", 8, "--dtype", dtype)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith(f"H=8 D=8 K=16, SGD, {dtype}, one thread") for line in lines), res.stdout
    assert "| cell | torch per-sample | torch chunked | streamrnn loop | streamrnn run |" in lines
    (row,) = [line for line in lines if line.startswith("| gru |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 5
    try:
        import torch  # noqa: F401

        assert cells[1].endswith("(1x)")
    except ImportError:
        assert cells[1] == "-"


def test_bench_runs_both_sides_in_the_chosen_dtype(monkeypatch):
    from streamrnn import bench, engine

    torch = pytest.importorskip("torch")
    ours, theirs = [], []

    class Spy(engine.StreamRNN):
        def __init__(self, **kw):
            ours.append(kw["dtype"])
            super().__init__(**kw)

    real_gru = torch.nn.GRU

    def gru(*args, **kw):
        theirs.append(kw["dtype"])
        return real_gru(*args, **kw)

    monkeypatch.setattr(engine, "StreamRNN", Spy)
    monkeypatch.setattr(torch.nn, "GRU", gru)
    row = bench.measure("gru", hidden_size=4, input_size=2, k=4, steps=40, torch_steps=20, dtype="float32")
    assert set(ours) == {"float32"} and theirs == [torch.float32, torch.float32]
    assert row["run"] > 0 and row["torch"]["per-sample"] > 0


# ------------------------------------------------------------------------- checkpoints
def jsonl_keyed(n, seed=0):
    """JSON Lines: two interleaved keys, a label that depends on the key's previous input."""
    rng = np.random.default_rng(seed)
    prev = {"a": 0.0, "b": 0.0}
    lines = []
    for _ in range(n):
        k = "a" if rng.random() < 0.5 else "b"
        x = float(rng.normal())
        lines.append(json.dumps({"host": k, "x": x, "label": "up" if prev[k] > 0 else "down"}))
        prev[k] = x
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "kind, sig, code",
    [("csv", signal.SIGTERM, 143), ("jsonl-keyed", signal.SIGINT, 130)],
    ids=["csv-sigterm", "jsonl-keyed-sigint"],
)
def test_a_signal_mid_stream_leaves_a_checkpoint_and_resuming_equals_an_uninterrupted_run(
    tmp_path, pipes, kind, sig, code
):
    if kind == "csv":
        text = series_csv(40, seed=5)
        header, records = text.splitlines()[:1], text.splitlines()[1:]
        opts = ("--target", "y", *SMALL)
    else:
        header, records = [], jsonl_keyed(40).splitlines()
        opts = ("--target", "label", "--task", "classify", "--key", "host", *SMALL)
    whole = tmp_path / f"all.{'csv' if kind == 'csv' else 'jsonl'}"
    whole.write_text(text if kind == "csv" else "\n".join(records) + "\n")
    res = streamrnn("run", "--input", whole, *opts)
    assert res.returncode == 0, res.stderr
    uninterrupted = res.stdout.splitlines()
    assert len(uninterrupted) == 40

    ck = tmp_path / "model.ckpt"
    p = pipes("run", "--input", "-", *opts, "--save", ck)
    for line in header:
        p.write(line + "\n")
    first = []
    for i, line in enumerate(records[:15]):
        p.write(line + "\n")
        first.append(p.read(FIRST_LINE_TIMEOUT if i == 0 else LINE_TIMEOUT).rstrip("\n"))
    p.proc.send_signal(sig)  # it is waiting for record 16
    assert p.proc.wait(timeout=120) == code, p.stderr()
    assert ck.exists()
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
    assert f"stopped by {name} after 15 records of this input (15 predicted" in p.stderr()
    assert f"to continue on the same input: --resume {ck} --skip 15" in p.stderr()
    assert first == uninterrupted[:15]

    saved = ck.read_bytes()
    rest = "\n".join(header + records[15:]) + "\n"
    res = streamrnn("run", "--input", "-", "--resume", ck, stdin=rest)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == uninterrupted[15:]  # n continues at 16; same predictions
    # or the same input again, passing over what the checkpoint has seen
    res = streamrnn("run", "--input", whole, "--resume", ck, "--skip", 15)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == uninterrupted[15:]
    assert ck.read_bytes() == saved  # no --save: the checkpoint is left as it was


def test_every_n_checkpoints_survive_a_kill(tmp_path, pipes):
    text = series_csv(30, seed=9)
    header, records = text.splitlines()[:1], text.splitlines()[1:]
    path = tmp_path / "all.csv"
    path.write_text(text)
    uninterrupted = streamrnn("run", "--input", path, "--target", "y", *SMALL).stdout.splitlines()
    ck = tmp_path / "every.ckpt"
    p = pipes("run", "--input", "-", "--target", "y", *SMALL, "--save", ck, "--every", 10)
    p.write(header[0] + "\n")
    for i, line in enumerate(records[:23]):
        p.write(line + "\n")
        p.read(FIRST_LINE_TIMEOUT if i == 0 else LINE_TIMEOUT)
    p.proc.kill()  # SIGKILL: no chance to save; the checkpoint of record 20 remains
    p.proc.wait(timeout=60)
    from streamrnn.runner import StreamModel

    assert StreamModel.load(ck).records == 20
    rest = "\n".join(header + records[20:]) + "\n"
    res = streamrnn("run", "--input", "-", "--resume", ck, "--save", ck, "--every", 10, stdin=rest)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == uninterrupted[20:]
    assert StreamModel.load(ck).records == 30


def test_resume_refuses_other_options_and_bad_files(tmp_path, capsys):
    ck = tmp_path / "m.ckpt"
    res = streamrnn("run", "-i", "-", "-t", "y", *SMALL, "--save", ck, stdin=series_csv(5))
    assert res.returncode == 0, res.stderr
    code, _, err = in_process(capsys, "run", "-i", "-", "--resume", ck, "--hidden", 8)
    assert code == 2 and "--hidden 8 differs from the checkpoint's 4" in err
    code, _, err = in_process(capsys, "run", "-i", "-", "--resume", ck, "--target", "z")
    assert code == 2 and "--target 'z' differs" in err
    code, _, err = in_process(capsys, "run", "-i", "-", "--resume", tmp_path / "missing.ckpt")
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(ck.read_bytes()[:-100])
    code, _, err = in_process(capsys, "run", "-i", "-", "--resume", bad)
    assert code == 2 and "bad.ckpt" in err


def test_a_keyed_run_of_one_key_equals_the_unkeyed_run_and_the_key_is_no_feature():
    rng = np.random.default_rng(4)
    rows = [{"k": 7, "x": float(v), "y": float(v) ** 2} for v in rng.normal(size=30)]
    keyed = "".join(json.dumps(r) + "\n" for r in rows)
    plain = "".join(json.dumps({"x": r["x"], "y": r["y"]}) + "\n" for r in rows)
    a = streamrnn("run", "-i", "-", "-t", "y", "--key", "k", "--no-scale", *SMALL, stdin=keyed)
    b = streamrnn("run", "-i", "-", "-t", "y", "--no-scale", *SMALL, stdin=plain)  # a key 7 as a feature would show
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    outs_a = [json.loads(line) for line in a.stdout.splitlines()]
    outs_b = [json.loads(line) for line in b.stdout.splitlines()]
    assert [o.pop("key") for o in outs_a] == [7] * 30
    assert outs_a == outs_b


# -------------------------------------------------------------------------------- demo
def test_demo_writes_a_valid_png_a_checkpoint_and_the_predictions_run_reproduces(tmp_path):
    out = tmp_path / "out"
    res = streamrnn("demo", "--n", 150, "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    for row in ("streamrnn  GRU, H=16", "river      StandardScaler | LinearRegression", "last value"):
        assert row in text
    assert "learning online [" in res.stderr and "100%" in res.stderr
    png = out / "demo.png"
    assert f"wrote {png} " in text
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    mpl_image = pytest.importorskip("matplotlib.image")
    img = mpl_image.imread(str(png))
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300

    from streamrnn import demo
    from streamrnn.runner import StreamModel

    model = StreamModel.load(out / "model.ckpt")
    assert model.records == model.learned == 150
    rows = (out / "predictions.csv").read_text().splitlines()
    streamrnn_col = [float(r.split(",")[2]) for r in rows[1:]]
    res = streamrnn("run", "--input", out / "trump_approval.csv", "--target", demo.TARGET,
                    *demo.RUN_OPTIONS.split())
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["prediction"] for line in res.stdout.splitlines()] == streamrnn_col


def test_demo_without_matplotlib_still_runs_and_says_how_to_get_the_plot(tmp_path):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run(
        [sys.executable, "-m", "streamrnn", "demo", "--n", "60", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert 'plot skipped: matplotlib is not installed (pip install "streamrnn[plot]")' in res.stdout
    assert not (tmp_path / "o" / "demo.png").exists()
    assert (tmp_path / "o" / "model.ckpt").exists()


def test_sigterm_while_busy_finishes_the_record_saves_and_says_where_to_continue(tmp_path):
    """The signal lands while the process is blocked writing (its output is not being read):
    it finishes that record, saves, and names the --skip that continues the same input."""
    text = series_csv(20000, seed=2)
    path = tmp_path / "big.csv"
    path.write_text(text)
    ck = tmp_path / "busy.ckpt"
    opts = ("--target", "y", *SMALL)
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamrnn", "run", "--input", str(path), *map(str, opts), "--save", str(ck)],
            stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
        )
        first = proc.stdout.readline()  # then stop reading: the pipe fills and the writer blocks
        assert first.startswith(b'{"n": 1,')
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()  # drain, so the blocked write completes
        assert proc.wait(timeout=120) == 143
    stopped = [json.loads(line) for line in (first + rest).decode().splitlines()]
    message = err_path.read_text()
    skip = int(message.split("--skip ")[1].split()[0])
    assert 0 < skip < 20000 and len(stopped) == skip and stopped[-1]["n"] == skip

    from streamrnn.runner import StreamModel

    assert StreamModel.load(ck).records == skip
    resumed = streamrnn("run", "--input", path, "--resume", ck, "--skip", skip)
    assert resumed.returncode == 0, resumed.stderr
    whole = streamrnn("run", "--input", path, *opts)
    assert (first + rest).decode().splitlines() + resumed.stdout.splitlines() == whole.stdout.splitlines()
