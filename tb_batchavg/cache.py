"""A thread-safe least-recently-used cache of computed responses under a byte budget.

Keys include the run's data version, so an entry never outlives the data it was computed from;
stale entries simply age out. An entry larger than the whole budget is not stored.
"""

import collections
import threading


class ResultCache:
    def __init__(self, budget_bytes):
        self.budget = int(budget_bytes)
        self.size = 0
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key, value):
        """Stores `value` (bytes) and evicts the least recently used entries over budget."""
        if len(value) > self.budget:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self._entries[key] = value
            self.size += len(value)
            while self.size > self.budget:
                _, evicted = self._entries.popitem(last=False)
                self.size -= len(evicted)
