"""`autotune doctor`: check the rig before spending exports, with a fix for every failure.

The original tool lost most of its real sessions to things a checklist catches: a fader after the limiter,
edits going to the wrong chain, a bypassed device, exports that never appeared. `sweep` and `optimize` run
the fast, read-only part of this list (`preflight`) before their first export.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from autotune.audio import AnalysisError, analyze_file
from autotune.backends import export_method, resample_session
from autotune.chainstate import Role, device_role, read_state
from autotune.config import SweepConfig
from autotune.dsp.chain import live_fader_db
from autotune.live.client import OscClient
from autotune.live.devices import FADER_0DB, LiveSet, MasterChain
from autotune.live.errors import ExportFailed, LiveError, LiveErrorReply, LiveReadError, LiveTimeout
from autotune.live.export import CommandExporter
from autotune.live.resample import CAPTURE_TRACK, RESAMPLING, SILENCE_DBFS, CaptureSetupError, Span
from autotune.live.tracks import Track, resolve_track
from autotune.settings import Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


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
        f"raw {v:.3f} (about {live_fader_db(v):+.1f} dB): the fader comes after the limiter",
        "sweep and optimize set it to 0 dB before every export; leave it there afterwards",
    )


def check_export(settings: Settings, config: SweepConfig) -> Check:
    """The export method `--export` resolves to (`backends.export_method`), and whether it can work here."""
    method = export_method(settings, config)
    auto = settings.export == "auto"
    if method == "sim":
        return Check("export method", "ok", "the virtual Live's export")
    if method == "resample":
        cap = config.auto_export.capture
        span = cap if isinstance(cap, str) else f"beats {cap.start_beats:g} + {cap.length_beats:g}"
        return Check(
            "export method",
            "ok",
            f"resampling over AbletonOSC (capture: {span}, in real time) on track {CAPTURE_TRACK!r}",
            "no UI scripting, any OS; Live must run on this computer (its takes are read from its disk)",
        )
    if method == "manual":
        why = " (auto_export is off)" if auto else ""
        return Check(
            "export method", "ok", f"by hand{why}: you will be prompted with the file name for each export"
        )
    if method == "command":
        if not settings.export_command:
            return Check(
                "export method",
                "fail",
                "--export command without --export-command",
                "give --export-command 'PROGRAM {path}'",
            )
        try:
            CommandExporter(settings.export_command)
        except ValueError as e:
            return Check(
                "export method", "fail", str(e), "quote it like a shell would and name the file as {path}"
            )
        program = shlex.split(settings.export_command)[0]
        if shutil.which(program) is None and not os.access(program, os.X_OK):
            return Check(
                "export method",
                "fail",
                f"export program {program!r} not found",
                "install it or give its full path",
            )
        return Check("export method", "ok", f"command: {settings.export_command}")
    # AppleScript: asked for with --export applescript, or `auto` on a real Live with auto_export on
    if not auto:
        asked = "--export applescript (or AUTOTUNE_EXPORT)"
        instead = "use --export manual (by hand) or --export-command 'PROGRAM {path}'"
    else:
        on = "on" if config.auto_export.enabled else "on by default on macOS"
        asked = f'the config\'s "auto_export" ({on})'
        instead = (
            'set "auto_export": {"enabled": false} in the config (export by hand), or give --export-command'
        )
    if platform.system() != "Darwin":
        here = platform.system() or "an unknown system"
        return Check(
            "export method",
            "fail",
            f"AppleScript export, asked for by {asked}, needs macOS; this is {here}",
            instead,
        )
    if shutil.which("osascript") is None:
        return Check(
            "export method", "fail", f"AppleScript export, asked for by {asked}: osascript not found", instead
        )
    return Check(
        "export method",
        "ok",
        "AppleScript via osascript",
        "the first export asks for permission: allow your terminal in System Settings → Privacy & Security → "
        "Accessibility and → Automation (System Events)",
    )


def check_output(settings: Settings) -> Check:
    try:
        settings.output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.output_dir, prefix=".doctor-"):
            pass
    except OSError as e:
        return Check(
            "output folder",
            "fail",
            f"{settings.output_dir} is not writable: {e.strerror or e}",
            "fix its permissions or set AUTOTUNE_OUTPUT_DIR / --output-dir",
        )
    return Check("output folder", "ok", f"{settings.output_dir}/ is writable")


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


def run_doctor(
    osc: OscClient, config: SweepConfig, settings: Settings, log: Callable[[str], None]
) -> list[Check]:
    """Every check, in order. The export method and the output folder need no Live: they are reported even
    when Live cannot be reached or the chain cannot be read, so one run shows every problem it can."""
    last = check_last_export(settings)
    live = _live_checks(osc, config, log)
    reachable = bool(live) and live[0].name == "Live reachable" and live[0].status == "ok"
    route = (
        check_resample(osc, config, settings, log)
        if reachable and export_method(settings, config) == "resample"
        else []
    )
    return [
        *live,
        check_export(settings, config),
        *route,
        check_output(settings),
        *([last] if last is not None else []),
    ]


#: Seconds the doctor's test recording lasts.
TEST_CAPTURE_S = 1.0


def check_resample(
    osc: OscClient, config: SweepConfig, settings: Settings, log: Callable[[str], None]
) -> list[Check]:
    """The capture route of `--export resample`, tried for real: the Resampling input type exists, the
    capture track arms, and a 1 s test recording appears and is not silent. The Set is put back afterwards
    exactly as the runs do it (the test's clip and take deleted, a track made for the test removed)."""
    session = resample_session(settings, config, osc, lambda _: None)
    session.keep_takes = False
    out: list[Check] = []
    try:
        try:
            session.prepare()
        except CaptureSetupError as e:
            if e.check == "capture arm":  # the routing came before the arm and was confirmed
                out.append(
                    Check("capture routing", "ok", f"{CAPTURE_TRACK!r} takes {RESAMPLING!r} as its input")
                )
            return [*out, Check(e.check, "fail", e.detail, e.fix)]
        out.append(
            Check(
                "capture routing",
                "ok",
                f"{CAPTURE_TRACK!r} takes {RESAMPLING!r} as its input, monitoring Off",
            )
        )
        out.append(
            Check(
                "capture arm", "ok", f"{CAPTURE_TRACK!r} is armed (other armed tracks are disarmed for a run)"
            )
        )
        assert session.span is not None
        tempo = float(osc.query("/live/song/get/tempo")[0])
        test = Span(session.span.start_beats, TEST_CAPTURE_S * tempo / 60.0, "the doctor's test")
        target = settings.output_dir / ".doctor-capture.wav"
        try:
            session.capture(target, test)
            m = analyze_file(target)
        except ExportFailed as e:
            return [
                *out,
                Check(
                    "capture test", "fail", f"the {TEST_CAPTURE_S:g} s test recording failed: {e}", _TEST_FIX
                ),
            ]
        except AnalysisError as e:
            silent = "silent" in str(e)
            return [
                *out,
                Check(
                    "capture test",
                    "fail",
                    f"the {TEST_CAPTURE_S:g} s test recording from beat {test.start_beats:g} "
                    + ("is silent" if silent else f"cannot be measured: {e}"),
                    "play the Set from that beat: the main output must sound there (Resampling records it post "
                    "master fader); or capture another span"
                    if silent
                    else _TEST_FIX,
                ),
            ]
        finally:
            target.unlink(missing_ok=True)
        if m.peak_dbfs <= SILENCE_DBFS:
            return [
                *out,
                Check(
                    "capture test",
                    "fail",
                    f"the test recording peaks at {m.peak_dbfs:.1f} dBFS: silence",
                    _TEST_FIX,
                ),
            ]
        return [
            *out,
            Check(
                "capture test",
                "ok",
                f"a {TEST_CAPTURE_S:g} s test recording from beat {test.start_beats:g} appeared: "
                f"{m.lufs_i:.1f} LUFS, peak {m.peak_dbfs:.1f} dBFS, {m.sample_rate} Hz",
            ),
        ]
    except LiveError as e:
        return [*out, Check("capture test", "fail", str(e), _TEST_FIX)]
    finally:
        session.restore()


_TEST_FIX = "check the capture track in Live (armed, Audio From Resampling, an empty clip slot) and the Set's Samples/Recorded folder"


def _live_checks(osc: OscClient, config: SweepConfig, log: Callable[[str], None]) -> list[Check]:
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
    roles: dict[str, Role] = {}
    for alias, name in config.device_names.items():
        role = device_role(name)
        if role is not None:
            roles[alias] = role
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


def check_last_export(settings: Settings) -> Check | None:
    """What the latest export said about the rig (gain after the chain, a first prediction far off)."""
    try:
        lines = settings.receipts_path().read_text().splitlines()[-200:]
    except OSError:
        return None
    for line in reversed(lines):
        try:
            receipt = json.loads(line)
        except ValueError:
            continue
        if not isinstance(receipt, dict) or receipt.get("status") != "ok":
            continue
        said = receipt.get("diagnosis")
        if not said:
            return None
        return Check(
            "last export",
            "warn",
            f"{receipt.get('export_file')}: " + "; ".join(str(s) for s in said),
            "set the fader after the chain to 0 dB by hand (over stock AbletonOSC the master fader can be "
            "neither read nor set)"
            if any("after the chain" in str(s) for s in said)
            else "see the receipt's diagnosis",
        )
    return None


def preflight(chain: MasterChain, config: SweepConfig, settings: Settings) -> None:
    """The fast, read-only checks before the first export; a blocking failure stops the run (exit 20)."""
    names = chain.live.device_names(chain.track)
    checks = [
        *check_chain(chain.live, chain.track, config, names),
        check_export(settings, config),
        check_output(settings),
    ]
    for c in checks:
        if c.status == "fail":
            raise LiveReadError(f"{c.name}: {c.detail}; {c.fix} (autotune doctor checks the whole rig)")
