"""TFRecord framing of event files: split a byte buffer into records and check CRCs.

An event file is a sequence of records, each

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

all little-endian, with masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)
and crc32c the Castagnoli CRC (reflected polynomial 0x82F63B78).

Edge policy:
- a record whose 12-byte header or body is not fully in the buffer yet is *partial*: scanning stops
  before it, and the caller keeps its offset to retry once the file has grown;
- a header whose length CRC fails makes every later byte untrustworthy (the next record boundary
  is unknown): scanning stops there and reports it;
- a body whose data CRC fails is one bad record: it is reported and skipped.

Framing, CRCs, matching records against a template and gathering their fields run in C
(`_kernels.c`, built by setup.py where a C compiler is found: loops per record and per byte,
0.2-0.45x the time of the numpy kernels for a whole load). The numpy kernels below give the same
results: the tests compare the two, and they serve where the C ones were not built.

In numpy, CRCs are computed for all records at once. A CRC register is linear over GF(2), so
each record is cut into rows of `_ROW` bytes aligned to its end (the first row zero-padded in
front: leading zeros leave a zero register unchanged), every row's register is computed 16 bits
per step, and the rows are combined by the linear maps "feed 2**b zero bytes" (4 x 256 lookup
tables each). The cost is a few numpy operations per pair of bytes of a row plus per bit of the
longest record's length: O(total bytes), however many records and distinct lengths there are.
Those numpy passes cost about half a millisecond whatever the size, so a few bytes in all (at
most _SMALL_BYTES: a tiny file, a few new records) take a byte-at-a-time table loop instead.
No TensorBoard import.
"""

from __future__ import annotations

import functools
import struct
import types
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

try:
    from tb_batchavg.ingest import _kernels
except ImportError:  # not built (no C compiler at install): the numpy kernels
    _kernels = None

HEADER_BYTES = 12
FOOTER_BYTES = 4
_LENGTH = struct.Struct("<Q")  # a header's length field
_MASK_DELTA = 0xA282EAD8
_POLY = 0x82F63B78
_ROW = 64  # bytes per row of the bulk CRC pass
_BATCH_ROWS = 1 << 17  # rows gathered at once (at most 8 MB)
_SHIFT_LEVELS = 48  # record lengths below 2**48 bytes
_FRAMED_AT_ONCE = 1 << 16  # records framed per call of the C kernel
_SMALL_BYTES = 2048  # up to this many bytes in all, the byte loop (about 50 ns a byte) is faster


def _byte_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ _POLY, table >> 1).astype(np.uint32)
    return table


_T8 = _byte_table()
_T8_LIST = _T8.tolist()  # Python ints, for the byte loop
# _T16[i]: the CRC register after feeding the 16 bits of i (low byte first) into a zero register.
_T16 = (
    _T8[(_T8[np.arange(65536) & 0xFF] ^ (np.arange(65536) >> 8)) & 0xFF]
    ^ (_T8[np.arange(65536) & 0xFF] ^ (np.arange(65536) >> 8)) >> 8
).astype(np.uint32)


def _apply(tables, registers):
    """A linear map of uint32 registers given by its 4 x 256 byte tables."""
    return (
        tables[0][registers & 0xFF]
        ^ tables[1][(registers >> 8) & 0xFF]
        ^ tables[2][(registers >> 16) & 0xFF]
        ^ tables[3][registers >> 24]
    )


def _tables(images):
    """The 4 x 256 byte tables of the linear map sending bit i to images[i]."""
    byte = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for bit in range(8):
            tables[k] ^= np.where((byte >> bit) & 1, images[8 * k + bit], np.uint32(0))
    return tables


def _shift_tables():
    """_SHIFT[b]: tables of the map "feed 2**b zero bytes" (squared from one zero byte)."""
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    images = _T8[basis & 0xFF] ^ (basis >> 8)
    levels = []
    for _ in range(_SHIFT_LEVELS):
        levels.append(_tables(images))
        images = _apply(levels[-1], images)
    return levels


