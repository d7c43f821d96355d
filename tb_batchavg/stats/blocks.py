"""The blocks the window kernels run over: every window (of at most S points) is the tail of one
block of S points joined to the head of the next (``BlockSplit``), windows go in chunks of about
``CACHE_CHUNK`` cut at multiples of S (``chunked``), and counts of finite values come from prefix
sums (``prefix_counts``, ``window_count``). Shared by ``moments`` and ``extremes``."""

from collections.abc import Callable, Sequence

import numpy as np

from tb_batchavg.stats import workers
from tb_batchavg.stats.bounds import Bounds

# Data chunk of the window means and standard deviations (their span tables
# stay in cache).
CACHE_CHUNK = 1 << 15


def window_count(finite: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of finite values in each window values[lo:hi] (exact), from the
    prefix sums of the finite flags."""
    if finite.all():
        return hi - lo
    counts = prefix_counts(finite)
    return (counts[hi] - counts[lo]).astype(np.int64)


class BlockSplit:
    """Non-empty windows [lo, hi) of at most S points over the blocks
    [b S, (b + 1) S) of n points: a window is the tail [lo, tail_end) of the
    block holding lo joined to the head [head_start, hi) of the next block, or
    only a head (it starts a block) or only a tail (it ends a block, or the
    data). A window strictly inside a block has neither (``inside``); only
    windows shorter than S can be, i.e. with partial edges or
    ``unit="steps"``. Per-block running reductions (heads forward, tails
    backward) then give every window's statistic from its own points only."""

    def __init__(self, n: int, lo: np.ndarray, hi: np.ndarray, size: int) -> None:
        self.n, self.size, self.blocks = n, size, -(-n // size)
        self.lo, self.hi, self.last = lo, hi, hi - 1
        tail_block = lo - lo % size
        self.head_start = self.last - self.last % size
        self.tail_end = np.minimum(tail_block + size, n)
        self.head_block = self.head_start // size
        self.tail_block = tail_block // size
        self.has_head = lo <= self.head_start
        self.has_tail = (self.tail_end < hi) | ((self.tail_end == hi) & ~self.has_head)
        self.inside = np.flatnonzero(~self.has_head & ~self.has_tail)

    def blocked(self, array: np.ndarray, fill: float) -> np.ndarray:
        """``array`` padded with ``fill`` to whole blocks, shaped (blocks, S)."""
        out = np.empty(self.blocks * self.size, dtype=array.dtype)
        out[: self.n] = array
        out[self.n :] = fill
        return out.reshape(self.blocks, self.size)

    def heads(self, blocked: np.ndarray, accumulate: Callable[..., np.ndarray]) -> np.ndarray:
        """``accumulate`` (a ufunc's accumulate) over each window's head
        [head_start, hi) (meaningless where it has no head)."""
        return accumulate(blocked, axis=1).ravel()[self.last]

    def tails(self, blocked: np.ndarray, accumulate: Callable[..., np.ndarray]) -> np.ndarray:
        """``accumulate`` over each window's tail [lo, end of its block)."""
        backward = blocked.ravel()[::-1].reshape(blocked.shape)  # a view
        return accumulate(backward, axis=1).ravel()[::-1][self.lo]


def chunked(
    bounds: Bounds,
    n: int,
    compute: Callable[[int, int, slice, int], Sequence[np.ndarray]],
    outputs: int,
) -> list[np.ndarray]:
    """Runs ``compute(first, stop, span, S)`` over chunks first..stop-1 of
    about CACHE_CHUNK windows (at least the longest window S), each on the
    data span its windows cover, cut at multiples of S so that the blocks of
    every chunk are the global ones; ``compute`` returns one array per
    output for its windows. Small chunks keep the working set in cache;
    they are shared among threads (``workers.each``)."""
    count = bounds.count
    out = [np.empty(count) for _ in range(outputs)]
    size = bounds.longest()
    chunk = max(CACHE_CHUNK, size)

    def one(first):
        stop = min(first + chunk, count)
        lo, hi = bounds.ends(first, stop)
        start = lo - lo % size
        end = min(n, (hi - 1) // size * size + size)
        for array, part in zip(out, compute(first, stop, slice(start, end), size)):
            array[first:stop] = part

    workers.each(one, range(0, count, chunk))
    return out


def prefix_counts(flags: np.ndarray) -> np.ndarray:
    """counts[i] = number of True in flags[:i] (n + 1 entries; int32, exact
    below 2**31 points)."""
    counts = np.zeros(len(flags) + 1, dtype=np.int32 if len(flags) < 2**31 else np.int64)
    np.cumsum(flags.view(np.int8), dtype=counts.dtype, out=counts[1:])
    return counts
