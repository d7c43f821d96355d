"""Checks of what the statistics' entry points are given: each problem is a ValueError naming it.

The server's parameter parsing (server/params.py) refuses bad requests before they get here; these
checks guard the Python API, so a failure here reaching a route is an internal error.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import numpy.typing as npt


def series(steps: npt.ArrayLike, values: npt.ArrayLike, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps as int64, values as float64) of a series: 1-D, of the same length, steps strictly
    increasing. `name` (e.g. a role) prefixes the messages."""
    prefix = "" if name is None else name + ": "
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or values.shape != steps.shape:
        raise ValueError(
            f"{prefix}steps and values must be 1-D arrays of the same length, got shapes "
            f"{steps.shape} and {values.shape}"
        )
    if np.any(steps[1:] <= steps[:-1]):
        raise ValueError(f"{prefix}steps must be strictly increasing")
    return steps, values


def integer(name: str, value: object, minimum: int, whole_floats: bool = False) -> int:
    """`value` as a Python int >= `minimum`. A bool is refused; a float with an integer value is
    taken with `whole_floats` (2.0 for 2), refused otherwise."""
    given = value
    if whole_floats and isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    try:
        value = None if isinstance(value, (bool, np.bool_)) else operator.index(value)
    except TypeError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {given!r}")
    return int(value)


def number(name: str, value: object) -> float:
    """`value` as a finite Python float (a bool is refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return value
