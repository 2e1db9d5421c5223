"""Thin CLI: parse, call the library, print with rich, map errors to the spec's exit codes (0, 20, 30)."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from autotune import __version__
from autotune.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_READ, AutotuneError
from autotune.live.errors import LiveError
from autotune.settings import Settings, load_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def log(line: str) -> None:
    console.print(line, markup=False)


def _settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Live connection and storage (default: AUTOTUNE_* environment variables)")
    g.add_argument(
        "--backend", choices=["sim", "live"], help="sim: the virtual Live in-process; live: AbletonOSC"
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
        "--export", choices=["auto", "sim", "manual"], help="how exports are made (AUTOTUNE_EXPORT, auto)"
    )


def _settings(ns: argparse.Namespace) -> Settings:

    return load_settings(
        backend=ns.backend,
        host=ns.host,
        port=ns.port,
        reply_port=ns.reply_port,
        timeout=ns.timeout,
        storage=ns.storage,
        output_dir=ns.output_dir,
        export=ns.export,
    )


def cmd_sweep(ns: argparse.Namespace) -> int:
    from autotune.config import load_config
    from autotune.study import sweep

    settings = _settings(ns)
    config = load_config(ns.config, settings.output_dir)
    name = ns.study or Path(ns.config).stem
    started = time.monotonic()
    result = sweep(config, settings, study_name=name, restart=ns.restart, log=log)
    finished = [t for t in result.trials if t.user_attrs.get("status") == "ok"]
    failed = [t for t in result.trials if t.user_attrs.get("status") not in (None, "ok")]
    log("")
    log("=" * 70)
    if result.passed is not None:
        u = result.passed.user_attrs
        log(
            f"✅ TARGET HIT in trial #{result.passed.number} ({u.get('export_file')}): "
            f"LUFS {u['lufs_i']:.2f}, peak {u['peak_dbfs']:.2f} dBFS"
        )
    else:
        log(
            f"No run hit the target ({config.target_lufs:.2f} LUFS ±{config.lufs_tolerance:g}, "
            f"peak ≤ {config.peak_limit_dbfs:.2f} dBFS)."
        )
        if finished:
            best = min(finished, key=lambda t: t.value if t.value is not None else math.inf)
            u = best.user_attrs
            log(
                f"  Closest: {u.get('export_file')} (trial #{best.number}): LUFS {u['lufs_i']:.2f} "
                f"({u['lufs_i'] - config.target_lufs:+.2f} LU), peak {u['peak_dbfs']:.2f} dBFS"
            )
    if failed:
        log(f"  {len(failed)} trial(s) failed: see status and error in {settings.receipts_path()}")
    log(
        f"Study {result.study!r} in {result.storage} ({len(result.trials)} trials); {time.monotonic() - started:.1f} s"
    )
    return EXIT_OK


def cmd_analyze(ns: argparse.Namespace) -> int:
    from autotune.audio import AnalysisError, analyze_file

    status = EXIT_OK
    for f in ns.files:
        try:
            m = analyze_file(f)
        except AnalysisError as e:
            err_console.print(f"error: {e}", markup=False)
            status = EXIT_READ
            continue
        if ns.json:
            log(json.dumps({"file": f, **m.as_dict()}))
        else:
            log(
                f"{f}: {m.lufs_i:.2f} LUFS, sample peak {m.peak_dbfs:.2f} dBFS, true peak "
                f"{m.true_peak_dbtp:.2f} dBTP, {m.duration_s:.2f} s, {m.sample_rate} Hz x{m.channels}"
            )
    return status


def cmd_sim_serve(ns: argparse.Namespace) -> int:
    from autotune.sim import SimOptions, VirtualLive

    settings = load_settings(output_dir=ns.output_dir)
    live = VirtualLive(
        ns.host,
        ns.port,
        reply_port=ns.reply_port,
        export_root=settings.output_dir,
        options=SimOptions(names=ns.names, cache_dir=settings.cache_dir),
    )
    log(
        f"Virtual Live ({ns.names} names) listening on {live.host}:{live.port}, replying to port {ns.reply_port}; "
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


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="autotune", description="Tune an Ableton Live master chain to a loudness target.")
    p.add_argument("--version", action="version", version=f"autotune {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "sweep", help="run the config's list of settings, one export each, stop on the first pass"
    )
    s.add_argument("config", help="sweep config (JSON), e.g. configs/master_sweep.json")
    s.add_argument("--study", help="study name (default: the config file's name)")
    s.add_argument("--restart", action="store_true", help="delete the study of that name and start again")
    _settings_args(s)
    s.set_defaults(func=cmd_sweep)

    a = sub.add_parser("analyze", help="measure WAV files: integrated LUFS, sample peak, true peak")
    a.add_argument("files", nargs="+")
    a.add_argument("--json", action="store_true", help="one JSON object per file")
    a.set_defaults(func=cmd_analyze)

    sim = sub.add_parser("sim", help="the virtual Live")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    serve = simsub.add_parser("serve", help="run the virtual Live as a standalone AbletonOSC server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=11000)
    serve.add_argument("--reply-port", type=int, default=11001)
    serve.add_argument(
        "--names", choices=["live12", "live11"], default="live12", help="Limiter parameter names"
    )
    serve.add_argument("--output-dir", type=Path, help="the only folder exports may be written to")
    serve.set_defaults(func=cmd_sim_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except _ArgumentError as e:
        err_console.print(f"error: {e} (see autotune --help)", markup=False)
        return EXIT_READ
    try:
        return int(ns.func(ns))
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
