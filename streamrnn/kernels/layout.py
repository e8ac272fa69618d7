"""Index constants shared by the kernels and the Python side.

A model's state lives in a handful of flat arrays so that a kernel call passes few
arguments and pickling or checkpointing is a matter of saving arrays:

``meta`` (int64)
    configuration (sizes, codes), offsets into the other arrays, and counters.
``fmeta`` (float64)
    hyper-parameters, running statistics, per-lag gradient flow, update history.
``mem`` (model dtype)
    ``params | moments | grad | wt``: the flat parameter vector in PyTorch order, the
    optimizer moments (same length each), the gradient, and ``wt``, the transposed
    recurrent matrices (kept in step with ``params`` so the forward matvec is a
    contiguous axpy; it is derived, rebuilt by ``refresh_transposed``).
``slab`` (model dtype, shape ``(n_streams, ROW_SIZE)``)
    one row per stream: ``state | start states | xs | ys | mask``.
``counts`` (int64, shape ``(n_streams, 1)``)
    steps consumed by each stream.
``work`` (model dtype) and ``iwork`` (int64)
    scratch and the predict cache (``iwork`` also lends ``N_LANES`` slots, read as
    float64, to the partial sums of the norms). Never pickled or saved: they hold
    nothing that is not recomputed.

Codes
-----
Cells ``ELMAN, GRU, LSTM``; losses ``MSE, BCE, CE``; optimizers ``SGD, ADAM, RMSPROP``.
"""

# cell, loss and optimizer codes
ELMAN, GRU, LSTM = 0, 1, 2
MSE, BCE, CE = 0, 1, 2
SGD, ADAM, RMSPROP = 0, 1, 2

# kernel return codes
OK = 0
ERR_X = 1  # non-finite input value; iwork[ERR_INDEX] holds its index
ERR_Y = 2  # non-finite target value; iwork[ERR_INDEX] holds its index
ERR_Y_DOMAIN = 3  # target outside the loss's domain; iwork[ERR_INDEX] holds its index
ERR_STATE = 4  # the step would make the hidden state non-finite

# ---- meta (int64): configuration ----
CELL = 0
D = 1  # input size
H = 2  # hidden size
O = 3  # output size
K1 = 4  # steps between updates
K2 = 5  # steps backpropagated per update
M = 6  # number of stored window start states, ceil(k2 / k1)
S = 7  # state width: H (elman, gru) or 2H (lstm: h then c)
A = 8  # cached activations per step (gru 4H, lstm 5H, elman 0)
G = 9  # gates: 1, 3, 4
LOSS = 10
OPT = 11
NESTEROV = 12
CENTERED = 13
HIST = 14  # capacity of the per-update history ring (0: off)
# ---- meta: offsets into mem ----
P = 15  # number of parameters
OFF_MOM = 16  # first optimizer moment
N_MOM = 17  # number of moment vectors
OFF_GRAD = 18
OFF_WT = 19
MEM_SIZE = 20
# ---- meta: offsets into a slab row ----
ROW_START = 21  # M start states, S each
ROW_XS = 22  # K2 inputs, D each
ROW_YS = 23  # K2 targets, O each
ROW_MASK = 24  # K2 flags: 1.0 if the step has a target
ROW_SIZE = 25
# ---- meta: offsets into work ----
W_STATES = 26  # (K2 + 1, S) states of the re-run window
W_ACTS = 27  # (K2, A) cached activations of the re-run window
W_LOGITS = 28  # (K2, O)
W_DLOGITS = 29  # (K2, O)
W_DS = 30  # (S,) gradient w.r.t. the state after a step
W_DS2 = 31  # (S,) gradient w.r.t. the state before it
W_GI = 32  # (G*H,) gate scratch
W_GH = 33  # (G*H,) gate scratch
W_CACHE_X = 34  # (D,) input of the cached predict step
W_CACHE_S = 35  # (S,) state after the cached predict step
W_CACHE_A = 36  # (A,) activations of the cached step (scratch)
W_SIZE = 37
# ---- meta: counters ----
OPT_STEP = 38  # optimizer steps taken (torch's state["step"])
N_UPDATES = 39  # TBPTT boundaries that reached the optimizer
N_SKIPPED = 40  # updates skipped for a non-finite loss, gradient or step
N_CLIPPED = 41  # updates whose gradient norm exceeded clip
N_STEPS = 42  # samples learned, over all streams
HIST_POS = 43  # next history slot
HIST_COUNT = 44  # history records written (saturates at HIST)
N_NO_TARGET = 45  # boundaries with no target among the last k1 steps
# ---- meta: more offsets into work ----
W_XW = 46  # (K2, D) the window's inputs, in time order
W_DGI = 47  # (K2, G*H) gradients of the input pre-activations, one row per step
W_DGH = 48  # (K2, G*H) gradients of the hidden pre-activations (GRU; others reuse W_DGI)
W_TGI = 49  # (D, G*H) the window's input-weight gradient, transposed (built, then copied)
META_SIZE = 50

# ---- fmeta (float64): hyper-parameters ----
LR = 0
MOMENTUM = 1
DAMPENING = 2
WEIGHT_DECAY = 3
BETA1 = 4
BETA2 = 5
EPS = 6
ALPHA = 7
CLIP = 8  # <= 0: no clipping
EMA = 9  # decay of the running statistics
# ---- fmeta: statistics ----
LAST_LOSS = 10
EMA_LOSS = 11
LAST_GNORM = 12  # gradient norm before clipping
EMA_GNORM = 13
WNORM = 14  # parameter norm after the last update
PREV_WNORM = 15
FMAX = 16  # largest finite value of the model dtype (np.finfo(dtype).max)
LR_END = 17  # learning-rate schedule: lr_t = LR_END + (LR - LR_END) * LR_TAU / (LR_TAU + t)
LR_TAU = 18  # t = optimizer steps taken; LR_TAU <= 0: constant lr
F_LAGS = 19  # K2 values: ||dL/dh_{t-k}|| of the last update; then K2 running means
HIST_WIDTH = 4  # per history record: loss, grad norm, clipped (0/1), weight norm

# ---- iwork (int64, never saved) ----
CACHE_VALID = 0
CACHE_SLOT = 1
ERR_INDEX = 2
ERR_CODE = 3
# the forward of the current window, recorded as samples arrive (k1 == k2 only), so an
# update can skip the re-run: valid while WIN_SLOT is the learning stream, WIN_LEN its
# steps so far, and WIN_VERSION == meta[N_UPDATES] (weights unchanged since)
WIN_SLOT = 4
WIN_LEN = 5
WIN_VERSION = 6
# N_LANES partial sums of ``linalg.sum_squares`` from OFF_LANES on (float64 bits in int64
# slots: read through ``tbptt.lanes(iwork)``); their number fixes the order of every norm
OFF_LANES = 7
N_LANES = 32
IWORK_SIZE = OFF_LANES + N_LANES


def fmeta_size(k2, hist):
    """Length of ``fmeta`` for a window of ``k2`` steps and a history of ``hist`` records."""
    return F_LAGS + 2 * k2 + HIST_WIDTH * hist
