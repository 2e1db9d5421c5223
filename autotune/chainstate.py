"""The chain as Live shows it, read by meaning: what each display says in Live's own conventions.

A model that predicts what a setting does must read every parameter the way Live's manual defines it, not
in a convention of its own: Glue Compressor's Range is shown in negative dB (-70 dB emulates the hardware,
0 dB means no compression), its Release has a last step "Auto", the Limiter's `Auto` means the device sets
its own release. A display the model does not understand (a word, an unexpected sign, a unit it has never
seen) is reported as a `Finding`, with the parameter, the display and what was expected, so `doctor` and the
console can say it instead of predicting silently from nonsense.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from autotune.dsp.chain import ChainParams, GlueParams, LimiterParams
from autotune.vocabulary.display import Display, parse_display
from autotune.vocabulary.roles import DEVICE, Role


@dataclass(frozen=True)
class Finding:
    """A reading the model could not take at face value."""

    device: str
    param: str
    display: str
    expected: str
    assumed: str

    def describe(self) -> str:
        return (
            f"{self.device} {self.param} shows {self.display!r}, expected {self.expected}; "
            f"the model assumes {self.assumed}"
        )


@dataclass(frozen=True)
class Reading:
    """How to read one parameter: its config key, the display unit, the field it sets, and its check."""

    key: str
    label: str  # the parameter as Live names it
    field: str
    unit: str  # the unit `parse_display` gives ("dB", "s", "%", "ratio")
    expected: str
    #: display value (in `unit`) -> the field's value, or None when the value is not understood
    meaning: Callable[[float], float | None]


def _in(lo: float, hi: float, scale: float = 1.0) -> Callable[[float], float | None]:
    return lambda v: v * scale if lo <= v <= hi else None


def _range_meaning(v: float) -> float | None:
    # Live shows Range as negative dB: -70 dB lets the compressor reduce by up to 70 dB, 0 dB not at all.
    return -v if -100.0 <= v <= 0.0 else None


READINGS: dict[Role, tuple[Reading, ...]] = {
    "glue": (
        Reading("threshold_db", "Threshold", "threshold_db", "dB", "a level in dB, -40..0", _in(-60.0, 0.0)),
        Reading("ratio", "Ratio", "ratio", "ratio", "a ratio such as 4.00 : 1", _in(1.0, 100.0)),
        Reading("attack_ms", "Attack", "attack_ms", "s", "a time in ms", _in(0.0, 1.0, 1000.0)),
        Reading("release_s", "Release", "release_s", "s", "a time in s, or Auto", _in(0.0, 10.0)),
        Reading("makeup_db", "Makeup", "makeup_db", "dB", "a gain in dB, 0..20", _in(-30.0, 40.0)),
        Reading(
            "range_db",
            "Range",
            "range_db",
            "dB",
            "negative dB, -70..0 (0 dB: no compression)",
            _range_meaning,
        ),
        Reading("dry_wet", "Dry/Wet", "dry_wet", "%", "a percentage, 0..100 %", _in(0.0, 100.0, 0.01)),
    ),
    "limiter": (
        Reading("gain_db", "Gain", "gain_db", "dB", "a gain in dB", _in(-60.0, 60.0)),
        Reading("ceiling_db", "Ceiling", "ceiling_db", "dB", "a level in dB, at most 0", _in(-60.0, 0.0)),
        Reading("release_ms", "Release", "release_ms", "s", "a time in ms or s", _in(0.0, 10.0, 1000.0)),
        Reading("lookahead_ms", "Lookahead", "lookahead_ms", "s", "a time in ms", _in(0.0, 0.1, 1000.0)),
    ),
}
SWITCH_WORDS = {"on": True, "off": False}
LIMITER_MODES: dict[str, Literal["standard", "soft_clip", "true_peak"]] = {
    "standard": "standard",
    "soft clip": "soft_clip",
    "true peak": "true_peak",
}


def _default(role: Role, name: str) -> Any:
    return getattr(GlueParams() if role == "glue" else LimiterParams(), name)


def read_state(
    read_text: Callable[[str, str], str], device_roles: Mapping[str, Role]
) -> tuple[ChainParams, list[Finding]]:
    """The chain Live holds now and what in it was not understood. A parameter this Live build lacks keeps
    the model's default; one whose display is not understood keeps the default too, and is reported."""
    glue: dict[str, Any] = {}
    lim: dict[str, Any] = {}
    findings: list[Finding] = []
    for alias, role in device_roles.items():
        out = glue if role == "glue" else lim
        device = DEVICE[role]
        for r in READINGS[role]:
            try:
                text = read_text(alias, r.key)
            except Exception:  # the build has no such parameter: the model's default stands
                continue
            shown: Display = parse_display(text)
            if r.field == "release_s" and shown.value is None and text.strip().lower() == "auto":
                out["release_s"] = None  # Glue's Auto release: a word Live really shows
                continue
            value = (
                r.meaning(shown.value)
                if shown.value is not None and math.isfinite(shown.value) and shown.unit == r.unit
                else None
            )
            if value is None:
                findings.append(
                    Finding(device, r.label, text, r.expected, f"{_default(role, r.field)!r} ({r.field})")
                )
                continue
            out[r.field] = value
        words = (
            (("auto", "Auto", "auto_release"), ("mode", "Mode", "mode"))
            if role == "limiter"
            else (("peak_clip_in", "Peak Clip In", "peak_clip"),)
        )
        for key, label, name in words:
            try:
                text = read_text(alias, key)
            except Exception:
                continue
            word = text.strip().lower()
            if name == "mode":
                if word in LIMITER_MODES:
                    out[name] = LIMITER_MODES[word]
                    continue
                expected = "Standard, Soft Clip or True Peak"
            elif word in SWITCH_WORDS:
                out[name] = SWITCH_WORDS[word]
                continue
            else:
                expected = "On or Off"
            findings.append(Finding(device, label, text, expected, f"{_default(role, name)!r} ({name})"))
        if role == "limiter":
            findings.extend(_check_link(read_text, alias))
    p = ChainParams()
    return replace(p, glue=replace(p.glue, **glue), limiter=replace(p.limiter, **lim)), findings


def _check_link(read_text: Callable[[str, str], str], alias: str) -> list[Finding]:
    """Stereo link (Live 12 `Link`, Live 11 `Link Channels`): the model limits both channels together;
    in L/R mode each channel is limited on its own and the chain gets louder than it predicts."""
    for key, label in (("link", "Link"), ("link_channels", "Link Channels")):
        try:
            text = read_text(alias, key)
        except Exception:
            continue
        word = text.strip().lower()
        if word in ("on", "stereo", "linked"):
            return []
        return [Finding("Limiter", label, text, "On (stereo linked)", "linked channels")]
    return []
