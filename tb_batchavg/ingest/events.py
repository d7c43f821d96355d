"""Scalar values of serialized `Event` records, decoded many records at a time.

A scalar is a `simple_value`, or a one-element real tensor of a tag whose summary metadata names
the "scalars" plugin. Writers differ in where that metadata goes: TensorFlow 2's writer (tf.summary,
Keras, our summary.py) repeats it in every record; TF1's FileWriter keeps it on a tag's first
value only; tensorboardX and PyTorch write `simple_value`s without it.

Writers emit the same bytes for every step of a tag except the wall time, the step and the value.
So records of equal length are decoded against a *template*: one record walked field by field
(protobuf wire format) to find where those three live; every record of the group whose other
bytes equal the template's (repeated metadata included, and whose step varint has the same shape)
is decoded by gathering those fields at their offsets (records.match, records.floats_at,
records.varints_at: loops in C, or numpy). Records that fit no template (a file's first record, other
plugins' data, unusual layouts) are parsed by protobuf one at a time, except, with the C kernels,
those whose wire format alone shows they hold no scalar (images, histograms, other plugins'
tensors). Both paths give the same values; the result is in record order.

A tensor value of a tag not yet known as a scalar is held until the whole buffer is decoded: a
metadata-first writer's first record may be decoded after records that share its buffer. Tensor
values that cannot be a real number (complex, string, quantized, variant, several elements) are
skipped and counted per tag; bool reads as 0 or 1, half and bfloat16 as their float value.
"""

from __future__ import annotations

import collections
import struct

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.util import tensor_util

from tb_batchavg.ingest import records

SCALARS_PLUGIN = "scalars"
Column = collections.namedtuple("Column", "order step wall_time value")


class Tags:
    """What decoding learns of tags, carried from one buffer of a file to the next: `scalars`,
    the tags whose metadata named the scalars plugin, `others`, those whose metadata named another
    plugin (their tensors are never decoded), and `skipped`, {tag: values that are not a real
    number}."""

    __slots__ = ("scalars", "others", "skipped")

    def __init__(self):
        self.scalars = set()
        self.others = set()
        self.skipped = collections.Counter()


_TEMPLATES_PER_LENGTH = 8  # templates tried per group of equal-length records
_SCANNED_GROUPS = 16  # up to this many record lengths in a buffer, each group is found by a scan
# Fast paths for the tensor dtypes scalar summaries use (DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64):
# the repeated field of the value, and the layout of `tensor_content` (tf.summary v2 writes that).
_TENSOR_FIELDS = {
    1: ("float_val", struct.Struct("<f")),
    2: ("double_val", struct.Struct("<d")),
    3: ("int_val", struct.Struct("<i")),
    9: ("int64_val", struct.Struct("<q")),
    22: ("uint32_val", struct.Struct("<I")),  # TensorBoard's make_ndarray cannot read these two
    23: ("uint64_val", struct.Struct("<Q")),
}
_FLOAT_DTYPES = {1: "<f4", 2: "<f8"}  # DT_FLOAT, DT_DOUBLE: what a template can decode


