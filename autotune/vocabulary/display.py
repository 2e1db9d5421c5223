"""What a parameter's display string says, and raw values <-> physical ones learnt from it.

AbletonOSC writes `DeviceParameter.value` raw, in the parameter's own min..max, and nothing says what a raw
value means except `value_string`. So a write is a search: set a raw value, read the display back, parse it,
and home in on the raw value whose display shows the requested physical value. Samples seen along the way
are kept, so after the first write to a parameter the next one usually needs a single set + read-back.
The writer (`autotune.live.devices`), the device map and the chain state all read displays this one way.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from autotune.errors import UnsettableValue

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_DISPLAY = re.compile(
    rf"^\s*(?P<num>{_NUMBER}|[-+]?inf)\s*(?P<unit>dB|ms|s|%|Hz|kHz|:\s*1)?\s*$",
    re.IGNORECASE,
)

#: unit in the display -> (canonical unit, factor to canonical)
_UNITS: dict[str, tuple[str, float]] = {
    "db": ("dB", 1.0),
    "ms": ("s", 1e-3),
    "s": ("s", 1.0),
    "%": ("%", 1.0),
    "hz": ("Hz", 1.0),
    "khz": ("Hz", 1e3),
    ":1": ("ratio", 1.0),
    "": ("", 1.0),
}


@dataclass(frozen=True)
class Display:
    """A parsed display string. `value` is None for words such as "Auto" or "On"."""

    text: str
    value: float | None
    unit: str
    resolution: float

    @property
    def numeric(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


def parse_display(text: str) -> Display:
    m = _DISPLAY.match(text)
    if not m:
        return Display(text=text, value=None, unit="", resolution=0.0)
    num = m.group("num")
    unit_raw = re.sub(r"\s+", "", (m.group("unit") or "")).lower()
    unit, factor = _UNITS[unit_raw]
    if "inf" in num.lower():
        return Display(
            text=text, value=-math.inf if num.startswith("-") else math.inf, unit=unit, resolution=0.0
        )
    decimals = len(num.split(".", 1)[1]) if "." in num else 0
    return Display(text=text, value=float(num) * factor, unit=unit, resolution=10.0**-decimals * factor)


Probe = Callable[[float], Display]


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v * 1000:g} ms" if abs(v) < 1 else f"{v:g} s"
    if unit == "ratio":
        return f"{v:g}:1"
    return f"{v:g} {unit}".strip()


@dataclass
class DisplayLaw:
    """What is known of one parameter's raw -> display mapping: sampled points, monotone by assumption."""

    name: str
    raw_min: float
    raw_max: float
    quantized: bool
    samples: dict[float, Display] = field(default_factory=dict)
    max_probes: int = 40

    def _grid(self) -> list[float]:
        if self.quantized and self.raw_max - self.raw_min <= 64:
            return [float(v) for v in range(math.ceil(self.raw_min), math.floor(self.raw_max) + 1)]
        grid = [self.raw_min + (self.raw_max - self.raw_min) * i / 8 for i in range(9)]
        # A quantized parameter rounds what it is given: probe the values it will really hold.
        return sorted({float(round(r)) for r in grid}) if self.quantized else grid

    def learn(self, probe: Probe) -> None:
        for raw in self._grid():
            if raw not in self.samples:
                self.samples[raw] = probe(raw)

    def steps(self, probe: Probe) -> list[float] | None:
        """The values a stepped or quantized parameter can show, or None for a continuous one.

        A law is stepped when the coarse grid already shows a value twice; then a 33-point grid finds
        every step wider than 1/32 of the raw range (Glue's 7 attack steps, 3 ratios).
        """
        self.learn(probe)
        values = [v for _, v in self.numeric_points()]
        if not self.quantized and len(set(values)) == len(values):
            return None
        if not self.quantized:
            for i in range(33):
                raw = self.raw_min + (self.raw_max - self.raw_min) * i / 32
                if raw not in self.samples:
                    self.samples[raw] = probe(raw)
        return sorted({v for _, v in self.numeric_points()})

    def numeric_points(self) -> list[tuple[float, float]]:
        return sorted((r, d.value) for r, d in self.samples.items() if d.numeric and d.value is not None)

    def unit(self) -> str:
        for d in self.samples.values():
            if d.numeric:
                return d.unit
        return ""

    def physical_range(self) -> tuple[float, float]:
        values = [v for _, v in self.numeric_points()]
        if not values:
            raise UnsettableValue(
                f"{self.name} shows no numbers (e.g. {next(iter(self.samples.values())).text!r})"
            )
        return min(values), max(values)

    def range_slack(self) -> tuple[float, float]:
        """Half a display digit at each end of the range: how far past an end a request may lie and still
        show as that end (a log law reads "1.0 ms" at the bottom but "1.00 s" at the top)."""
        points = self.numeric_points()
        lo_raw = min(points, key=lambda p: p[1])[0]
        hi_raw = max(points, key=lambda p: p[1])[0]
        return self.samples[lo_raw].resolution / 2, self.samples[hi_raw].resolution / 2

    def describe_range(self) -> str:
        lo, hi = self.physical_range()
        u = self.unit()
        return f"{_fmt(lo, u)} .. {_fmt(hi, u)}"

    def solve(self, target: float, probe: Probe) -> tuple[float, Display]:
        """Find and set a raw value whose display shows `target`; the last probe is the read-back."""
        self.learn(probe)
        lo_v, hi_v = self.physical_range()
        lo_slack, hi_slack = self.range_slack()
        if target < lo_v - lo_slack - 1e-12 or target > hi_v + hi_slack + 1e-12:
            raise UnsettableValue(
                f"{_fmt(target, self.unit())} is outside {self.name}'s range {self.describe_range()}"
            )
        probes = 0
        while True:
            points = self.numeric_points()
            # Exact hit among what we already know: set it and confirm.
            for raw, value in points:
                d = self.samples[raw]
                if abs(value - target) <= d.resolution / 2 + 1e-9:
                    seen = probe(raw)
                    self.samples[raw] = seen
                    if self._shows(seen, target):
                        return raw, seen
            bracket = self._bracket(points, target)
            if bracket is None or probes >= self.max_probes:
                near = sorted(points, key=lambda p: abs(p[1] - target))[:2]
                shown = ", ".join(self.samples[r].text for r, _ in near)
                raise UnsettableValue(
                    f"{self.name} cannot show {_fmt(target, self.unit())}; the nearest settings show {shown}"
                )
            (r0, v0), (r1, v1) = bracket
            raw = r0 + (target - v0) * (r1 - r0) / (v1 - v0) if v1 != v0 else (r0 + r1) / 2
            # Keep strictly inside the bracket (regula falsi can stall at an end on stepped laws).
            span = r1 - r0
            raw = min(max(raw, r0 + span * 0.02), r1 - span * 0.02)
            if probes % 3 == 2:
                raw = (r0 + r1) / 2
            if self.quantized:
                inner = [float(v) for v in range(math.floor(r0) + 1, math.ceil(r1))]
                if not inner:
                    raise UnsettableValue(
                        f"{self.name} cannot show {_fmt(target, self.unit())}; the nearest settings show "
                        f"{self.samples[r0].text}, {self.samples[r1].text}"
                    )
                raw = min(inner, key=lambda v: abs(v - raw))
            if abs(r1 - r0) < 1e-7 * max(1.0, abs(self.raw_max - self.raw_min)):
                raise UnsettableValue(
                    f"{self.name} cannot show {_fmt(target, self.unit())}; the nearest settings show "
                    f"{self.samples[r0].text}, {self.samples[r1].text}"
                )
            seen = probe(raw)
            self.samples[raw] = seen
            probes += 1
            if self._shows(seen, target):
                return raw, seen

    @staticmethod
    def _shows(d: Display, target: float) -> bool:
        return d.numeric and d.value is not None and abs(d.value - target) <= d.resolution / 2 + 1e-9

    @staticmethod
    def _bracket(points: list[tuple[float, float]], target: float) -> tuple[tuple[float, float], ...] | None:
        for (r0, v0), (r1, v1) in itertools.pairwise(points):
            if min(v0, v1) <= target <= max(v0, v1) and v0 != v1:
                return (r0, v0), (r1, v1)
        return None
