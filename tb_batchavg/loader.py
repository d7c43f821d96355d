"""TensorBoard's entry point for the Batch Averages plugin.

Import-safe: this module imports only what TensorBoard itself has loaded, and defers the plugin
(numpy, the reader) to `load`, so a broken install cannot stop TensorBoard from starting.
"""

from tensorboard.plugins import base_plugin

from tb_batchavg import metadata


class BatchAvgLoader(base_plugin.TBLoader):
    """Adds the plugin's flags and builds the plugin."""

    def define_flags(self, parser):
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
            help="How old the Batch Averages tab's data of a run may be before a request "
            "reads what was appended to its event files (default: %(default)s s).",
        )

    def fix_flags(self, flags):
        if flags.batchavg_cache_mb is not None and flags.batchavg_cache_mb < 0:
            raise base_plugin.FlagsError("--batchavg_cache_mb must be >= 0")
        if flags.batchavg_reload_seconds is not None and flags.batchavg_reload_seconds < 0:
            raise base_plugin.FlagsError("--batchavg_reload_seconds must be >= 0")

    def load(self, context):
        from tb_batchavg.plugin import BatchAvgPlugin

        return BatchAvgPlugin(context)