def decode(data: bytes, starts: np.ndarray, lengths: np.ndarray, tags: Tags) -> tuple[dict[str, Column], int]:
    """({tag: Column}, bad records) of the records data[starts[i] : starts[i] + lengths[i]],
    whose data CRCs are checked here (records whose CRC fails are skipped and counted).

    `order` holds each value's record number (ties keep the order of values in a record);
    `tags` (a Tags) is updated with what the records say of their tags.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    out = collections.defaultdict(list)  # (tag, is a tensor) -> column parts
    unsure = collections.Counter()  # skipped values of tensor tags not known as scalars yet
    slow, bad = [], 0
    distinct, which = records.distinct_values(lengths)
    if len(distinct) <= _SCANNED_GROUPS:
        groups = (np.flatnonzero(which == k) for k in range(len(distinct)))
    else:  # many lengths (images, histograms): one sort instead of a pass per length
        order = np.argsort(which, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(which, minlength=len(distinct)))[:-1])
    for length, group in zip(distinct.tolist(), groups):
        left, failed = _decode_group(buf, data, starts, group, int(length), tags.scalars, out)
        slow.append(left)
        bad += failed
    slow = _may_hold_scalars(buf, starts, lengths, np.sort(np.concatenate(slow)) if slow else np.zeros(0, np.int64))
    bad += _decode_slowly(data, buf, starts, lengths, slow, tags, out, unsure)
    tags.skipped.update({tag: n for tag, n in unsure.items() if tag in tags.scalars})
    merged = collections.defaultdict(list)
    for (tag, tensor), parts in out.items():
        if not tensor or tag in tags.scalars:
            merged[tag].extend(parts)
    columns = {}
    for tag, parts in merged.items():
        if len(parts) == 1:  # one template's records, or the slow path's: in record order
            columns[tag] = Column(*parts[0])
            continue
        order = np.concatenate([p[0] for p in parts])
        sort = np.argsort(order, kind="stable")
        columns[tag] = Column(*(np.concatenate([p[k] for p in parts])[sort] for k in range(4)))
    return columns, bad


def _decode_group(buf, data, starts, group, length, scalar_tags, out):
    """Decodes the records of one length through templates (records.match), checking their data
    CRCs; returns (the indices left over, the number of records whose CRC failed)."""
    left, bad = [], 0
    pending = np.ones(len(group), dtype=bool)
    for _ in range(_TEMPLATES_PER_LENGTH):
        candidates = np.flatnonzero(pending)
        if not len(candidates):
            break
        head = int(candidates[0])
        at = int(starts[group[head]])
        layout = _layout(data[at : at + length], scalar_tags)
        if layout is None:
            pending[head] = False
            left.append(group[head : head + 1])
            continue
        state = records.match(buf, starts[group[candidates]], buf[at : at + length], layout.bits())
        pending[candidates[state != 0]] = False
        bad += int(np.count_nonzero(state == 2))
        sound = group[candidates[state == 1]]
        _emit(buf, starts[sound], sound, layout, out)
    left.append(group[pending])
    return np.concatenate(left), bad


class _Layout:
    """Where a record's variable fields live: byte ranges of wall time, step varint, values."""

    __slots__ = ("wall_at", "step_at", "step_len", "values", "variable")

    def __init__(self, length):
        self.wall_at = None
        self.step_at = None
        self.step_len = 0
        self.values = []  # (tag, byte offset, numpy dtype string, is a tensor)
        self.variable = np.zeros(length, dtype=bool)

    def bits(self):
        """The bits a matching record shares with the template (uint8, one per byte): all of the
        fixed bytes, the continuation bits of the step varint (the same varint length)."""
        bits = np.where(self.variable, 0, 0xFF).astype(np.uint8)
        if self.step_len:
            bits[self.step_at : self.step_at + self.step_len] = 0x80
        return bits


def _varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data, pos, end):
    """(field number, wire type, value or payload start, payload end) of each field in [pos, end)."""
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            start = pos
            _, pos = _varint(data, pos)
        elif wire == 1:
            start, pos = pos, pos + 8
        elif wire == 5:
            start, pos = pos, pos + 4
        elif wire == 2:
            size, start = _varint(data, pos)
            pos = start + size
        else:
            raise ValueError("unsupported wire type")
        if pos > end:
            raise ValueError("field past its message")
        yield field, wire, start, pos


def _layout(record, scalar_tags):
    """The _Layout of a plain scalar Event record, or None if it is anything else."""
    try:
        return _walk_event(record, scalar_tags)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _walk_event(record, scalar_tags):
    layout = _Layout(len(record))
    for field, wire, start, end in _fields(record, 0, len(record)):
        if (field, wire) == (1, 1):
            layout.wall_at = start
        elif (field, wire) == (2, 0):
            layout.step_at, layout.step_len = start, end - start
        elif (field, wire) == (5, 2):
            for f, w, value_start, value_end in _fields(record, start, end):
                if (f, w) != (1, 2):
                    return None
                value = _walk_value(record, value_start, value_end, scalar_tags)
                if value is None:
                    return None
                layout.values.append(value)
        else:
            return None
    for at, size in ((layout.wall_at, 8), (layout.step_at, layout.step_len)):
        if at is not None:
            layout.variable[at : at + size] = True
    for _, at, dtype, _ in layout.values:
        layout.variable[at : at + int(dtype[-1])] = True
    return layout


