"""A compiled key -> slot map over int64 keys: open addressing plus an array-based LRU list.

Everything is plain int64 arrays, so the map pickles, copies and checkpoints like the
rest of a model:

``kmeta`` (KMETA_SIZE,)
    capacity, table mask, keys held, LRU head and tail, free list, clock, ttl, counters.
``table`` (B,)
    open-addressing hash table with linear probing; B is a power of two >= 2 * capacity
    (load factor <= 1/2). An entry is a slot index, or -1 for an empty bucket. The key
    itself lives in ``slots[slot, SK_KEY]``, so a bucket costs 8 bytes.
``slots`` (capacity, SLOT_WIDTH)
    per slot: its key, the previous and next slot in the LRU list (-1 at the ends; a
    free slot uses SK_NEXT to chain the free list), and the clock of its last sample.

Deletion shifts the following entries of the probe run back (no tombstones), so a
table never degrades however many keys come and go. The LRU list is doubly linked
through ``slots``: touching, evicting and releasing a slot are O(1).

Time is the clock: the number of samples learned by the whole model. A key's last
sample happened at clock ``slots[slot, SK_LAST]``; after a sample is learned the clock
moves on and, with a ttl, every key idle for more than ttl samples (``clock - 1 - last
> ttl``) is released, oldest first (they sit at the LRU tail, so this is amortised O(1)).
"""

import numpy as np

from .._config import jit

# ---- kmeta (int64) ----
KM_CAPACITY = 0  # slots
KM_MASK = 1  # buckets - 1 (buckets: a power of two)
KM_HELD = 2  # keys held
KM_HEAD = 3  # most recently used slot, -1 when empty
KM_TAIL = 4  # least recently used slot, -1 when empty
KM_FREE = 5  # first released slot (chained through SK_NEXT), -1 when none
KM_FRESH = 6  # slots [KM_FRESH, capacity) have never been used
KM_CLOCK = 7  # samples learned by the model: the global step of the next sample
KM_TTL = 8  # release keys idle for more than this many samples; 0: no ttl
KM_EVICTIONS = 9  # keys evicted: the LRU key when full, plus keys expired by the ttl
KM_EXPIRED = 10  # keys released by the ttl (included in KM_EVICTIONS)
KM_SHARED = 11  # 1: keys share the weights; 0: each slot has its own model
KMETA_SIZE = 12

# ---- slots (int64, shape (capacity, SLOT_WIDTH)) ----
SK_KEY = 0
SK_PREV = 1  # towards the head (more recently used)
SK_NEXT = 2  # towards the tail (less recently used); free-list link for a free slot
SK_LAST = 3  # clock of the slot's last learned sample
SLOT_WIDTH = 4

# splitmix64's finaliser (a bijection on 64-bit words that mixes every input bit)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


def table_size(capacity):
    """Buckets for ``capacity`` keys: the least power of two >= 2 * capacity (at least 8)."""
    b = 8
    while b < 2 * capacity:
        b *= 2
    return b


def new_keymap(capacity, ttl, shared):
    """Fresh ``(kmeta, table, slots)`` for ``capacity`` keys (``ttl`` 0 or None: none)."""
    b = table_size(capacity)
    kmeta = np.zeros(KMETA_SIZE, dtype=np.int64)
    kmeta[KM_CAPACITY] = capacity
    kmeta[KM_MASK] = b - 1
    kmeta[KM_TTL] = ttl or 0
    kmeta[KM_SHARED] = int(shared)
    table = np.full(b, -1, dtype=np.int64)
    slots = np.zeros((capacity, SLOT_WIDTH), dtype=np.int64)
    keymap_clear(kmeta, table, slots)
    return kmeta, table, slots


@jit
def key_bucket(key, mask):
    """Home bucket of ``key``: splitmix64(key) & mask."""
    z = np.uint64(key)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return np.int64(z & np.uint64(mask))


@jit
def keymap_find(kmeta, table, slots, key):
    """Slot holding ``key``, or -1.

    Shapes: kmeta (KMETA_SIZE,); table (B,); slots (capacity, SLOT_WIDTH).
    """
    mask = kmeta[KM_MASK]
    b = key_bucket(key, mask)
    while True:
        s = table[b]
        if s < 0:
            return -1
        if slots[s, SK_KEY] == key:
            return s
        b = (b + 1) & mask


@jit
def _table_insert(kmeta, table, slots, slot):
    """Put ``slot`` (whose key is not in the table) in the first free bucket of its run."""
    mask = kmeta[KM_MASK]
    b = key_bucket(slots[slot, SK_KEY], mask)
    while table[b] >= 0:
        b = (b + 1) & mask
    table[b] = slot


@jit
def _table_remove(kmeta, table, slots, slot):
    """Remove ``slot`` from the table, shifting later entries of its probe run back."""
    mask = kmeta[KM_MASK]
    i = key_bucket(slots[slot, SK_KEY], mask)
    while table[i] != slot:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        s = table[j]
        if s < 0:
            break
        home = key_bucket(slots[s, SK_KEY], mask)
        # the entry at j may move to the hole at i unless its home lies cyclically in (i, j]
        if (j - home) & mask < (j - i) & mask:
            continue
        table[i] = s
        i = j
    table[i] = -1


