"""Bodies of the plugin's answers: JSON (whole) and exports (streamed in chunks)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import orjson
import werkzeug
from tensorboard.backend import http_util

JSON = "application/json"
# Computed responses are cached gzipped with Huffman coding only (TensorBoard's own is deflate level
# 3): on lists of numbers, deflate's string matching (at level 1) takes a third more time to save
# under 1% of the bytes (about 10% on the most repetitive answers). Exports are streamed with it.
GZIP = {"level": 1, "method": zlib.DEFLATED, "wbits": 31, "strategy": zlib.Z_HUFFMAN_ONLY}

_SURROGATE = re.compile("[\ud800-\udfff]")
_ACCEPTS_GZIP = re.compile(r"(?:^|,|\s)(?:x-)?gzip(?:$|,|\s|;)")


def json(obj: Any) -> bytes:
    """UTF-8 JSON of `obj` (dicts with str keys, lists, str, int, float, None, numpy scalars).
    A NaN or +-Inf float is written as null: JSON has no such numbers, and every route
    documents a missing value as null. orjson formats each float as its shortest round-trip
    decimal, like Python's repr, about 20 times faster than the json module."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # a run name from a file name that is not UTF-8 (held as lone surrogates)
        return orjson.dumps(_utf8(obj), option=orjson.OPT_SERIALIZE_NUMPY)


def _utf8(obj):
    """`obj` (nested dicts and lists) with each lone surrogate in its strings replaced by U+FFFD,
    as a browser shows an undecodable byte."""
    if isinstance(obj, str):
        return _SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {_utf8(k): _utf8(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_utf8(v) for v in obj]
    return obj


def respond(
    request: werkzeug.wrappers.Request,
    body: bytes,
    code: int = 200,
    gzipped: bool = False,
    headers: list[tuple[str, str]] | None = None,
) -> werkzeug.wrappers.Response:
    """A JSON answer (`body` bytes, already gzipped with `gzipped`), through TensorBoard's
    http_util.Respond (which gzips for a client that accepts it, and unzips for one that does
    not)."""
    return http_util.Respond(
        request, body, JSON, code=code, headers=headers, content_encoding="gzip" if gzipped else None
    )


def error(
    request: werkzeug.wrappers.Request,
    code: int,
    message: str,
    detail: Mapping[str, Any] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> werkzeug.wrappers.Response:
    """The JSON error answer {"error": message, **detail} (http_api.md, "Errors")."""
    return respond(request, json({"error": message, **(detail or {})}), code=code, headers=headers)


def stream(
    request: werkzeug.wrappers.Request,
    chunks: Iterable[bytes],
    content_type: str,
    headers: Iterable[tuple[str, str]],
) -> werkzeug.wrappers.Response:
    """A 200 whose body is `chunks` (an iterable of bytes), formed as the client reads it: the
    headers of http_util.Respond (no Content-Length: the body is sent chunked), gzipped on the
    way (Huffman coding only, as GZIP) for a client that accepts it. A HEAD gets the headers."""
    textual = content_type.split(";")[0] != JSON
    headers = list(headers) + [
        ("X-Content-Type-Options", "nosniff"),
        ("Expires", "0"),
        ("Cache-Control", "no-cache, must-revalidate"),
    ]
    if request.method == "HEAD":
        chunks = ()
    elif _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
        headers.append(("Content-Encoding", "gzip"))
        chunks = _gzipped(chunks)
    return werkzeug.wrappers.Response(
        response=chunks, status=200, headers=headers, content_type=content_type + ("; charset=utf-8" if textual else "")
    )


def _gzipped(chunks):
    packer = zlib.compressobj(**GZIP)
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()


def number_texts(array: np.ndarray) -> list[bytes]:
    """Each number of `array` as bytes: the shortest decimal that reads back as the same float
    (orjson's, one call for the whole column); NaN and +-Inf as nan, inf and -inf."""
    texts = orjson.dumps(array.tolist())[1:-1].split(b",") if len(array) else []
    if array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(array))
        for i, x in zip(bad.tolist(), array[bad].tolist()):
            texts[i] = b"nan" if x != x else b"inf" if x > 0 else b"-inf"
    return texts


def json_numbers(array: np.ndarray) -> bytes:
    """The JSON list items of `array` (no brackets), a non-finite number as null."""
    return orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] if len(array) else b""