def _walk_value(record, pos, end, scalar_tags):
    """(tag, offset, dtype, is a tensor) of a Summary.Value holding one float; metadata naming
    the scalars plugin (fixed bytes of the template) adds the tag to `scalar_tags`."""
    tag, at, dtype, tensor, names_scalars = None, None, None, False, False
    for field, wire, start, stop in _fields(record, pos, end):
        if (field, wire) == (1, 2):
            tag = bytes(record[start:stop]).decode("utf-8")
        elif (field, wire) == (2, 5):
            at, dtype = start, "<f4"
        elif (field, wire) == (8, 2):
            tensor = True
            found = _walk_tensor(record, start, stop)
            if found is None:
                return None
            at, dtype = found
        elif (field, wire) == (9, 2):
            plugin = _plugin_name(record, start, stop)
            if plugin not in (None, SCALARS_PLUGIN):
                return None  # another plugin's data: protobuf decides
            names_scalars = plugin == SCALARS_PLUGIN
        else:
            return None  # images, histograms...: protobuf handles those records
    if tag is None or at is None:
        return None
    if names_scalars:
        scalar_tags.add(tag)
    return tag, at, dtype, tensor


def _plugin_name(record, pos, end):
    """The plugin name of a SummaryMetadata, or None if it names none."""
    name = None
    for field, wire, start, stop in _fields(record, pos, end):
        if (field, wire) == (1, 2):  # plugin_data
            for f, w, s, e in _fields(record, start, stop):
                if (f, w) == (1, 2):
                    name = bytes(record[s:e]).decode("utf-8")
        elif field not in (2, 3, 4):  # display_name, summary_description, data_class
            raise ValueError("unknown metadata field")
    return name


def _walk_tensor(record, pos, end):
    """(offset, dtype) of the single float/double of a scalar TensorProto, or None."""
    dtype, at, size = None, None, None
    for field, wire, start, stop in _fields(record, pos, end):
        if (field, wire) == (1, 0):
            dtype, _ = _varint(record, start)
        elif (field, wire) == (2, 2):
            if stop != start:  # a shape with dimensions: not a scalar template
                return None
        elif (field, wire) == (3, 0):
            continue
        elif (field, wire) in ((4, 2), (5, 2), (6, 2), (5, 5), (6, 1)):
            at, size = start, stop - start
        else:
            return None
    layout = _FLOAT_DTYPES.get(dtype)
    if layout is None or at is None or size != int(layout[-1]):
        return None
    return at, layout


def _emit(buf, starts, order, layout, out):
    """Appends the values of the records at `starts` (each laid out as `layout`) to `out`
    (tag -> list of column parts): one gather per field."""
    if not len(starts):
        return
    wall = np.zeros(len(starts)) if layout.wall_at is None else records.floats_at(buf, starts + layout.wall_at, "<f8")
    if layout.step_len:
        step = records.varints_at(buf, starts + layout.step_at, layout.step_len)
    else:
        step = np.zeros(len(starts), dtype=np.int64)
    for tag, at, dtype, tensor in layout.values:
        out[tag, tensor].append((order, step, wall, records.floats_at(buf, starts + at, dtype)))


def _may_hold_scalars(buf, starts, lengths, indices):
    """The records of `indices` that protobuf must parse: in C, all but those whose layout alone
    shows that no value of theirs can be a scalar (no summary; images, histograms, audio; tensors
    whose metadata names another plugin: _kernels.unused walks the wire format); with numpy, all.
    Those records' bytes are never used, nor checked (as when protobuf parses them); their tags
    are not learnt as other plugins' (later records of such tags are parsed)."""
    kernels = records.c_kernels()
    if kernels is None or not len(indices):
        return indices
    unused = np.empty(len(indices), dtype=bool)
    kernels.unused(buf, starts[indices], lengths[indices], unused)
    return indices[~unused]


