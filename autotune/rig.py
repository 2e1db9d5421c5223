"""Preparing the rig before any export: reach Live, resolve the chain, check every value of the config,
put back devices a killed dry reference left off, and fingerprint the Live set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autotune import modelsearch
from autotune.backends import reach_live
from autotune.config import SweepConfig
from autotune.doctor import preflight
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import LiveError
from autotune.live.tracks import resolve_track
from autotune.settings import Settings
from autotune.trial import (
    Rig,
)
from autotune.trials import (
    Log,
)


def prepare_chain(osc: OscClient, config: SweepConfig, settings: Settings, log: Log) -> MasterChain:
    """Reach Live, resolve devices and parameters, and check every value of the config before any export."""
    reach_live(osc)
    track = resolve_track(osc, config.chain_track())
    chain = MasterChain(LiveSet(osc), track, config.device_names, log)
    chain.resolve()
    _switch_on_after_interrupted_reference(chain, config, settings, log)
    preflight(chain, config, settings)
    keys = {(a, k) for a, ks in config.physical_keys().items() for k in ks}
    keys |= {(a, k) for a, ks in config.search_keys().items() for k in ks}
    chain.snapshot(sorted(keys))  # before any probing moves them
    for i, run in enumerate(config.runs):
        for alias, values in run.devices.items():
            for key, value in values.items():
                chain.check(alias, key, value, f"runs[{i}]")
    return chain


def devices_off_marker(settings: Settings) -> Path:
    return settings.cache_dir / "references" / "devices-off.json"


def _switch_on_after_interrupted_reference(
    chain: MasterChain, config: SweepConfig, settings: Settings, log: Log
) -> None:
    """A dry reference export killed before it could switch the devices on again left this marker: switch
    them on now (the preflight would only ask the producer to do it by hand)."""
    marker = devices_off_marker(settings)
    try:
        left = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(left, dict) or left.get("track") != chain.track.label:
        return
    if left.get("devices") != dict(config.device_names):
        return
    for alias in config.device_names:
        chain.switch(alias, True)
    marker.unlink(missing_ok=True)
    log("  (an interrupted dry reference export had left the devices off: switched on again)")


def confirm_by_hand(message: str) -> None:
    """Interactive runs only: the producer does by hand what OSC could not."""
    input(f"  ⚠ {message}... ")


def set_fingerprint(rig: Rig) -> str:
    """What Live says about the set: track names, the chain's devices, tempo and length where answered."""
    osc, chain = rig.chain.live.osc, rig.chain
    parts: dict[str, Any] = {
        "track": chain.track.label,
        "devices": chain.live.device_names(chain.track),
        "config_devices": dict(rig.config.device_names),
    }
    for what in ("track_names", "tempo", "song_length"):
        try:
            parts[what] = list(osc.query(f"/live/song/get/{what}", timeout=1.0, retries=0))
        except LiveError:
            parts[what] = None
    span = getattr(rig.exporter, "capture_span", None)
    if span is not None:  # a dry reference captured over one span is not another span's
        parts["capture_span"] = span
    return modelsearch.fingerprint(parts)
