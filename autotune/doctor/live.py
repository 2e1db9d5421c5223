"""The doctor's checks that ask Live: reachable, its version, the track, the chain, the fader, the
parameters' read-back and the displays the model reads.

They need a Live that answers; `autotune.doctor.run` reports the checks that do not (the export method, the
output folder) even when these cannot run.
"""

from __future__ import annotations

from collections.abc import Callable

from autotune.chainstate import read_state
from autotune.config import SweepConfig
from autotune.doctor.check import Check
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import LiveError, LiveErrorReply, LiveReadError, LiveTimeout
from autotune.live.tracks import Track, resolve_track
from autotune.vocabulary.fader import FADER_0DB, fader_db
from autotune.vocabulary.roles import device_roles


def _named(config: SweepConfig, word: str) -> str | None:
    """The alias of the configured device whose name contains `word` (e.g. the limiter)."""
    return next((a for a, n in config.device_names.items() if word in n.lower()), None)


def check_chain(live: LiveSet, track: Track, config: SweepConfig, names: list[str]) -> list[Check]:
    """Devices present, the Limiter last and after the compressor, every configured device switched on."""
    out: list[Check] = []
    index = {
        a: next((i for i, n in enumerate(names) if n.lower() == dev.lower()), None)
        for a, dev in config.device_names.items()
    }
    missing = [config.device_names[a] for a, i in index.items() if i is None]
    if missing:
        found = ", ".join(repr(n) for n in names) or "no devices"
        out.append(
            Check(
                "devices found",
                "fail",
                f"{', '.join(missing)} not on track {track.label} (found: {found})",
                "add the device to the track, or set device_names to its name in Live",
            )
        )
        return out
    out.append(
        Check("devices found", "ok", ", ".join(f"{config.device_names[a]} at {i}" for a, i in index.items()))
    )
    lim, glue = _named(config, "limiter"), _named(config, "glue") or _named(config, "compressor")
    if lim is not None:
        li = index[lim]
        assert li is not None
        after = names[li + 1 :]
        if glue is not None and (gi := index[glue]) is not None and gi > li:
            out.append(
                Check(
                    "limiter last",
                    "fail",
                    f"{names[li]} comes before {names[gi]}",
                    f"drag {names[gi]} in front of {names[li]}: the limiter must see the compressor's makeup gain",
                )
            )
        elif after:
            out.append(
                Check(
                    "limiter last",
                    "fail",
                    f"after {names[li]}: {', '.join(after)}",
                    f"move {names[li]} to the end of the chain: devices after it can push peaks past its ceiling",
                )
            )
        else:
            out.append(Check("limiter last", "ok", f"{names[li]} is the last device"))
    off = []
    for alias, i in index.items():
        assert i is not None
        params = live.parameters(track, i)
        on = next((p for p in params if p.name == "Device On"), None)
        if on is not None and on.value < 0.5:
            off.append(config.device_names[alias])
    if off:
        out.append(
            Check(
                "devices on",
                "fail",
                f"switched off: {', '.join(off)}",
                f"switch {', '.join(off)} on (its Device On button)",
            )
        )
    else:
        out.append(Check("devices on", "ok", "every configured device is on"))
    return out


def check_fader(live: LiveSet, track: Track) -> Check:
    try:
        v = live.volume(track)
    except (LiveErrorReply, LiveTimeout) as e:
        return Check(
            "fader 0 dB",
            "warn",
            f"cannot read the fader over OSC ({e})",
            "set it to 0.0 dB by hand; sweep and optimize ask you to confirm in a terminal",
        )
    if abs(v - FADER_0DB) <= 1e-3:
        return Check("fader 0 dB", "ok", f"raw {v:.3f} (0.0 dB)")
    return Check(
        "fader 0 dB",
        "warn",
        f"raw {v:.3f} (about {fader_db(v):+.1f} dB): the fader comes after the limiter",
        "sweep and optimize set it to 0 dB before every export; leave it there afterwards",
    )


