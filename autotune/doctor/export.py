"""The doctor's checks of where an export goes and what the last one said: the export method `--export`
resolves to (and whether it can work on this computer), the output folder, and the latest receipt's
diagnosis. None of them needs Live.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import tempfile

from autotune.backends import export_method
from autotune.config import SweepConfig
from autotune.doctor.check import Check
from autotune.live.export import CommandExporter
from autotune.live.resample import CAPTURE_TRACK
from autotune.settings import Settings


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
