"""PyTorch interop: from_torch/to_torch give the same outputs and exactly the same weights."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import streamrnn as sr  # noqa: E402
from streamrnn.adapters.torch import from_torch, to_torch  # noqa: E402

MODULES = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
TOL = {"float64": 1e-12, "float32": 1e-5}
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def torch_outputs(rnn, readout, X, h0=None):
    """Readout of every step for one sequence, honouring rnn.batch_first."""
    x = torch.from_numpy(X).to(rnn.weight_ih_l0.dtype)
    x = x[None] if rnn.batch_first else x[:, None]
    with torch.no_grad():
        out, _ = rnn(x, h0)
        return readout(out).reshape(len(X), -1).numpy()


def assert_same_weights(rnn_a, lin_a, rnn_b, lin_b):
    for (na, a), (nb, b) in zip(
        [*rnn_a.named_parameters(), *lin_a.named_parameters()],
        [*rnn_b.named_parameters(), *lin_b.named_parameters()],
    ):
        assert na == nb and a.dtype == b.dtype and torch.equal(a, b), na


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_gives_the_same_outputs(cell, batch_first, dtype):
    torch.manual_seed(3)
    rnn = MODULES[cell](4, 7, batch_first=batch_first, dtype=TORCH_DTYPES[dtype])
    readout = torch.nn.Linear(7, 3, dtype=TORCH_DTYPES[dtype])
    m = from_torch(rnn, readout, k1=5)
    assert (m.cell, m.input_size, m.hidden_size, m.output_size, m.dtype, m.k1) == (cell, 4, 7, 3, dtype, 5)
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(dtype)
    expected = torch_outputs(rnn, readout, X)
    P = copy.deepcopy(m).run(X)  # no targets: the state advances, the weights stay
    assert P.dtype == np.dtype(dtype)
    assert np.max(np.abs(P - expected)) <= TOL[dtype]

    rnn2, readout2 = to_torch(m, batch_first=batch_first)
    assert type(rnn2) is type(rnn) and rnn2.batch_first == batch_first
    assert_same_weights(rnn, readout, rnn2, readout2)
    assert np.array_equal(torch_outputs(rnn2, readout2, X), expected)


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_trained_model_exports_its_weights_and_state(cell, rng):
    """After online learning, the exported modules continue the stream from model.hidden."""
    m = sr.StreamRNN(cell=cell, input_size=2, hidden_size=5, output_size=1, k1=4, optimizer="adam", lr=0.05)
    X = rng.normal(size=(80, 2))
    m.run(X, np.sin(X[:, :1]))
    rnn, readout = to_torch(m)
    h = m.hidden
    to_t = lambda v: torch.from_numpy(v)[None, None]  # (layers, batch, H)  # noqa: E731
    h0 = (to_t(h[0]), to_t(h[1])) if cell == "lstm" else to_t(h)
    X2 = rng.normal(size=(20, 2))
    expected = torch_outputs(rnn, readout, X2, h0)
    P = copy.deepcopy(m).run(X2)
    assert np.max(np.abs(P - expected)) <= 1e-12
    m2 = from_torch(rnn, readout)
    np.testing.assert_array_equal(m2.params, m.params)


def test_to_torch_does_not_touch_torchs_random_generator():
    m = sr.StreamRNN(cell="lstm", input_size=2, hidden_size=3)
    torch.manual_seed(11)
    state = torch.random.get_rng_state()
    to_torch(m)
    assert torch.equal(state, torch.random.get_rng_state())


def test_dtype_follows_the_modules_unless_given():
    rnn = torch.nn.GRU(2, 3, dtype=torch.float32)
    readout = torch.nn.Linear(3, 1, dtype=torch.float32)
    assert from_torch(rnn, readout).dtype == "float32"
    m = from_torch(rnn, readout, dtype="float64")
    assert m.dtype == "float64"
    np.testing.assert_array_equal(m.state_dict()["weight_hh_l0"], rnn.weight_hh_l0.detach().numpy().astype(np.float64))
    with pytest.raises(ValueError, match="dtype float16"):
        from_torch(rnn.half(), readout.half())
    with pytest.raises(ValueError, match="different dtypes"):
        from_torch(torch.nn.GRU(2, 3, dtype=torch.float64), readout)


@pytest.mark.parametrize(
    "rnn,readout,error,match",
    [
        (torch.nn.RNN(2, 3, nonlinearity="relu"), torch.nn.Linear(3, 1), ValueError, r"rnn\.nonlinearity='relu'"),
        (torch.nn.GRU(2, 3, num_layers=2), torch.nn.Linear(3, 1), ValueError, r"rnn\.num_layers=2"),
        (torch.nn.LSTM(2, 3, bidirectional=True), torch.nn.Linear(6, 1), ValueError, r"rnn\.bidirectional=True"),
        (torch.nn.GRU(2, 3, bias=False), torch.nn.Linear(3, 1), ValueError, r"rnn\.bias=False"),
        (torch.nn.LSTM(2, 3, proj_size=2), torch.nn.Linear(2, 1), ValueError, r"rnn\.proj_size=2"),
        (torch.nn.GRU(2, 3), torch.nn.Linear(3, 1, bias=False), ValueError, r"readout\.bias is None"),
        (torch.nn.GRU(2, 3), torch.nn.Linear(4, 1), ValueError, r"readout\.in_features=4"),
        (torch.nn.GRU(2, 3), torch.nn.Sequential(torch.nn.Linear(3, 1)), TypeError, "readout must be"),
        (torch.nn.Linear(2, 3), torch.nn.Linear(3, 1), TypeError, "rnn must be"),
    ],
)
def test_unsupported_modules_are_refused_naming_the_attribute(rnn, readout, error, match):
    with pytest.raises(error, match=match):
        from_torch(rnn, readout)


def test_config_may_repeat_but_not_contradict_the_modules():
    rnn, readout = torch.nn.GRU(2, 3, dtype=torch.float64), torch.nn.Linear(3, 1, dtype=torch.float64)
    assert from_torch(rnn, readout, cell="gru", hidden_size=3).hidden_size == 3
    with pytest.raises(ValueError, match="hidden_size=4 disagrees with the modules, which have hidden_size=3"):
        from_torch(rnn, readout, hidden_size=4)
    with pytest.raises(ValueError, match="cell='lstm' disagrees"):
        from_torch(rnn, readout, cell="lstm")
