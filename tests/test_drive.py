"""The drive line and its safeguarded secant (autotune.drive): convergence whatever the model gets wrong.

A plant here is any loudness that never falls along the line; the model is the same curve bent by the
errors a real rig shows (an offset, a wrong slope, gain after the chain). The search must land within the
tolerance in a few exports, and may only call a target out of reach after measuring the line's end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotune.drive import Point, build_line, next_position
from objectives import Choice, Dim, Range

SPACE: dict[str, Dim] = {
    "glue.threshold_db": Range(-40.0, 0.0),
    "glue.makeup_db": Range(0.0, 20.0),
    "glue.ratio": Choice((2.0, 4.0, 10.0)),
    "limiter.gain_db": Range(0.0, 24.0),
    "limiter.ceiling_db": Range(-7.0, -1.05),
}
ANCHOR = {
    "glue.threshold_db": -20.0,
    "glue.makeup_db": 4.0,
    "glue.ratio": 4.0,
    "limiter.gain_db": 6.0,
    "limiter.ceiling_db": -3.0,
}
GAINS = ["limiter.gain_db", "glue.makeup_db"]


def test_the_line_runs_from_the_quietest_to_the_loudest_safe_setting_through_the_anchor() -> None:
    line = build_line(ANCHOR, SPACE, GAINS, "limiter.ceiling_db", -1.1)
    quiet, loud = line.at(0.0), line.at(1.0)
    assert quiet == {**ANCHOR, "glue.makeup_db": 0.0, "limiter.gain_db": 0.0, "limiter.ceiling_db": -7.0}
    assert loud == {**ANCHOR, "glue.makeup_db": 20.0, "limiter.gain_db": 24.0, "limiter.ceiling_db": -1.1}
    through = {**ANCHOR, "limiter.ceiling_db": -1.1}
    at = line.position_of(through)
    assert at is not None and line.at(at) == pytest.approx(through)
    assert line.position_of({**through, "glue.threshold_db": -10.0}) is None  # off the line
    # Every knob only rises along the line: the chain can only get louder.
    previous = line.at(0.0)
    for i in range(1, 101):
        now = line.at(i / 100)
        for k in ("glue.makeup_db", "limiter.gain_db", "limiter.ceiling_db"):
            assert now[k] >= previous[k] - 1e-12
        assert {k: now[k] for k in ("glue.threshold_db", "glue.ratio")} == {
            "glue.threshold_db": -20.0,
            "glue.ratio": 4.0,
        }
        previous = now


def test_the_safe_ceiling_never_leaves_the_ceilings_range() -> None:
    line = build_line(ANCHOR, SPACE, GAINS, "limiter.ceiling_db", -20.0)
    assert line.at(1.0)["limiter.ceiling_db"] == -7.0
    line = build_line(ANCHOR, SPACE, GAINS, "limiter.ceiling_db", None)
    assert line.at(1.0)["limiter.ceiling_db"] == -1.05


def plant_curve(lo: float, hi: float, knee: float) -> Callable[[float], float]:
    """A saturating loudness along the line: quick at first, then the limiter's diminishing returns."""
    return lambda s: lo + (hi - lo) * (1.0 - math.exp(-knee * s)) / (1.0 - math.exp(-knee))


def search(
    plant: Callable[[float], float],
    model: Callable[[float], float],
    target: float,
    first: float,
    tolerance: float = 0.5,
    budget: int = 12,
) -> tuple[list[float], str]:
    """Exports along the line until one lands within the tolerance (or the line says it cannot)."""
    points = [Point(first, model(first), plant(first))]
    for _ in range(budget):
        if abs(points[-1].measured - target) <= tolerance:
            return [p.measured for p in points], "hit"
        step = next_position(points, target, model, tolerance)
        if step.how == "exhausted":
            return [p.measured for p in points], "exhausted"
        assert all(abs(step.position - p.position) > 1e-5 for p in points if p.position is not None)
        points.append(Point(step.position, model(step.position), plant(step.position)))
    return [p.measured for p in points], "budget"


