"""Parsing and validation of query parameters: every problem becomes a named, clear error.

`BadRequest` (HTTP 400) for a missing or malformed parameter, `NotFound` (HTTP 404) for an
unknown run or tag. Numbers are parsed strictly (ASCII decimal only): `nan`, `inf`, fractions
where an integer is expected, spaces, `_` separators, hexadecimal and values outside the
documented range are refused; an empty value means the default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from tb_batchavg import metadata

if TYPE_CHECKING:
    import numpy as np

MAX_NAME_LENGTH = 4096
MAX_QUERY_BYTES = 65536  # the longest request line TensorBoard's HTTP server accepts
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_DIGITS = 40  # far beyond every range here
_REAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class BadRequest(ValueError):
    """A missing or malformed parameter (HTTP 400)."""


class NotFound(LookupError):
    """An unknown run or tag (HTTP 404)."""


class WindowTooLong(BadRequest):
    """A window longer than the series it would average (HTTP 400). `detail` is added to the
    JSON error body, so that a client (the tab) can tell this case from a malformed request:
    {"reason": "window_longer_than_series", "window", "length", "unit"}."""

    def __init__(self, message: str, window: int, length: int, unit: str) -> None:
        super().__init__(message)
        self.detail = {
            "reason": "window_longer_than_series",
            "window": int(window),
            "length": int(length),
            "unit": unit,
        }


def window_fits(window: int, unit: str, steps: np.ndarray, run: str, tag: str) -> None:
    """Refuses (WindowTooLong) a window longer than the series whose sorted `steps` are given:
    with unit "points" its number of points, with "steps" its step span last - first + 1."""
    if unit == "steps" and len(steps):
        length = int(steps[-1]) - int(steps[0]) + 1
        if window > length:
            raise WindowTooLong(
                "window %d (steps) is longer than the series of run %r tag %r (steps %d to %d: %d steps)"
                % (window, run, tag, steps[0], steps[-1], length),
                window,
                length,
                "steps",
            )
    elif window > len(steps):
        raise WindowTooLong(
            "window %d is longer than the series of run %r tag %r (%d points)" % (window, run, tag, len(steps)),
            window,
            len(steps),
            "points",
        )


def query_string(raw: bytes) -> None:
    """Refuses a query string (bytes, as sent) longer than MAX_QUERY_BYTES."""
    if len(raw) > MAX_QUERY_BYTES:
        raise BadRequest("query string is longer than %d bytes (got %d)" % (MAX_QUERY_BYTES, len(raw)))


def text(args: Mapping[str, str], name: str, default: str | None = None) -> str:
    """A string parameter; required when `default` is None. NUL and over-long values are refused."""
    value = args.get(name)
    if value is None:
        if default is None:
            raise BadRequest("missing parameter '%s'" % name)
        return default
    if "\x00" in value:
        raise BadRequest("parameter '%s' contains a NUL character" % name)
    if len(value) > MAX_NAME_LENGTH:
        raise BadRequest("parameter '%s' is longer than %d characters" % (name, MAX_NAME_LENGTH))
    return value


def integer(args: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int:
    """An integer parameter in [low, high]; required when `default` is None."""
    raw = args.get(name, "")
    if raw == "":
        if default is None:
            raise BadRequest("missing parameter '%s'" % name)
        return default
    if len(raw) > _MAX_DIGITS or not _INTEGER.fullmatch(raw):
        raise BadRequest(
            "parameter '%s' must be an integer of at most %d digits, got %r" % (name, _MAX_DIGITS, raw[:50])
        )
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest("parameter '%s' must be between %d and %d, got %d" % (name, low, high, value))
    return value


def optional_integer(args: Mapping[str, str], name: str) -> int | None:
    """An integer parameter that may be absent (None), e.g. a step bound."""
    if args.get(name) in (None, ""):
        return None
    return integer(args, name, None, -(2**63), 2**63 - 1)


def real(args: Mapping[str, str], name: str, default: float, low: float, high: float, high_open: bool = False) -> float:
    """A finite float parameter in [low, high] (or [low, high) with `high_open`)."""
    raw = args.get(name, "")
    if raw == "":
        return default
    if not _REAL.fullmatch(raw):
        raise BadRequest("parameter '%s' must be a decimal number, got %r" % (name, raw[:50]))
    value = float(raw)
    if not math.isfinite(value):
        raise BadRequest("parameter '%s' must be a finite number, got %r" % (name, raw[:50]))
    if value < low or value > high or (high_open and value == high):
        bound = ")" if high_open else "]"
        raise BadRequest("parameter '%s' must be in [%g, %g%s, got %g" % (name, low, high, bound, value))
    return value


def choice(args: Mapping[str, str], name: str, choices: Collection[str], default: str | None) -> str:
    """One of `choices`."""
    value = args.get(name) or default
    if value is None:
        raise BadRequest("parameter '%s' is required: one of %s" % (name, ", ".join(choices)))
    if value not in choices:
        raise BadRequest("parameter '%s' must be one of %s, got %r" % (name, ", ".join(choices), value[:50]))
    return value


def averaging(args: Mapping[str, str]) -> dict[str, Any]:
    """The averaging parameters shared by `averages` and `export` (band=minmax is refused with
    method=ema: an exponential average has no window to take extremes over)."""
    avg = {
        "method": choice(args, "method", metadata.METHODS, metadata.DEFAULT_METHOD),
        "window": integer(args, "window", metadata.DEFAULT_WINDOW, 1, metadata.MAX_WINDOW),
        "weight": real(args, "weight", metadata.DEFAULT_WEIGHT, 0.0, 1.0, high_open=True),
        "align": choice(args, "align", metadata.ALIGNS, metadata.DEFAULT_ALIGN),
        "edges": choice(args, "edges", metadata.EDGES, metadata.DEFAULT_EDGES),
        "unit": choice(args, "unit", metadata.UNITS, metadata.DEFAULT_UNIT),
        "band": choice(args, "band", metadata.BANDS, metadata.DEFAULT_BAND),
    }
    if avg["band"] == "minmax" and avg["method"] == "ema":
        raise BadRequest("parameter 'band': band=minmax is not defined for method=ema")
    return avg


def diagnostics(
    args: Mapping[str, str],
    defaults: Mapping[str, float],
    check: Callable[[dict[str, float]], object] | None = None,
) -> dict[str, float]:
    """The diagnostics settings present in `args`, typed like their defaults (int or float), and
    accepted by `check(settings)` (which raises a ValueError naming a setting out of its range)."""
    settings = {}
    for name, default in defaults.items():
        if args.get(name) in (None, ""):
            continue
        if isinstance(default, int):
            settings[name] = integer(args, name, default, 0, metadata.MAX_WINDOW)
        else:
            settings[name] = real(args, name, default, 0.0, 1e12)
    if check is not None:
        try:
            check(settings)
        except ValueError as e:
            raise BadRequest(str(e)) from None
    return settings


def step_range(args: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(start, end) step bounds, inclusive; either may be None."""
    start, end = optional_integer(args, "start"), optional_integer(args, "end")
    if start is not None and end is not None and start > end:
        raise BadRequest("parameter 'start' (%d) must not exceed 'end' (%d)" % (start, end))
    return start, end


def max_points(args: Mapping[str, str]) -> int:
    return integer(args, "max_points", metadata.DEFAULT_MAX_POINTS, 2, metadata.MAX_POINTS_LIMIT)
