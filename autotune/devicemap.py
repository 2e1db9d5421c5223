"""`autotune device-map`: every device's parameter table on the chain's track, with its display law.

The law is learnt the only way AbletonOSC allows, by setting raw values and reading `value_string`; each
parameter is put back to the raw value it had. Tables are cached as JSON under `data/registry/` (the
original tool's troubleshooting path), so a config can be written against the names Live really uses.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, ParamInfo
from autotune.live.tracks import Track
from autotune.vocabulary.display import DisplayLaw, parse_display


def describe_law(law: DisplayLaw) -> str:
    points = law.numeric_points()
    words = sorted({d.text for d in law.samples.values() if not d.numeric})
    unit = law.unit()
    if not points:
        return "words: " + "/".join(words)
    values = [v for _, v in points]
    distinct = sorted(set(values))
    if law.quantized or len(distinct) < len(values):
        shown = ", ".join(f"{v:g}" for v in distinct)
        return f"stepped {{{shown}}} {unit}".strip() + (f" + {'/'.join(words)}" if words else "")
    (r0, v0), (r1, v1) = points[0], points[-1]
    slope = (v1 - v0) / (r1 - r0) if r1 != r0 else 0.0
    res = max((d.resolution for d in law.samples.values() if d.numeric), default=0.0)
    if all(abs(v0 + slope * (r - r0) - v) <= res + 1e-9 for r, v in points):
        if abs(slope - 1.0) < 1e-6 and abs(v0 - r0) <= res:
            return f"raw = {unit or 'value'}"
        return f"linear: raw {r0:g}..{r1:g} -> {v0:g}..{v1:g} {unit}".strip()
    if all(v > 0 for v in values) and r1 != r0:
        k = (math.log(v1) - math.log(v0)) / (r1 - r0)
        if all(abs(math.log(v) - (math.log(v0) + k * (r - r0))) <= 0.02 for r, v in points):
            return f"logarithmic: raw {r0:g}..{r1:g} -> {v0:g}..{v1:g} {unit}".strip()
    return f"non-linear {unit}: inverted by search".strip()


def map_device(live: LiveSet, track: Track, device: int, learn: bool = True) -> list[dict[str, Any]]:
    rows = []
    for p in live.parameters(track, device):
        shown = live.value_string(track, device, p.index)
        row: dict[str, Any] = {
            "index": p.index,
            "name": p.name,
            "min": p.min,
            "max": p.max,
            "is_quantized": p.is_quantized,
            "value": p.value,
            "display": shown,
            "law": None,
        }
        if learn and p.name != "Device On":
            row["law"] = _learn(live, track, device, p)
        rows.append(row)
    return rows


def _learn(live: LiveSet, track: Track, device: int, p: ParamInfo) -> str:
    law = DisplayLaw(p.name, p.min, p.max, p.is_quantized)

    def probe(raw: float) -> Any:
        live.set_value(track, device, p.index, raw)
        return parse_display(live.value_string(track, device, p.index, after_send=True))

    try:
        law.learn(probe)
    finally:
        live.set_value(track, device, p.index, p.value)  # put it back as it was
    return describe_law(law)


def cache_path(data_dir: Path, track: Track, device: int) -> Path:
    label = re.sub(r"[^A-Za-z0-9-]+", "_", str(track.arg if track.arg is not None else "master")).strip("_")
    return data_dir / "registry" / f"device_map_t{label}_d{device}.json"


def device_map(
    osc: OscClient, track: Track, data_dir: Path, learn: bool = True
) -> list[tuple[str, Path, list[dict[str, Any]]]]:
    live = LiveSet(osc)
    out = []
    for d, name in enumerate(live.device_names(track)):
        rows = map_device(live, track, d, learn)
        path = cache_path(data_dir, track, d)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"track": track.label, "addressing": track.style, "device": d, "name": name, "parameters": rows}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(path)
        out.append((name, path, rows))
    return out
