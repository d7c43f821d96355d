"""Full-resolution, incremental reader of scalar series from TensorBoard event files.

TensorBoard keeps a 1,000-point random sample per scalar tag; averages over a sample are
meaningless, so this module reads every record itself, through TensorBoard's filesystem layer
(`tensorboard.compat.tf.io.gfile`: local paths, gs://, s3://, fsspec) and keeps per (run, tag)
numpy columns `step` (int64), `wall_time` (float64), `value` (float64): 24 bytes a point.

Rules:
- Runs are named as TensorBoard names them: the directory relative to its logdir (`.` for the
  logdir itself), prefixed by the group name of a `--logdir_spec` entry.
- Scalars are `simple_value`s, and single-element tensors of tags whose summary metadata names
  the "scalars" plugin (tf.summary v2 writes that metadata only with a tag's first value).
- Each file's offset is remembered; a reload parses only bytes appended since, and a file whose
  size did not change is not opened. A partial record at the end of a growing file is left for
  the next reload. A record failing its data CRC is skipped and counted; a header failing its
  length CRC stops that file there (counted, retried on the next reload). A file that shrank was
  replaced: it is read again from the start.
- Steps are strictly increasing: a record whose step is not above every step already held for its
  tag discards the held records at that step and after it (a restart from a checkpoint, as
  TensorBoard's Rust loader does), so the latest record of a step wins.
- NaN and +-Inf are kept: they are information.
- A run's columns can be evicted (`evict`) to bound memory: the run then lists the tags and
  counts it had, and its next `reload` reads its files again from the start.
"""

import collections
import ctypes
import ctypes.util
import os
import threading
import time

import numpy as np
from tensorboard.backend.event_processing import data_ingester
from tensorboard.backend.event_processing import io_wrapper
from tensorboard.compat import tf

from tb_batchavg import events
from tb_batchavg import records

Series = collections.namedtuple("Series", "step wall_time value")

# Bytes read and parsed at a time: small enough that the copies of bytes (which hold the GIL)
# stay short while other requests are answered, large enough for vectorised parsing.
_READ_CHUNK = 8 << 20
_EMPTY = Series(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))


def parse_logdir_spec(logdir="", logdir_spec=""):
    """Maps each root directory to its run-name prefix (None for none), as TensorBoard does."""
    if logdir:
        return {os.path.expanduser(logdir): None}
    if logdir_spec:
        return data_ingester._parse_event_files_spec(logdir_spec)
    return {}


def merge_steps(held, new):
    """Appends `new` records (Series, in file order) to `held` (strictly increasing steps).

    A new record survives if its step is below every later new step; held records at or after
    the smallest new step are discarded. The result is strictly increasing in step.
    """
    if not len(new.step):
        return held
    later_min = np.minimum.accumulate(new.step[::-1])[::-1]
    keep = np.append(new.step[:-1] < later_min[1:], True)
    cut = int(np.searchsorted(held.step, later_min[0], side="left"))
    return Series(*(np.concatenate((h[:cut], n[keep])) for h, n in zip(held, new)))


class _File:
    __slots__ = ("offset", "bad_records", "corrupt_at")

    def __init__(self):
        self.offset = 0
        self.bad_records = 0
        self.corrupt_at = None


