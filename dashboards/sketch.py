"""Percentiles from the rollups: a log-scale histogram per series and bucket (as DDSketch).

Every value falls in a bin whose edges grow by the factor GAMMA = (1 + ALPHA) / (1 - ALPHA);
a bin stands for the value 2·GAMMA^i / (GAMMA + 1), which is within ALPHA (1 %) of every value
the bin holds, relative to that value. Bins of a bucket merge across series and buckets by adding
their counts, so a percentile over any set of rollup rows costs one pass over their bins, not a
sort of their samples; the rank it reads is exact, only the value is rounded to its bin.

Percentiles interpolate between the two closest ranks, as PostgreSQL's `percentile_cont`, using
each rank's bin value: the answer is within ALPHA of what `percentile_cont` gives on the same
samples (relative to it, when the two closest samples have the same sign; otherwise within ALPHA
of the larger of them in magnitude). Zero is a bin of its own and exact.

In the database a histogram is a `bigint[]` of packed bins: the bin key in the high 32 bits and
its count in the low 32 bits. Keys are signed: 0 holds zero, k > 0 the positive values of bin
k - KEY_OFFSET, -k the negative values of that bin, so keys sort as their values do. Every finite
double has a key (|key| < 80,000). A stored array may name a key more than once (ingest appends
and merges now and then); readers add the counts up.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from itertools import accumulate

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA = math.log(GAMMA)
# Shifts the bin index of the smallest double (about -37,200) above zero.
KEY_OFFSET = 40_000
COUNT_MASK = 0xFFFFFFFF


def key_sql(column: str) -> str:
    """SQL of the bin key of a float8 column (what `key` computes in Python)."""
    return (
        f"CASE WHEN {column} = 0 THEN 0 ELSE (sign({column}) * "
        f"(ceil(ln(abs({column})) / {LN_GAMMA!r}) + {KEY_OFFSET}))::int END"
    )


def key(value: float) -> int:
    """The bin key of `value` (as `key_sql` computes it in the database)."""
    if value == 0:
        return 0
    index = math.ceil(math.log(abs(value)) / LN_GAMMA) + KEY_OFFSET
    return index if value > 0 else -index


def value_of(bin_key: int) -> float:
    """The value a bin stands for: within ALPHA of each value it holds."""
    if bin_key == 0:
        return 0.0
    exponent = (abs(bin_key) - KEY_OFFSET) * LN_GAMMA + math.log(2 / (GAMMA + 1))
    try:
        magnitude = math.exp(exponent)
    except OverflowError:  # the topmost bin of doubles
        magnitude = sys.float_info.max
    return magnitude if bin_key > 0 else -magnitude


def pack(bin_key: int, count: int) -> int:
    """One element of a stored histogram."""
    return (bin_key << 32) | count


def unpack(element: int) -> tuple[int, int]:
    return element >> 32, element & COUNT_MASK


def quantile(elements: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of the histogram(s) given as packed elements, as percentile_cont.

    Keys may repeat (several histograms at once) and come in any order; `elements` is sorted in
    place. Sorting packed elements sorts them by key, so running counts rank them directly.
    """
    if not elements:
        return None
    elements.sort()
    running = list(accumulate([element & COUNT_MASK for element in elements]))
    position = q * (running[-1] - 1)
    low_rank = math.floor(position)
    low_key = elements[bisect_right(running, low_rank)] >> 32
    high_key = elements[bisect_right(running, math.ceil(position))] >> 32
    return interpolate(low_key, high_key, position - low_rank)


def interpolate(low_key: int, high_key: int, fraction: float) -> float:
    """Between the values of the bins of the two closest ranks, as percentile_cont does."""
    low = value_of(low_key)
    if fraction == 0 or high_key == low_key:
        return low
    return low + (value_of(high_key) - low) * fraction
