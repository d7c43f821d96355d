"""A thread-safe least-recently-used cache of computed responses under a byte budget.

Keys include the run's data version, so an entry never outlives the data it was computed from;
stale entries simply age out. An entry larger than the whole budget is not stored. The budget can
be lowered (`limit`), e.g. to what the raw columns leave of the plugin's memory budget.
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
        with self._lock:
            if len(value) > self.budget:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self._entries[key] = value
            self.size += len(value)
            self._evict()

    def limit(self, budget_bytes):
        """Sets the budget, evicting the least recently used entries over it."""
        with self._lock:
            self.budget = max(0, int(budget_bytes))
            self._evict()

    def _evict(self):
        while self.size > self.budget:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)