def check_readback(live: LiveSet, track: Track, config: SweepConfig, log: Callable[[str], None]) -> Check:
    """Write every configured parameter's current raw value back and read it: nothing changes, and a
    parameter held by automation or a MIDI mapping shows up before an export is spent on it."""
    chain = MasterChain(live, track, config.device_names, lambda _: None)
    chain.resolve()
    keys = {(a, k) for a, ks in config.physical_keys().items() for k in ks} | {
        (a, k) for a, ks in (config.search or {}).items() for k in ks
    }
    bad = []
    for alias, key in sorted(keys):
        slot = chain.slot(alias, key)
        d, p = slot.device_index, slot.param.index
        before, shown = live.value(track, d, p), live.value_string(track, d, p)
        live.set_value(track, d, p, before)
        after, shown_after = live.value(track, d, p, after_send=True), live.value_string(track, d, p)
        if (
            abs(after - before) > 1e-5 * max(1.0, abs(slot.param.max - slot.param.min))
            or shown != shown_after
        ):
            bad.append(
                f"{slot.device_name} {slot.param.name}: wrote {before:g} ({shown}), read {after:g} ({shown_after})"
            )
    if bad:
        return Check(
            "parameter read-back",
            "fail",
            "; ".join(bad),
            "remove automation or MIDI/remote mappings on these parameters",
        )
    return Check("parameter read-back", "ok", f"{len(keys)} parameters read back as written")


def live_checks(osc: OscClient, config: SweepConfig, log: Callable[[str], None]) -> list[Check]:
    checks: list[Check] = []
    try:
        osc.ping()
    except LiveTimeout as e:
        return [
            Check(
                "Live reachable",
                "fail",
                str(e),
                "start Live with AbletonOSC selected as a Control Surface (Preferences → Link, Tempo & MIDI); "
                "check AUTOTUNE_HOST / AUTOTUNE_PORT and that nothing else holds the reply port",
            )
        ]
    checks.append(Check("Live reachable", "ok", f"{osc.host}:{osc.port} answers /live/test"))
    try:
        version = osc.query("/live/application/get/version")
        checks.append(Check("Live version", "ok", "Live " + ".".join(str(v) for v in version)))
    except (LiveErrorReply, LiveTimeout):
        checks.append(
            Check("Live version", "warn", "AbletonOSC did not report Live's version", "update AbletonOSC")
        )
    try:
        track = resolve_track(osc, config.chain_track())
    except LiveReadError as e:
        checks.append(Check("track addressing", "fail", str(e), "see README: Using a real Live"))
        return checks
    checks.append(Check("track addressing", "ok", f"track {track.label} ({track.style})"))
    live = LiveSet(osc)
    names = live.device_names(track)
    checks += check_chain(live, track, config, names)
    if any(c.status == "fail" and c.name == "devices found" for c in checks):
        return checks
    checks.append(check_fader(live, track))
    try:
        checks.append(check_readback(live, track, config, log))
    except LiveError as e:
        checks.append(Check("parameter read-back", "fail", str(e), "fix the config's parameter names"))
    checks.append(check_readings(live, track, config, log))
    return checks


def check_readings(live: LiveSet, track: Track, config: SweepConfig, log: Callable[[str], None]) -> Check:
    """Every display the model reads, in Live's conventions: one it does not understand is named here
    before a search predicts from it."""
    roles = device_roles(config.device_names)
    if not roles:
        return Check("model readings", "ok", "no Glue Compressor or Limiter: the model is not used")
    chain = MasterChain(live, track, config.device_names, log)
    try:
        chain.resolve()
        _, findings = read_state(chain.read_text, roles)
    except LiveError as e:
        return Check("model readings", "warn", f"cannot read the chain: {e}")
    if not findings:
        return Check("model readings", "ok", "every display the model reads is in Live's conventions")
    return Check(
        "model readings",
        "warn",
        "; ".join(f.describe() for f in findings),
        "check those parameters in Live (or report the display if it is Live's own): the model uses its "
        "default for them",
    )