@pytest.mark.parametrize("slope", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("offset", [-6.0, 0.0, 3.0, 6.0])
def test_a_wrong_slope_or_offset_still_converges_in_a_few_exports(slope: float, offset: float) -> None:
    """The failure seen on a Live-like rig: each step moved by a fraction of the error because the model's
    sensitivity to drive was wrong. A secant learns the slope: within 4 exports after the first."""
    plant = plant_curve(-24.0, -8.0, 3.0)
    model = lambda s: offset + -16.0 + slope * (plant(s) + 16.0)  # noqa: E731
    target = -14.0
    first = next_position([Point(0.5, model(0.5), model(0.5))], target, model).position  # the model's pick
    measured, outcome = search(plant, model, target, first)
    assert outcome == "hit", measured
    assert len(measured) <= 5


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-40.0, -20.0),
    span=st.floats(4.0, 30.0),
    knee=st.floats(0.2, 8.0),
    slope=st.floats(0.3, 3.0),
    offset=st.floats(-8.0, 8.0),
    where=st.floats(0.05, 0.95),
    first=st.floats(0.0, 1.0),
)
def test_any_monotone_plant_converges_and_no_reachable_target_is_called_out_of_reach(
    lo: float, span: float, knee: float, slope: float, offset: float, where: float, first: float
) -> None:
    plant = plant_curve(lo, lo + span, knee)
    model = lambda s: offset + slope * plant(s)  # noqa: E731
    target = plant(where)
    measured, outcome = search(plant, model, target, first, budget=16)
    assert outcome == "hit", measured


@pytest.mark.parametrize(("target", "end"), [(-5.0, 1.0), (-30.0, 0.0)])
def test_out_of_reach_only_after_the_end_of_the_line_is_measured(target: float, end: float) -> None:
    plant = plant_curve(-24.0, -8.0, 3.0)
    model = lambda s: plant(s) + 4.0  # noqa: E731  # the model believes the target is reachable
    measured, outcome = search(plant, model, target, 0.5)
    assert outcome == "exhausted"
    assert measured[-1] == pytest.approx(plant(end))  # the last export was the end itself
    assert len(measured) <= 2  # the first trial, then the end that proves it


@pytest.mark.parametrize("slope", [0.5, 2.0])
def test_a_target_reachable_by_a_hair_is_reached_at_the_end_of_the_line(slope: float) -> None:
    plant = plant_curve(-24.0, -8.0, 3.0)
    model = lambda s: -16.0 + slope * (plant(s) + 16.0)  # noqa: E731
    measured, outcome = search(plant, model, -8.45, 0.3)
    assert outcome == "hit" and measured[-1] == pytest.approx(-8.0)
    assert len(measured) <= 3


def test_a_bracket_is_bisected_when_the_secant_would_leave_it() -> None:
    plant = plant_curve(-24.0, -8.0, 3.0)
    points = [Point(0.2, -30.0, plant(0.2)), Point(0.8, -29.9, plant(0.8))]  # a flat, useless model
    step = next_position(points, -14.0, lambda s: -30.0 + 0.1 * s)
    assert 0.2 < step.position < 0.8


def test_one_export_scales_the_models_processing_cost_instead_of_adding_an_offset() -> None:
    """The third-party rig's case: its limiter takes off half the loudness the model's does, so the model's
    first pick is 8 LU too loud. An offset keeps the model's flat slope and steps far past the target the
    other way; scaling what the processing costs lands on the target at the next export."""
    linear = lambda s: -30.0 + 40.0 * s  # noqa: E731  # the gains alone
    model = lambda s: linear(s) - 0.8 * max(0.0, linear(s) + 18.0)  # noqa: E731
    plant = lambda s: linear(s) - 0.4 * max(0.0, linear(s) + 18.0)  # noqa: E731
    first = 0.8  # where the model puts -14
    assert model(first) == pytest.approx(-14.0, abs=1e-9)
    points = [Point(first, model(first), plant(first), linear(first))]
    step = next_position(points, -14.0, model, 0.5, linear)
    assert step.how == "scaled" and step.share is not None
    assert step.share.at_zero == pytest.approx(0.5, abs=1e-9) and step.share.offset == pytest.approx(
        0.0, abs=1e-9
    )
    assert plant(step.position) == pytest.approx(-14.0, abs=0.02)
    assert step.expected(model(step.position), linear(step.position)) == pytest.approx(-14.0, abs=0.02)
    offset_only = next_position(points, -14.0, model, 0.5)
    assert abs(plant(offset_only.position) + 14.0) > 10 * abs(plant(step.position) + 14.0)


