"""MinMax downsampling: at most the pixel budget, time order kept, every extreme kept."""

from __future__ import annotations

import math
import random

import pytest

from dashboards.downsample import minmax


def wave(n: int) -> list[tuple[float, float]]:
    rng = random.Random(7)
    return [(float(t), math.sin(t / 50) + rng.gauss(0, 0.1)) for t in range(n)]


def test_short_series_are_returned_as_they_are():
    points = wave(10)
    assert minmax(points, 100) == points


@pytest.mark.parametrize("budget", [4, 5, 60, 600, 1001])
def test_it_keeps_to_the_budget_and_to_time_order(budget):
    kept = minmax(wave(20_000), budget)
    assert len(kept) <= budget
    times = [t for t, _ in kept]
    assert times == sorted(times)
    assert len(set(times)) == len(times)


def test_it_keeps_a_one_point_spike_and_dip_among_many():
    points = wave(100_000)
    points[31_337] = (31_337.0, 50.0)
    points[77_001] = (77_001.0, -50.0)
    kept = minmax(points, 300)
    assert (31_337.0, 50.0) in kept
    assert (77_001.0, -50.0) in kept


def test_every_bucket_keeps_its_own_extremes():
    points = wave(12_000)
    budget = 202
    kept = set(minmax(points, budget))
    inner = points[1:-1]
    buckets = (budget - 2) // 2
    width = (inner[-1][0] - inner[0][0]) / buckets
    for bucket in range(buckets):
        low_edge = inner[0][0] + bucket * width
        members = [p for p in inner if low_edge <= p[0] < low_edge + width]
        if bucket == buckets - 1:
            members = [p for p in inner if p[0] >= low_edge]
        assert min(members, key=lambda p: p[1]) in kept
        assert max(members, key=lambda p: p[1]) in kept


def test_first_and_last_points_stay():
    points = wave(5000)
    kept = minmax(points, 50)
    assert kept[0] == points[0] and kept[-1] == points[-1]


def test_a_budget_too_small_to_hold_extremes_is_refused():
    with pytest.raises(ValueError):
        minmax(wave(100), 3)
