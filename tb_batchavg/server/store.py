"""The plugin's memory and compute: one budget over raw columns and computed results.

`--batchavg_cache_mb` bounds the columns the logdir reader holds plus the results kept here.
Results give way first (least recently used); then the columns of the runs least recently asked
for, which are read again, whole, when asked for. At most COMPUTE_SLOTS responses are computed at
once; cache hits never wait.

Result keys include the run's data version, so an entry never outlives the data it was computed
from; stale entries simply age out. An entry larger than the whole budget is not stored.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Hashable, Iterator, Sized
from typing import TYPE_CHECKING, Any, TypeVar

from tensorboard import plugin_util

from tb_batchavg import metadata
from tb_batchavg.ingest.provider import ProviderReader
from tb_batchavg.ingest.reader import LogdirReader
from tb_batchavg.server import encoding, params

if TYPE_CHECKING:
    import argparse

    from tensorboard.data.provider import DataProvider
    from werkzeug.wrappers import Request

    from tb_batchavg.ingest.source import Source

_T = TypeVar("_T")

# At most this many responses are computed at once: each holds working memory proportional to its
# series (tens of MB per 100,000 points), so 32 concurrent requests would hold 32 times that; the
# GIL leaves little speed to gain from more.
COMPUTE_SLOTS = 4
# A run asked for this recently keeps its columns when the budget evicts: requests may read them.
IN_USE_SECONDS = 5.0


class ResultCache:
    """A thread-safe least-recently-used cache under a byte budget: each value's len() is its size."""

    def __init__(self, budget_bytes: float) -> None:
        self.budget = int(budget_bytes)
        self.size = 0
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Sized) -> None:
        """Stores `value` and evicts the least recently used entries over budget."""
        with self._lock:
            if len(value) > self.budget:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self._entries[key] = value
            self.size += len(value)
            self._evict()

    def limit(self, budget_bytes: float) -> None:
        """Sets the budget, evicting the least recently used entries over it."""
        with self._lock:
            self.budget = max(0, int(budget_bytes))
            self._evict()

    def _evict(self):
        while self.size > self.budget:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)


class _Held:
    """A computed whole-run result kept in the ResultCache: len() is its numpy arrays' bytes (a
    small fixed size for anything else)."""

    __slots__ = ("value", "nbytes")

    def __init__(self, value):
        self.value = value
        parts = value if isinstance(value, tuple) else (value,)
        self.nbytes = 256 + sum(int(getattr(part, "nbytes", 0)) for part in parts)

    def __len__(self):
        return self.nbytes


class Store:
    """The sources of series, the result cache and the compute slots, within `budget` bytes."""

    def __init__(self, reader: LogdirReader, provider: DataProvider | None, budget: float) -> None:
        self.reader = reader
        self.budget = budget
        self.results = ResultCache(budget)
        self.provider = provider  # TensorBoard's data provider, or None
        self._computing = threading.BoundedSemaphore(COMPUTE_SLOTS)

    def start(self, reload_seconds: float) -> None:
        """Starts the reader's background loading, kept within the budget."""
        self.reader.start(reload_seconds, fit=lambda held: self.fit(held=held), budget=self.budget)

    def source(self, request: Request, wait: float | None = None) -> Source:
        """The logdir reader (after a first discovery, waited for up to `wait` seconds), or the
        sampled data-provider fallback when no logdir is given (e.g. --grpc_data_provider).

        A logdir that cannot be read (a missing bucket, a store down) stays the source: its
        errors are listed, and the data already read stays served.
        """
        if self.provider is None or self.reader.roots:
            self.reader.wait_discovered(wait)
            return self.reader
        return ProviderReader(self.provider, plugin_util.experiment_id(request.environ), request.environ)

    def open(self, source: Source, run: str) -> Any:
        """Checks that `run` exists and has been read (waiting for its loading); returns its data
        version (see Source.open). Memory is then brought back within the budget, keeping `run`."""
        version = source.open(run)
        if version is None:
            raise params.NotFound("unknown run %r" % run)
        self.fit(keep=run)
        return version

    def fit(self, held: int | None = None, keep: str | None = None) -> bool:
        """Keeps columns and results within the budget: evicts the columns of the runs least
        recently used (other than `keep` and those asked for in the last IN_USE_SECONDS) until the
        columns fit, then limits the results to what the columns leave. `held` is the bytes the
        columns hold, if known. Returns whether columns were evicted."""
        held = self.reader.nbytes() if held is None else held
        freed = 0
        if held > self.budget:
            freed = self.reader.evict_least_recent(
                held - self.budget, keep=keep, used_before=time.monotonic() - IN_USE_SECONDS
            )
            held = self.reader.nbytes()
        self.results.limit(self.budget - held)  # results give way to columns
        return freed > 0

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        """Holds one of the COMPUTE_SLOTS while a heavy computation runs."""
        with self._computing:
            yield

    def whole(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """A whole-run result (numpy arrays), computed once per key and kept in the result cache
        (within the budget) so that a zoomed range is served by slicing it."""
        held = self.results.get(key)
        if held is None:
            held = _Held(compute())
            self.results.put(key, held)
        return held.value

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> bytes:
        """The gzipped JSON of compute(), computed in a compute slot once per key and kept."""
        body = self.results.get(key)
        if body is None:
            with self._computing:
                body = self.results.get(key)  # computed by a request that held the slot before?
                if body is None:
                    packer = zlib.compressobj(**encoding.GZIP)
                    body = packer.compress(encoding.json(compute())) + packer.flush()
                    self.results.put(key, body)
        return body


def start(flags: argparse.Namespace, logdir: str | None = None) -> Store:
    """A Store over the logdir of `flags` (or `logdir`), its background reading started. Here, not
    beside the routes: the loader starts reading before TensorBoard builds its plugins, and the
    routes' modules (about 60 ms of imports) load meanwhile."""
    logdir = getattr(flags, "logdir", None) or logdir or ""
    cache_mb = getattr(flags, "batchavg_cache_mb", None)
    budget = (metadata.DEFAULT_CACHE_MB if cache_mb is None else cache_mb) * 2**20
    store = Store(LogdirReader(logdir, getattr(flags, "logdir_spec", None) or ""), None, budget)
    reload_seconds = getattr(flags, "batchavg_reload_seconds", None)
    store.start(metadata.DEFAULT_RELOAD_SECONDS if reload_seconds is None else reload_seconds)
    return store