@pytest.mark.parametrize(
    ("cost", "measured", "how", "share", "offset"),
    [
        (0.5, -13.0, "model", None, None),  # half an LU of processing says nothing about a share
        (4.0, -12.0, "scaled", 0.5, 0.0),
        (4.0, -30.0, "scaled", 1.0, -16.0),  # processes harder than the model: its slope, and an offset
        (4.0, -10.0, "scaled", 0.2, 0.8),  # hardly at all: the floor, and an offset
    ],
)
def test_one_exports_share_is_trusted_where_the_model_processes_and_clamped_to_its_range(
    cost: float, measured: float, how: str, share: float | None, offset: float | None
) -> None:
    """Clamped or not, the reshaped model passes through the export it was learnt from."""
    point = Point(0.5, -14.0, measured, -14.0 + cost)
    step = next_position([point], -14.0, lambda s: -14.0 + 4.0 * (s - 0.5), 0.5, lambda s: -14.0 + cost)
    assert step.how == how or step.how in ("end", "bisect")
    if share is None:
        assert step.share is None
    else:
        assert step.share is not None
        assert step.share.at_zero == pytest.approx(share, abs=1e-9)
        assert step.share.offset == pytest.approx(offset, abs=1e-9)
        assert step.reshaped(point.predicted, point.linear) == pytest.approx(measured, abs=1e-9)
    assert step.expected(point.predicted, point.linear) == pytest.approx(measured, abs=1e-9)


def _share_plant(grow: float) -> tuple[Callable[[float], float], ...]:
    """A model whose limiter costs 0.9 LU per dB above -18 of unprocessed loudness, and a plant whose
    limiter takes off a share of that which grows with the cost, from 30 % towards all of it (as JUCE's
    does against the model's); its cost never rises faster than the model's, so it stays monotone."""
    linear = lambda s: -30.0 + 40.0 * s  # noqa: E731
    cost = lambda s: 0.9 * max(0.0, linear(s) + 18.0)  # noqa: E731
    model = lambda s: linear(s) - cost(s)  # noqa: E731
    plant = lambda s: linear(s) - cost(s) + 0.7 * cost(s) / (1.0 + grow * cost(s))  # noqa: E731
    return linear, model, plant


def test_two_exports_on_one_side_learn_how_the_share_grows_with_drive() -> None:
    """The tabla on JUCE's limiter: the first export (the model's pick) is far too loud, the one-export
    share lands short, and the share measured there is smaller than at the first. A line through both
    shares puts the third export on the target."""
    linear, model, plant = _share_plant(0.08)
    points = [Point(0.8, model(0.8), plant(0.8), linear(0.8))]
    target = -13.0
    second = next_position(points, target, model, 0.5, linear)
    points.append(
        Point(second.position, model(second.position), plant(second.position), linear(second.position))
    )
    assert plant(second.position) > target + 0.5  # still too loud: the share falls with the cost
    third = next_position(points, target, model, 0.5, linear)
    assert third.how == "scaled" and third.share is not None and third.share.trend > 0
    assert plant(third.position) == pytest.approx(target, abs=0.1)


@settings(max_examples=40, deadline=None)
@given(
    at_zero=st.floats(0.0, 1.0),
    trend=st.floats(-0.2, 0.2),
    offset=st.floats(-5.0, 5.0),
    cost=st.floats(0.0, 60.0),
)
def test_a_reshaped_model_never_falls_where_the_model_rises(
    at_zero: float, trend: float, offset: float, cost: float
) -> None:
    """The step inverts the reshaped model along the line, which needs it monotone: the plant's cost never
    rises faster than the model's, nor falls, whatever the share's line."""
    from autotune.drive import CostShare

    share = CostShare(at_zero, trend, offset)
    lin, pred = -10.0, -10.0 - cost
    for dl, dc in ((0.5, 0.0), (0.5, 0.5), (0.0, -0.3), (1.0, 0.2)):  # unprocessed up, cost up or down
        if dl - dc < 0:  # the model itself would fall
            continue
        after = share.reshaped(pred + dl - dc, lin + dl)
        assert after >= share.reshaped(pred, lin) - 1e-9


@settings(max_examples=40, deadline=None)
@given(grow=st.floats(0.0, 0.3), where=st.floats(0.35, 0.95), first=st.floats(0.3, 1.0))
def test_any_share_plant_converges_with_the_cost_scaled(grow: float, where: float, first: float) -> None:
    linear, model, plant = _share_plant(grow)
    target = plant(where)
    points = [Point(first, model(first), plant(first), linear(first))]
    for _ in range(12):
        if abs(points[-1].measured - target) <= 0.5:
            break
        step = next_position(points, target, model, 0.5, linear)
        assert step.how != "exhausted", [p.measured for p in points]
        points.append(Point(step.position, model(step.position), plant(step.position), linear(step.position)))
    assert abs(points[-1].measured - target) <= 0.5
    assert len(points) <= 5, [p.measured for p in points]
