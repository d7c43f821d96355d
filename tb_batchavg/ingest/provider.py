"""Sampled fallback source: TensorBoard's data provider, for when no logdir can be read.

With `--grpc_data_provider` (or any setup without a readable logdir) the plugin cannot read
event files itself; it asks `context.data_provider.read_scalars` instead. That data is the
provider's sample (1,000 points per tag by default), so every response says `"sampled": true`.
A `Source`, as `reader.LogdirReader` is; as there, steps are strictly
increasing (TensorBoard's Python loader can keep several points of one step: the last one wins).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorboard import context as tb_context
from tensorboard.data import provider as tb_provider

from tb_batchavg.ingest.source import Series

_SCALARS_PLUGIN = "scalars"
_ALL_POINTS = 10**7  # more than any provider keeps: ask for everything it has


class ProviderReader:
    """Reads scalar series of one experiment through a `tensorboard.data.provider.DataProvider`.
    It holds no columns: nothing loads, nothing is evicted, and there is no health to report."""

    sampled = True
    errors = ()

    def __init__(
        self, data_provider: tb_provider.DataProvider, experiment_id: str, environ: dict[str, Any] | None = None
    ) -> None:
        self._provider = data_provider
        self._experiment = experiment_id
        self._ctx = tb_context.from_environ(environ) if environ else tb_context.RequestContext()
        self._listing = None

    def _list(self):
        if self._listing is None:
            self._listing = self._provider.list_scalars(
                self._ctx, experiment_id=self._experiment, plugin_name=_SCALARS_PLUGIN
            )
        return self._listing

    def runs(self) -> list[str]:
        return sorted(self._list())

    def tags(self, run: str) -> list[str]:
        return sorted(self._list().get(run, {}))

    def version(self, run: str) -> tuple[tuple[str, int, float], ...]:
        """Changes whenever the provider's data of the run changes."""
        return tuple(sorted((t, ts.max_step, ts.max_wall_time) for t, ts in self._list().get(run, {}).items()))

    def open(self, run: str) -> tuple[tuple[str, int, float], ...] | None:
        return self.version(run) if run in self._list() else None

    def health(self, run: str) -> None:
        return None

    def state(self, run: str) -> None:
        return None

    def loading(self) -> bool:
        return False

    def counts(self, run: str) -> dict[str, int]:
        """{tag: points} of the run's tags with data."""
        counts = {t: int(len(self.series(run, t).step)) for t in self.tags(run)}
        return {t: n for t, n in counts.items() if n}

    def series(self, run: str, tag: str) -> Series | None:
        info = self._list().get(run, {}).get(tag)
        if info is None:
            return None
        data = self._provider.read_scalars(
            self._ctx,
            experiment_id=self._experiment,
            plugin_name=_SCALARS_PLUGIN,
            downsample=_ALL_POINTS,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        points = data.get(run, {}).get(tag, [])
        steps = np.array([d.step for d in points], dtype=np.int64)
        _, from_end = np.unique(steps[::-1], return_index=True)
        last = len(steps) - 1 - from_end  # the last point of each step, in step order
        return Series(
            steps[last],
            np.array([d.wall_time for d in points], dtype=np.float64)[last],
            np.array([d.value for d in points], dtype=np.float64)[last],
        )
