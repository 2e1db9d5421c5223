"""The drive line: one path through the search space along which the chain can only get louder.

A model that is wrong in slope (its sensitivity to drive), not only in offset, cannot be fixed by adding
its measured residual: every step then moves by a fraction of the error. What can be trusted whatever the
model is the physics every Glue Compressor -> Limiter chain keeps: more input gain, more makeup or a higher
ceiling never makes the export quieter. So after the first export the search moves along one fixed line
through the space built from those knobs only, from the quietest setting (every gain at the bottom, the
ceiling at its lowest) to the loudest safe one (every gain at the top, the ceiling as high as the peak limit
allows), passing through the model's first proposal. On that line the measured loudness is monotone, and a
safeguarded secant (`next_position`) converges to the target however wrong the model is; its two ends are
the only settings that can prove a target out of reach.

The model only makes that fast, and one error dominates on a rig built outside the project: a limiter or
compressor that takes off less (or more) loudness than the model's. What the gains alone would give is
known exactly from the dry reference, so a measurement teaches the share of the model's processing cost the
plant really shows (and a second one how that share grows with drive). The model with its cost so scaled
is what the step inverts; an offset alone would keep the model's slope, and a limiter that takes off half
as much is also about half as flattened by more drive.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from objectives import Dim, Range

#: Positions closer than this (on the line's 0..1 scale) are the same setting.
SAME_POSITION = 1e-4
#: A secant step must land at least this fraction of the bracket inside it, or the bracket is bisected:
#: that bounds the number of steps even when the secant creeps towards one end.
INSIDE_FRACTION = 0.1
#: Secant slopes of measured against the (reshaped) model's loudness are clamped to this range: a plant
#: may be half or twice as sensitive as the model; beyond that, two exports on one side of a curved plant
#: say more about its curve than about its slope, and a step would be wild.
SLOPE_RANGE = (0.5, 2.0)
#: An export teaches the share of the model's processing cost the plant shows (`CostShare`) only where the
#: model spends at least this much loudness on processing there (LU): below it the ratio is noise, and the
#: export's offset is all it says.
MIN_COST_LU = 1.0
#: One export's share is clamped to this range, and the offset takes the rest. Above 1 the plant processes
#: harder than the model, where the model's own slope serves (an offset); below the floor a ratio says more
#: about an offset than about the plant's limiter.
COST_SCALE_RANGE = (0.2, 1.0)


@dataclass(frozen=True)
class DriveLine:
    """Piecewise-linear path through settings whose loudness never falls along it (position 0..1)."""

    waypoints: tuple[dict[str, float], ...]

    def __post_init__(self) -> None:
        if not self.waypoints:
            raise ValueError("a drive line needs at least one waypoint")

    @property
    def _lengths(self) -> list[float]:
        return [
            sum(abs(b[k] - a[k]) for k in a) for a, b in zip(self.waypoints, self.waypoints[1:], strict=False)
        ]

    def at(self, position: float) -> dict[str, float]:
        """The setting at `position` (0 = quietest, 1 = loudest safe)."""
        lengths = self._lengths
        total = sum(lengths)
        if total <= 0.0:
            return dict(self.waypoints[0])
        left = min(1.0, max(0.0, position)) * total
        for (a, b), length in zip(
            zip(self.waypoints, self.waypoints[1:], strict=False), lengths, strict=True
        ):
            if left <= length or b is self.waypoints[-1]:
                t = 0.0 if length <= 0 else min(1.0, left / length)
                return {k: a[k] + t * (b[k] - a[k]) for k in a}
            left -= length
        return dict(self.waypoints[-1])

    def position_of(self, flat: Mapping[str, float]) -> float | None:
        """Where `flat` lies on the line, or None when it is off it."""
        lengths = self._lengths
        total = sum(lengths)
        if total <= 0.0:
            return 0.0 if _same(flat, self.waypoints[0]) else None
        done = 0.0
        for (a, b), length in zip(
            zip(self.waypoints, self.waypoints[1:], strict=False), lengths, strict=True
        ):
            if length > 0:
                moved = sum(abs(flat.get(k, a[k]) - a[k]) for k in a)
                t = moved / length
                if 0.0 <= t <= 1.0 + 1e-9 and _same(flat, {k: a[k] + t * (b[k] - a[k]) for k in a}):
                    return (done + t * length) / total
            done += length
        return None


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return all(abs(a.get(k, v) - v) <= 1e-6 * max(1.0, abs(v)) for k, v in b.items())


def build_line(
    anchor: Mapping[str, float],
    space: Mapping[str, Dim],
    gains: Sequence[str],
    ceiling: str | None,
    safe_ceiling: float | None,
) -> DriveLine:
    """The line through `anchor`: the ceiling rises from its lowest to `safe_ceiling` with every gain at the
    bottom, the gains rise to the anchor's, then each gain in turn (`gains` in order) to the top of its range.
    Other parameters (threshold, ratio, ...) stay as the anchor has them."""
    base = {k: float(v) for k, v in anchor.items()}
    ranges = {k: space[k] for k in gains if isinstance(space.get(k), Range)}
    top_ceiling = None
    if ceiling is not None and isinstance(space.get(ceiling), Range):
        dim = space[ceiling]
        assert isinstance(dim, Range)
        top_ceiling = dim.high if safe_ceiling is None else min(dim.high, max(dim.low, safe_ceiling))
        base[ceiling] = top_ceiling
    quiet = {**base, **{k: r.low for k, r in ranges.items() if isinstance(r, Range)}}
    points: list[dict[str, float]] = []
    if top_ceiling is not None and ceiling is not None:
        dim = space[ceiling]
        assert isinstance(dim, Range)
        points.append({**quiet, ceiling: dim.low})
    points.append(quiet)
    points.append(dict(base))
    current = dict(base)
    for k in gains:
        r = ranges.get(k)
        if isinstance(r, Range):
            current = {**current, k: r.high}
            points.append(dict(current))
    deduped = [points[0]]
    for p in points[1:]:
        if not _same(p, deduped[-1]):
            deduped.append(p)
    return DriveLine(tuple(deduped))


@dataclass(frozen=True)
class Point:
    """One measured export: its position on the line (None when off it), the model's loudness for it and
    the measured one, and (when known) the model's loudness of the same gains with no processing at all."""

    position: float | None
    predicted: float
    measured: float
    linear: float | None = None


