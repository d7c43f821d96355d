"""The one interface through which the server reads scalar series: `Source`.

Two classes implement it: `reader.LogdirReader` (every point of the logdir's event files, read by
the plugin itself) and `provider.ProviderReader` (TensorBoard's data provider, a sample). A series
is three numpy columns of equal length, strictly increasing in step: `step` (int64), `wall_time`
and `value` (float64, NaN and +-Inf kept).
"""

import collections
from typing import Any, Optional, Protocol

Series = collections.namedtuple("Series", "step wall_time value")


class Source(Protocol):
    """Runs, their tags and their series.

    `sampled` is True when the series are a sample (the data-provider fallback); such a source
    reads no files itself, and has no loading state, progress, health or eviction to report
    (those fields are absent from the runs answer, http_api.md).
    """

    sampled: bool
    errors: list[str]  # roots that could not be listed, as of the last discovery ([] when sampled)

    def runs(self) -> list[str]:
        """The run names, sorted."""

    def tags(self, run: str) -> list[str]:
        """The run's tags with data, sorted ([] for an unknown run)."""

    def counts(self, run: str) -> dict[str, int]:
        """{tag: points} of the run's tags with data ({} for an unknown run)."""

    def series(self, run: str, tag: str) -> Optional[Series]:
        """The tag's columns, or None."""

    def open(self, run: str) -> Optional[Any]:
        """Makes the run's series available (waiting for a run still loading, marking it used so
        that it is kept in memory) and returns its data version, or None for an unknown run. The
        version is taken before any series is, so a result computed from the series is never filed
        under a newer version than its data."""

    def version(self, run: str) -> Any:
        """A value that changes whenever the run's data changes."""

    def health(self, run: str) -> Optional[dict[str, Any]]:
        """What reading the run skipped (bad records, corrupt files, storage errors, values that
        are not a real number); None for a sampled source."""

    def state(self, run: str) -> Optional[dict[str, Any]]:
        """{"state": "loading" | "ready", "progress": {"bytes_read", "bytes_total"}, "evicted":
        bool}; None for a sampled source."""

    def loading(self) -> bool:
        """Whether a first discovery or some run's loading is under way (False when sampled)."""
