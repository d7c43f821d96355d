"""Reading through TensorBoard's own gfile (what a user without TensorFlow gets): offsets and growth."""

import numpy as np
import pytest
from tensorboard.compat import tensorflow_stub

from tb_batchavg.ingest import reader
from tests import helpers


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setattr(reader, "tf", tensorflow_stub)


def test_growing_file_is_tailed_from_its_offset(stub, tmp_path):
    columns = helpers.training_like(3000, seed=5)
    path = helpers.write_scalars(str(tmp_path / "run"), columns)
    data = open(path, "rb").read()
    cut = len(data) // 3 + 7  # mid-record
    open(path, "wb").write(data[:cut])
    logs = reader.LogdirReader(str(tmp_path))
    logs.reload()
    first = len(logs.series("run", "train/loss").step)
    assert 0 < first < 3000
    with open(path, "ab") as f:
        f.write(data[cut:])
    logs.reload()
    series = logs.series("run", "train/loss")
    assert series.step.tolist() == list(range(3000))
    np.testing.assert_array_equal(series.value, columns["train/loss"].astype(np.float64))


def test_read_at_reads_from_the_offset(stub, tmp_path):
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(range(256)) * 10)
    into = bytearray(5)
    assert reader._read_at(str(path), 300, memoryview(into)) == 5 and into == bytes([44, 45, 46, 47, 48])
    assert reader._read_at(str(path), 2558, memoryview(into)) == 2 and into[:2] == bytes([254, 255])
    assert reader._read_at(str(path), 2560, memoryview(into)) == 0
