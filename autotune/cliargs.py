"""The command line's grammar: every command, flag and argument type, and the one-line errors for bad
flags. `autotune.cli` builds it with its command handlers and runs them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

from autotune import __version__
from autotune.samplers import SAMPLERS


def settings_args(p: argparse.ArgumentParser) -> None:
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
        "--export-command alone means command; resample records the master into a Session clip over "
        "AbletonOSC (any OS, in real time)",
    )
    g.add_argument(
        "--export-command",
        help="program that writes the export, {path} being the file, e.g. 'render.sh {path}' "
        "(AUTOTUNE_EXPORT_COMMAND)",
    )
    g.add_argument(
        "--keep-takes",
        action="store_true",
        default=None,
        help="--export resample: keep the recorded takes' files in the Set's Samples/Recorded "
        "(AUTOTUNE_KEEP_TAKES; default: the config's auto_export.keep_takes, off)",
    )


SETTING_FLAGS = (
    "backend",
    "host",
    "port",
    "reply_port",
    "timeout",
    "storage",
    "output_dir",
    "export",
    "export_command",
    "keep_takes",
)


def preset_arg(p: argparse.ArgumentParser) -> None:
    from autotune.platforms import PLATFORMS

    p.add_argument(
        "--preset",
        action="append",
        metavar="NAME",
        help=f"target a platform's loudness and true-peak spec instead of the config's ({', '.join(PLATFORMS)}); "
        "repeat it for one master that meets several",
    )


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="config (default: AUTOTUNE_CONFIG or configs/master_sweep.json)")


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1..65535)")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value:g} must be a number of seconds above 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


class ArgumentError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """Bad flags are one line naming the help to read (`autotune sweep --help`) and exit 20, never usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(f"{message} (see {self.prog} --help)")


def sub_command(sub: argparse._SubParsersAction[Parser], name: str, text: str) -> Parser:
    """A sub-command whose help says what it does, and that takes --debug after its name as well."""
    p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors"
    )
    return p


COMMANDS = "sweep, optimize, doctor, device-map, report, dashboard, analyze, sim"


def build_parser(handlers: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The whole command line; `handlers` maps each command to the function that runs it."""
    p = Parser(
        prog="autotune",
        description="Tune an Ableton Live master chain to a loudness target. Without --backend live every "
        "command runs on the virtual Live: try `autotune optimize configs/streaming.json`.",
    )
    p.add_argument("--version", action="version", version=f"autotune {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    s = sub_command(
        sub, "sweep", "run the config's list of settings, one export each, stop on the first pass"
    )
    s.add_argument("config", help="sweep config (JSON), e.g. configs/master_sweep.json")
    s.add_argument("--study", help="study name (default: the config file's name)")
    preset_arg(s)
    s.add_argument("--restart", action="store_true", help="delete the study of that name and start again")
    settings_args(s)
    s.set_defaults(func=handlers["sweep"])

    o = sub_command(sub, "optimize", "search the settings adaptively until an export passes")
    config_arg(o)
    o.add_argument(
        "--trials", type=positive_int, default=20, help="finished trials in total, over resumes (20)"
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
    preset_arg(o)
    o.add_argument("--restart", action="store_true", help="delete the study of that name and start again")
    settings_args(o)
    o.set_defaults(func=handlers["optimize"])

    dr = sub_command(sub, "doctor", "check Live, the chain, the fader and the export method before exporting")
    config_arg(dr)
    settings_args(dr)
    dr.set_defaults(func=handlers["doctor"])

    dm = sub_command(sub, "device-map", "print and cache every device's parameter table and display law")
    config_arg(dm)
    dm.add_argument("--track", help="track index, name or master (default: the config's track)")
    dm.add_argument("--no-learn", action="store_true", help="only read: do not probe display laws")
    settings_args(dm)
    dm.set_defaults(func=handlers["device_map"])

    r = sub_command(sub, "report", "table of a study's trials and an HTML page of plots")
    r.add_argument("--study", help="study name (default: the only study in the storage)")
    r.add_argument(
        "--storage", help="Optuna storage URL (AUTOTUNE_STORAGE; default sqlite:///studies/autotune.db)"
    )
    r.set_defaults(func=handlers["report"])

    d = sub_command(sub, "dashboard", "optuna-dashboard on this machine, with every export playable")
    d.add_argument("--host", default="127.0.0.1", help="interface to serve on (127.0.0.1)")
    d.add_argument("--port", type=port, default=8080, help="port to serve on (8080)")
    d.add_argument(
        "--storage", help="Optuna storage URL (AUTOTUNE_STORAGE; default sqlite:///studies/autotune.db)"
    )
    d.set_defaults(func=handlers["dashboard"])

    a = sub_command(sub, "analyze", "measure WAV files: integrated LUFS, sample peak, true peak")
    a.add_argument("files", nargs="+", metavar="FILE", help="WAV file to measure")
    a.add_argument("--json", action="store_true", help="one JSON object per file")
    a.set_defaults(func=handlers["analyze"])

    sim = sub_command(sub, "sim", "the virtual Live as a separate process: serve it, or make it export")
    simsub = sim.add_subparsers(dest="sim_command", metavar="COMMAND", title="commands")
    serve = sub_command(simsub, "serve", "run the virtual Live as a standalone AbletonOSC server")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=port, default=11000, help="port to listen on, as AbletonOSC does (11000)"
    )
    serve.add_argument(
        "--reply-port", type=port, default=11001, help="port replies are sent to, as AbletonOSC does (11001)"
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
        help="how the devices behave: model (the model's own), the plants vintage|punchy, pedalboard "
        "(JUCE's Compressor as Live's Glue and Limiter, a DSP this project did not write) or "
        "pedalboard-maximizer (JUCE's own Limiter, which does not follow Live's manual)",
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
    serve.set_defaults(func=handlers["sim_serve"])
    export = sub_command(
        simsub,
        "export",
        "make a running virtual Live export to PATH and wait until it is complete (for --export-command)",
    )
    export.add_argument("path", help="the WAV file to export, inside the server's --output-dir")
    export.add_argument("--host", default="127.0.0.1", help="host running `autotune sim serve` (127.0.0.1)")
    export.add_argument("--port", type=port, default=11000, help="its --port (11000)")
    export.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds to wait for a complete file (60)"
    )
    export.set_defaults(func=handlers["sim_export"])
    return p
