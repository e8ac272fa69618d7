"""Hostile input and numerical faults, driven by hypothesis.

Every call either succeeds, and then does exactly what the same sample given as a clean
float array does, or raises ValueError/TypeError naming the offending field and leaves
every array bit for bit as it was.
"""

import copy
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamrnn as sr
from streamrnn.testing.probe import assert_same_arrays, snapshot

D, O = 3, 2
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

special_floats = st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0])
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    special_floats,
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
)
atoms = st.one_of(
    numbers,
    st.none(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.complex_numbers(),
)
DTYPES = ["float64", "float32", "float16", "longdouble", "int64", "int8", "uint8", "bool", "complex128", "U3", "O"]


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.sampled_from([(), (0,), (1,), (2,), (3,), (4,), (1, 3), (3, 1), (2, 2)]))
    n = int(np.prod(shape))
    values = draw(st.lists(st.floats() | special_floats | st.booleans(), min_size=n, max_size=n))
    if dtype.kind in "OU":
        arr = np.array(values, dtype=object if dtype.kind == "O" else str)
    else:
        with np.errstate(all="ignore"):
            arr = np.array([complex(v) if dtype.kind == "c" else float(v) for v in values]).astype(dtype)
    return arr.reshape(shape)


def sequences(inner):
    return st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner, inner),
        st.dictionaries(st.text(max_size=2), inner, max_size=4),  # a dict is no array, even of numbers
    )


hostile = st.recursive(atoms | arrays(), lambda inner: sequences(inner), max_leaves=8)
clean = st.one_of(
    st.lists(st.floats(-1e3, 1e3), min_size=D, max_size=D),
    st.lists(st.integers(-5, 5), min_size=D, max_size=D).map(np.array),
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=D, max_size=D).map(lambda v: np.array(v, np.float32)),
)


def clean_target(loss):
    if loss == "bce":
        return st.lists(st.floats(0, 1), min_size=O, max_size=O)
    return st.lists(st.floats(-1e3, 1e3), min_size=O, max_size=O)


def make(cell="gru", loss="mse", dtype="float64", **kw):
    m = sr.StreamRNN(
        cell=cell, input_size=D, hidden_size=4, output_size=O, k1=2, k2=3, loss=loss, dtype=dtype, clip=1.0, **kw
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, D))
    Y = rng.uniform(size=(5, O)) if loss != "ce" else np.eye(O)[rng.integers(0, O, 5)]
    m.run(X, Y)  # mid-window: 5 % 2 != 0
    m.predict(X[0])  # a live predict cache
    return m


def as_clean(value, size, dtype):
    """The sample as the float array the engine should have consumed, or None if invalid."""
    try:
        arr = np.asarray(value)
    except Exception:
        return None
    if arr.dtype.kind not in "biuf" or arr.size != size or arr.ndim > 1:
        return None
    with np.errstate(all="ignore"):
        arr = arr.reshape(size).astype(dtype)
    return arr if np.all(np.isfinite(arr)) else None


def names_field(msg, *fields):
    return any(re.search(rf"(^|\W){re.escape(f)}(\W|$)", msg) for f in fields)


MODELS = {
    (cell, dtype, loss): make(cell, loss, dtype)
    for cell in ("elman", "gru", "lstm")
    for dtype in ("float64", "float32")
    for loss in ("mse", "bce")
}
model_keys = st.sampled_from(sorted(MODELS))


@SETTINGS
@given(key=model_keys, x=hostile | clean, y=st.none() | hostile | clean_target("mse"))
def test_learn_either_consumes_a_clean_sample_or_changes_nothing(key, x, y):
    m = copy.deepcopy(MODELS[key])
    twin = copy.deepcopy(m)
    before = snapshot(m)
    try:
        m.learn(x, y)
    except (ValueError, TypeError) as exc:
        assert names_field(str(exc), "x", "y"), str(exc)
        assert_same_arrays(before, snapshot(m))
        cx, cy = as_clean(x, D, m.dtype), None if y is None else as_clean(y, O, m.dtype)
        if cx is not None and (y is None or cy is not None):
            # a sample of finite numbers is refused only for its values' meaning
            assert re.search(r"hidden state non-finite|needs targets|non-negative", str(exc)), str(exc)
        return
    cx = as_clean(x, D, m.dtype)
    cy = None if y is None else as_clean(y, O, m.dtype)
    assert cx is not None and (y is None or cy is not None), f"accepted {x!r}, {y!r}"
    twin.learn(cx, cy)
    assert_same_arrays(snapshot(twin), snapshot(m))
    assert np.all(np.isfinite(m._slab)) and np.all(np.isfinite(m.params))


@SETTINGS
@given(key=model_keys, x=hostile | clean)
def test_predict_never_changes_anything(key, x):
    m = MODELS[key]
    before = snapshot(m)
    try:
        out = m.predict(x)
    except (ValueError, TypeError) as exc:
        assert names_field(str(exc), "x"), str(exc)
    else:
        cx = as_clean(x, D, m.dtype)
        assert cx is not None, f"accepted {x!r}"
        assert out.shape == (O,) and np.all(np.isfinite(out))
        assert np.array_equal(out, m.predict(cx))
    assert_same_arrays(before, snapshot(m))


rows = st.one_of(
    hostile,
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=D, max_size=D), max_size=4),
    st.integers(0, 4).map(lambda n: np.zeros((n, D))),
)
masks = st.one_of(st.none(), hostile, st.lists(st.booleans(), min_size=0, max_size=5).map(np.array))