@dataclass(frozen=True)
class Step:
    position: float
    #: "model" (one measurement: the model's slope), "scaled" (the model with its processing cost scaled
    #: to the measurements), "secant", "bisect", "end" (an end of the line) or "exhausted" (the position
    #: is measured already: only an end can be, when the target is beyond it)
    how: str
    #: The correction the step was made with: measured = `measured` + `slope` x (reshaped - `predicted`),
    #: where `reshaped` is the model with its processing cost scaled (`share`), and `predicted` is the
    #: reshaped loudness at the measurement nearest the target.
    predicted: float = 0.0
    measured: float = 0.0
    slope: float = 1.0
    share: CostShare | None = None

    def reshaped(self, predicted: float, linear: float | None) -> float:
        """The model's loudness with its processing cost scaled (the bare model without a share)."""
        return reshaped(self.share, predicted, linear)

    def expected(self, predicted: float, linear: float | None = None) -> float:
        """The corrected loudness of a setting the bare model predicts at `predicted` (and, with nothing
        processed, at `linear`)."""
        return self.measured + self.slope * (self.reshaped(predicted, linear) - self.predicted)


def reshaped(share: CostShare | None, predicted: float, linear: float | None) -> float:
    """The model's loudness with its processing cost scaled by `share` (the bare model without one)."""
    if share is None:
        return predicted
    if linear is None:
        raise ValueError("a step made with a cost share needs the unprocessed loudness too")
    return share.reshaped(predicted, linear)