@jit
def _lru_unlink(kmeta, slots, slot):
    """Take ``slot`` out of the LRU list (its own links are left as they were)."""
    prev = slots[slot, SK_PREV]
    nxt = slots[slot, SK_NEXT]
    if prev >= 0:
        slots[prev, SK_NEXT] = nxt
    else:
        kmeta[KM_HEAD] = nxt
    if nxt >= 0:
        slots[nxt, SK_PREV] = prev
    else:
        kmeta[KM_TAIL] = prev


@jit
def _lru_push_front(kmeta, slots, slot):
    """Link ``slot`` (not in the list) in at the head: the most recently used."""
    head = kmeta[KM_HEAD]
    slots[slot, SK_PREV] = -1
    slots[slot, SK_NEXT] = head
    if head >= 0:
        slots[head, SK_PREV] = slot
    else:
        kmeta[KM_TAIL] = slot
    kmeta[KM_HEAD] = slot


@jit
def keymap_touch(kmeta, slots, slot):
    """Record a learned sample on ``slot``: move it to the LRU head, stamp the clock.

    Writes: slots (links, SK_LAST), kmeta[KM_HEAD/KM_TAIL].
    """
    if kmeta[KM_HEAD] != slot:
        _lru_unlink(kmeta, slots, slot)
        _lru_push_front(kmeta, slots, slot)
    slots[slot, SK_LAST] = kmeta[KM_CLOCK]


@jit
def _drop(kmeta, table, slots, slot):
    """Forget the key of ``slot``: out of the table and the LRU list."""
    _table_remove(kmeta, table, slots, slot)
    _lru_unlink(kmeta, slots, slot)
    kmeta[KM_HELD] -= 1


@jit
def keymap_release(kmeta, table, slots, slot):
    """Forget the key of ``slot`` and put the slot on the free list.

    Writes: table, slots, kmeta.
    """
    _drop(kmeta, table, slots, slot)
    slots[slot, SK_PREV] = -1
    slots[slot, SK_NEXT] = kmeta[KM_FREE]
    kmeta[KM_FREE] = slot


@jit
def keymap_acquire(kmeta, table, slots, key):
    """Give the new ``key`` (not held) a slot at the LRU head; return the slot.

    The slot is a released one if any, else one never used, else the LRU key's slot
    (that key is evicted and counted). The caller resets the slot's stream state.
    Writes: table, slots, kmeta.
    """
    slot = kmeta[KM_FREE]
    if slot >= 0:
        kmeta[KM_FREE] = slots[slot, SK_NEXT]
    elif kmeta[KM_FRESH] < kmeta[KM_CAPACITY]:
        slot = kmeta[KM_FRESH]
        kmeta[KM_FRESH] += 1
    else:
        slot = kmeta[KM_TAIL]
        _drop(kmeta, table, slots, slot)
        kmeta[KM_EVICTIONS] += 1
    slots[slot, SK_KEY] = key
    slots[slot, SK_LAST] = kmeta[KM_CLOCK]
    _table_insert(kmeta, table, slots, slot)
    _lru_push_front(kmeta, slots, slot)
    kmeta[KM_HELD] += 1
    return slot


@jit
def keymap_expire(kmeta, table, slots):
    """Release every key idle for more than ttl samples (none without a ttl).

    Math: a key whose last sample was at clock ``last`` is idle for ``clock - 1 - last``
    samples; keys idle > ttl sit at the LRU tail and are released oldest first.
    Writes: table, slots, kmeta (KM_EVICTIONS and KM_EXPIRED count them).
    """
    ttl = kmeta[KM_TTL]
    if ttl <= 0:
        return
    horizon = kmeta[KM_CLOCK] - 1 - ttl
    while True:
        tail = kmeta[KM_TAIL]
        if tail < 0 or slots[tail, SK_LAST] >= horizon:
            return
        keymap_release(kmeta, table, slots, tail)
        kmeta[KM_EVICTIONS] += 1
        kmeta[KM_EXPIRED] += 1


@jit
def keymap_clear(kmeta, table, slots):
    """Forget every key; counters and the clock are kept.

    Writes: table (all -1), kmeta (no keys, no free list, every slot fresh).
    """
    for b in range(table.shape[0]):
        table[b] = -1
    kmeta[KM_HELD] = 0
    kmeta[KM_HEAD] = -1
    kmeta[KM_TAIL] = -1
    kmeta[KM_FREE] = -1
    kmeta[KM_FRESH] = 0


@jit
def keymap_order(kmeta, slots, out):
    """Write the held slots into ``out``, most recently used first; return their number.

    Shapes: out (>= kmeta[KM_HELD],) int64.
    """
    n = 0
    s = kmeta[KM_HEAD]
    while s >= 0:
        out[n] = s
        n += 1
        s = slots[s, SK_NEXT]
    return n
