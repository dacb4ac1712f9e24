"""Robust statistics over run histories: baselines, anomalies, trends and forecasts.

Everything here is plain Python over short series (a window of runs, a few
hundred points at most), so no numerical library is needed: numpy or scipy
would cost more to import than these computations cost to run, and envfence's
commands must start fast.

- :func:`baseline`: the median and the median absolute deviation (MAD, scaled
  to estimate a standard deviation), and the band median ± k·MAD outside
  which a value is an anomaly. A few extreme runs move neither.
- :func:`trend`: the Theil–Sen estimator, the median of the slopes between
  every pair of points: up to 29% of the points can be outliers before the
  slope moves. Its cost grows with the square of the points, so a longer
  series is thinned evenly to :data:`MAX_POINTS` first (19,900 pairs).
- :func:`crossing`: when a trend reaches a limit, if it is heading there.
"""

from __future__ import annotations

import datetime as _dt
from typing import Iterable, Sequence

from . import slotted

#: MAD scaled to estimate a standard deviation for normally distributed values.
MAD_SCALE = 1.4826
#: The most points :func:`trend` compares pairwise (a longer series is thinned evenly).
MAX_POINTS = 200
_DAY = 86400.0


def median(values: Iterable[float]) -> float | None:
    """The median, or None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@slotted.frozen
class Baseline:
    """What is usual for a series: its median, scaled MAD, and the band ± k·MAD around the median."""

    median: float
    mad: float  #: scaled to estimate a standard deviation
    low: float
    high: float
    count: int

    def is_anomaly(self, value: float) -> bool:
        """True when ``value`` lies outside the band."""
        return not self.low <= value <= self.high

    def as_dict(self) -> dict[str, float]:
        """The numbers, rounded for people and JSON."""
        return {"median": round(self.median, 3), "mad": round(self.mad, 3), "low": round(self.low, 3),
                "high": round(self.high, 3), "count": self.count}


def baseline(values: Sequence[float], k: float = 3.0, floor: float | None = 0.0) -> Baseline | None:
    """The baseline of ``values`` (None for none); the band's low end is never below ``floor`` (None: unbounded)."""
    centre = median(values)
    if centre is None:
        return None
    mad = (median(abs(v - centre) for v in values) or 0.0) * MAD_SCALE
    low = centre - k * mad
    return Baseline(centre, mad, low if floor is None else max(floor, low), centre + k * mad, len(values))


@slotted.frozen
class Trend:
    """A Theil–Sen line through ``(time, value)`` points: ``value = intercept + slope_per_day * days since origin``."""

    slope_per_day: float
    intercept: float
    origin: _dt.datetime
    first: _dt.datetime
    last: _dt.datetime
    count: int

    def at(self, when: _dt.datetime) -> float:
        """The line's value at ``when``."""
        return self.intercept + self.slope_per_day * (when - self.origin).total_seconds() / _DAY

    def change(self) -> tuple[float, float]:
        """``(start, end)``: the line's values at the first and the last point."""
        return self.at(self.first), self.at(self.last)


def _thin(points: Sequence[tuple[_dt.datetime, float]]) -> list[tuple[_dt.datetime, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    step = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * step)] for i in range(MAX_POINTS)]


def trend(points: Sequence[tuple[_dt.datetime, float]]) -> Trend | None:
    """The Theil–Sen trend of ``points`` (in time order or not); None with fewer than 3 points or a single instant."""
    ordered = _thin(sorted(points, key=lambda p: p[0]))
    if len(ordered) < 3:
        return None
    origin = ordered[0][0]
    xs = [(t - origin).total_seconds() / _DAY for t, _ in ordered]
    ys = [v for _, v in ordered]
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    slope = median(slopes)
    if slope is None:
        return None
    intercept = median(y - slope * x for x, y in zip(xs, ys))
    return Trend(slope, intercept or 0.0, origin, ordered[0][0], ordered[-1][0], len(ordered))


def crossing(line: Trend, limit: float, now: _dt.datetime, rising: bool = True) -> _dt.datetime | None:
    """When ``line`` reaches ``limit`` (rising to it, or falling with ``rising=False``): ``now`` if past it, None if never."""
    slope = line.slope_per_day if rising else -line.slope_per_day
    gap = (limit - line.at(now)) if rising else (line.at(now) - limit)
    if gap <= 0:
        return now
    if slope <= 0:
        return None
    days = gap / slope
    if days > 365 * 100:  # so slow it never matters (and a datetime would overflow)
        return None
    return now + _dt.timedelta(days=days)
