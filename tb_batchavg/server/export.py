"""`GET export`: every point of a series with its moving average, as CSV or JSON, streamed.

The moving average is computed whole (in a compute slot, kept in the result cache as the
`averages` route keeps it); the body is then formed CHUNK_ROWS rows at a time as the client reads
it, without a compute slot: memory per client is a chunk's, whatever the run's size, and a slow
reader holds no slot.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from tb_batchavg import metadata
from tb_batchavg.server import encoding, params
from tb_batchavg.server import series as named_series
from tb_batchavg.stats.windows import moving_average

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store

# Rows of the body formed at a time (about 0.5 MB of CSV).
CHUNK_ROWS = 1 << 13


def handle(store: Store, request: Request) -> Response:
    args = request.args
    source = store.source(request)
    run = params.text(args, "run")
    avg = params.averaging(args)
    fmt = params.choice(args, "format", metadata.X_FORMATS, "csv")
    version, tag, series, too_long = named_series.averaged(store, source, args, run, avg)
    name = "%s_%s_%s%s" % (run, tag, avg["method"], avg["weight"] if avg["method"] == "ema" else avg["window"])
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:150] or "export"
    average = None
    if too_long is None:  # else every row has an empty average, and the answer says why
        key = ("averages:whole", run, tag, tuple(sorted(avg.items())), version, source.sampled)
        with store.computing():
            average = store.whole(key, lambda: moving_average(series.step, series.value, **avg))
    if fmt == "json":
        head = {"run": run, "tag": tag, "sampled": source.sampled, "params": avg}
        chunks = _json(head, series, average, too_long)
        content_type = encoding.JSON
    else:
        chunks = _csv(series, average)
        content_type = "text/csv"
    headers = [("Content-Disposition", 'attachment; filename="%s.%s"' % (filename, fmt))]
    if too_long is not None:
        headers.append(("X-Batchavg-Reason", too_long["reason"]))
    return encoding.stream(request, chunks, content_type, headers)


def _rows(series, average):
    """(rows, the average of each row, NaN where its window has none, and where it has one) of
    CHUNK_ROWS rows at a time; the average arrays are None without an average."""
    n = len(series.step)
    for first in range(0, n, CHUNK_ROWS):
        rows = slice(first, min(first + CHUNK_ROWS, n))
        if average is None:
            yield rows, None, None
            continue
        at = slice(*np.searchsorted(average.index, [rows.start, rows.stop]).tolist())
        value = np.full(rows.stop - rows.start, np.nan)
        has = np.zeros(rows.stop - rows.start, dtype=bool)
        value[average.index[at] - rows.start] = average.value[at]
        has[average.index[at] - rows.start] = True
        yield rows, value, has


def _csv(series, average):
    """CSV `step,wall_time,value,average`; an empty average where the window has none. The texts
    of single numbers never pile up beyond a chunk's."""
    yield b"step,wall_time,value,average\n"
    for rows, value, has in _rows(series, average):
        if value is None:
            averages = [b""] * (rows.stop - rows.start)
        else:
            averages = encoding.number_texts(value)
            for i in np.flatnonzero(~has).tolist():
                averages[i] = b""
        columns = (
            encoding.number_texts(series.step[rows]),
            encoding.number_texts(series.wall_time[rows]),
            encoding.number_texts(series.value[rows]),
            averages,
        )
        yield b"".join(b",".join(row) + b"\n" for row in zip(*columns))


def _json(head, series, average, too_long):
    """The JSON object {**head, "step", "wall_time", "value", "average" (null where a window has
    none; null throughout with too_long), **too_long}, its lists a chunk at a time."""
    yield encoding.json(head)[:-1]
    for field in ("step", "wall_time", "value", "average"):
        if field == "average" and average is None:
            yield b',"average":null'
            continue
        yield b',"%s":[' % field.encode()
        for rows, value, _ in _rows(series, average if field == "average" else None):
            numbers = encoding.json_numbers(value if field == "average" else getattr(series, field)[rows])
            yield (b"," if rows.start else b"") + numbers
        yield b"]"
    yield b"," + encoding.json(too_long)[1:] if too_long else b"}"
