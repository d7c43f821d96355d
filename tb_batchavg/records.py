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

CRCs are computed for many records at once with numpy, 16 bits per step, so checking costs a
few numpy operations per pair of bytes of the longest record, not a Python loop per byte.
Pure numpy; no TensorBoard import.
"""

import struct

import numpy as np

HEADER_BYTES = 12
FOOTER_BYTES = 4
_MASK_DELTA = 0xA282EAD8
_POLY = 0x82F63B78


def _byte_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ _POLY, table >> 1).astype(np.uint32)
    return table


_T8 = _byte_table()
# _T16[i]: the CRC register after feeding the 16 bits of i (low byte first) into a zero register.
_T16 = (_T8[(_T8[np.arange(65536) & 0xFF] ^ (np.arange(65536) >> 8)) & 0xFF]
        ^ (_T8[np.arange(65536) & 0xFF] ^ (np.arange(65536) >> 8)) >> 8).astype(np.uint32)


def _crc_rows(rows):
    """crc32c of each row of a 2-D uint8 array (all rows the same length)."""
    count, length = rows.shape
    crc = np.full(count, 0xFFFFFFFF, dtype=np.uint32)
    if length >= 2:
        pairs = np.ascontiguousarray(rows[:, : length - length % 2]).view("<u2")
        for j in range(pairs.shape[1]):
            crc = _T16[(crc ^ pairs[:, j]) & 0xFFFF] ^ (crc >> 16)
    if length % 2:
        crc = _T8[(crc ^ rows[:, -1]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def masked_crc(rows):
    """Masked crc32c, as TFRecord stores it, of each row of a 2-D uint8 array."""
    crc = _crc_rows(rows).astype(np.uint64)
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    return ((rotated + _MASK_DELTA) & 0xFFFFFFFF).astype(np.uint32)


def masked_crc_of(data):
    """Masked crc32c of one bytes object (used to write test files)."""
    return int(masked_crc(np.frombuffer(data, dtype=np.uint8)[None, :])[0])


def _check(buf, starts, lengths, expected):
    """Boolean mask: masked crc of buf[starts[i]:starts[i]+lengths[i]] == expected[i]."""
    ok = np.zeros(len(starts), dtype=bool)
    for length in np.unique(lengths):
        sel = np.flatnonzero(lengths == length)
        # Bounded memory: at most ~8 MB of gathered bytes per step.
        step = max(1, (8 << 20) // max(int(length), 1))
        for a in range(0, len(sel), step):
            part = sel[a : a + step]
            rows = buf[starts[part, None] + np.arange(length)]
            ok[part] = masked_crc(rows) == expected[part]
    return ok


class Scan:
    """Result of scanning a buffer: the good records and what was wrong."""

    __slots__ = ("starts", "lengths", "consumed", "bad_records", "corrupt_at")

    def __init__(self, starts, lengths, consumed, bad_records, corrupt_at):
        self.starts = starts          # int64 offsets of good record bodies in the buffer
        self.lengths = lengths        # int64 body lengths
        self.consumed = consumed      # bytes fully processed (the next read starts here)
        self.bad_records = bad_records  # records skipped for a data-CRC mismatch
        self.corrupt_at = corrupt_at  # buffer offset of a header with a bad length CRC, or None


def scan(data):
    """Splits `data` (bytes) into records, checking both CRCs of each.

    Returns a Scan. `consumed` stops before a partial trailing record, and at a corrupt header.
    """
    size = len(data)
    unpack = struct.unpack_from
    heads, lengths = [], []
    pos = 0
    while pos + HEADER_BYTES <= size:
        (length,) = unpack("<Q", data, pos)
        end = pos + HEADER_BYTES + length + FOOTER_BYTES
        if end > size:
            break
        heads.append(pos)
        lengths.append(length)
        pos = end
    if pos + HEADER_BYTES <= size:
        heads.append(pos)  # a header whose body is not all here: check its CRC, parse nothing
    buf = np.frombuffer(data, dtype=np.uint8)
    heads = np.asarray(heads, dtype=np.int64)
    corrupt_at = None
    if len(heads):
        header_ok = _check(buf, heads, np.full(len(heads), 8, dtype=np.int64), _u32_at(buf, heads + 8))
        if not header_ok.all():
            corrupt_at = int(heads[np.argmin(header_ok)])
            pos = corrupt_at
    heads = heads[: len(lengths)]
    lengths = np.asarray(lengths, dtype=np.int64)
    if corrupt_at is not None:
        keep = heads < corrupt_at
        heads, lengths = heads[keep], lengths[keep]
    starts = heads + HEADER_BYTES
    data_ok = _check(buf, starts, lengths, _u32_at(buf, starts + lengths))
    return Scan(starts[data_ok], lengths[data_ok], pos, int((~data_ok).sum()), corrupt_at)


def _u32_at(buf, offsets):
    """Little-endian uint32 values at the given byte offsets of a uint8 buffer."""
    b = buf[offsets[:, None] + np.arange(4)].astype(np.uint32)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
