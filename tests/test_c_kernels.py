"""The C kernels of the reader's framing (tb_batchavg/ingest/_framing.c): built, equal to the numpy
kernels on real writers' files cut and garbled anywhere, and refusing arguments that do not fit.
(tests/test_records.py and tests/test_events.py run each of their tests with both kernels.)"""

import numpy as np
import pytest

from tb_batchavg.ingest import records
from tests import corpus, helpers
from tests.test_records import frame


def test_the_c_kernels_are_built():
    """What users get from pip install where a C compiler is found (setup.py), and what the main
    suite runs besides the numpy kernels."""
    from tb_batchavg.ingest import _framing

    assert records._framing is _framing


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
    from tb_batchavg.ingest import _framing

    for data in _garbled_files(seed, tmp_path):
        monkeypatch.setattr(records, "_framing", _framing)
        fast = records.scan(data)
        monkeypatch.setattr(records, "_framing", None)
        slow = records.scan(data)
        for field in ("starts", "lengths"):
            np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))
        assert (fast.consumed, fast.bad_records, fast.corrupt_at) == (slow.consumed, slow.bad_records, slow.corrupt_at)


def test_the_c_kernels_refuse_buffers_that_do_not_fit():
    from tb_batchavg.ingest import _framing

    data = frame(b"abc") * 3
    with pytest.raises(ValueError, match="lengths"):
        _framing.frame(data, np.empty(10, np.int64), np.empty(10, np.int32), 0)
    with pytest.raises(ValueError, match="at least one"):
        _framing.frame(data, np.empty(0, np.int64), np.empty(0, np.int64), 0)
    with pytest.raises(ValueError, match="pos"):
        _framing.frame(data, np.empty(4, np.int64), np.empty(4, np.int64), len(data) + 1)
    with pytest.raises(ValueError, match="outside"):
        _framing.check(data, np.array([12, len(data)], np.int64), np.array([3, 3], np.int64), np.empty(2, bool))
    with pytest.raises(TypeError):
        _framing.check(data, np.zeros(1, np.int64), np.zeros(1, np.int64), b"\x00")  # not writable


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
