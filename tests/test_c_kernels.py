"""The C kernels of the reader (tb_batchavg/ingest/_kernels.c): built, equal to the numpy kernels
(framing, template matching, field gathers) on real writers' files cut and garbled anywhere, and
refusing arguments that do not fit. (tests/test_records.py and tests/test_events.py run each of
their tests with both kernels.)"""

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2

from tb_batchavg.ingest import events, records
from tests import corpus, helpers
from tests.test_records import frame


def test_the_c_kernels_are_built():
    """What users get from pip install where a C compiler is found (setup.py), and what the main
    suite runs besides the numpy kernels."""
    from tb_batchavg.ingest import _kernels

    assert records._kernels is _kernels


def _garbled_files(seed, directory):
    """Real writers' bytes (TensorBoard's EventFileWriter, tensorboardX), cut and garbled."""
    rng = np.random.default_rng(seed)
    paths = [
        helpers.write_scalars(str(directory / "tb"), helpers.training_like(400, seed)),
        helpers.event_file(corpus.write_tbx(str(directory / "tbx"), 300, seed)),
    ]
    for clean in [open(path, "rb").read() for path in paths]:
        for _ in range(10):
            data = bytearray(clean[: int(rng.integers(0, len(clean) + 1))])
            for at in rng.integers(0, max(1, len(data)), int(rng.integers(0, 4))):
                if len(data):
                    data[int(at)] ^= int(rng.integers(1, 256))
            yield bytes(data)


@pytest.mark.parametrize("seed", range(4))
def test_c_and_numpy_framing_agree_on_cut_and_garbled_files(seed, tmp_path, monkeypatch):
    from tb_batchavg.ingest import _kernels

    for data in _garbled_files(seed, tmp_path):
        monkeypatch.setattr(records, "_kernels", _kernels)
        fast = records.scan(data)
        monkeypatch.setattr(records, "_kernels", None)
        slow = records.scan(data)
        for field in ("starts", "lengths"):
            np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))
        assert (fast.consumed, fast.bad_records, fast.corrupt_at) == (slow.consumed, slow.bad_records, slow.corrupt_at)


def _state(buf, start, template, bits):
    """records.match's answer for one record, byte by byte."""
    record = buf[start : start + len(template)]
    if np.any((record ^ template) & bits):
        return 0
    return (
        1 if records.masked_crc_of(record.tobytes()) == int(records.at(buf, [start + len(template)], "<u4")[0]) else 2
    )


@pytest.mark.parametrize("seed", range(4))
def test_c_and_numpy_template_matching_agree_with_a_byte_by_byte_reference(seed, tmp_path, monkeypatch):
    """Templates taken from each length's records (the bits of its layout where it is a scalar,
    random bits else), matched against every record of that length: the C kernel equals the
    reference everywhere, numpy wherever a record's last 64-bit word lies in the buffer."""
    from tb_batchavg.ingest import _kernels

    rng = np.random.default_rng(seed)
    states = set()
    for data in _garbled_files(seed, tmp_path):
        buf = np.frombuffer(data, np.uint8)
        scan = records.scan(data, check_data=False)
        for length in np.unique(scan.lengths).tolist():
            starts = scan.starts[scan.lengths == length]
            head = int(starts[rng.integers(len(starts))])
            template = buf[head : head + length]
            layout = events._layout(data[head : head + length], set())
            bits = layout.bits() if layout is not None else rng.choice([0, 0x80, 0xFF], length).astype(np.uint8)
            expected = np.array([_state(buf, int(s), template, bits) for s in starts], np.uint8)
            monkeypatch.setattr(records, "_kernels", _kernels)
            np.testing.assert_array_equal(records.match(buf, starts, template, bits), expected)
            monkeypatch.setattr(records, "_kernels", None)
            inside = starts + -(-length // 8) * 8 <= len(buf)
            np.testing.assert_array_equal(records.match(buf, starts, template, bits)[inside], expected[inside])
            states.update(expected.tolist())
    assert states == {0, 1, 2}  # records that differ, that match, that match with a failing CRC


def test_c_and_numpy_field_gathers_agree(tmp_path, monkeypatch):
    """floats_at and varints_at at every offset of a real writer's bytes that leaves room."""
    from tb_batchavg.ingest import _kernels

    data = open(helpers.event_file(corpus.write_tbx(str(tmp_path / "tbx"), 300, 0)), "rb").read()
    buf = np.frombuffer(data, np.uint8)
    gathers = [(records.floats_at, dtype, int(dtype[-1])) for dtype in ("<f4", "<f8")]
    gathers += [(records.varints_at, length, length) for length in range(1, 11)]
    for gather, kind, width in gathers:
        offsets = np.arange(len(buf) - width + 1, dtype=np.int64)[::-1]
        monkeypatch.setattr(records, "_kernels", _kernels)
        fast = gather(buf, offsets, kind)
        monkeypatch.setattr(records, "_kernels", None)
        slow = gather(buf, offsets, kind)
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast.view(np.uint64), slow.view(np.uint64))  # NaN payloads too


def _protobuf_holds_no_scalar(body):
    """What _kernels.unused says of a record, by protobuf (which raises where it cannot parse)."""
    for value in event_pb2.Event.FromString(body).summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value" or (kind == "tensor" and value.metadata.plugin_data.plugin_name in ("", "scalars")):
            return False
    return True


