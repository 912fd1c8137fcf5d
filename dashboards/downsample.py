"""Server-side downsampling to a panel's pixel width that keeps every peak and dip.

MinMax: the points are cut into equal time buckets and each bucket keeps its lowest and highest
point, in time order, plus the first and last point of the series. A spike narrower than a pixel
therefore still reaches the chart, which averaging (or plain LTTB on a thin selection) can lose.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def minmax(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most `max_points` of `points` (time-ordered), keeping each bucket's extremes."""
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if len(points) <= max_points:
        return list(points)
    first, last = points[0], points[-1]
    inner = points[1:-1]
    buckets = (max_points - 2) // 2
    start, end = inner[0][0], inner[-1][0]
    width = (end - start) / buckets or 1.0
    kept: list[Point] = [first]
    index, count = 0, len(inner)
    for bucket in range(buckets):
        # The last bucket takes everything left, so rounding never drops a point.
        limit = end if bucket == buckets - 1 else start + (bucket + 1) * width
        low = high = None
        while index < count and (inner[index][0] < limit or bucket == buckets - 1):
            point = inner[index]
            if low is None or point[1] < low[1]:
                low = point
            if high is None or point[1] > high[1]:
                high = point
            index += 1
        if low is None or high is None:
            continue
        if low is high:
            kept.append(low)
        else:
            kept.extend(sorted((low, high)))
    kept.append(last)
    return kept
