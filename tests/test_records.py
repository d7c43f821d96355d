"""records: TFRecord framing and CRC checks, in C and in numpy, against TensorBoard's own crc32c,
files read by TF, and each other."""

import os
import struct

import numpy as np
import pytest
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tb_crc  # TensorBoard's pure-Python crc32c

from tb_batchavg.ingest import records
from tests import helpers

pytestmark = pytest.mark.usefixtures("kernels")  # each test with the C kernels, then the numpy ones


def frame(payload):
    """One TFRecord, framed with TensorBoard's reference crc32c (not ours)."""
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", tb_crc.masked_crc32c(header))
        + payload
        + struct.pack("<I", tb_crc.masked_crc32c(payload))
    )


def payloads(data, scan):
    return [data[s : s + n] for s, n in zip(scan.starts.tolist(), scan.lengths.tolist())]


@pytest.mark.parametrize("high", [4, 70, 130, 3000, 70000])
def test_crc32c_matches_tensorboard_reference(high):
    rng = np.random.default_rng(high)
    buf = np.frombuffer(rng.bytes(150_000), dtype=np.uint8)
    lengths = rng.integers(0, high, 300 if high < 5000 else 30)  # the reference is pure Python
    lengths[:3] = (0, 1, high - 1)
    starts = rng.integers(0, len(buf) - lengths)
    got = records.crc32c(buf, starts, lengths)
    want = [tb_crc.crc32c(buf[s : s + n].tobytes()) for s, n in zip(starts.tolist(), lengths.tolist())]
    assert got.tolist() == want


@pytest.mark.parametrize(
    "total",
    [0, 1, 12, records._SMALL_BYTES - 1, records._SMALL_BYTES, records._SMALL_BYTES + 1, 3 * records._SMALL_BYTES],
)
def test_crc32c_of_few_and_many_bytes_agree(total, monkeypatch):
    """Either side of _SMALL_BYTES (the byte loop below, the numpy rows above), both ways give
    TensorBoard's CRCs."""
    rng = np.random.default_rng(total)
    buf = np.frombuffer(rng.bytes(4 * total + 100), dtype=np.uint8)
    cuts = np.sort(rng.integers(0, total + 1, 9))
    lengths = np.diff(np.concatenate(([0], cuts, [total])))
    starts = rng.integers(0, len(buf) - lengths)
    want = [tb_crc.crc32c(buf[s : s + n].tobytes()) for s, n in zip(starts.tolist(), lengths.tolist())]
    assert records.crc32c(buf, starts, lengths).tolist() == want
    for small in (0, 10**9):  # the other way forced: numpy rows only, then the byte loop only
        monkeypatch.setattr(records, "_SMALL_BYTES", small)
        assert records.crc32c(buf, starts, lengths).tolist() == want, small


def test_masked_crc_of_matches_tensorboard_reference():
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 8, 63, 64, 65, 1000):
        data = rng.bytes(n)
        assert records.masked_crc_of(data) == tb_crc.masked_crc32c(data)


@pytest.mark.tf
def test_scan_reads_every_record_of_real_files(tmp_path):
    """Files written by tensorboard's writer and by tf.summary: the same records TF's reader yields."""
    import tensorflow as tf

    columns = helpers.training_like(300)
    paths = [
        helpers.write_scalars(str(tmp_path / "tb"), columns),
        helpers.write_tf2_scalars(str(tmp_path / "tf2"), columns),
    ]
    for path in paths:
        data = open(path, "rb").read()
        scan = records.scan(data)
        assert payloads(data, scan) == list(tf.compat.v1.io.tf_record_iterator(path))
        assert (scan.consumed, scan.bad_records, scan.corrupt_at) == (len(data), 0, None)


def test_scan_of_long_and_varied_records():
    rng = np.random.default_rng(2)
    bodies = [rng.bytes(n) for n in [0, 1, 2, 3, 1 << 20, 65, 64, 63] + rng.integers(0, 5000, 300).tolist()]
    data = b"".join(frame(b) for b in bodies)
    scan = records.scan(data)
    assert payloads(data, scan) == bodies
    assert (scan.consumed, scan.bad_records, scan.corrupt_at) == (len(data), 0, None)


def test_partial_trailing_record_is_left_at_every_cut():
    bodies = [b"", b"a", b"event number two", bytes(range(200))]
    framed = [frame(b) for b in bodies]
    data = b"".join(framed)
    boundaries = np.cumsum([0] + [len(f) for f in framed])
    for cut in range(len(data) + 1):
        complete = int(np.searchsorted(boundaries, cut, side="right")) - 1
        scan = records.scan(data[:cut])
        assert scan.consumed == boundaries[complete], cut
        assert payloads(data, scan) == bodies[:complete], cut
        assert (scan.bad_records, scan.corrupt_at) == (0, None), cut