@dataclass(frozen=True)
class CostShare:
    """What the plant's processing takes off, as a function of what the model's takes off at the same
    setting (its cost c: the unprocessed loudness less the predicted one).

    The plant's cost G(c) rises with slope `at_zero` + 2 `trend` c, clamped to 0..1: one export gives a
    constant share (G = s c), two on one side of the target a share that changes with the cost (a limiter
    whose attack or release differs from the model's takes off a share that grows with drive). Its slope
    stays within 0..1, so the reshaped loudness rises by (1 - G') x the unprocessed rise + G' x the model's,
    never falls where the model does not, and the step can invert it. `offset` makes it exact at the
    export nearest the target."""

    at_zero: float
    trend: float = 0.0
    offset: float = 0.0

    def cost(self, model_cost: float) -> float:
        """G(c): the integral of the clamped slope from 0 to c."""
        c = max(0.0, model_cost)
        a, b = self.at_zero, 2.0 * self.trend
        if b == 0.0:
            return c * min(1.0, max(0.0, a))
        cuts = sorted({0.0, c, *(u for u in (-a / b, (1.0 - a) / b) if 0.0 < u < c)})
        total = 0.0
        for lo, hi in itertools.pairwise(cuts):
            rise = a + b * 0.5 * (lo + hi)  # one regime per piece: it cannot change between the cuts
            if rise >= 1.0:
                total += hi - lo
            elif rise > 0.0:
                total += a * (hi - lo) + 0.5 * b * (hi * hi - lo * lo)
        return total

    def reshaped(self, predicted: float, linear: float) -> float:
        return linear - self.cost(linear - predicted) + self.offset


def next_position(
    points: Sequence[Point],
    target: float,
    predicted_at: Callable[[float], float],
    tolerance: float | None = None,
    linear_at: Callable[[float], float] | None = None,
) -> Step:
    """Where on the line to export next so the measured loudness lands on `target`.

    The step corrects the model by the measurements nearest the target and inverts it along the line:
    - With `linear_at` (the model's loudness of the same gains with nothing processed) and points that
      carry it, where the model processes by at least `MIN_COST_LU` at the nearest one, the model's
      processing cost is scaled to what the plant showed (`CostShare`, step "scaled"): by that one export,
      or by two on the same side of the target, which fit how the share changes with drive.
    - Otherwise a secant of measured against (reshaped) predicted loudness through the two nearest, its
      slope clamped to `SLOPE_RANGE`; one measurement alone is an offset on the model (step "model").
    The step is then safeguarded by the measurements on the line: it must land inside the bracket they form
    around the target (regula falsi on the measurements alone, else the bracket is bisected), and never on
    a measured position. Loudness is monotone along the line, so the bracket shrinks every step and the
    search converges whatever the model says; the model only makes it fast.

    With a `tolerance`, while every measurement so far falls short on one side, an end of the line that the
    corrected model expects to reach the target by no more than the tolerance is tried at once: it either
    passes or is the measurement that proves the target out of reach, one export sooner."""
    if not points:
        raise ValueError("next_position needs at least one measurement")
    # The model's loudness is finite wherever the chain plays something; a silent point says nothing.
    points = [p for p in points if math.isfinite(p.predicted) and math.isfinite(p.measured)] or list(points)
    by_miss = sorted(points, key=lambda p: abs(p.measured - target))
    near = by_miss[0]
    # The model the step corrects: the bare one, or (where the measurements show how much of the model's
    # processing cost the plant really takes off) the model with that cost scaled to match.
    # Every point must say what its gains alone give, or none is reshaped: a mix would compare two models.
    known = all(p.linear is not None and math.isfinite(p.linear) for p in points)
    share = _cost_share(near, by_miss[1:], target) if linear_at is not None and known else None

    def model_at(pos: float) -> float:
        return reshaped(share, predicted_at(pos), None if linear_at is None else linear_at(pos))

    def model_of(p: Point) -> float:
        return reshaped(share, p.predicted, p.linear)

    slope = 1.0
    other = None
    if share is None or not share.trend:  # a share fitted to two exports needs no secant
        other = next((p for p in by_miss[1:] if abs(model_of(p) - model_of(near)) > 0.05), None)
    if other is not None:
        slope = (near.measured - other.measured) / (model_of(near) - model_of(other))
        slope = min(SLOPE_RANGE[1], max(SLOPE_RANGE[0], slope)) if slope > 0 else 1.0
    want = model_of(near) + (target - near.measured) / slope
    position = invert(model_at, want)
    how = "secant" if other is not None else "model" if share is None else "scaled"

    on_line = [p.position for p in points if p.position is not None]
    below = [p.position for p in points if p.position is not None and p.measured < target]
    above = [p.position for p in points if p.position is not None and p.measured > target]
    lo = max(below) if below else None
    hi = min(above) if above else None
    if lo is not None and hi is not None and lo < hi:
        # Bracketed: regula falsi on the measurements themselves, in position along the line (dB of knob
        # travel), where a plant's loudness is close to linear whatever its design; the model's loudness
        # can bend the wrong way where the plant's knobs act differently (a ceiling that is an output gain).
        f_lo = next(p.measured for p in points if p.position == lo) - target
        f_hi = next(p.measured for p in points if p.position == hi) - target
        # Illinois: when the last two exports fell on the same side, the far end has stood still; halving
        # its weight keeps regula falsi from creeping towards the target from one side only.
        recent = [p.measured - target for p in points if p.position is not None][-2:]
        if len(recent) == 2 and recent[0] < 0 and recent[1] < 0:
            f_hi *= 0.5
        elif len(recent) == 2 and recent[0] > 0 and recent[1] > 0:
            f_lo *= 0.5
        position = lo - f_lo * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        how = "secant"
        margin = INSIDE_FRACTION * (hi - lo)
        if not lo + margin <= position <= hi - margin:
            position, how = min(hi - margin, max(lo + margin, position)), "bisect"
    elif lo is not None and position <= lo + SAME_POSITION:
        # Measured too quiet at `lo`, yet the step points at or below it: only louder can help.
        position, how = lo + 0.5 * (1.0 - lo), "bisect"
    elif hi is not None and position >= hi - SAME_POSITION:
        position, how = 0.5 * hi, "bisect"
    slope_step = Step(position, how, model_of(near), near.measured, slope, share)

    def expected_at(pos: float) -> float:
        return slope_step.expected(predicted_at(pos), None if linear_at is None else linear_at(pos))

    measured_at = {round(q, 6) for q in on_line}
    if tolerance is not None and hi is None and 1.0 not in measured_at:
        if expected_at(1.0) <= target + tolerance:
            position, how = 1.0, "end"
    elif tolerance is not None and lo is None and 0.0 not in measured_at:  # noqa: SIM102
        if expected_at(0.0) >= target - tolerance:
            position, how = 0.0, "end"
    if position >= 1.0 - SAME_POSITION:
        position, how = 1.0, "end"
    elif position <= SAME_POSITION:
        position, how = 0.0, "end"
    if any(abs(position - q) <= SAME_POSITION for q in on_line):
        how = "exhausted"  # the line has nothing new to offer here: its end is measured and misses
    return Step(position, how, model_of(near), near.measured, slope, share)


