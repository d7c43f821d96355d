"""Full-resolution, incremental reader of scalar series from TensorBoard event files.

TensorBoard keeps a 1,000-point random sample per scalar tag; averages over a sample are
meaningless, so this module reads every record itself, through TensorBoard's filesystem layer
(`tensorboard.compat.tf.io.gfile`: local paths, gs://, s3://, fsspec) and keeps per (run, tag)
numpy columns `step` (int64), `wall_time` (float64), `value` (float64): 24 bytes a point.

Rules:
- Runs are named as TensorBoard names them: the directory relative to its logdir (`.` for the
  logdir itself), prefixed by the group name of a `--logdir_spec` entry. A local logdir is walked
  following symbolic links, as TensorBoard's data server walks it, except into a directory already
  on the path (a link cycle), so the walk ends and the runs are TensorBoard's.
- Scalars are `simple_value`s, and one-element real tensors of tags whose summary metadata names
  the "scalars" plugin (`events`).
- Each file keeps its own columns, and a run's columns are its files' folded in file-name order,
  so a run whose files change reads as a fresh reader would read the same files. A reload reads
  only bytes appended since the last one; a file whose size and stamp (inode and mtime locally,
  the object's ETag or generation on a cloud store, where the filesystem layer gives them) did not
  change is not opened. A file that shrank, that another file took the place of (a new inode),
  whose stamp changed at the same size, or whose bytes before the old end differ, was replaced:
  it is read again from the start. A file that vanished
  from a directory that can still be listed is dropped. A partial record at the end of a growing
  file is left for the next reload. A record failing its data CRC is skipped and counted; a header
  failing its length CRC stops that file there (counted, retried on the next reload).
- Steps are strictly increasing (`steps.merge_steps`): a record whose step is not above every
  step already held for its tag discards the held records at that step and after it (a restart
  from a checkpoint, as TensorBoard's Rust loader does), so the latest record of a step wins.
- NaN and +-Inf are kept: they are information.
- Any error of the storage (a missing bucket, an endpoint gone, a permission) is reported in the
  run's health; the data already read stays served.
- Runs load in the background (`start`): discovery, then each run in name order, then every few
  seconds the bytes appended to runs held in memory. Readers of a run that is ready never wait on
  a lock held by loading or discovery: a reload replaces `columns` whole, then bumps `version`.
- Columns can be evicted (`evict_least_recent`, as the server's store keeps its memory budget):
  such a run lists the tags and counts it had, and is read again when asked for. A run that the
  background finds beyond the budget is counted as it is read, never held whole (`steps`).
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import ctypes.util
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

import numpy as np
from tensorboard.backend.event_processing import data_ingester, io_wrapper
from tensorboard.compat import tf

from tb_batchavg.ingest import events, records
from tb_batchavg.ingest.source import Series
from tb_batchavg.ingest.steps import StepCounts, extends, footprint, merge_steps

logger = logging.getLogger(__name__)

# Bytes read and parsed at a time: small enough that the copies of bytes (which hold the GIL)
# stay short while other requests are answered, large enough for vectorised parsing.
_READ_CHUNK = 8 << 20
_MIN_BUFFER = 64 << 10  # the read buffer of a file with fewer bytes to read
# Bytes before a file's old end read again on growth, to tell an append from a replacement.
_FINGERPRINT = 64
# Parsing at least this many bytes leaves temporaries worth handing back to the OS: done by the
# next background cycle, not at once (the first requests after a load would pay the page faults
# of the memory handed back: 50 ms of a 1M-step run's first averages).
_TRIM_BYTES = 1 << 20
_EMPTY = Series(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))


def parse_logdir_spec(logdir: str = "", logdir_spec: str = "") -> dict[str, str | None]:
    """Maps each root directory to its run-name prefix (None for none), as TensorBoard does."""
    if logdir:
        return {os.path.expanduser(logdir): None}
    if logdir_spec:
        return data_ingester._parse_event_files_spec(logdir_spec)
    return {}


class _File:
    """One event file: how far it was read, what it held, and its columns."""

    __slots__ = ("offset", "seen", "tail", "bad_records", "corrupt_at", "tags", "columns")

    def __init__(self):
        self.offset = 0  # bytes of complete records read
        self.seen = None  # (size, stamp, identity) at the last read
        self.tail = b""  # the bytes just before `offset`, to recognise the same file
        self.bad_records = 0
        self.corrupt_at = None
        self.tags = events.Tags()
        self.columns = {}  # tag -> Series, strictly increasing steps


class Run:
    """The columns of one run. A reload replaces `columns` whole, then bumps `version`; readers
    take `version` first and `columns` after, without locking."""

    def __init__(self, name: str, directory: str) -> None:
        self.name = name
        self.directory = directory
        self.lock = threading.Lock()  # held while reading files
        self.files = {}
        self.columns = {}
        self.version = 0
        self.loaded = False  # read once since created or evicted
        self.used_at = 0.0  # time.monotonic() of the last request for its data
        self.nbytes = 0  # of the columns, the files' own and the folded ones
        self.evicted = None  # {tag: points} when the columns were evicted, else None
        self.bytes_read = 0
        self.bytes_total = 0
        self.bytes_parsed = 0  # over the run's life
        self._room = None  # bytes this read's columns may take (None: any), and past them,
        self._counting = None  # a StepCounts: the points are counted, not held
        self._reading = 0  # bytes of the columns read by the read in progress
        self._last_folded = None  # (the last file, its columns) when the columns were folded
        self._health = {"bad_records": 0, "corrupt_files": [], "errors": [], "skipped_values": {}}

    @property
    def state(self) -> str:
        return "ready" if self.loaded or self.evicted is not None else "loading"

    def progress(self) -> dict[str, int]:
        return {"bytes_read": int(self.bytes_read), "bytes_total": int(self.bytes_total)}

    def tags(self) -> list[str]:
        return sorted(self.counts())

    def series(self, tag: str) -> Series | None:
        return self.columns.get(tag)

    def counts(self) -> dict[str, int]:
        """{tag: points} of the tags with data, all from the same reload (for an evicted run, as
        they were when it was evicted)."""
        evicted = self.evicted
        if evicted is not None:
            return dict(evicted)
        columns = self.columns
        return {t: int(len(s.step)) for t, s in sorted(columns.items()) if len(s.step)}

    def health(self) -> dict[str, Any]:
        """What was skipped: bad records, files stopped at a corrupt header, values that are not
        a real number ({tag: count}), and errors of the storage (as of the last reload)."""
        return self._health

    def evict(self, wait: bool = True) -> int:
        """Drops the columns (memory goes back at once); the next reload reads every file again.
        Returns the bytes freed (0 if the run is being read and `wait` is False)."""
        if not self.lock.acquire(blocking=wait):
            return 0
        try:
            if self.evicted is not None or not self.loaded:
                return 0
            freed = self.nbytes
            self.evicted = self.counts()
            self.columns, self.files, self.nbytes, self._last_folded = {}, {}, 0, None
            self.loaded = False
            self.version += 1
        finally:
            self.lock.release()
        _release_freed_memory()
        return freed

    def load(self, room: float | None = None) -> bool:
        """Reads the run if it is not held (loading or evicted): waits for a read in progress.

        With `room` (bytes), a run whose columns would need more is counted instead of held, as
        it is read: it ends evicted, listed with its tags and counts, and is read whole when
        asked for. Its columns grow past `room` by one read's at most, then are dropped."""
        if self.loaded and self.evicted is None:
            return False
        with self.lock:
            if self.loaded and self.evicted is None:
                return False
            self._room, self._counting = room, None
            try:
                return self._read_new()
            finally:
                self._room = self._counting = None

    def reload(self) -> bool:
        """Reads what was appended to this run's event files (waiting for a read in progress).
        Returns True if data changed."""
        with self.lock:
            return self._read_new()

    def _read_new(self):
        errors = []
        self._reading = 0  # bytes of the columns read by this read
        changed = set()  # the files whose columns changed (or may have: a read that failed midway)
        try:
            names = sorted(n for n in _listdir(self.directory) if _is_event_file(n))
        except Exception as e:  # any storage error: the data already read stays
            errors.append("cannot list %s: %s" % (self.directory, _describe(e)))
            names = None
        if names is not None:
            paths = [os.path.join(self.directory, n) for n in names]
            for gone in set(self.files) - set(paths):
                del self.files[gone]
                changed.add(gone)
            stamps = {}
            for path in paths:
                try:
                    stamps[path] = _stamp(path)
                except Exception as e:
                    errors.append("cannot read %s: %s" % (os.path.basename(path), _describe(e)))
            self.bytes_total = sum(stamp[0] for stamp in stamps.values())
            self.bytes_read = sum(self.files[p].offset for p in stamps if p in self.files)
            for path, stamp in stamps.items():
                try:
                    if self._read_file(path, stamp):
                        changed.add(path)
                except Exception as e:
                    changed.add(path)
                    errors.append("cannot read %s: %s" % (os.path.basename(path), _describe(e)))
        was_evicted = self.evicted is not None
        if self._counting is not None:
            self._health = self._summarise(errors)
            self.files, self.nbytes, self._last_folded = {}, 0, None  # read every file again when asked for
            self.evicted = self._counting.counts()
            self.version += 1
            _release_freed_memory()
            return True
        if changed or was_evicted or not self.loaded:
            self._fold(changed)
            self.version += 1
        self.loaded = True
        self.evicted = None  # after the columns: a lock-free reader never sees neither
        self._health = self._summarise(errors)
        return bool(changed) or was_evicted

    def _fold(self, changed):
        """The run's columns: each tag's file columns folded in file-name order. When the last
        file (in name order) is the only one `changed`, and only by points appended to its
        columns, those points are appended to the run's instead (the rule is associative)."""
        columns = self._appended_to_last(changed)
        if columns is None:
            columns = {}
            for path in sorted(self.files):
                for tag, series in self.files[path].columns.items():
                    columns[tag] = merge_steps(columns.get(tag, _EMPTY), series, increasing=True)
        self.columns = columns
        last = max(self.files, default=None)
        self._last_folded = None if last is None else (last, dict(self.files[last].columns))
        held = [s for f in self.files.values() for s in f.columns.values()] + list(columns.values())
        self.nbytes = footprint(a for s in held for a in s)

    def _appended_to_last(self, changed):
        """The run's columns grown by what was appended to its last file since the last fold, or
        None if anything else changed."""
        if self._last_folded is None or not self.loaded or self.evicted is not None:
            return None
        last, before = self._last_folded
        if changed - {last} or last not in self.files or set(self.files[last].columns) != set(before):
            return None
        columns = dict(self.columns)
        for tag, series in self.files[last].columns.items():
            old = before[tag]
            if series is old:
                continue
            if not all(extends(new, held) for new, held in zip(series, old)):
                return None
            if columns[tag] is old:  # no earlier file holds the tag: the run's column is the file's
                columns[tag] = series
            else:
                tail = Series(*(new[len(held) :] for new, held in zip(series, old)))
                columns[tag] = merge_steps(columns[tag], tail, increasing=True)
        return columns

    def _summarise(self, errors):
        skipped = collections.Counter()
        for f in self.files.values():
            skipped.update(f.tags.skipped)
        return {
            "bad_records": sum(f.bad_records for f in self.files.values()),
            "corrupt_files": sorted(os.path.basename(p) for p, f in self.files.items() if f.corrupt_at is not None),
            "errors": errors,
            "skipped_values": dict(sorted(skipped.items())),
        }

    def _count_instead(self, path):
        """From now on, counts the points of this read instead of holding them: the columns of the
        files read before `path` (in name order, as they fold) and of `path` are counted first."""
        self._counting = StepCounts()
        for name in sorted(self.files):
            if name <= path:
                for tag, series in self.files[name].columns.items():
                    self._counting.add(tag, series.step)
                self.files[name].columns = {}

    def _read_file(self, path, stamp):
        """Reads the new records of one file; returns True if its columns changed."""
        state = self.files.get(path)
        if state is None:
            state = self.files[path] = _File()
        if stamp == state.seen:
            return False
        size, mark, identity = stamp
        replaced = size < state.offset or (
            state.seen is not None
            and (identity != state.seen[2] or (mark != state.seen[1] and size == state.offset and size > 0))
        )
        changed = False
        if replaced:
            changed = bool(state.columns)
            state = self.files[path] = _File()
        start = max(0, state.offset - len(state.tail))
        reading = _Reading(path, start, size - start)
        if state.tail and not reading.starts_with(state.tail):  # not the file read before
            changed |= bool(state.columns)
            state = self.files[path] = _File()
            reading = _Reading(path, 0, size)
        new = collections.defaultdict(lambda: ([], [], []))  # tag -> parts of step, wall_time, value
        try:
            for data in reading.buffers():
                scan = records.scan(data, check_data=False)  # decode checks the data CRCs
                columns, bad = events.decode(data, scan.starts, scan.lengths, state.tags)
                self._take(path, columns, new)
                state.offset += scan.consumed
                self.bytes_read += scan.consumed
                state.bad_records += bad
                state.corrupt_at = scan.corrupt_at
                if scan.consumed:
                    kept = bytes(data[max(0, scan.consumed - _FINGERPRINT) : scan.consumed])
                    state.tail = (state.tail + kept)[-_FINGERPRINT:]
                reading.consume(scan.consumed)
                if scan.corrupt_at is not None:
                    break
        finally:  # what was decoded is kept (to `offset`) if a read fails midway: it is not read again
            self.bytes_parsed += reading.total
            grew = bool(new)
            while new:
                tag, fields = new.popitem()
                state.columns[tag] = merge_steps(state.columns.get(tag, _EMPTY), Series(*map(_joined, fields)))
        state.seen = stamp
        return changed or grew

    def _take(self, path, columns, new):
        """Adds a buffer's columns to `new` (tag -> parts), or counts them once this read counts."""
        for tag, column in columns.items():
            for parts, array in zip(new[tag], column[1:]):  # not the record order
                parts.append(array)
                self._reading += array.nbytes
        if self._counting is None and self._room is not None and self._reading > self._room:
            self._count_instead(path)
        if self._counting is not None:
            for tag, (steps, _, _) in new.items():
                for part in steps:
                    self._counting.add(tag, part)
            new.clear()


