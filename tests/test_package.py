"""Packaging and layering rules: one top-level name, lazy imports, kernel discipline."""

import ast
import importlib.metadata
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "streamrnn"


def test_installed_distribution_has_only_the_streamrnn_top_level_name():
    dist = importlib.metadata.distribution("streamrnn")
    assert dist.read_text("top_level.txt").split() == ["streamrnn"]


def test_built_wheel_holds_only_streamrnn(tmp_path):
    src = tmp_path / "src"  # build from a copy: building writes build/ and *.egg-info
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "streamrnn-output")
    )
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(src)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {res.stderr[-300:]}")
    (wheel,) = tmp_path.glob("streamrnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"streamrnn", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "streamrnn/adapters/__init__.py" in names
    assert not any(n.startswith("adapters/") for n in names)


def run_python(code):
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_adapters_is_not_a_top_level_import_of_ours():
    out = run_python(
        "import importlib.util as u, streamrnn.adapters as a; s = u.find_spec('adapters');"
        "print(a.__name__, s is not None and 'streamrnn' in (s.origin or ''))"
    )
    assert out == "streamrnn.adapters False"


def test_import_compiles_nothing_and_pulls_no_optional_library():
    out = run_python(
        "import sys, numba, streamrnn, streamrnn.kernels.tbptt as k\n"
        "n = sum(len(v.signatures) for v in vars(k).values() if isinstance(v, numba.core.registry.CPUDispatcher))\n"
        "print(n, 'river' in sys.modules, 'torch' in sys.modules)"
    )
    assert out == "0 False False"


def py_files(*dirs):
    for d in dirs:
        yield from (ROOT / d).rglob("*.py")


def imports_of(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or ""), node


def test_kernels_import_only_numpy_numba_math_and_config():
    allowed = {"numpy", "numba", "math"}
    for path in (PKG / "kernels").glob("*.py"):
        for name, _ in imports_of(path):
            top = name.lstrip(".").split(".")[0]
            assert name.startswith(".") or top in allowed, f"{path.name} imports {name}"
            if name.startswith(".."):
                assert name == ".._config", f"{path.name} imports {name}"


def test_optional_libraries_stay_in_their_adapters():
    homes = {"river": "river.py", "torch": "torch.py", "pyflink": "flink.py"}
    for path in py_files("streamrnn", "adapters"):
        if "testing" in path.parts:
            continue
        for name, node in imports_of(path):
            top = name.split(".")[0]
            if top in homes:
                assert path.parent.name == "adapters" and path.name == homes[top], f"{path} imports {name}"


def test_no_fastmath_true_and_every_kernel_is_cached():
    for path in (PKG / "kernels").glob("*.py"):
        text = path.read_text()
        assert "fastmath=True" not in text.replace(" ", "")
        assert "njit" not in text, f"{path.name}: use _config.jit (cache=True, explicit flags)"
    from streamrnn import _config

    assert _config.CACHE and "nnan" not in _config.FASTMATH and "ninf" not in _config.FASTMATH