def _cost_share(near: Point, others: Sequence[Point], target: float) -> CostShare | None:
    """The share of the model's processing cost the exports showed: from the one nearest the target, or
    (when the next nearest lies on the same side of the target at another model cost) from both. None
    where the model hardly processes at the nearest one, and the ratio would be noise."""
    if near.linear is None:
        return None
    cost = near.linear - near.predicted
    if cost < MIN_COST_LU:
        return None
    raw = (near.linear - near.measured) / cost
    share = CostShare(min(COST_SCALE_RANGE[1], max(COST_SCALE_RANGE[0], raw)))
    second = others[0] if others else None
    if share.at_zero == raw and second is not None and second.linear is not None:
        c = second.linear - second.predicted
        same_side = (second.measured - target) * (near.measured - target) > 0
        if same_side and c >= MIN_COST_LU and abs(c - cost) >= MIN_COST_LU:
            # The share as a line through both exports' shares; G = c x share(c) where its slope allows.
            trend = ((second.linear - second.measured) / c - raw) / (c - cost)
            share = CostShare(raw - trend * cost, trend)
    return replace(share, offset=near.measured - share.reshaped(near.predicted, near.linear))


def invert(
    predicted_at: Callable[[float], float], want: float, steps: int = 16, within: float = 0.005
) -> float:
    """The position whose predicted loudness is `want` (0 or 1 beyond the ends). The model is monotone along
    the line too (it keeps the chain's contracts), so a bracketing search cannot fail: regula falsi with the
    Illinois rule (a few model evaluations on a smooth curve), bisection where it stalls."""
    lo, hi = 0.0, 1.0
    f_lo, f_hi = predicted_at(lo) - want, predicted_at(hi) - want
    if f_lo >= 0.0:
        return 0.0
    if f_hi <= 0.0:
        return 1.0
    side = 0
    for _ in range(steps):
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        if not lo < x < hi:
            x = 0.5 * (lo + hi)
        f = predicted_at(x) - want
        if abs(f) <= within:
            return x
        if f < 0.0:
            lo, f_lo = x, f
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = x, f
            if side == 1:
                f_lo *= 0.5
            side = 1
    return lo - f_lo * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
