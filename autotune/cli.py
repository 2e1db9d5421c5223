"""Thin CLI: parse, call the library, print with rich, map errors to the spec's exit codes (0, 20, 30), plus
40 when model-based search proves the target out of the chain's reach."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial
from rich.console import Console

from autotune import __version__
from autotune.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUT_OF_REACH,
    EXIT_READ,
    AutotuneError,
    ConfigError,
)
from autotune.live.errors import LiveError, LiveTimeout
from autotune.samplers import SAMPLERS
from autotune.settings import Settings, load_settings

if TYPE_CHECKING:
    from autotune.config import SweepConfig
    from autotune.loop import StudyResult

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def log(line: str) -> None:
    console.print(line, markup=False)


def _settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Live connection and storage (default: AUTOTUNE_* environment variables)")
    g.add_argument(
        "--backend",
        choices=["sim", "live"],
        help="sim: the virtual Live in-process; live: Ableton Live over AbletonOSC (AUTOTUNE_BACKEND, sim)",
    )
    g.add_argument("--host", help="host running Live with AbletonOSC (AUTOTUNE_HOST, 127.0.0.1)")
    g.add_argument("--port", type=int, help="AbletonOSC listening port (AUTOTUNE_PORT, 11000)")
    g.add_argument(
        "--reply-port", type=int, help="port this tool listens on for replies (AUTOTUNE_REPLY_PORT, 11001)"
    )
    g.add_argument("--timeout", type=float, help="seconds to wait for each reply (AUTOTUNE_TIMEOUT, 1.0)")
    g.add_argument(
        "--storage", help="Optuna storage URL (AUTOTUNE_STORAGE; default sqlite:///studies/autotune.db)"
    )
    g.add_argument(
        "--output-dir", type=Path, help="folder exports and receipts live in (AUTOTUNE_OUTPUT_DIR, output)"
    )
    g.add_argument(
        "--export",
        choices=["auto", "sim", "manual", "applescript", "command", "resample"],
        help="how exports are made (AUTOTUNE_EXPORT, auto): auto is sim on --backend sim; on a real Live "
        "applescript when the config's auto_export is on (the default on macOS), else manual; "
        "--export-command alone means command",
    )
    g.add_argument(
        "--export-command",
        help="program that writes the export, {path} being the file, e.g. 'render.sh {path}' "
        "(AUTOTUNE_EXPORT_COMMAND)",
    )


_SETTING_FLAGS = (
    "backend",
    "host",
    "port",
    "reply_port",
    "timeout",
    "storage",
    "output_dir",
    "export",
    "export_command",
)


def _settings(ns: argparse.Namespace) -> Settings:
    """AUTOTUNE_* settings with the flags this command has on top."""
    return load_settings(**{k: getattr(ns, k, None) for k in _SETTING_FLAGS})


def _summary(result: StudyResult, config: SweepConfig, settings: Settings, started: float) -> None:
    finished = [t for t in result.trials if t.user_attrs.get("status") == "ok"]
    failed = [t for t in result.trials if t.user_attrs.get("status") not in (None, "ok")]
    log("")
    log("=" * 70)
    if result.passed is not None:
        u = result.passed.user_attrs
        log(
            f"✅ TARGET HIT in trial #{result.passed.number} ({u.get('export_file')}): "
            f"LUFS {u['lufs_i']:.2f}, peak {u['peak_dbfs']:.2f} dBFS{_true_peak_text(u)}"
        )
        log(f"  Settings: {_settings_text(result.passed)}")
        _playback(config, u)
    elif result.dry_pass is not None:
        res = result.dry_pass["results"]
        log(
            f"✅ TARGET HIT by the dry mix ({result.dry_pass['export_file']}): LUFS {res['lufs_i']:.2f}, "
            f"peak {res['peak_dbfs']:.2f} dBFS{_true_peak_text(res)} with the chain switched off: no "
            "processing is needed"
        )
        _playback(config, res)
    else:
        log(
            f"No trial hit the target ({config.target_lufs:.2f} LUFS ±{config.lufs_tolerance:g}, "
            f"{config.limits().describe_peak()})."
        )
        if finished:
            best = min(finished, key=lambda t: t.value if t.value is not None else math.inf)
            u = best.user_attrs
            log(
                f"  Closest: {u.get('export_file')} (trial #{best.number}): LUFS {u['lufs_i']:.2f} "
                f"({u['lufs_i'] - config.target_lufs:+.2f} LU), peak {u['peak_dbfs']:.2f} dBFS"
            )
            log(f"  Settings: {_settings_text(best)}")
    if result.out_of_reach is not None and result.passed is None:
        log(f"⛔ TARGET OUT OF REACH: {result.out_of_reach['message']}")
        if result.out_of_reach.get("direction") == "quieter":
            log("  Raise the target, or widen the search ranges downwards (exit code 40).")
        else:
            log("  Lower the target, raise the peak limit, or widen the search ranges (exit code 40).")
    if result.reference_exports:
        log(
            f"  (plus {result.reference_exports} dry reference export for the model; cached for later studies)"
        )
    if failed:
        log(f"  {len(failed)} trial(s) failed: see status and error in {settings.receipts_path()}")
    log(
        f"Study {result.study!r} in {result.storage} ({_count(len(result.trials), 'trial')}); "
        f"{time.monotonic() - started:.1f} s"
    )


def _true_peak_text(results: Mapping[str, Any]) -> str:
    tp = results.get("true_peak_dbtp")
    return f", true peak {tp:.2f} dBTP" if isinstance(tp, (int, float)) else ""


def _playback(config: SweepConfig, results: Mapping[str, Any]) -> None:
    """How the platforms the target came from (--preset) will play the master back."""
    from autotune.platforms import describe_playback

    lufs, tp = results.get("lufs_i"), results.get("true_peak_dbtp")
    if not isinstance(lufs, (int, float)) or not isinstance(tp, (int, float)):
        return
    for platform in config.platforms():
        log(f"  Playback on {describe_playback(platform, float(lufs), float(tp))}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _settings_text(trial: FrozenTrial) -> str:
    receipt = trial.user_attrs.get("receipt") or {}
    params = receipt.get("params") or {}
    parts = [
        f"{a}.{k}={v:g}" for a, vals in params.items() if isinstance(vals, dict) for k, v in vals.items()
    ]
    return ", ".join(parts) or "(none)"


def cmd_sweep(ns: argparse.Namespace) -> int:
    from autotune.config import load_config
    from autotune.study import run

    settings = _settings(ns)
    config = load_config(ns.config, settings.output_dir, presets=ns.preset)
    started = time.monotonic()
    result = run(config, settings, study_name=ns.study or Path(ns.config).stem, restart=ns.restart, log=log)
    _summary(result, config, settings, started)
    return EXIT_OK


def cmd_optimize(ns: argparse.Namespace) -> int:
    from autotune.study import run

    settings = _settings(ns)
    path = _config_path(ns, settings)
    config = _load_config(ns, settings)
    started = time.monotonic()
    result = run(
        config,
        settings,
        study_name=ns.study or f"{path.stem}-optimize",
        mode="optimize",
        restart=ns.restart,
        trials=ns.trials,
        sampler=ns.sampler,
        seed=ns.seed,
        with_runs=ns.with_runs,
        refine=ns.refine,
        fresh_reference=ns.fresh_reference,
        log=log,
    )
    _summary(result, config, settings, started)
    return EXIT_OUT_OF_REACH if result.out_of_reach is not None and result.passed is None else EXIT_OK


_FIRST_STUDY = "run `autotune sweep CONFIG` or `autotune optimize CONFIG` first, or give --storage URL"


def _study_for(ns: argparse.Namespace, settings: Settings) -> optuna.Study:
    from autotune.storage import local_file, open_storage

    url = settings.storage_url()
    local = local_file(url)
    if local is not None and not local.exists():  # reading must not create an empty storage
        raise ConfigError(f"no studies yet: {url} does not exist ({_FIRST_STUDY})")
    storage = open_storage(url)
    names = optuna.get_all_study_names(storage=storage)
    if not names:
        raise ConfigError(f"no studies in {url} yet ({_FIRST_STUDY})")
    listed = ", ".join(names)
    if ns.study is None and len(names) > 1:
        raise ConfigError(f"{url} holds {len(names)} studies: choose one with --study NAME ({listed})")
    name = ns.study or names[0]
    if name not in names:
        raise ConfigError(f"no study {name!r} in {url} (studies: {listed}); use --study NAME")
    return optuna.load_study(study_name=name, storage=storage)


def cmd_report(ns: argparse.Namespace) -> int:
    from autotune.report import table, write_html

    settings = load_settings(storage=ns.storage)
    study = _study_for(ns, settings)
    # A terminal wraps the table to fit; a pipe or a file gets every column whole.
    wide = console if console.is_terminal else Console(width=240, highlight=False)
    wide.print(table(study))
    out = write_html(study, settings.studies_dir / f"{study.study_name}-report.html")
    log(f"Plots written to {out}")
    return EXIT_OK


def cmd_dashboard(ns: argparse.Namespace) -> int:
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    from autotune.storage import local_file, open_storage

    settings = load_settings(storage=ns.storage)
    url = settings.storage_url()
    local = local_file(url)
    fresh = local is not None and not local.exists()
    storage = open_storage(url)
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    log(
        f"optuna-dashboard on http://{ns.host}:{ns.port}/ for {url} "
        f"(exports playable from {settings.artifacts_dir}); Ctrl-C stops it."
    )
    if fresh:
        log(f"  ({url} is new and holds no studies yet: they appear as sweep and optimize run)")
    try:
        run_server(
            storage,
            host=ns.host,
            port=ns.port,
            artifact_store=FileSystemArtifactStore(str(settings.artifacts_dir)),
        )
    except OSError as e:  # the port is taken, or the interface does not exist on this machine
        raise ConfigError(
            f"dashboard: cannot serve on {ns.host}:{ns.port}: {e.strerror or e} (choose another --port or --host)"
        ) from None
    return EXIT_OK


def cmd_analyze(ns: argparse.Namespace) -> int:
    from autotune.audio import AnalysisError, analyze_file
    from autotune.platforms import playback_gains, playback_lines

    status = EXIT_OK
    for f in ns.files:
        try:
            m = analyze_file(f)
        except AnalysisError as e:
            err_console.print(f"error: {e}", markup=False)
            status = EXIT_READ
            continue
        if ns.json:
            log(
                json.dumps(
                    {"file": f, **m.as_dict(), "playback_db": playback_gains(m.lufs_i, m.true_peak_dbtp)}
                )
            )
        else:
            short = (
                " (under 3 s: LRA 0, short-term zero-padded as libebur128 does)" if m.duration_s < 3 else ""
            )
            log(
                f"{f}: {m.lufs_i:.2f} LUFS, sample peak {m.peak_dbfs:.2f} dBFS, true peak "
                f"{m.true_peak_dbtp:.2f} dBTP, {m.duration_s:.2f} s, {m.sample_rate} Hz x{m.channels}"
            )
            log(
                f"  LRA {m.lra_lu:.1f} LU, max momentary {m.max_momentary_lufs:.1f} LUFS, max short-term "
                f"{m.max_short_term_lufs:.1f} LUFS, PLR {m.plr_db:.1f} dB{short}"
            )
            log("  Playback:")
            for line in playback_lines(m.lufs_i, m.true_peak_dbtp):
                log(f"    {line}")
    return status


def cmd_sim_serve(ns: argparse.Namespace) -> int:
    from autotune.backends import sim_options
    from autotune.sim import VirtualLive

    settings = load_settings(
        output_dir=ns.output_dir,
        sim_names=ns.names,
        sim_addressing=ns.addressing,
        sim_chain_on=ns.chain_on,
        sim_physics=ns.physics,
        sim_song=ns.song,
        sim_input_offset_db=ns.input_offset_db,
        sim_drive_slope=ns.drive_slope,
        sim_post_gain_db=ns.post_gain_db,
    )
    try:
        live = VirtualLive(
            ns.host,
            ns.port,
            reply_port=ns.reply_port,
            export_root=settings.output_dir,
            options=sim_options(settings),
        )
    except OSError as e:
        raise ConfigError(
            f"sim serve: cannot listen on {ns.host}:{ns.port}: {e.strerror or e} "
            "(is Live or another autotune sim serve using it? choose another --port)"
        ) from None
    log(
        f"Virtual Live ({ns.names} names, {ns.addressing} addressing, chain on {ns.chain_on}, "
        f"{ns.physics} physics, song {ns.song}) listening on {live.host}:{live.port}, replying to port {ns.reply_port}; "
        f"exports confined to {live.export_root}. Ctrl-C stops it."
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        live.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        live.close()
    return EXIT_OK


def _config_path(ns: argparse.Namespace, settings: Settings) -> Path:
    return Path(ns.config) if ns.config else settings.config


def _load_config(ns: argparse.Namespace, settings: Settings) -> SweepConfig:
    """The CONFIG argument, or AUTOTUNE_CONFIG / configs/master_sweep.json when it is left out."""
    from autotune.config import load_config

    path = _config_path(ns, settings)
    if not ns.config and not path.exists():
        raise ConfigError(
            f"config {path}: file not found (no CONFIG given, so AUTOTUNE_CONFIG or configs/master_sweep.json "
            f"is used; give one: autotune {ns.command} path/to/config.json)"
        )
    return load_config(path, settings.output_dir, presets=getattr(ns, "preset", None))


def _preset_arg(p: argparse.ArgumentParser) -> None:
    from autotune.platforms import PLATFORMS

    p.add_argument(
        "--preset",
        action="append",
        metavar="NAME",
        help=f"target a platform's loudness and true-peak spec instead of the config's ({', '.join(PLATFORMS)}); "
        "repeat it for one master that meets several",
    )


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="config (default: AUTOTUNE_CONFIG or configs/master_sweep.json)")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1..65535)")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value:g} must be a number of seconds above 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Bad flags are one line naming the help to read (`autotune sweep --help`) and exit 20, never usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(f"{message} (see {self.prog} --help)")


def cmd_doctor(ns: argparse.Namespace) -> int:
    from autotune.backends import open_backend
    from autotune.doctor import run_doctor

    settings = _settings(ns)
    config = _load_config(ns, settings)
    # Reading only: the export method is one of the checks, not a reason to refuse to check the rest.
    with open_backend(settings, config, log, exporter=False) as backend:
        log(f"autotune doctor: {backend.description}")
        checks = run_doctor(backend.osc, config, settings, log)
    marks = {"ok": "✓", "warn": "⚠", "fail": "✗"}
    width = max(len(c.name) for c in checks)
    for c in checks:
        log(f"  {marks[c.status]} {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            log(f"    {' ' * width}  fix: {c.fix}")
        elif c.fix:
            log(f"    {' ' * width}  note: {c.fix}")
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    if failed:
        log(f"{len(failed)} blocking problem(s), {len(warned)} warning(s): fix them before exporting.")
        return EXIT_READ
    log(f"Ready to export ({len(warned)} warning(s)).")
    return EXIT_OK


def cmd_device_map(ns: argparse.Namespace) -> int:
    from rich.table import Table

    from autotune.backends import open_backend, reach_live
    from autotune.devicemap import device_map
    from autotune.live.tracks import resolve_track

    settings = _settings(ns)
    config = _load_config(ns, settings)
    spec: int | str = config.chain_track()
    if ns.track is not None:
        spec = int(ns.track) if ns.track.lstrip("-").isdigit() else ns.track
    with open_backend(settings, config, log, exporter=False) as backend:  # reading needs no exporter
        reach_live(backend.osc)
        track = resolve_track(backend.osc, spec)
        maps = device_map(backend.osc, track, settings.data_dir, learn=not ns.no_learn)
    wide = console if console.is_terminal else Console(width=200, highlight=False)
    for d, (name, path, rows) in enumerate(maps):
        log(f"track {track.label}, device {d}: {name}  (cached in {path})")
        table = Table()
        for col in ("#", "name", "min", "max", "quantized", "value", "display", "display law"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["index"]),
                r["name"],
                f"{r['min']:g}",
                f"{r['max']:g}",
                "yes" if r["is_quantized"] else "",
                f"{r['value']:g}",
                r["display"],
                r["law"] or "",
            )
        wide.print(table)
    return EXIT_OK


def cmd_sim_export(ns: argparse.Namespace) -> int:
    """Ask a running virtual Live to export (fire and forget, like clicking Export): for --export-command."""
    import socket

    from autotune.live.client import build_message
    from autotune.live.errors import ExportFailed
    from autotune.live.export import stamp, wait_for_export
    from autotune.sim.server import EXPORT_ADDRESS

    path = Path(ns.path).resolve()
    before = stamp(path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(build_message(EXPORT_ADDRESS, [str(path)]), (ns.host, ns.port))
    try:
        wait_for_export(path, timeout_s=ns.timeout, before=before, log=lambda _: None)
    except ExportFailed as e:
        hint = (
            f" (is `autotune sim serve` running on {ns.host}:{ns.port}, and is the file inside its --output-dir?)"
            if "did not appear" in str(e)
            else ""
        )
        err_console.print(f"error: {e}{hint}", markup=False)
        return EXIT_READ
    return EXIT_OK


def _sub(sub: argparse._SubParsersAction[_Parser], name: str, text: str) -> _Parser:
    """A sub-command whose help says what it does, and that takes --debug after its name as well."""
    p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors"
    )
    return p


_COMMANDS = "sweep, optimize, doctor, device-map, report, dashboard, analyze, sim"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="autotune",
        description="Tune an Ableton Live master chain to a loudness target. Without --backend live every "
        "command runs on the virtual Live: try `autotune optimize configs/streaming.json`.",
    )
    p.add_argument("--version", action="version", version=f"autotune {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    s = _sub(sub, "sweep", "run the config's list of settings, one export each, stop on the first pass")
    s.add_argument("config", help="sweep config (JSON), e.g. configs/master_sweep.json")
    s.add_argument("--study", help="study name (default: the config file's name)")
    _preset_arg(s)
    s.add_argument("--restart", action="store_true", help="delete the study of that name and start again")
    _settings_args(s)
    s.set_defaults(func=cmd_sweep)

    o = _sub(sub, "optimize", "search the settings adaptively until an export passes")
    _config_arg(o)
    o.add_argument(
        "--trials", type=_positive_int, default=20, help="finished trials in total, over resumes (20)"
    )
    o.add_argument(
        "--sampler",
        choices=list(SAMPLERS),
        default="auto",
        help="auto: model for a Glue Compressor -> Limiter chain, else GP with torch, else TPE; "
        "stepwise: 1 dB steps (auto)",
    )
    o.add_argument(
        "--fresh-reference",
        action="store_true",
        help="model sampler: export a new dry reference even if one of this set is cached",
    )
    o.add_argument("--seed", type=int, help="sampler seed (default: none, so workers draw different points)")
    o.add_argument("--with-runs", action="store_true", help="enqueue the config's runs first")
    o.add_argument(
        "--refine", action="store_true", help="keep minimising the loss after a pass, up to --trials"
    )
    o.add_argument("--study", help="study name (default: <config name>-optimize)")
    _preset_arg(o)
    o.add_argument("--restart", action="store_true", help="delete the study of that name and start again")
    _settings_args(o)
    o.set_defaults(func=cmd_optimize)

    dr = _sub(sub, "doctor", "check Live, the chain, the fader and the export method before exporting")
    _config_arg(dr)
    _settings_args(dr)
    dr.set_defaults(func=cmd_doctor)

    dm = _sub(sub, "device-map", "print and cache every device's parameter table and display law")
    _config_arg(dm)
    dm.add_argument("--track", help="track index, name or master (default: the config's track)")
    dm.add_argument("--no-learn", action="store_true", help="only read: do not probe display laws")
    _settings_args(dm)
    dm.set_defaults(func=cmd_device_map)

    r = _sub(sub, "report", "table of a study's trials and an HTML page of plots")
    r.add_argument("--study", help="study name (default: the only study in the storage)")
    r.add_argument(
        "--storage", help="Optuna storage URL (AUTOTUNE_STORAGE; default sqlite:///studies/autotune.db)"
    )
    r.set_defaults(func=cmd_report)

    d = _sub(sub, "dashboard", "optuna-dashboard on this machine, with every export playable")
    d.add_argument("--host", default="127.0.0.1", help="interface to serve on (127.0.0.1)")
    d.add_argument("--port", type=_port, default=8080, help="port to serve on (8080)")
    d.add_argument(
        "--storage", help="Optuna storage URL (AUTOTUNE_STORAGE; default sqlite:///studies/autotune.db)"
    )
    d.set_defaults(func=cmd_dashboard)

    a = _sub(sub, "analyze", "measure WAV files: integrated LUFS, sample peak, true peak")
    a.add_argument("files", nargs="+", metavar="FILE", help="WAV file to measure")
    a.add_argument("--json", action="store_true", help="one JSON object per file")
    a.set_defaults(func=cmd_analyze)

    sim = _sub(sub, "sim", "the virtual Live as a separate process: serve it, or make it export")
    simsub = sim.add_subparsers(dest="sim_command", metavar="COMMAND", title="commands")
    serve = _sub(simsub, "serve", "run the virtual Live as a standalone AbletonOSC server")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=11000, help="port to listen on, as AbletonOSC does (11000)"
    )
    serve.add_argument(
        "--reply-port", type=_port, default=11001, help="port replies are sent to, as AbletonOSC does (11001)"
    )
    serve.add_argument(
        "--names", choices=["live12", "live11"], default="live12", help="Limiter parameter names"
    )
    serve.add_argument(
        "--output-dir",
        type=Path,
        help="the only folder exports may be written to (AUTOTUNE_OUTPUT_DIR, output)",
    )
    serve.add_argument(
        "--addressing",
        choices=["minus-1000", "master-string", "append", "namespace", "stock"],
        default="minus-1000",
        help="how this build reaches the master (stock: it cannot)",
    )
    serve.add_argument("--chain-on", choices=["master", "bus"], default="master", help="where the chain sits")
    serve.add_argument(
        "--physics",
        default="model",
        help="how the devices behave: model (the model's own), the plants vintage|punchy, or pedalboard "
        "(JUCE's Compressor and Limiter, a DSP this project did not write)",
    )
    serve.add_argument(
        "--song",
        default="demo",
        help="what the set plays: demo|dense|bright|dynamic (synthesised) or rec-<loop>[-4min], real "
        "recordings from Debian's sonic-pi-samples (rec-amen, rec-breakbeat, rec-tabla, rec-mix, ...)",
    )
    serve.add_argument(
        "--input-offset-db", type=float, help="stress: the devices hear the mix this much hotter (dB)"
    )
    serve.add_argument(
        "--drive-slope", type=float, help="stress: Makeup and Limiter Gain act as this many times their dB"
    )
    serve.add_argument(
        "--post-gain-db", type=float, help="stress: gain after the chain that OSC cannot see (dB)"
    )
    serve.set_defaults(func=cmd_sim_serve)
    export = _sub(
        simsub,
        "export",
        "make a running virtual Live export to PATH and wait until it is complete (for --export-command)",
    )
    export.add_argument("path", help="the WAV file to export, inside the server's --output-dir")
    export.add_argument("--host", default="127.0.0.1", help="host running `autotune sim serve` (127.0.0.1)")
    export.add_argument("--port", type=_port, default=11000, help="its --port (11000)")
    export.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="seconds to wait for a complete file (60)"
    )
    export.set_defaults(func=cmd_sim_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns, extra = parser.parse_known_args(argv)
    except _ArgumentError as e:
        err_console.print(f"error: {e}", markup=False)
        return EXIT_READ
    if extra:  # named with the help of the command they were given to, not the top level's
        where = " ".join(["autotune", *(c for c in (ns.command, getattr(ns, "sim_command", None)) if c)])
        err_console.print(
            f"error: unrecognized arguments: {' '.join(extra)} (see {where} --help)", markup=False
        )
        return EXIT_READ
    if ns.command is None:
        err_console.print(f"error: give a command: {_COMMANDS} (see autotune --help)", markup=False)
        return EXIT_READ
    if ns.command == "sim" and ns.sim_command is None:
        err_console.print(
            "error: give a sim command: serve (run the virtual Live) or export PATH (see autotune sim --help)",
            markup=False,
        )
        return EXIT_READ
    try:
        return int(ns.func(ns))
    except LiveTimeout as e:  # Live stopped answering mid-run: a study is in storage, nothing is lost
        then = ", then run the same command to resume" if ns.command in ("sweep", "optimize") else ""
        err_console.print(f"error: {e}; check Live (autotune doctor){then}", markup=False)
        return e.exit_code
    except (AutotuneError, LiveError) as e:
        err_console.print(f"error: {e}", markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: finished trials are logged; run the same command to resume", markup=False
        )
        return EXIT_INTERRUPTED
    except Exception as e:
        if ns.debug or os.environ.get("AUTOTUNE_DEBUG"):
            raise
        err_console.print(
            f"error: internal error: {type(e).__name__}: {e} (rerun with --debug)", markup=False
        )
        return 1


def entry() -> None:
    sys.exit(main())