_SHIFT = _shift_tables()


def _feed_zeros(registers, counts):
    """Each register after feeding counts[i] zero bytes."""
    registers = registers.copy()
    top = int(counts.max()).bit_length() if len(counts) else 0
    for b in range(top):
        sel = np.flatnonzero((counts >> b) & 1)
        registers[sel] = _apply(_SHIFT[b], registers[sel])
    return registers


def _row_registers(rows):
    """The register of each row of a 2-D uint8 array (even width) fed into a zero register."""
    pairs = rows.view("<u2")
    registers = np.zeros(len(rows), dtype=np.uint32)
    for j in range(pairs.shape[1]):
        registers = _T16[(registers ^ pairs[:, j]) & 0xFFFF] ^ (registers >> 16)
    return registers


def crc32c(buf: np.ndarray, starts: npt.ArrayLike, lengths: npt.ArrayLike) -> np.ndarray:
    """crc32c of buf[starts[i] : starts[i] + lengths[i]] for each i (buf a uint8 array)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if int(lengths.sum()) <= _SMALL_BYTES:
        return np.array(
            [_crc32c_loop(buf[s : s + n].tobytes()) for s, n in zip(starts.tolist(), lengths.tolist())], dtype=np.uint32
        )
    longest = int(lengths.max()) if len(lengths) else 0
    width = min(_ROW, max(2, 1 << (longest - 1).bit_length()))  # short ranges: narrow rows
    # Zero-copy view: windows[p] is the `width` bytes at p - width; the front padding holds the
    # first row of a range that starts less than `width` bytes into the buffer.
    padded = np.concatenate((np.zeros(width, dtype=np.uint8), buf))
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    rows_of = -(-lengths // width)
    rows_before = np.cumsum(rows_of) - rows_of
    linear = np.zeros(len(starts), dtype=np.uint32)
    first = 0
    while first < len(starts):  # batches of whole ranges, about _BATCH_ROWS rows each
        last = int(np.searchsorted(rows_before, rows_before[first] + _BATCH_ROWS, "left"))
        part = slice(first, max(last, first + 1))
        linear[part] = _zero_init_registers(windows, starts[part], lengths[part], rows_of[part])
        first = part.stop
    registers = _feed_zeros(np.full(len(starts), 0xFFFFFFFF, dtype=np.uint32), lengths) ^ linear
    return registers ^ np.uint32(0xFFFFFFFF)


def _crc32c_loop(data):
    """crc32c of a few bytes, one table lookup per byte."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _T8_LIST[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _zero_init_registers(windows, starts, lengths, rows_of):
    """CRC registers of the byte ranges fed into zero registers; range i has rows_of[i] rows."""
    width = windows.shape[1]
    first_row = np.cumsum(rows_of) - rows_of
    record = np.repeat(np.arange(len(starts)), rows_of)
    after = (first_row[record] + rows_of[record] - 1 - np.arange(len(record))) * width  # bytes after a row
    rows = windows[starts[record] + lengths[record] - after]
    used = np.flatnonzero(rows_of)
    lead = rows_of[used] * width - lengths[used]  # bytes of a first row before its range
    rows[first_row[used]] *= np.arange(width) >= lead[:, None]
    shifted = _feed_zeros(_row_registers(rows), after)
    registers = np.zeros(len(starts), dtype=np.uint32)
    if len(used):
        registers[used] = np.bitwise_xor.reduceat(shifted, first_row[used])
    return registers


