"""An obviously correct twin of the key map's policy: which keys are held, in which order.

``kernels.keymap`` keeps an open-addressing table and an intrusive LRU list in int64
arrays; this keeps an ``OrderedDict`` and scans it. Slots are an implementation detail
and are not modelled: only the keys held, their recency, and the eviction counts.
"""

from collections import OrderedDict


class KeyMapRef:
    """LRU over ``capacity`` keys with an optional ttl, in the keyed model's clock.

    ``learn(key)`` is one learned sample of ``key``: a key not held takes room (the least
    recently learned key is evicted when full); then the clock advances and every key
    idle for more than ``ttl`` samples (``clock - 1 - last > ttl``) is evicted.
    """

    def __init__(self, capacity, ttl=None):
        self.capacity = capacity
        self.ttl = ttl
        self.last = OrderedDict()  # key -> clock of its last sample, least recent first
        self.clock = 0
        self.evictions = 0
        self.expired = 0

    def learn(self, key):
        """Record one sample of ``key``; return True if the key starts afresh."""
        new = key not in self.last
        if new and len(self.last) == self.capacity:
            self.last.popitem(last=False)
            self.evictions += 1
        self.last[key] = self.clock
        self.last.move_to_end(key)
        self.clock += 1
        if self.ttl is not None:
            for k, s in list(self.last.items()):
                if self.clock - 1 - s > self.ttl:
                    del self.last[k]
                    self.evictions += 1
                    self.expired += 1
        return new

    def forget(self, key):
        self.last.pop(key, None)

    def keys(self):
        """Keys held, most recently learned first."""
        return list(reversed(self.last))
