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


def test_console_entry_point_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'streamrnn = "streamrnn.cli:main"' in text


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
    assert "12 records predicted, 0 skipped" in p.stderr()


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
    assert "4 in all, 2 learned" in res.stderr


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
    assert "stopped by SIGTERM after 1 records" in p.stderr() and "nothing written" in p.stderr()


def test_broken_pipe_exits_141_quietly(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(series_csv(3000))
    cmd = f"{sys.executable} -m streamrnn run --input {path} --target y --hidden 4 --k 2 | head -n 2"
    res = subprocess.run(["bash", "-c", f"{cmd}; echo ${{PIPESTATUS[0]}}"], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    out = res.stdout.splitlines()
    assert len(out) == 3 and out[-1] == "141", res.stderr
    assert "Traceback" not in res.stderr and "output closed after" in res.stderr


# ------------------------------------------------------------------------------- bench
def test_bench_prints_the_table():
    res = streamrnn("bench", "--steps", 300, "--torch-steps", 50, "--hidden", 8)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "| cell | torch per-sample | torch chunked | streamrnn loop | streamrnn run |" in lines
    (row,) = [line for line in lines if line.startswith("| gru |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 5
    try:
        import torch  # noqa: F401

        assert cells[1].endswith("(1x)")
    except ImportError:
        assert cells[1] == "-"