class Run:
    """The columns of one run. `reload` replaces `columns` whole, then bumps `version`, under
    `lock`; readers take `version` first and `columns` after without locking."""

    def __init__(self, name, directory):
        self.name = name
        self.directory = directory
        self.lock = threading.Lock()
        self.files = {}
        self.columns = {}
        self.scalar_tags = set()
        self.version = 0
        self.errors = []
        self.read_at = None  # time.monotonic() of the last reload
        self.used_at = 0.0  # time.monotonic() of the last request for its data
        self.nbytes = 0  # of the columns
        self.evicted = None  # {tag: points} when the columns were evicted, else None

    def tags(self):
        return sorted(self.counts())

    def series(self, tag):
        return self.columns.get(tag)

    def counts(self):
        """{tag: points} of the tags with data, all from the same reload (for an evicted run, as
        they were when it was evicted)."""
        evicted = self.evicted
        if evicted is not None:
            return dict(evicted)
        columns = self.columns
        return {t: int(len(s.step)) for t, s in sorted(columns.items()) if len(s.step)}

    def evict(self):
        """Drops the columns (memory goes back at once); the next reload reads every file again."""
        with self.lock:
            if self.evicted is not None:
                return
            self.evicted = self.counts()
            self.columns, self.files, self.nbytes = {}, {}, 0
            self.read_at = None
            self.version += 1
        _release_freed_memory()

    def health(self):
        """What was skipped: bad records and files stopped at a corrupt header or unreadable."""
        with self.lock:
            return {
                "bad_records": sum(f.bad_records for f in self.files.values()),
                "corrupt_files": sorted(
                    os.path.basename(p) for p, f in self.files.items() if f.corrupt_at is not None
                ),
                "errors": list(self.errors),
            }

    def reload(self, max_age=0.0):
        """Reads what was appended to this run's event files, unless it did less than `max_age`
        seconds ago (a reload in progress is waited for). Returns True if data changed."""
        changed = self._read_new(max_age)
        if changed:
            _release_freed_memory()  # the parsing temporaries are gone by now
        return changed

    def _read_new(self, max_age):
        with self.lock:
            now = time.monotonic()
            if self.read_at is not None and now - self.read_at < max_age:
                return False
            self.read_at = now
            self.errors = []
            try:
                names = sorted(
                    n for n in tf.io.gfile.listdir(self.directory) if io_wrapper.IsTensorFlowEventsFile(n)
                )
            except (OSError, UnicodeError, tf.errors.OpError) as e:  # UnicodeError: a path gfile cannot code
                self.errors.append("cannot list %s: %s" % (self.directory, e))
                return False
            new = collections.defaultdict(list)  # tag -> events.Column parts in file order
            for name in names:
                try:
                    self._read_file(os.path.join(self.directory, name), new)
                except (OSError, UnicodeError, tf.errors.OpError) as e:
                    self.errors.append("cannot read %s: %s" % (name, e))
            was_evicted = self.evicted is not None
            if new:
                columns = dict(self.columns)
                for tag, parts in new.items():
                    chunk = Series(*(np.concatenate([getattr(p, f) for p in parts]) for f in Series._fields))
                    columns[tag] = merge_steps(columns.get(tag, _EMPTY), chunk)
                self.columns = columns
                self.nbytes = sum(a.nbytes for series in columns.values() for a in series)
                self.version += 1
            self.evicted = None  # after the columns: a lock-free reader never sees neither
            return bool(new) or was_evicted

    def _read_file(self, path, new):
        state = self.files.setdefault(path, _File())
        size = tf.io.gfile.stat(path).length
        if size < state.offset:  # replaced or truncated: read it again from the start
            state.offset, state.bad_records, state.corrupt_at = 0, 0, None
        if size == state.offset:
            return
        read_to = state.offset  # bytes of the file read so far (complete records or not)
        pending = b""
        while True:
            block = _read_at(path, read_to, _READ_CHUNK)
            if not block:
                break
            read_to += len(block)
            data = pending + block
            scan = records.scan(data)
            for tag, column in events.decode(data, scan.starts, scan.lengths, self.scalar_tags).items():
                new[tag].append(column)
            state.offset += scan.consumed
            state.bad_records += scan.bad_records
            state.corrupt_at = scan.corrupt_at
            if scan.corrupt_at is not None:
                return
            pending = data[scan.consumed :]