class _Reading:
    """A file read forward through one buffer, reused: `buffers()` reads the next bytes after
    those left over and gives a view of the bytes read and not consumed, of which `consume(n)`
    drops the first n. A fresh bytes object per read, and the copy joining it to the bytes left
    over, cost 0.2 s of the 0.98 s a 281 MB file took (page faults and copies). `total` counts
    the bytes read."""

    def __init__(self, path, offset, size):
        self.path = path
        self.offset = offset  # of the first byte not consumed, in the file
        self.total = 0
        self._buffer = bytearray(max(_MIN_BUFFER, min(_READ_CHUNK, size)))
        self._begin = self._end = 0
        self._unseen = False  # bytes read by starts_with, not given by buffers() yet

    def starts_with(self, prefix):
        """Whether the bytes from `offset` begin with `prefix` (consumed if they do)."""
        self._more()
        self._unseen = bytes(self._view()[: len(prefix)]) == prefix
        if self._unseen:
            self.consume(len(prefix))
        return self._unseen

    def buffers(self):
        if self._unseen:
            yield self._view()
        while self._more():
            yield self._view()

    def consume(self, count):
        self._begin += count
        self.offset += count

    def _more(self):
        if self._begin:  # the bytes left over move to the front (same size: views stay valid)
            left = self._end - self._begin
            self._buffer[:left] = self._buffer[self._begin : self._end]
            self._begin, self._end = 0, left
        if 2 * self._end > len(self._buffer):  # a record longer than half the buffer: a new one
            self._buffer = self._buffer[: self._end] + bytearray(len(self._buffer))
        got = _read_at(self.path, self.offset + self._end, memoryview(self._buffer)[self._end :])
        self._end += got
        self.total += got
        return got

    def _view(self):
        return memoryview(self._buffer)[self._begin : self._end]