def mask(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masking of a crc32c: rotate right by 15 bits, add 0xA282EAD8."""
    crc = np.asarray(crc).astype(np.uint32, copy=False)  # uint32 arithmetic wraps as the mask does
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)


def masked_crc_of(data: bytes) -> int:
    """Masked crc32c of one bytes object (used to write test files)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    return int(mask(crc32c(buf, [0], [len(buf)]))[0])


def _check(buf, starts, lengths, expected):
    """Boolean mask: masked crc of buf[starts[i]:starts[i]+lengths[i]] == expected[i]."""
    return mask(crc32c(buf, starts, lengths)) == expected


class Scan:
    """Result of scanning a buffer: the good records and what was wrong."""

    __slots__ = ("starts", "lengths", "consumed", "bad_records", "corrupt_at")

    def __init__(
        self, starts: np.ndarray, lengths: np.ndarray, consumed: int, bad_records: int, corrupt_at: int | None
    ) -> None:
        self.starts = starts  # int64 offsets of good record bodies in the buffer
        self.lengths = lengths  # int64 body lengths
        self.consumed = consumed  # bytes fully processed (the next read starts here)
        self.bad_records = bad_records  # records skipped for a data-CRC mismatch
        self.corrupt_at = corrupt_at  # buffer offset of a header with a bad length CRC, or None


def scan(data: bytes, check_data: bool = True) -> Scan:
    """Splits `data` (bytes) into records, checking the header CRC of each and, with
    `check_data`, the data CRC (else the caller checks it: see `check` and `match`).

    Returns a Scan. `consumed` stops before a partial trailing record, and at a corrupt header.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    heads, lengths, pos, corrupt_at = _framed(data, buf) if _kernels is None else _framed_in_c(buf)
    starts = heads + HEADER_BYTES
    if not check_data:
        return Scan(starts, lengths, pos, 0, corrupt_at)
    data_ok = check(buf, starts, lengths)
    return Scan(starts[data_ok], lengths[data_ok], pos, int((~data_ok).sum()), corrupt_at)


def _framed_in_c(buf):
    """_framed's result, in C: at most _FRAMED_AT_ONCE records a call (a buffer grown for one
    long record would otherwise need room for a record every 16 bytes)."""
    heads_parts, lengths_parts, pos = [], [], 0
    while True:
        heads, lengths = np.empty((2, min(len(buf) // 16 + 1, _FRAMED_AT_ONCE)), dtype=np.int64)
        count, pos, corrupt_at = _kernels.frame(buf, heads, lengths, pos)
        heads_parts.append(heads[:count])
        lengths_parts.append(lengths[:count])
        if count < len(heads) or corrupt_at >= 0:
            break
    heads, lengths = (np.concatenate(parts) for parts in (heads_parts, lengths_parts))
    return heads, lengths, pos, None if corrupt_at < 0 else corrupt_at


def _framed(data, buf):
    """(heads, lengths, end, offset of the first corrupt header or None) of the records in buf,
    with numpy: framing trusts the length fields, then every header's CRC is checked (also that of
    a last header whose body is not all here)."""
    size = len(buf)
    heads, lengths, pos = _frame(data)
    fields = lengths.astype(np.uint64)  # the length fields framing read
    if pos + HEADER_BYTES <= size:  # a header whose body is not all here: check its CRC only
        heads = np.append(heads, pos)
        fields = np.append(fields, np.uint64(_LENGTH.unpack_from(data, pos)[0]))
    corrupt_at = None
    if len(heads):
        header_ok = _header_ok(buf, heads, fields)
        if not header_ok.all():
            corrupt_at = int(heads[np.argmin(header_ok)])
            pos = corrupt_at
    heads = heads[: len(lengths)]
    if corrupt_at is not None:
        keep = heads < corrupt_at
        heads, lengths = heads[keep], lengths[keep]
    return heads, lengths, pos, corrupt_at


def _header_ok(buf, heads, fields):
    """Whether each header's length CRC holds (`fields`: its length field). Records share few
    lengths, so the CRC of each distinct length field is computed once."""
    distinct, which = distinct_values(fields)
    table = np.frombuffer(distinct.astype("<u8").tobytes(), dtype=np.uint8)
    expected = mask(crc32c(table, 8 * np.arange(len(distinct)), np.full(len(distinct), 8)))
    return expected[which] == _u32_at(buf, heads + 8)


_COUNTED = 1 << 16  # values below this are told apart by counting


def distinct_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the sorted distinct values, each value's index among them) of non-negative integers, as
    np.unique(return_inverse=True) gives them; by counting where all are small (record lengths:
    5-10x faster than np.unique's sort or hash), else by np.unique."""
    if len(values) and int(values.max()) < _COUNTED:
        present = np.bincount(values.astype(np.intp)) > 0
        index = np.cumsum(present) - 1
        return np.flatnonzero(present).astype(values.dtype), index[values]
    distinct, which = np.unique(values, return_inverse=True)
    return distinct, which.ravel()