@SETTINGS
@given(key=model_keys, X=rows, Y=st.none() | rows, mask=masks)
def test_run_either_runs_or_changes_nothing(key, X, Y, mask):
    m = copy.deepcopy(MODELS[key])
    before = snapshot(m)
    try:
        P = m.run(X, Y, mask=mask)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert names_field(msg, "X", "Y", "mask", "x", "y"), msg
        if not msg.startswith("row "):  # a row failing inside the loop keeps the rows before it
            assert_same_arrays(before, snapshot(m))
        return
    n = len(P)
    assert m.steps == MODELS[key].steps + n
    if n == 0:
        assert_same_arrays(before, snapshot(m))


def test_bools_are_numbers_zero_and_one():
    """The documented policy: True/False are accepted as 1.0/0.0, in x and in y."""
    a, b = copy.deepcopy(MODELS[("gru", "float64", "bce")]), copy.deepcopy(MODELS[("gru", "float64", "bce")])
    a.learn([True, False, True], [True, False])
    b.learn([1.0, 0.0, 1.0], [1.0, 0.0])
    a.learn(np.array([False, True, True]), np.array([False, False]))
    b.learn([0.0, 1.0, 1.0], [0.0, 0.0])
    assert_same_arrays(snapshot(a), snapshot(b))


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_integers_too_large_for_the_dtype_are_refused(value):
    m = sr.StreamRNN(input_size=1, hidden_size=2, k1=2)
    before = snapshot(m)
    with pytest.raises(ValueError, match=r"^x\b"):
        m.learn(value)
    with pytest.raises(ValueError, match=r"^y\b"):
        m.learn(0.5, value)
    assert_same_arrays(before, snapshot(m))


def as_number(value, dtype):
    """A plain real number (bools included) as the dtype, or None if not finite there."""
    if not isinstance(value, (int, float)):
        return as_clean(value, 1, dtype)
    with np.errstate(all="ignore"):
        try:
            v = np.array([value], dtype=dtype)
        except OverflowError:
            return None
    return v if np.isfinite(v[0]) else None


SCALAR_MODELS = {dtype: sr.StreamRNN(input_size=1, hidden_size=3, output_size=1, k1=2, dtype=dtype) for dtype in
                 ("float64", "float32")}


@SETTINGS
@given(dtype=st.sampled_from(["float64", "float32"]), x=numbers | atoms, y=st.none() | numbers)
def test_plain_numbers_for_size_one_fields(dtype, x, y):
    """With input_size = output_size = 1, a number is a sample: finite in the dtype (1e308
    is not, in float32) and accepted, or refused unchanged, without a warning."""
    m = copy.deepcopy(SCALAR_MODELS[dtype])
    before = snapshot(m)
    valid = as_number(x, dtype) is not None and (y is None or as_number(y, dtype) is not None)
    try:
        m.learn(x, y)
    except ValueError as exc:
        assert names_field(str(exc), "x", "y") and not valid, str(exc)
        assert_same_arrays(before, snapshot(m))
    else:
        assert valid and m.steps == SCALAR_MODELS[dtype].steps + 1


def test_empty_run_changes_nothing():
    m = copy.deepcopy(MODELS[("lstm", "float64", "mse")])
    before = snapshot(m)
    assert m.run(np.zeros((0, D))).shape == (0, O)
    assert m.run(np.zeros((0, D)), np.zeros((0, O))).shape == (0, O)
    assert_same_arrays(before, snapshot(m))


# ------------------------------------------------------------------ numerical faults
@settings(max_examples=25, deadline=None)
@given(
    cell=st.sampled_from(["elman", "gru", "lstm"]),
    opt=st.sampled_from(["sgd", "adam", "rmsprop"]),
    clip=st.sampled_from([None, 1.0]),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 1e3, 1e150]),
)
def test_absurd_learning_rate_never_makes_weights_non_finite(cell, opt, clip, seed, scale):
    """lr = 1e3: every update is applied within the clip bound, or skipped and counted."""
    momentum = 0.9 if opt != "adam" else 0.0
    m = sr.StreamRNN(
        cell=cell, input_size=D, hidden_size=4, output_size=1, k1=2, k2=3, optimizer=opt, lr=1e3, clip=clip,
        momentum=momentum, seed=seed,
    )
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, D)) * scale
    Y = rng.normal(size=(60, 1)) * scale
    for t in range(60):
        w = m.params.copy()
        d0 = m.diagnostics()
        before = snapshot(m)
        try:
            m.learn(X[t], Y[t])
        except ValueError as exc:  # the step itself would overflow the state: refused whole
            assert "hidden state non-finite" in str(exc)
            assert_same_arrays(before, snapshot(m))
            continue
        d1 = m.diagnostics()
        assert np.all(np.isfinite(m.params)) and np.all(np.isfinite(m._slab))
        if d1["skipped"] > d0["skipped"]:
            np.testing.assert_array_equal(m.params, w)  # a skipped update changes nothing
        if d1["updates"] > d0["updates"] and clip is not None:
            assert d1["grad_norm"] <= clip or d1["clipped"] == d0["clipped"] + 1
    d = m.diagnostics()
    assert d["updates"] + d["skipped"] + d["no_target"] == m.steps // 2


@settings(max_examples=20, deadline=None)
@given(cell=st.sampled_from(["elman", "gru", "lstm"]), seed=st.integers(0, 2**16))
def test_clipped_sgd_moves_the_weights_at_most_lr_times_clip(cell, seed):
    m = sr.StreamRNN(cell=cell, input_size=D, hidden_size=4, output_size=1, k1=1, k2=3, lr=1e3, clip=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    for t in range(40):
        w = m.params.copy()
        m.learn(rng.normal(size=D), rng.normal(size=1) * 1e3)
        step = np.linalg.norm(m.params - w)
        assert step <= 1e3 * 0.5 * (1 + 1e-6) + 1e-9 * np.linalg.norm(w)
    d = m.diagnostics()
    assert d["clipped"] > 0 and d["updates"] + d["skipped"] == 40
