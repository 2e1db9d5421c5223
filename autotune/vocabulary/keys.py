"""Config keys: the unit a key's suffix names, and the names Live gives the parameter it sets.

A config says `threshold_db: -20` or `attack_ms: 10`; the suffix, not the device, says what the number
means, so the writer (live), the search space, the samplers and the model all read a key the same way
here rather than each parsing suffixes of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UnitSpec:
    """What a config key's number means: a canonical unit (None: the display's own) and a factor."""

    unit: str | None
    factor: float = 1.0

    def describe(self) -> str:
        return {"dB": "dB", "s": "seconds", "%": "percent", "Hz": "Hz", "ratio": "a ratio"}.get(
            self.unit or "", "the display's unit"
        )


_SUFFIXES: list[tuple[str, UnitSpec]] = [
    ("_db", UnitSpec("dB")),
    ("_ms", UnitSpec("s", 1e-3)),
    ("_khz", UnitSpec("Hz", 1e3)),
    ("_hz", UnitSpec("Hz")),
    ("_pct", UnitSpec("%")),
    ("_percent", UnitSpec("%")),
    ("_s", UnitSpec("s")),
]
_BARE: dict[str, UnitSpec] = {
    "ratio": UnitSpec("ratio"),
    "attack": UnitSpec("s"),
    "release": UnitSpec("s"),
    "release_time": UnitSpec("s"),
}


def split_key(key: str) -> tuple[str, UnitSpec]:
    """`threshold_db` -> ("threshold", dB); `release` -> ("release", seconds); `dry_wet` -> as displayed."""
    k = key.lower()
    for suffix, spec in _SUFFIXES:
        if k.endswith(suffix) and len(k) > len(suffix):
            return k[: -len(suffix)], spec
    return k, _BARE.get(k, UnitSpec(None))


#: Config key (unit suffix removed) -> device parameter names across Live 11, 12.0 and 12.1: one config
#: runs on every build, since Live renamed some parameters between them.
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "threshold": ("Threshold",),
    "makeup": ("Makeup",),
    "gain": ("Gain", "Input Gain"),
    "input_gain": ("Input Gain", "Gain"),
    "ceiling": ("Ceiling",),
    "release": ("Release", "Release time", "Release Time"),
    "ratio": ("Ratio",),
    "attack": ("Attack",),
    "range": ("Range",),
    "dry_wet": ("Dry/Wet",),
    "lookahead": ("Lookahead",),
}