def check(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each record's data CRC holds."""
    if _kernels is None:
        return _check(buf, starts, lengths, _u32_at(buf, starts + lengths))
    ok = np.empty(len(starts), dtype=bool)
    _kernels.check(buf, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(lengths, np.int64), ok)
    return ok


def match(buf: np.ndarray, starts: np.ndarray, template: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """For each record of len(template) bytes at `starts`: 0 if its bytes differ from `template`
    on the bits of `bits` (uint8, as long), else 1 if its data CRC holds, 2 if it fails.

    In numpy, records are gathered as rows of whole 64-bit words (a record whose last word would
    pass the buffer's end gets 0: only a buffer's last record can), compared with the template in
    a masked XOR per word, and the CRCs of those that match are the template's CRC updated by the
    bytes that may differ (variant_crc32c), a fraction of the cost of each record's own."""
    length = len(template)
    state = np.zeros(len(starts), dtype=np.uint8)
    if _kernels is not None:
        _kernels.match(buf, np.ascontiguousarray(starts, np.int64), template, bits, state)
        return state
    width = -(-length // 8) * 8
    if not len(starts) or len(buf) < width:
        return state
    fits = np.flatnonzero(starts + width <= len(buf))
    every_byte = np.ndarray((len(buf) - width + 1, width // 8), dtype="<u8", buffer=buf, strides=(1, 8))
    words = every_byte[starts[fits]]
    wide = np.zeros((2, width), dtype=np.uint8)
    wide[:, :length] = template, bits
    template_words, bit_words = wide.view("<u8")
    differ = np.zeros(len(words), dtype=np.uint64)
    for k in np.flatnonzero(bit_words).tolist():
        differ |= (words[:, k] ^ template_words[k]) & bit_words[k]
    same = differ == 0
    rows = words[same].view(np.uint8)
    sound = mask(variant_crc32c(template, rows, np.flatnonzero(bits != 0xFF))) == _u32_at(
        buf, starts[fits[same]] + length
    )
    state[fits[same]] = np.where(sound, 1, 2)
    return state


def c_kernels() -> types.ModuleType | None:
    """The C kernels (`_kernels.c`), or None where they were not built: for the loops of other
    modules over records (events.py), so that this module's one switch chooses C or numpy."""
    return _kernels


def floats_at(buf: np.ndarray, offsets: np.ndarray, dtype: str) -> np.ndarray:
    """The little-endian floats of `dtype` ("<f4" or "<f8") at byte offsets of a uint8 buffer,
    as float64."""
    if _kernels is None:
        return at(buf, offsets, dtype).astype(np.float64)
    out = np.empty(len(offsets), dtype=np.float64)
    _kernels.floats(buf, np.ascontiguousarray(offsets, np.int64), np.dtype(dtype).itemsize, out)
    return out


def varints_at(buf: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
    """The varints of `length` bytes (1 to 10; continuation bits ignored) at byte offsets of a
    uint8 buffer, as int64 (the two's complement of a uint64)."""
    if _kernels is not None:
        out = np.empty(len(offsets), dtype=np.int64)
        _kernels.varints(buf, np.ascontiguousarray(offsets, np.int64), length, out)
        return out
    value = np.zeros(len(offsets), dtype=np.uint64)
    for k in range(length):
        value |= (buf[offsets + k].astype(np.uint64) & np.uint64(0x7F)) << np.uint64(7 * k)
    return value.view(np.int64)


def variant_crc32c(template: np.ndarray, rows: np.ndarray, positions: npt.ArrayLike) -> np.ndarray:
    """crc32c of each row of `rows` (2-D uint8, at least len(template) wide: bytes past it are
    ignored), which equals `template` outside `positions`.

    A CRC register is affine in the bytes: crc(row) = crc(template) ^ g(row ^ template), with g
    the register of a zero-initialised CRC, linear, and the XOR of each byte's own part. So each
    row costs one table lookup per aligned pair of bytes holding a differing position (each table:
    the pair's 65,536 values followed by the zero bytes after it), not one per byte: half the
    lookups of byte tables. The pairs are cut from the XOR of each 64-bit word of the rows that
    holds one (one pass over the rows per word, not per pair).
    """
    length = len(template)
    pairs = np.unique(np.asarray(positions, dtype=np.int64) // 2)
    if not len(pairs):
        return np.full(len(rows), _crc32c_loop(template.tobytes()), dtype=np.uint32)
    width = -(-max(rows.shape[1], 2 * int(pairs[-1]) + 2) // 8) * 8
    if width != rows.shape[1] or not rows.flags.c_contiguous:
        rows = np.pad(rows, ((0, 0), (0, width - rows.shape[1])))
    padded = np.zeros(width, dtype=np.uint8)
    padded[:length] = template
    words, base = rows.view("<u8"), padded.view("<u8")
    register = np.full(len(rows), _crc32c_loop(template.tobytes()), dtype=np.uint32)
    tables = _pair_tables(length, tuple(pairs.tolist()))
    word_of = pairs // 4  # the 64-bit word holding each pair
    for word in np.unique(word_of).tolist():
        differ = words[:, word] ^ base[word]
        if not differ.any():  # bytes no row changes (a wall time's high bytes) add nothing
            continue
        for k in np.flatnonzero(word_of == word).tolist():
            piece = (differ >> np.uint64(16 * (int(pairs[k]) % 4))) & np.uint64(0xFFFF)
            if piece.any():
                # (as int64: numpy 1 refuses uint64 indices; take: 20% faster than [])
                np.bitwise_xor(register, np.take(tables[k], piece.view(np.int64)), out=register)
    return register


@functools.lru_cache(maxsize=32)
def _pair_tables(length, pairs):
    """Per pair of bytes (2p, 2p + 1) of a `length`-byte record: the register of a zero-initialised
    CRC fed each 16-bit value there (low byte first) followed by zero bytes to `length`; a byte
    past the record adds nothing. Cached (256 KB a pair): a writer's records share a few
    layouts, and building them took 30 ms of a 1M-step file's 0.6 s."""
    first = 2 * np.asarray(pairs, dtype=np.int64)
    positions = np.concatenate((first, first + 1))
    tables = _feed_zeros(np.tile(_T8, len(positions)), np.repeat(np.maximum(length - 1 - positions, 0), 256))
    tables = tables.reshape(2, len(pairs), 256)
    low, high = tables[0], np.where((first + 1 < length)[:, None], tables[1], np.uint32(0))
    tables = (high[:, :, None] ^ low[:, None, :]).reshape(len(pairs), 65536)
    tables.flags.writeable = False
    return tables


_MAX_PERIOD = 8  # longest repeating pattern of record lengths that framing jumps over
_MIN_RUN = 4  # records read one by one before trying to jump
_MAX_WAIT = 512  # records read one by one between jump attempts that keep falling short


def _frame(data):
    """Record boundaries: (heads, lengths, end of the last complete record).

    Walks the length fields one record at a time, and whenever the last lengths repeat with a
    period P <= _MAX_PERIOD (one record per tag per step, or one record per step, as writers do),
    checks the length fields at the predicted positions and jumps over all whole periods that
    match: exactly the records a sequential walk would find. Where jumps keep falling short (a
    writer that mixes in images or histograms of varying sizes), they are tried less and less
    often, down to once every _MAX_WAIT records.
    """
    size = len(data)
    unpack = _LENGTH.unpack_from
    framing = HEADER_BYTES + FOOTER_BYTES
    last_head = size - HEADER_BYTES
    heads_parts, lengths_parts = [], []
    lengths, begin = [], 0  # the lengths walked one by one since `begin` (heads follow from them)
    add = lengths.append  # (the walk's cost is per record: a bound method, a countdown)
    pos = 0
    wait = countdown = 2 * _MIN_RUN
    while pos <= last_head:
        (length,) = unpack(data, pos)
        end = pos + framing + length
        if end > size:
            break
        add(length)
        pos = end
        countdown -= 1
        if not countdown:
            jump = _periodic_jump(data, pos, lengths)
            long_jump = jump is not None and len(jump[1]) >= _FIRST_PROBE * _MAX_PERIOD
            wait = countdown = 2 * _MIN_RUN if long_jump else min(2 * wait, _MAX_WAIT)
            if jump is not None:
                _walked(begin, lengths, heads_parts, lengths_parts)
                jump_heads, jump_lengths, pos = jump
                heads_parts.append(jump_heads)
                lengths_parts.append(jump_lengths)
                lengths, begin = [], pos
                add = lengths.append
    _walked(begin, lengths, heads_parts, lengths_parts)
    return np.concatenate(heads_parts), np.concatenate(lengths_parts), pos


def _walked(begin, lengths, heads_parts, lengths_parts):
    """Appends the heads and lengths of records walked one by one from `begin`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    sizes = lengths + (HEADER_BYTES + FOOTER_BYTES)
    heads_parts.append(begin + np.cumsum(sizes) - sizes)
    lengths_parts.append(lengths)


_FIRST_PROBE = 16  # periods checked at first; each further probe checks twice as many


def _periodic_jump(data, pos, lengths):
    """(heads, lengths, new pos) of the whole periods after `pos` repeating the last lengths.

    Periods are checked in probes of growing size, so a pattern that breaks soon (a writer that
    logs an image every 10 steps) costs as little as the records it covers, not the buffer."""
    for period in range(1, _MAX_PERIOD + 1):
        if len(lengths) >= 2 * period and lengths[-period:] == lengths[-2 * period : -period]:
            break
    else:
        return None
    pattern = np.asarray(lengths[-period:], dtype=np.int64)
    stride = int((pattern + HEADER_BYTES + FOOTER_BYTES).sum())
    count = (len(data) - pos) // stride
    if count < 2:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    offsets = np.concatenate(([0], np.cumsum(pattern + HEADER_BYTES + FOOTER_BYTES)[:-1]))
    whole, probe = 0, _FIRST_PROBE
    while whole < count:
        rows = pos + stride * np.arange(whole, min(count, whole + probe), dtype=np.int64)
        fields = at(buf, (rows[:, None] + offsets).ravel(), "<u8").reshape(len(rows), period)
        match = (fields == pattern).all(axis=1)
        if not match.all():
            whole += int(np.argmin(match))
            break
        whole += len(rows)
        probe *= 2
    if whole == 0:
        return None
    heads = (pos + stride * np.arange(whole, dtype=np.int64)[:, None] + offsets).ravel()
    return heads, np.tile(pattern, whole), pos + whole * stride


def at(buf: np.ndarray, offsets: np.ndarray, dtype: str) -> np.ndarray:
    """The little-endian numbers of `dtype` at byte offsets of a uint8 buffer: one gather through
    a view whose elements start at every byte."""
    size = np.dtype(dtype).itemsize
    if len(buf) < size:
        return np.zeros(0, dtype=dtype)
    every_byte = np.ndarray((len(buf) - size + 1,), dtype=dtype, buffer=buf, strides=(1,))
    return every_byte[offsets]


def _u32_at(buf, offsets):
    """Little-endian uint32 values at the given byte offsets of a uint8 buffer."""
    return at(buf, offsets, "<u4")
