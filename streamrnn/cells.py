"""Per-cell parameter layout (PyTorch names, shapes and gate order), init and array sizes.

Dimension letters: D input, H hidden, O outputs, G gates (elman 1, gru 3, lstm 4),
S state width (H, or 2H for lstm: h then c), A activations cached per step.

The flat parameter vector is, in order::

    weight_ih_l0 (G*H, D) | weight_hh_l0 (G*H, H) | bias_ih_l0 (G*H,) | bias_hh_l0 (G*H,)
    readout.weight (O, H) | readout.bias (O,)

which is ``torch.cat([p.flatten() for p in (*rnn.parameters(), *linear.parameters())])``
for a single-layer ``nn.RNN/GRU/LSTM`` and an ``nn.Linear`` readout.

Alignment: ``mem`` and ``work`` are allocated on 64-byte boundaries and each region of
them (moments, gradient, transposed weights; every scratch region) starts at a multiple
of ``ALIGN`` elements, so the matrices the kernels stream start on a cache line (measured:
the GRU H=64 matvecs took 0.92 us aligned against 1.1-1.5 us at other offsets).
"""

from dataclasses import dataclass

import numpy as np

from .kernels import layout as L

ALIGN = 16  # elements: 64 bytes in float32, two cache lines in float64
# meta entries added since streamrnn 0.1.0 (checkpoint format 1), all at the end of meta
META_ADDED = (L.W_TGI,)
assert META_ADDED == tuple(range(L.META_SIZE - len(META_ADDED), L.META_SIZE))
_ALIGN_BYTES = 64


