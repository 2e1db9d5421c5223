"""Thin CLI: parse, call the library, print with rich, map errors to the spec's exit codes (0, 20, 30), plus
40 when model-based search proves the target out of the chain's reach."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from rich.console import Console

from autotune import cliargs
from autotune.cliargs import COMMANDS, SETTING_FLAGS, ArgumentError
from autotune.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_READ,
    AutotuneError,
    ConfigError,
)
from autotune.live.errors import LiveError, LiveTimeout
from autotune.settings import Settings, load_settings

if TYPE_CHECKING:
    from autotune.config import SweepConfig

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def log(line: str) -> None:
    console.print(line, markup=False)


def _settings(ns: argparse.Namespace) -> Settings:
    """AUTOTUNE_* settings with the flags this command has on top."""
    return load_settings(**{k: getattr(ns, k, None) for k in SETTING_FLAGS})


def cmd_sweep(ns: argparse.Namespace) -> int:
    from autotune.api import sweep

    out = sweep(
        ns.config,
        settings=_settings(ns),
        study=ns.study,
        restart=ns.restart,
        presets=ns.preset or (),
        log=log,
    )
    for line in out.summary:
        log(line)
    return out.exit_code


def cmd_optimize(ns: argparse.Namespace) -> int:
    from autotune.api import optimize

    settings = _settings(ns)
    out = optimize(
        _load_config(ns, settings),
        trials=ns.trials,
        sampler=ns.sampler,
        seed=ns.seed,
        with_runs=ns.with_runs,
        refine=ns.refine,
        fresh_reference=ns.fresh_reference,
        settings=settings,
        study=ns.study or f"{_config_path(ns, settings).stem}-optimize",
        restart=ns.restart,
        log=log,
    )
    for line in out.summary:
        log(line)
    return out.exit_code


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
    from autotune.api import analyze
    from autotune.audio import AnalysisError

    status = EXIT_OK
    for f in ns.files:
        try:
            a = analyze(f)
        except AnalysisError as e:
            err_console.print(f"error: {e}", markup=False)
            status = EXIT_READ
            continue
        m = a.measurement
        if ns.json:
            log(json.dumps(a.as_dict()))
            continue
        short = " (under 3 s: LRA 0, short-term zero-padded as libebur128 does)" if m.duration_s < 3 else ""
        log(
            f"{f}: {m.lufs_i:.2f} LUFS, sample peak {m.peak_dbfs:.2f} dBFS, true peak "
            f"{m.true_peak_dbtp:.2f} dBTP, {m.duration_s:.2f} s, {m.sample_rate} Hz x{m.channels}"
        )
        log(
            f"  LRA {m.lra_lu:.1f} LU, max momentary {m.max_momentary_lufs:.1f} LUFS, max short-term "
            f"{m.max_short_term_lufs:.1f} LUFS, PLR {m.plr_db:.1f} dB{short}"
        )
        log("  Playback:")
        for line in a.playback:
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


def cmd_doctor(ns: argparse.Namespace) -> int:
    from autotune.api import doctor

    settings = _settings(ns)
    report = doctor(_load_config(ns, settings), settings=settings, log=log)
    log(f"autotune doctor: {report.backend}")
    marks = {"ok": "✓", "warn": "⚠", "fail": "✗"}
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        log(f"  {marks[c.status]} {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            log(f"    {' ' * width}  fix: {c.fix}")
        elif c.fix:
            log(f"    {' ' * width}  note: {c.fix}")
    if report.failed:
        log(
            f"{len(report.failed)} blocking problem(s), {len(report.warned)} warning(s): fix them before exporting."
        )
    else:
        log(f"Ready to export ({len(report.warned)} warning(s)).")
    return report.exit_code


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
    from autotune.live.errors import ExportFailed
    from autotune.live.export import stamp, wait_for_export
    from autotune.sim.exporter import request_export

    path = Path(ns.path).resolve()
    before = stamp(path)
    request_export(ns.host, ns.port, path)
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


def build_parser() -> argparse.ArgumentParser:
    """The command line with this module's handlers (tests walk it to check every command's help)."""
    return cliargs.build_parser(
        {
            "sweep": cmd_sweep,
            "optimize": cmd_optimize,
            "doctor": cmd_doctor,
            "device_map": cmd_device_map,
            "report": cmd_report,
            "dashboard": cmd_dashboard,
            "analyze": cmd_analyze,
            "sim_serve": cmd_sim_serve,
            "sim_export": cmd_sim_export,
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns, extra = parser.parse_known_args(argv)
    except ArgumentError as e:
        err_console.print(f"error: {e}", markup=False)
        return EXIT_READ
    if extra:  # named with the help of the command they were given to, not the top level's
        where = " ".join(["autotune", *(c for c in (ns.command, getattr(ns, "sim_command", None)) if c)])
        err_console.print(
            f"error: unrecognized arguments: {' '.join(extra)} (see {where} --help)", markup=False
        )
        return EXIT_READ
    if ns.command is None:
        err_console.print(f"error: give a command: {COMMANDS} (see autotune --help)", markup=False)
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