def _release_freed_memory():
    """Hands the pages of freed parsing temporaries back to the OS (glibc keeps them otherwise,
    which tripled the resident memory per stored point); a no-op where there is no glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _read_at(path, offset, size):
    """Up to `size` bytes of the file at `path` from byte `offset`, through gfile.

    TensorFlow's GFile can seek; TensorBoard's own gfile (used when TensorFlow is not installed)
    cannot, but its filesystems read from a continuation token that holds the byte offset (named
    "opaque_offset" by the local and fsspec filesystems, "byte_offset" by S3).
    """
    if hasattr(tf.io.gfile, "get_filesystem"):
        token = {"opaque_offset": offset, "byte_offset": offset}
        data, _ = tf.io.gfile.get_filesystem(path).read(path, binary_mode=True, size=size, continue_from=token)
        return data
    with tf.io.gfile.GFile(path, "rb") as f:
        if offset:  # TensorFlow's seek costs about 0.1 ms in its deprecated-argument check
            f.seek(offset)
        return f.read(size)


def _run_directories(root):
    """The directories under `root` that hold event files, walked through gfile. gfile (both
    TensorFlow's and TensorBoard's own) fails on a name that is not UTF-8; a local logdir is then
    walked with os.walk, so the other runs are still found (the one so named lists its error)."""
    try:
        return list(io_wrapper.GetLogdirSubdirectories(root))
    except UnicodeError:
        if "://" in root:
            raise
        return [d for d, _, files in os.walk(root) if any(map(io_wrapper.IsTensorFlowEventsFile, files))]


class LogdirReader:
    """All runs under a `--logdir` or `--logdir_spec`, read at full resolution."""

    def __init__(self, logdir="", logdir_spec=""):
        self._roots = parse_logdir_spec(logdir, logdir_spec)
        self._runs = {}
        self._lock = threading.Lock()  # guards _runs
        self._discover_lock = threading.Lock()
        self._discovered_at = None

    @property
    def readable(self):
        """Whether any root exists and can be listed."""
        for root in self._roots:
            try:
                if tf.io.gfile.isdir(root):
                    return True
            except (OSError, tf.errors.OpError):
                continue
        return False

    def discover(self, max_age=0.0):
        """Finds run directories (new ones are added; vanished ones keep their data), unless it
        did less than `max_age` seconds ago (a discovery in progress is waited for)."""
        with self._discover_lock:
            now = time.monotonic()
            if self._discovered_at is not None and now - self._discovered_at < max_age:
                return
            self._discovered_at = now
            found = {}
            for root, prefix in self._roots.items():
                try:
                    subdirs = _run_directories(root)
                except (OSError, ValueError, tf.errors.OpError):
                    continue
                for subdir in subdirs:
                    rel = os.path.relpath(subdir, root)
                    found[os.path.join(prefix, rel) if prefix else rel] = subdir
            with self._lock:
                for name, directory in found.items():
                    if name not in self._runs:
                        self._runs[name] = Run(name, directory)

    def reload(self):
        """Discovers runs and reads new data of every run."""
        self.discover()
        for run in self.run_objects():
            run.reload()

    def nbytes(self):
        """Bytes held in columns, over all runs."""
        return sum(r.nbytes for r in self.run_objects())

    def evict_least_recent(self, excess, keep=None, used_before=float("inf")):
        """Evicts the columns of the runs least recently used (`used_at`), other than `keep` and
        those used since `used_before`, until at least `excess` bytes are freed (or none is
        left); returns the bytes freed."""
        freed = 0
        for run in sorted(self.run_objects(), key=lambda r: r.used_at):
            if freed >= excess or run.used_at >= used_before:
                break
            if run is not keep and run.nbytes:
                freed += run.nbytes
                run.evict()
        return freed

    def run_objects(self):
        with self._lock:
            return [self._runs[k] for k in sorted(self._runs)]

    def get(self, name):
        with self._lock:
            return self._runs.get(name)

    def runs(self):
        return [r.name for r in self.run_objects()]

    def tags(self, run):
        r = self.get(run)
        return r.tags() if r else []

    def series(self, run, tag):
        r = self.get(run)
        return r.series(tag) if r else None

    def counts(self, run):
        r = self.get(run)
        return r.counts() if r else {}