def aligned(n):
    """``n`` rounded up to a multiple of ``ALIGN``."""
    return -(-n // ALIGN) * ALIGN


def aligned_zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` whose data starts on a 64-byte boundary (a view of a
    slightly larger buffer; numpy's own allocations are only 16-byte aligned)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.zeros(nbytes + _ALIGN_BYTES, dtype=np.uint8)
    start = -buf.ctypes.data % _ALIGN_BYTES
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def is_aligned(arr):
    """True if ``arr``'s data starts on a 64-byte boundary."""
    return arr.ctypes.data % _ALIGN_BYTES == 0


CELLS = {"elman": L.ELMAN, "gru": L.GRU, "lstm": L.LSTM}
GATES = {"elman": 1, "gru": 3, "lstm": 4}
LOSSES = {"mse": L.MSE, "bce": L.BCE, "ce": L.CE}
OPTIMIZERS = {"sgd": L.SGD, "adam": L.ADAM, "rmsprop": L.RMSPROP}
N_MOMENTS = {"sgd": 1, "adam": 2, "rmsprop": 3}
PARAM_NAMES = (
    "weight_ih_l0",
    "weight_hh_l0",
    "bias_ih_l0",
    "bias_hh_l0",
    "readout.weight",
    "readout.bias",
)


def state_width(cell, hidden_size):
    """S: the carried state's width (lstm carries h and c)."""
    return 2 * hidden_size if cell == "lstm" else hidden_size


def act_width(cell, hidden_size):
    """A: activations cached per step for the backward pass."""
    return {"elman": 0, "gru": 4 * hidden_size, "lstm": 5 * hidden_size}[cell]


def param_shapes(cell, input_size, hidden_size, output_size):
    """Ordered ``{name: shape}`` of the flat parameter vector."""
    gh = GATES[cell] * hidden_size
    return {
        "weight_ih_l0": (gh, input_size),
        "weight_hh_l0": (gh, hidden_size),
        "bias_ih_l0": (gh,),
        "bias_hh_l0": (gh,),
        "readout.weight": (output_size, hidden_size),
        "readout.bias": (output_size,),
    }


def param_slices(cell, input_size, hidden_size, output_size):
    """Ordered ``{name: (slice, shape)}`` into the flat parameter vector."""
    out = {}
    off = 0
    for name, shape in param_shapes(cell, input_size, hidden_size, output_size).items():
        n = int(np.prod(shape))
        out[name] = (slice(off, off + n), shape)
        off += n
    return out


def init_params(cell, input_size, hidden_size, output_size, rng):
    """PyTorch's default init: every entry ~ U(-1/sqrt(H), 1/sqrt(H)).

    That is ``nn.RNN/GRU/LSTM.reset_parameters`` and, since the readout's fan-in is H,
    also ``nn.Linear``'s weight and bias bounds. Returns a float64 vector.
    """
    bound = 1.0 / np.sqrt(hidden_size)
    n = sum(int(np.prod(s)) for s in param_shapes(cell, input_size, hidden_size, output_size).values())
    return rng.uniform(-bound, bound, size=n)


@dataclass(frozen=True)
class Layout:
    """Sizes and offsets of a model's arrays (see ``kernels.layout``)."""

    cell: str
    input_size: int
    hidden_size: int
    output_size: int
    k1: int
    k2: int
    optimizer: str
    history: int

    @property
    def gates(self):
        return GATES[self.cell]

    @property
    def n_params(self):
        g, d, h, o = self.gates, self.input_size, self.hidden_size, self.output_size
        return g * h * (d + h) + 2 * g * h + o * h + o

    @property
    def n_starts(self):
        """M = ceil(k2 / k1): window start states pending at any time."""
        return -(-self.k2 // self.k1)

    @property
    def state_width(self):
        return state_width(self.cell, self.hidden_size)

    @property
    def act_width(self):
        return act_width(self.cell, self.hidden_size)

    @property
    def n_moments(self):
        return N_MOMENTS[self.optimizer]

    @property
    def mem_offsets(self):
        """``(OFF_MOM, OFF_GRAD, OFF_WT, MEM_SIZE)``: params at 0, the moment vectors one after
        another, the gradient, the transposed matrices; each region aligned."""
        p = self.n_params
        off_mom = aligned(p)
        off_grad = aligned(off_mom + self.n_moments * p)
        off_wt = aligned(off_grad + p)
        n_wt = self.gates * self.hidden_size * (self.input_size + self.hidden_size)
        return off_mom, off_grad, off_wt, aligned(off_wt + n_wt)

    @property
    def mem_size(self):
        return self.mem_offsets[3]

    @property
    def row_size(self):
        s, m, k2 = self.state_width, self.n_starts, self.k2
        return s + m * s + k2 * self.input_size + k2 * self.output_size + k2

    @property
    def work_sizes(self):
        """Ordered ``{meta index: length}`` of the regions of ``work``."""
        s, a, o, k2 = self.state_width, self.act_width, self.output_size, self.k2
        gh = self.gates * self.hidden_size
        return {
            L.W_STATES: (k2 + 1) * s,
            L.W_ACTS: k2 * a,
            L.W_LOGITS: k2 * o,
            L.W_DLOGITS: k2 * o,
            L.W_DS: s,
            L.W_DS2: s,
            L.W_GI: gh,
            L.W_GH: gh,
            L.W_CACHE_X: self.input_size,
            L.W_CACHE_S: s,
            L.W_CACHE_A: a,
            L.W_XW: k2 * self.input_size,
            L.W_DGI: gh * k2,
            L.W_DGH: gh * k2 if self.cell == "gru" else 0,  # the others reuse W_DGI
            L.W_TGI: self.input_size * gh,
        }

    @property
    def work_offsets(self):
        """``{meta index: offset}`` of the regions of ``work``, each aligned, and the total size."""
        offsets, off = {}, 0
        for idx, n in self.work_sizes.items():
            offsets[idx] = off
            off = aligned(off + n)
        return offsets, off

    @property
    def work_size(self):
        return self.work_offsets[1]

    def upgrade_meta(self, meta):
        """``meta`` (one model's, or one row per model) laid out as this version lays it out.

        A meta without the entries added since streamrnn 0.1.0 (``META_ADDED``: derived
        work offsets, the last entries) gets them, and every work offset and the work
        size are recomputed from this layout (they are derived from the configuration,
        and the work scratch grew) in every configured row (rows of zeros, a keyed
        model's unused slots, stay zero); every other entry is kept, for the caller to
        check.
        A meta of current length is returned as it is; any other length raises
        ValueError. Used for checkpoints of format 1 and for models pickled by 0.1.0.
        """
        n = meta.shape[-1]
        if n == L.META_SIZE:
            return meta
        if n != L.META_SIZE - len(META_ADDED):
            raise ValueError(
                f"meta has {n} entries; this streamrnn reads {L.META_SIZE} "
                f"(or {L.META_SIZE - len(META_ADDED)}, as streamrnn 0.1.0 wrote them)"
            )
        new = np.zeros(meta.shape[:-1] + (L.META_SIZE,), dtype=meta.dtype)
        new[..., :n] = meta
        built = new[..., L.P] != 0  # rows never configured (a keyed model's free slots) stay zero
        offsets, size = self.work_offsets
        for idx, off in (*offsets.items(), (L.W_SIZE, size)):
            new[..., idx] = np.where(built, off, 0)
        return new

    def fill_meta(self, meta, loss, nesterov, centered):
        """Write configuration and offsets into a zeroed ``meta``."""
        p = self.n_params
        meta[L.CELL] = CELLS[self.cell]
        meta[L.D] = self.input_size
        meta[L.H] = self.hidden_size
        meta[L.O] = self.output_size
        meta[L.K1] = self.k1
        meta[L.K2] = self.k2
        meta[L.M] = self.n_starts
        meta[L.S] = self.state_width
        meta[L.A] = self.act_width
        meta[L.G] = self.gates
        meta[L.LOSS] = LOSSES[loss]
        meta[L.OPT] = OPTIMIZERS[self.optimizer]
        meta[L.NESTEROV] = int(nesterov)
        meta[L.CENTERED] = int(centered)
        meta[L.HIST] = self.history
        meta[L.P] = p
        meta[L.N_MOM] = self.n_moments
        meta[L.OFF_MOM], meta[L.OFF_GRAD], meta[L.OFF_WT], meta[L.MEM_SIZE] = self.mem_offsets
        s, d, k2 = self.state_width, self.input_size, self.k2
        meta[L.ROW_START] = s
        meta[L.ROW_XS] = s + self.n_starts * s
        meta[L.ROW_YS] = meta[L.ROW_XS] + k2 * d
        meta[L.ROW_MASK] = meta[L.ROW_YS] + k2 * self.output_size
        meta[L.ROW_SIZE] = self.row_size
        offsets, meta[L.W_SIZE] = self.work_offsets
        for idx, off in offsets.items():
            meta[idx] = off