def _decode_slowly(data, buf, starts, lengths, indices, tags, out, skipped):
    """Protobuf parsing of the given records (in record order), learning of `tags` (a Tags);
    values that are not a real number are counted in `skipped`. Returns the number of records
    skipped for their data CRC.

    Only records that could hold a scalar, or name the scalars plugin, have their CRC checked (in
    one pass): the bytes of images, histograms and texts are never used, and checking them cost
    more than reading them. A record that protobuf cannot parse is counted if its CRC fails."""
    parse = event_pb2.Event.FromString
    view = memoryview(data)
    parsed, checked = [], []
    others = tags.others - tags.scalars  # as known before these records

    def used(value):
        kind = value.WhichOneof("value")  # (one call: images, histograms and audio are most)
        if kind == "simple_value":
            return True
        return kind == "tensor" and (
            value.tag not in others or value.metadata.plugin_data.plugin_name == SCALARS_PLUGIN
        )

    for i, start, length in zip(indices.tolist(), starts[indices].tolist(), lengths[indices].tolist()):
        try:
            event = parse(view[start : start + length])
        except Exception:  # corrupt, or a CRC-valid record that is not an Event: not ours to read
            checked.append(i)
            continue
        values = event.summary.value
        if not any(map(used, values)):
            continue  # no summary, or only images, histograms, audio, tensors of known other plugins
        if any(map(_may_be_scalar, values)):
            checked.append(i)
        parsed.append((i, event))
    checked = np.asarray(checked, np.int64)
    failed = set(checked[~records.check(buf, starts[checked], lengths[checked])].tolist())
    found = collections.defaultdict(lambda: ([], [], [], []))
    for i, event in parsed:
        if i in failed:
            continue
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                y = value.simple_value
            elif kind == "tensor":
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == SCALARS_PLUGIN:
                    tags.scalars.add(value.tag)
                elif plugin:
                    tags.others.add(value.tag)
                if value.tag in tags.others and value.tag not in tags.scalars:
                    continue  # an image, a histogram, a text: not ours
                y = _tensor_scalar(value.tensor)
                if y is None:
                    skipped[value.tag] += 1
                    continue
            else:
                continue
            order, steps, walls, values = found[value.tag, kind == "tensor"]
            order.append(i)
            steps.append(event.step)
            walls.append(event.wall_time)
            values.append(y)
    for key, (order, steps, walls, values) in found.items():
        out[key].append(
            (
                np.asarray(order, np.int64),
                np.asarray(steps, np.int64),
                np.asarray(walls, np.float64),
                np.asarray(values, np.float64),
            )
        )
    return len(failed)


_DT_BFLOAT16 = 14
_DT_STRING = 7


def _may_be_scalar(value):
    """Whether a Summary.Value is a simple value, a one-element tensor that is not a string, or
    names the scalars plugin (what decoding learns from must be sound too)."""
    if value.HasField("simple_value") or value.metadata.plugin_data.plugin_name == SCALARS_PLUGIN:
        return True
    tensor = value.tensor if value.HasField("tensor") else None
    return tensor is not None and tensor.dtype != _DT_STRING and all(d.size == 1 for d in tensor.tensor_shape.dim)


def _tensor_scalar(tensor):
    """The value of a one-element real tensor (float, int, bool) as a float, or None."""
    if any(d.size != 1 for d in tensor.tensor_shape.dim):
        return None
    fast = _TENSOR_FIELDS.get(tensor.dtype)
    if fast is not None:
        field, layout = fast
        content = tensor.tensor_content
        if len(content) == layout.size:
            return float(layout.unpack(content)[0])
        vals = getattr(tensor, field)
        if not content and len(vals) == 1:
            return float(vals[0])
    if tensor.dtype == _DT_BFLOAT16:  # the high half of a float32; numpy has no such type
        bits = (
            np.frombuffer(tensor.tensor_content, "<u2")
            if tensor.tensor_content
            else np.asarray(tensor.half_val, np.uint32)
        )
        if len(bits) != 1:
            return None
        return float((np.asarray(bits, np.uint32) << 16).view(np.float32)[0])
    try:
        array = tensor_util.make_ndarray(tensor)
    except Exception:  # a dtype or layout TensorBoard cannot read either
        return None
    if array.size != 1 or array.dtype.kind not in "fiub":  # complex, strings, objects
        return None
    return float(array.reshape(()))
