"""TensorBoard's entry point for the Batch Averages plugin.

Import-safe: this module imports only what TensorBoard itself has loaded, and defers the plugin
(numpy, the reader) to `fix_flags`, where reading starts, and `load`, each guarded, so a broken
install cannot stop TensorBoard from starting.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tensorboard.plugins import base_plugin

from tb_batchavg import metadata

if TYPE_CHECKING:
    import argparse

    from tb_batchavg.server.plugin import BatchAvgPlugin


class BatchAvgLoader(base_plugin.TBLoader):
    """Adds the plugin's flags and builds the plugin."""

    def define_flags(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("batchavg plugin")
        group.add_argument(
            "--batchavg_cache_mb",
            metavar="MB",
            type=float,
            default=metadata.DEFAULT_CACHE_MB,
            help="Memory budget of the Batch Averages tab: raw columns plus computed results "
            "(default: %(default)s MB). Computed results are evicted first, least recently "
            "used; raw columns of runs not used recently next; they are re-read on demand.",
        )
        group.add_argument(
            "--batchavg_reload_seconds",
            metavar="SECONDS",
            type=float,
            default=metadata.DEFAULT_RELOAD_SECONDS,
            help="How often the Batch Averages tab reads, in the background, what was appended "
            "to the event files of the runs it holds (default: every %(default)s s).",
        )

    def fix_flags(self, flags: argparse.Namespace) -> None:
        for name in ("batchavg_cache_mb", "batchavg_reload_seconds"):
            value = getattr(flags, name, None)
            # `not value >= 0` refuses nan too, which every comparison fails.
            if value is not None and (not value >= 0 or value == float("inf")):
                raise base_plugin.FlagsError("--%s must be a finite number >= 0, not %r" % (name, value))
        self._store = _start_reading(flags)

    def load(self, context: base_plugin.TBContext) -> BatchAvgPlugin:
        from tb_batchavg.server.plugin import BatchAvgPlugin

        return BatchAvgPlugin(context, getattr(self, "_store", None))


def _start_reading(flags):
    """Starts reading the logdir as soon as TensorBoard has its flags: building TensorBoard's other
    plugins takes about 1.6 s more before this one is built. None if that fails: the plugin then
    starts reading when it is built (and reports what is wrong)."""
    try:
        from tb_batchavg.server import store

        return store.start(flags)
    except Exception:  # never let the plugin's reading stop TensorBoard from starting
        logging.getLogger(__name__).exception("batchavg: reading could not start early")
        return None