def _joined(parts):
    """The parts (a list of arrays) as one array; the list is emptied, so that a run's columns
    are built with one field's copy beside its parts, not a copy of all (2.7x the columns' bytes
    at the peak of a 1M-step run's first read, 1.3x now)."""
    joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
    parts.clear()
    return joined


def _listdir(directory):
    """The names in a directory: os.listdir for a local one (no TensorFlow call), gfile else."""
    return os.listdir(directory) if "://" not in directory else tf.io.gfile.listdir(directory)


def _isdir(path):
    """Whether `path` is a directory (or bucket): os.path for a local one, gfile else."""
    return os.path.isdir(path) if "://" not in path else tf.io.gfile.isdir(path)


def _is_event_file(name):
    """TensorBoard's rule ("tfevents" in the base name), written here because its
    io_wrapper.IsTensorFlowEventsFile goes through tf.compat, which imports TensorFlow when it
    is installed: 2-3 s in each process of `tb-batchavg report`, which needs none of it."""
    return "tfevents" in os.path.basename(name)


def _describe(error):
    """One line naming an error of the storage: its type, and its message."""
    text = str(error).strip().splitlines()
    return "%s: %s" % (type(error).__name__, text[0] if text else "")


def _stamp(path):
    """(size, stamp, identity) of a file. The stamp changes when the file is written: the mtime of
    a local file, the ETag or generation of a cloud object where the filesystem layer gives it
    (an append gives a new object too). The identity changes only when another file takes the
    name (a rename over it): the device and inode of a local file, None where nothing tells."""
    if "://" not in path:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)
    if hasattr(tf.io.gfile, "get_filesystem"):  # TensorBoard's own gfile
        found = _object_stamp(tf.io.gfile.get_filesystem(path), path)
        if found is not None:
            return (*found, None)
    stat = tf.io.gfile.stat(path)
    return stat.length, getattr(stat, "mtime_nsec", None), None  # TensorFlow's gfile has mtime_nsec