def _assert_unused_agrees_with_protobuf(data, exact):
    """Every record that _kernels.unused rules out holds no scalar for protobuf (or protobuf cannot
    parse it); with `exact` (a writer's own bytes), it rules out exactly those that hold none."""
    from tb_batchavg.ingest import _kernels

    buf = np.frombuffer(data, np.uint8)
    scan = records.scan(data, check_data=False)
    flags = np.empty(len(scan.starts), dtype=bool)
    _kernels.unused(buf, scan.starts, scan.lengths, flags)
    for flag, start, length in zip(flags.tolist(), scan.starts.tolist(), scan.lengths.tolist()):
        try:
            expected = _protobuf_holds_no_scalar(data[start : start + length])
        except Exception:
            continue
        assert flag == expected if exact else (not flag or expected), (start, flag, expected)
    return flags


def test_unused_rules_out_the_records_of_images_histograms_and_texts(tmp_path):
    """tensorboardX's images and histograms (`image`, `histo` values) and texts (tensors under the
    "text" plugin) beside its scalars, then the same bytes cut and garbled anywhere."""
    rng = np.random.default_rng(0)
    data = open(helpers.event_file(corpus.write_mixed_tbx(str(tmp_path / "tbx"), 200, every=5)), "rb").read()
    flags = _assert_unused_agrees_with_protobuf(data, exact=True)
    assert 0 < flags.sum() < len(flags)
    for _ in range(40):
        garbled = bytearray(data[: int(rng.integers(0, len(data) + 1))])
        for at in rng.integers(0, max(1, len(garbled)), int(rng.integers(1, 20))):
            if len(garbled):
                garbled[int(at)] ^= int(rng.integers(1, 256))
        _assert_unused_agrees_with_protobuf(bytes(garbled), exact=False)


@pytest.mark.tf
def test_unused_rules_out_tensorflow_2s_images_histograms_and_texts(tmp_path):
    """TF2's writer: every summary is a tensor, with its plugin's metadata in every record."""
    data = open(helpers.event_file(corpus.write_mixed_tf2(str(tmp_path / "tf2"), 100, every=5)), "rb").read()
    flags = _assert_unused_agrees_with_protobuf(data, exact=True)
    assert 0 < flags.sum() < len(flags)


def test_the_c_kernels_refuse_buffers_that_do_not_fit():
    from tb_batchavg.ingest import _kernels

    data = frame(b"abc") * 3
    with pytest.raises(ValueError, match="lengths"):
        _kernels.frame(data, np.empty(10, np.int64), np.empty(10, np.int32), 0)
    with pytest.raises(ValueError, match="at least one"):
        _kernels.frame(data, np.empty(0, np.int64), np.empty(0, np.int64), 0)
    with pytest.raises(ValueError, match="pos"):
        _kernels.frame(data, np.empty(4, np.int64), np.empty(4, np.int64), len(data) + 1)
    with pytest.raises(ValueError, match="outside"):
        _kernels.check(data, np.array([12, len(data)], np.int64), np.array([3, 3], np.int64), np.empty(2, bool))
    with pytest.raises(TypeError):
        _kernels.check(data, np.zeros(1, np.int64), np.zeros(1, np.int64), b"\x00")  # not writable
    template, bits = b"abc", b"\xff\xff\xff"
    with pytest.raises(ValueError, match="mask"):
        _kernels.match(data, np.array([12], np.int64), template, b"\xff", np.empty(1, np.uint8))
    with pytest.raises(ValueError, match="outside"):
        _kernels.match(data, np.array([len(data) - 6], np.int64), template, bits, np.empty(1, np.uint8))
    with pytest.raises(ValueError, match="state"):
        _kernels.match(data, np.array([12], np.int64), template, bits, np.empty(1, np.int64))
    with pytest.raises(ValueError, match="size"):
        _kernels.floats(data, np.zeros(1, np.int64), 2, np.empty(1))
    with pytest.raises(ValueError, match="outside"):
        _kernels.floats(data, np.array([len(data) - 7], np.int64), 8, np.empty(1))
    with pytest.raises(ValueError, match="offsets"):
        _kernels.floats(data, np.zeros(1, np.int32), 4, np.empty(2))
    with pytest.raises(ValueError, match="length"):
        _kernels.varints(data, np.zeros(1, np.int64), 11, np.empty(1, np.int64))
    with pytest.raises(ValueError, match="outside"):
        _kernels.varints(data, np.array([-1], np.int64), 1, np.empty(1, np.int64))
    with pytest.raises(ValueError, match="outside"):
        _kernels.unused(data, np.array([12], np.int64), np.array([len(data)], np.int64), np.empty(1, np.uint8))
    with pytest.raises(ValueError, match="out"):
        _kernels.unused(data, np.array([12], np.int64), np.array([3], np.int64), np.empty(1, np.int64))


@pytest.mark.parametrize("at_once", [1, 2, 3, 1 << 16])
def test_framing_in_several_calls_gives_every_record(at_once, monkeypatch):
    """The C kernel frames at most _FRAMED_AT_ONCE records a call, then goes on where it stopped:
    also at a corrupt header and before a partial record."""
    bodies = [b"", b"a", b"event number two", bytes(range(200)), b"last"]
    data = bytearray(b"".join(frame(b) for b in bodies))
    monkeypatch.setattr(records, "_FRAMED_AT_ONCE", at_once)
    whole = records.scan(bytes(data))
    assert [bytes(data[s : s + n]) for s, n in zip(whole.starts, whole.lengths)] == bodies
    cut = records.scan(bytes(data[:-3]))
    assert (len(cut.starts), cut.corrupt_at) == (4, None)
    data[len(frame(b"")) + len(frame(b"a")) + 2] ^= 1  # the third record's length field
    broken = records.scan(bytes(data))
    assert (len(broken.starts), broken.corrupt_at) == (2, len(frame(b"")) + len(frame(b"a")))
