"""The compiled key map: hash table consistency under churn, LRU links, free list."""

import numpy as np
import pytest

from streamrnn.kernels import keymap as KM

MASK64 = 2**64 - 1


def splitmix64_ref(key):
    z = key & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_bucket_is_splitmix64_of_the_key_including_negative_keys():
    for key in [0, 1, -1, 12345, -(2**63), 2**63 - 1, 2**40 + 7]:
        for mask in [7, 1023, 2**21 - 1]:
            assert KM.key_bucket(key, mask) == splitmix64_ref(key) & mask


def check_consistent(kmeta, table, slots, held):
    """Every invariant of the map, against ``held`` ({key: slot}, least recent first)."""
    mask = kmeta[KM.KM_MASK]
    cap = kmeta[KM.KM_CAPACITY]
    assert kmeta[KM.KM_HELD] == len(held)
    assert np.count_nonzero(table >= 0) == len(held)
    for key, slot in held.items():
        assert KM.keymap_find(kmeta, table, slots, key) == slot
        assert slots[slot, KM.SK_KEY] == key
    # linear probing: no empty bucket between an entry's home and its bucket
    for b in np.flatnonzero(table >= 0):
        i = KM.key_bucket(slots[table[b], KM.SK_KEY], mask)
        while i != b:
            assert table[i] >= 0
            i = (i + 1) & mask
    # the LRU list, both ways, most recent first
    order = np.empty(cap, dtype=np.int64)
    n = KM.keymap_order(kmeta, slots, order)
    assert list(order[:n]) == list(reversed(held.values()))
    back, s = [], kmeta[KM.KM_TAIL]
    while s >= 0:
        back.append(s)
        s = slots[s, KM.SK_PREV]
    assert back == list(held.values())
    # released slots + never used + held = capacity, with no slot twice
    free, s = [], kmeta[KM.KM_FREE]
    while s >= 0:
        free.append(s)
        s = slots[s, KM.SK_NEXT]
    fresh = list(range(kmeta[KM.KM_FRESH], cap))
    assert sorted(free + fresh + list(held.values())) == list(range(cap))


def colliding_keys(mask, bucket, n):
    out, k = [], -50_000
    while len(out) < n:
        if KM.key_bucket(k, mask) == bucket:
            out.append(k)
        k += 1
    return out


@pytest.mark.parametrize("pool", ["random", "colliding"])
def test_table_and_lists_stay_consistent_under_churn(pool):
    rng = np.random.default_rng(7)
    cap = 6
    kmeta, table, slots = KM.new_keymap(cap, None, True)
    mask = kmeta[KM.KM_MASK]
    if pool == "random":
        keys = list(rng.integers(-(2**62), 2**62, 20)) + [0, -1, 2**63 - 1, -(2**63)]
    else:  # half the keys share one home bucket, the rest its neighbours: long probe runs
        keys = colliding_keys(mask, 3, 10) + colliding_keys(mask, 4, 5) + colliding_keys(mask, mask, 5)
    held = {}
    evictions = 0
    for step in range(3000):
        key = int(keys[rng.integers(len(keys))])
        op = rng.uniform()
        if key in held and op < 0.3:
            KM.keymap_release(kmeta, table, slots, held.pop(key))
        elif key in held:
            slot = held.pop(key)
            KM.keymap_touch(kmeta, slots, slot)
            held[key] = slot
        else:
            if len(held) == cap:
                victim = next(iter(held))
                del held[victim]
                evictions += 1
            held[key] = KM.keymap_acquire(kmeta, table, slots, key)
        check_consistent(kmeta, table, slots, held)
    assert kmeta[KM.KM_EVICTIONS] == evictions > 100


def test_acquire_prefers_released_then_fresh_slots_then_evicts_the_tail():
    kmeta, table, slots = KM.new_keymap(3, None, True)
    assert [KM.keymap_acquire(kmeta, table, slots, k) for k in (10, 11)] == [0, 1]
    KM.keymap_release(kmeta, table, slots, 0)
    assert KM.keymap_acquire(kmeta, table, slots, 12) == 0  # released first
    assert KM.keymap_acquire(kmeta, table, slots, 13) == 2  # then never used
    assert kmeta[KM.KM_EVICTIONS] == 0
    assert KM.keymap_acquire(kmeta, table, slots, 14) == 1  # full: key 11 (slot 1) is the LRU
    assert KM.keymap_find(kmeta, table, slots, 11) == -1
    assert kmeta[KM.KM_EVICTIONS] == 1


def test_expire_releases_exactly_the_keys_idle_for_more_than_ttl():
    kmeta, table, slots = KM.new_keymap(10, 2, True)
    for key in (1, 2, 3):  # clock 0, 1, 2
        slot = KM.keymap_acquire(kmeta, table, slots, key)
        KM.keymap_touch(kmeta, slots, slot)
        kmeta[KM.KM_CLOCK] += 1
        KM.keymap_expire(kmeta, table, slots)
    # after sample 2: key 1 (sample 0) has been idle for 2 samples: held
    assert kmeta[KM.KM_HELD] == 3
    kmeta[KM.KM_CLOCK] += 1  # sample 3 of some other key: key 1 is idle for 3 > 2
    KM.keymap_expire(kmeta, table, slots)
    assert KM.keymap_find(kmeta, table, slots, 1) == -1
    assert KM.keymap_find(kmeta, table, slots, 2) >= 0
    assert kmeta[KM.KM_EXPIRED] == kmeta[KM.KM_EVICTIONS] == 1


def test_clear_forgets_every_key_and_keeps_counters():
    kmeta, table, slots = KM.new_keymap(2, None, True)
    for key in (5, 6, 7):
        KM.keymap_acquire(kmeta, table, slots, key)
    KM.keymap_clear(kmeta, table, slots)
    check_consistent(kmeta, table, slots, {})
    assert kmeta[KM.KM_EVICTIONS] == 1
    assert KM.keymap_acquire(kmeta, table, slots, 5) == 0


def test_table_has_at_least_two_buckets_per_slot():
    for cap in (1, 3, 4, 1000, 2**20):
        b = KM.table_size(cap)
        assert b >= 2 * cap and b & (b - 1) == 0 and b <= max(8, 4 * cap - 1)