def _object_stamp(filesystem, path):
    """(size, version stamp) of a cloud object through TensorBoard's own S3 or fsspec filesystem,
    from one look-up (so they describe the same version); None for another filesystem."""
    if hasattr(filesystem, "bucket_and_path"):  # S3, through boto3
        import boto3

        bucket, key = filesystem.bucket_and_path(path)
        head = boto3.client("s3", endpoint_url=getattr(filesystem, "_s3_endpoint", None)).head_object(
            Bucket=bucket, Key=key
        )
        return head["ContentLength"], (head.get("ETag"), str(head.get("LastModified")))
    if hasattr(filesystem, "_fs_path"):  # fsspec: gcsfs, s3fs, ...
        fs, inner = filesystem._fs_path(path)
        # fsspec's listings cache (gcsfs keeps it forever) would answer for an object that was
        # replaced, or for a store that is gone, without an error: ask the store.
        fs.invalidate_cache(inner)
        info = fs.info(inner)
        keys = ("generation", "etag", "ETag", "mtime", "LastModified", "updated")
        return info["size"], tuple(str(info.get(k)) for k in keys)
    return None


def _release_freed_memory():
    """Hands the pages of freed parsing temporaries back to the OS (glibc keeps them otherwise,
    which tripled the resident memory per stored point); a no-op where there is no glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    """glibc by its usual name first: find_library runs `ldconfig -p` (8 ms at start-up)."""
    for find in (lambda: "libc.so.6", lambda: ctypes.util.find_library("c")):
        try:
            libc = ctypes.CDLL(find() or "libc.so.6")
        except OSError:
            continue
        return libc if hasattr(libc, "malloc_trim") else None
    return None


_LIBC = _load_libc()


def _read_at(path, offset, into):
    """Reads bytes of the file at `path` from byte `offset` into `into` (a writable memoryview),
    as many as it holds or the file has; returns how many, through gfile.

    TensorFlow's GFile can seek; TensorBoard's own gfile (used when TensorFlow is not installed)
    cannot, but its filesystems read from a continuation token that holds the byte offset (named
    "opaque_offset" by the local and fsspec filesystems, "byte_offset" by S3).
    """
    if "://" not in path:  # a local file: Python's own reads are 8 times faster than TensorFlow's
        with open(path, "rb") as f:
            f.seek(offset)
            return f.readinto(into)
    if hasattr(tf.io.gfile, "get_filesystem"):
        token = {"opaque_offset": offset, "byte_offset": offset}
        data, _ = tf.io.gfile.get_filesystem(path).read(path, binary_mode=True, size=len(into), continue_from=token)
    else:
        with tf.io.gfile.GFile(path, "rb") as f:
            if offset:  # TensorFlow's seek costs about 0.1 ms in its deprecated-argument check
                f.seek(offset)
            data = f.read(len(into))
    into[: len(data)] = data
    return len(data)


_MAX_DIRECTORIES = 100_000  # a walk of a symbolic-link graph with this many paths stops there


def _run_directories(root):
    """The directories under `root` that hold event files. A local root is walked here, as
    TensorBoard's data server walks it: following symbolic links, but not into a directory that
    is already on the path from the root (a link cycle), and at most _MAX_DIRECTORIES paths (a
    graph of links can have exponentially many). Names that are not UTF-8 are found too (gfile
    fails on them). A cloud root, which has no links, is walked through gfile."""
    if "://" in root:
        return list(io_wrapper.GetLogdirSubdirectories(root))
    found, visited = [], 0
    stack = [(root, frozenset())]
    while stack and visited < _MAX_DIRECTORIES:
        directory, ancestors = stack.pop()
        try:
            st = os.stat(directory)
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        here = (st.st_dev, st.st_ino)
        if here in ancestors:  # a link back to a directory on the path: a cycle
            continue
        visited += 1
        ancestors = ancestors | {here}
        subdirs, has_events = [], False
        for entry in entries:
            try:
                if entry.is_dir():
                    subdirs.append((entry.path, ancestors))
                elif _is_event_file(entry.name):
                    has_events = True
            except OSError:  # a dangling link, or one looping on itself
                continue
        if has_events:
            found.append(directory)
        stack.extend(reversed(subdirs))
    if stack:
        logger.warning("batchavg: stopped walking %s after %d directories", root, visited)
    return found


class LogdirReader:
    """All runs under a `--logdir` or `--logdir_spec`, read at full resolution: a `Source`."""

    sampled = False

    def __init__(self, logdir: str = "", logdir_spec: str = "") -> None:
        self.roots = parse_logdir_spec(logdir, logdir_spec)
        self._runs = {}
        self._lock = threading.Lock()  # guards _runs; never held while reading files
        self._discover_lock = threading.Lock()
        self._discovered = threading.Event()
        self._discovered_at = None
        self.errors = []  # of the last discovery: roots that could not be listed
        self.readable = False  # whether some root could be listed, as of the last discovery
        self._parsed_at_trim = 0  # bytes parsed by all runs when memory was last handed back
        self._thread = None

    # Background loading ------------------------------------------------------------------
    def start(self, interval: float, fit: Callable[[int], bool] | None = None, budget: float | None = None) -> None:
        """Loads every run in a daemon thread, then reads what is appended every `interval`
        seconds, calling `fit` and keeping `budget` as `cycle` does. The thread ends when the reader is
        garbage-collected."""
        if self._thread is None and self.roots:
            self._thread = threading.Thread(
                target=_background,
                args=(weakref.ref(self), max(interval, 0.1), fit, budget),
                name="batchavg-reader",
                daemon=True,
            )
            _THREADS.add(self._thread)
            self._thread.start()

    def cycle(self, fit: Callable[[int], bool] | None = None, budget: float | None = None) -> None:
        """One pass of the background thread: discovery, runs not read yet, then what was appended
        to the runs held. A run not read yet is held if its columns fit in what `budget` (bytes)
        leaves beside the columns held, else counted and listed (see Run.load). After each run
        read, `fit(held)` is told the bytes the columns hold (it may evict some: it returns True
        when it did)."""
        self._trim()
        self.discover()
        held = self.nbytes()  # kept up to date here: summing over 10,000 runs per run is slow
        for run in self.run_objects():
            if _EXITING.is_set():
                return
            if run.evicted is not None:
                continue  # listed from what was read; read again when asked for
            before = run.nbytes
            if not run.loaded:
                run.load(room=None if budget is None else budget - held)
            elif run.lock.acquire(blocking=False):  # a request may be loading it
                try:
                    run._read_new()
                finally:
                    run.lock.release()
            held += run.nbytes - before
            if fit is not None and fit(held):
                held = self.nbytes()

    def wait_discovered(self, timeout: float | None = None) -> bool:
        """Waits for a first discovery (by the background thread, or here if there is none)."""
        if self._thread is None and not self._discovered.is_set():
            self.discover()
        return self._discovered.wait(timeout)

    def discover(self) -> None:
        """Finds run directories (new ones are added; vanished ones keep their data)."""
        with self._discover_lock:
            self._discovered_at = time.monotonic()
            found, errors, readable = {}, [], False
            for root, prefix in self.roots.items():
                try:
                    subdirs = _run_directories(root)
                    is_dir = _isdir(root)
                except Exception as e:  # any storage error
                    errors.append("cannot list %s: %s" % (root, _describe(e)))
                    continue
                readable = readable or is_dir
                if not is_dir:  # gcsfs says so of a missing bucket, without an error
                    errors.append("cannot list %s: no such directory or bucket" % root)
                for subdir in subdirs:
                    rel = os.path.relpath(subdir, root)
                    found[os.path.join(prefix, rel) if prefix else rel] = subdir
            with self._lock:
                for name, directory in found.items():
                    if name not in self._runs:
                        self._runs[name] = Run(name, directory)
            self.errors, self.readable = errors, readable
            self._discovered.set()

    def reload(self) -> None:
        """Discovers runs and reads new data of every run (synchronously)."""
        self.discover()
        for run in self.run_objects():
            run.reload()
        self._trim()

    def _trim(self):
        """Hands the parsing temporaries back to the OS if enough bytes were parsed since the last
        time (_TRIM_BYTES)."""
        parsed = sum(r.bytes_parsed for r in self.run_objects())
        if parsed - self._parsed_at_trim > _TRIM_BYTES:
            _release_freed_memory()
            self._parsed_at_trim = parsed

    def open(self, name: str) -> int | None:
        """The data version of run `name`, read and marked as used (None if there is no such run).
        Waits for a first discovery, and for the run's own loading; a run that is held does not
        wait."""
        run = self.get(name)
        if run is None:  # runs created later are found by the background's next discovery
            self.wait_discovered()
            run = self.get(name)
        if run is None:
            return None
        run.used_at = time.monotonic()
        run.load()
        return run.version

    # Memory --------------------------------------------------------------------------------
    def nbytes(self) -> int:
        """Bytes held in columns, over all runs."""
        return sum(r.nbytes for r in self.run_objects())

    def evict_least_recent(self, excess: int, keep: str | None = None, used_before: float = float("inf")) -> int:
        """Evicts the columns of the runs least recently used (`used_at`), other than the run
        named `keep` and those used since `used_before`, until at least `excess` bytes are freed
        (or none is left); returns the bytes freed. A run being read is passed over."""
        freed = 0
        for run in sorted(self.run_objects(), key=lambda r: r.used_at):
            if freed >= excess or run.used_at >= used_before:
                break
            if run.name != keep and run.nbytes:
                freed += run.evict(wait=False)
        return freed

    # Listing -------------------------------------------------------------------------------
    def run_objects(self) -> list[Run]:
        with self._lock:
            return [self._runs[k] for k in sorted(self._runs)]

    def get(self, name: str) -> Run | None:
        with self._lock:
            return self._runs.get(name)

    def runs(self) -> list[str]:
        return [r.name for r in self.run_objects()]

    def tags(self, run: str) -> list[str]:
        r = self.get(run)
        return r.tags() if r else []

    def series(self, run: str, tag: str) -> Series | None:
        r = self.get(run)
        return r.series(tag) if r else None

    def counts(self, run: str) -> dict[str, int]:
        r = self.get(run)
        return r.counts() if r else {}

    def version(self, run: str) -> int | None:
        r = self.get(run)
        return r.version if r else None

    def health(self, run: str) -> dict[str, Any] | None:
        r = self.get(run)
        return r.health() if r else None

    def state(self, run: str) -> dict[str, Any] | None:
        r = self.get(run)
        if r is None:
            return None
        return {"state": r.state, "progress": r.progress(), "evicted": r.evicted is not None}

    def loading(self) -> bool:
        return not self.wait_discovered(0) or any(r.state == "loading" for r in self.run_objects())


# Set at interpreter exit: the loading threads stop before Python finalizes, since a daemon thread
# still inside TensorFlow's file system code then aborts the process.
_EXITING = threading.Event()
_THREADS = weakref.WeakSet()


@atexit.register
def _stop_background():
    _EXITING.set()
    for thread in list(_THREADS):
        thread.join(timeout=5.0)


def _background(ref, interval, fit, budget):
    """The loading thread: cycles while the reader lives and Python is not exiting."""
    while not _EXITING.is_set():
        reader = ref()
        if reader is None:
            return
        try:
            reader.cycle(fit, budget)
        except Exception:  # never let the thread die: the next cycle retries
            logger.exception("batchavg: background reading failed")
        del reader
        _EXITING.wait(interval)