@pytest.mark.parametrize("where", ["body", "data_crc"])
def test_bad_data_crc_skips_and_counts_one_record(where):
    bodies = [b"first", b"second record", b"third"]
    framed = [bytearray(frame(b)) for b in bodies]
    framed[1][12 if where == "body" else -1] ^= 0x40
    data = b"".join(framed)
    scan = records.scan(data)
    assert payloads(data, scan) == [b"first", b"third"]
    assert (scan.consumed, scan.bad_records, scan.corrupt_at) == (len(data), 1, None)


@pytest.mark.parametrize("byte", [0, 3, 8, 11])  # in the length, and in the length's CRC
@pytest.mark.parametrize("complete", [True, False])
def test_corrupt_header_stops_the_scan_there(byte, complete):
    bodies = [b"first", b"second", b"third record", b"fourth"]
    framed = [bytearray(frame(b)) for b in bodies]
    framed[2][byte] ^= 0x01
    data = b"".join(framed)
    if not complete:  # the corrupt header's body is not all there yet
        data = data[: len(framed[0]) + len(framed[1]) + 14]
    scan = records.scan(data)
    at = len(framed[0]) + len(framed[1])
    assert payloads(data, scan) == [b"first", b"second"]
    assert (scan.consumed, scan.corrupt_at, scan.bad_records) == (at, at, 0)


def test_empty_and_short_buffers():
    for data in (b"", frame(b"x")[:11]):
        scan = records.scan(data)
        assert (len(scan.starts), scan.consumed, scan.bad_records, scan.corrupt_at) == (0, 0, 0, None)


def test_a_corrupt_file_from_disk_is_reported_not_raised(tmp_path):
    path = helpers.write_scalars(str(tmp_path), helpers.training_like(50))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2 :] = os.urandom(len(data) - len(data) // 2)
    scan = records.scan(bytes(data))
    assert scan.consumed <= len(data) // 2 + 200
    assert scan.corrupt_at is not None or scan.bad_records > 0


def _sequential_heads(data):
    """Reference framing: follow the length fields one record at a time."""
    heads, pos = [], 0
    while pos + records.HEADER_BYTES <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + records.HEADER_BYTES + length + records.FOOTER_BYTES
        if end > len(data):
            break
        heads.append(pos)
        pos = end
    return heads, pos


@pytest.mark.parametrize("seed", range(6))
def test_periodic_framing_finds_exactly_the_sequential_records(seed):
    """Repeating length patterns (jumped over in bulk) that change, break and end mid-record."""
    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(12):
        period = int(rng.integers(1, 11))  # periods above the jump limit too
        pattern = rng.integers(1, 40, size=period)
        repeats = int(rng.integers(1, 60))
        for length in np.tile(pattern, repeats):
            chunks.append(frame(bytes(rng.integers(0, 256, size=int(length), dtype=np.uint8))))
        if rng.random() < 0.3:
            chunks.append(frame(b""))
    data = b"".join(chunks)
    for cut in (len(data), len(data) - int(rng.integers(1, 30))):
        heads, end = _sequential_heads(data[:cut])
        scan = records.scan(data[:cut])
        assert (scan.starts - records.HEADER_BYTES).tolist() == heads
        assert scan.consumed == end


@pytest.mark.parametrize(
    "values",
    [
        [52, 53, 60, 52, 61, 53],
        [0, 65_535, 7, 7],
        [70_000, 3, 70_000],  # beyond counting: np.unique's own path
        [2**63 + 5, 1],
        [],
    ],
)
def test_distinct_values_are_numpy_unique_with_inverse(values):
    values = np.asarray(values, dtype=np.uint64)
    distinct, which = records.distinct_values(values)
    want, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(distinct, want)
    np.testing.assert_array_equal(which, inverse.ravel())
    assert distinct.dtype == values.dtype


@pytest.mark.parametrize("length", [1, 2, 7, 8, 33, 64])
def test_variant_crc32c_matches_the_reference(length):
    """Rows equal to a template outside some positions (any: even, odd, the last byte), wider than
    the template with other bytes past it, or exactly as wide: the reference CRC of each row."""
    rng = np.random.default_rng(length)
    template = np.frombuffer(rng.bytes(length), dtype=np.uint8)
    for width in sorted({length, length + 1, -(-length // 8) * 8 + 8}):
        positions = np.unique(rng.integers(0, length, rng.integers(0, length + 1)))
        rows = np.frombuffer(rng.bytes(50 * width), dtype=np.uint8).reshape(50, width).copy()
        fixed = np.setdiff1d(np.arange(length), positions)
        rows[:, fixed] = template[fixed]
        rows[:5, positions] = template[positions]  # some rows equal the template
        got = records.variant_crc32c(template, rows, positions)
        want = [tb_crc.crc32c(row[:length].tobytes()) for row in rows]
        assert got.tolist() == want, (length, width)
