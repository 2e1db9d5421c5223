"""What a new user notices in their first hour: every help, every refusal one line and exit 20, and the
read-only commands (device-map, doctor) working whatever the export setting says."""

from __future__ import annotations

import argparse
import json
import platform
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.backends import export_method, make_exporter
from autotune.cli import build_parser, main
from autotune.config import load_config
from autotune.doctor import check_export
from autotune.settings import load_settings
from autotune.sim import VirtualLive
from tests.conftest import free_udp_port

APPLESCRIPT_REFUSED = "error: export: AppleScript export needs macOS; use --export manual or --export-command"


@pytest.fixture
def on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine is Linux, whatever it really is (every module asks `platform.system()`)."""
    monkeypatch.setattr(platform, "system", lambda: "Linux")


def auto_export_on(project: Path) -> str:
    """configs/auto_export.json: the example with `"auto_export": {"enabled": true}`, as a macOS user has it."""
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config["auto_export"] = {"enabled": True}
    (project / "configs" / "auto_export.json").write_text(json.dumps(config))
    return "configs/auto_export.json"


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr is exactly one `error: ...` line, and nothing anywhere looks like a traceback."""
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in captured.out + err and "internal error" not in err, err
    return err.strip()


def check_line(out: str, name: str) -> tuple[str, str]:
    """The mark (✓ ⚠ ✗) and the text of doctor's line for check `name`, and the line after it."""
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip()[2:].startswith(name))
    return lines[i].strip(), lines[i + 1].strip() if i + 1 < len(lines) else ""


# --- the export setting does not stop reading ---------------------------------------------------------


def test_device_map_works_with_applescript_export_on_linux(
    project: Path,
    standalone_live: tuple[VirtualLive, list[str]],
    on_linux: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, flags = standalone_live
    assert main(["device-map", auto_export_on(project), *flags, "--no-learn"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "track -1000, device 1: Glue Compressor  (cached in data/registry/device_map_t-1000_d1.json)" in (
        captured.out.splitlines()
    )
    assert (project / "data" / "registry" / "device_map_t-1000_d2.json").exists()


def test_device_map_works_with_export_applescript_on_the_virtual_live(
    project: Path, on_linux: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["device-map", "--export", "applescript", "--no-learn"]) == 0
    assert "Limiter" in capsys.readouterr().out


def test_doctor_reports_applescript_on_linux_as_a_failed_check(
    project: Path,
    standalone_live: tuple[VirtualLive, list[str]],
    on_linux: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, flags = standalone_live
    assert main(["doctor", auto_export_on(project), *flags]) == 20
    captured = capsys.readouterr()
    assert captured.err == ""  # a check, not a crash
    line, fix = check_line(captured.out, "export method")
    assert line.startswith("✗ export method")
    assert (
        'AppleScript export, asked for by the config\'s "auto_export" (on), needs macOS; this is Linux'
        in line
    )
    assert (
        fix
        == 'fix: set "auto_export": {"enabled": false} in the config (export by hand), or give --export-command'
    )
    # Every other check ran, and passed: only the export method is wrong with this rig.
    for name in (
        "Live reachable",
        "track addressing",
        "devices found",
        "parameter read-back",
        "output folder",
    ):
        assert check_line(captured.out, name)[0].startswith(f"✓ {name}"), name
    assert "1 blocking problem(s), 0 warning(s): fix them before exporting." in captured.out


def test_doctor_names_the_flag_when_applescript_was_asked_for_by_flag(
    project: Path, on_linux: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--export", "applescript"]) == 20
    line, fix = check_line(capsys.readouterr().out, "export method")
    assert "asked for by --export applescript" in line and "this is Linux" in line
    assert fix == "fix: use --export manual (by hand) or --export-command 'PROGRAM {path}'"


def test_doctor_reports_the_export_method_even_without_live(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--backend", "live", "--port", str(free_udp_port()), "--reply-port", "0", "--timeout", "0.2"]
    assert main(["doctor", *flags, "--export-command", "render-master"]) == 20
    out = capsys.readouterr().out
    assert check_line(out, "Live reachable")[0].startswith("✗ Live reachable")
    line, _ = check_line(out, "export method")
    assert line.startswith("✗ export method")
    assert line.endswith("export command 'render-master' must name the file as {path}")
    assert check_line(out, "output folder")[0].startswith("✓ output folder")


@pytest.mark.parametrize("command", ["sweep", "optimize"])
def test_sweep_and_optimize_still_refuse_applescript_on_linux_before_anything(
    project: Path,
    standalone_live: tuple[VirtualLive, list[str]],
    on_linux: None,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    _, flags = standalone_live
    assert main([command, auto_export_on(project), *flags]) == 20
    assert one_line_error(capsys) == APPLESCRIPT_REFUSED
    assert not (project / "studies").exists()
    assert not (project / "output" / "experiments.jsonl").exists()


# --- one resolution of `--export auto` ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "enabled", "system", "expected"),
    [
        ({}, None, "Linux", "sim"),
        ({}, True, "Darwin", "sim"),  # the virtual Live always exports itself
        ({"backend": "live"}, None, "Linux", "manual"),
        ({"backend": "live"}, None, "Darwin", "applescript"),
        ({"backend": "live"}, True, "Linux", "applescript"),
        ({"backend": "live"}, False, "Darwin", "manual"),
        ({"backend": "live", "export_command": "render {path}"}, True, "Darwin", "command"),
        ({"export_command": "render {path}"}, None, "Linux", "command"),
        ({"backend": "live", "export": "sim"}, True, "Darwin", "sim"),
        ({"export": "manual", "export_command": "render {path}"}, None, "Linux", "manual"),
    ],
)
def test_one_function_resolves_auto_for_the_exporter_and_the_doctor(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: dict[str, str],
    enabled: bool | None,
    system: str,
    expected: str,
) -> None:
    monkeypatch.setattr(platform, "system", lambda: system)
    config_path = Path("configs/export.json")
    config = json.loads(Path("configs/master_sweep.json").read_text())
    if enabled is not None:
        config["auto_export"] = {"enabled": enabled}
    config_path.write_text(json.dumps(config))
    settings = load_settings(**flags)
    config_obj = load_config(config_path, settings.output_dir)
    assert export_method(settings, config_obj) == expected
    # The doctor checks the method the exporter is built for.
    words = {"sim": "virtual Live", "manual": "by hand", "command": "render", "applescript": "AppleScript"}
    assert words[expected] in check_export(settings, config_obj).detail
    if expected in ("manual", "command"):  # the virtual Live's needs a client, AppleScript's a Mac
        assert make_exporter(settings, config_obj, None, print).name == expected


# --- help and refusals -------------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*prefix, name))


COMMANDS = list(subcommands(build_parser()))


def test_the_command_list_is_complete() -> None:
    assert {c[0] for c in COMMANDS if c} == {
        "sweep",
        "optimize",
        "doctor",
        "device-map",
        "report",
        "dashboard",
        "analyze",
        "sim",
    }
    assert ("sim", "serve") in COMMANDS and ("sim", "export") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "autotune")
def test_every_help_prints_usage_and_exits_0(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('autotune', *command))} ")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "autotune")
def test_every_argument_says_what_it_is(command: tuple[str, ...]) -> None:
    parser = build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    bare = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert bare == []


def test_report_takes_only_what_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "--study" in out and "--storage" in out
    assert "--backend" not in out and "--export" not in out and "--reply-port" not in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "error: give a command: sweep, optimize, doctor, device-map, report, dashboard, analyze, sim"),
        (["sim"], "error: give a sim command: serve (run the virtual Live) or export PATH"),
        (["sweep"], "error: the following arguments are required: config (see autotune sweep --help)"),
        (["optimize", "--trials", "0"], "0 must be at least 1 (see autotune optimize --help)"),
        (["analyze"], "required: FILE (see autotune analyze --help)"),
        (
            ["sim", "serve", "--port", "99999"],
            "99999 is not a port number (1..65535) (see autotune sim serve --help)",
        ),
        (["sim", "export", "x.wav", "--timeout", "0"], "must be a number of seconds above 0"),
        (["dashboard", "--port", "http"], "'http' is not a port number (see autotune dashboard --help)"),
        (
            ["report", "--backend", "sim"],
            "unrecognized arguments: --backend sim (see autotune report --help)",
        ),
        (["sweep", "configs/nope.json", "--debug"], "error: config configs/nope.json: file not found"),
        (["doctor", "configs"], "is a directory"),
    ],
)
def test_bad_invocations_are_one_line_exit_20(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(args) == 20
    assert expected in one_line_error(capsys)


def test_a_missing_default_config_says_how_to_give_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("configs/master_sweep.json").unlink()
    assert main(["optimize"]) == 20
    err = one_line_error(capsys)
    assert "config configs/master_sweep.json: file not found (no CONFIG given" in err
    assert "autotune optimize path/to/config.json" in err
    assert not (project / "studies").exists()


def test_bad_json_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("configs/broken.json").write_text('{"target_lufs": -14,')
    for command in ("sweep", "optimize", "doctor", "device-map"):
        assert main([command, "configs/broken.json"]) == 20
        assert "config configs/broken.json: not valid JSON" in one_line_error(capsys)
    assert not (project / "studies").exists()


def test_report_without_studies_says_what_to_run_and_creates_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 20
    err = one_line_error(capsys)
    assert "no studies yet: sqlite:///studies/autotune.db does not exist" in err
    assert "autotune sweep CONFIG" in err and "autotune optimize CONFIG" in err
    assert not (project / "studies").exists()
    assert main(["report", "--storage", "studies/shared.journal"]) == 20
    assert "no studies yet: studies/shared.journal does not exist" in one_line_error(capsys)
    assert not (project / "studies").exists()


def test_report_with_several_studies_asks_which(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads(Path("configs/master_sweep.json").read_text())
    config["runs"] = config["runs"][:1]
    Path("configs/one.json").write_text(json.dumps(config))
    assert main(["sweep", "configs/one.json"]) == 0
    assert "Study 'one' in sqlite:///studies/autotune.db (1 trial); " in capsys.readouterr().out
    assert main(["sweep", "configs/one.json", "--study", "second"]) == 0
    capsys.readouterr()
    assert main(["report"]) == 20
    assert one_line_error(capsys) == (
        "error: sqlite:///studies/autotune.db holds 2 studies: choose one with --study NAME (one, second)"
    )
    assert main(["report", "--study", "third"]) == 20
    assert "no study 'third' in sqlite:///studies/autotune.db (studies: one, second)" in one_line_error(
        capsys
    )
    assert main(["report", "--study", "second"]) == 0


def test_analyze_refuses_missing_and_non_wav_files_one_line_each(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("output/notes.wav").write_text("not audio")
    assert main(["analyze", "output/missing.wav"]) == 20
    assert "cannot read output/missing.wav" in one_line_error(capsys)
    assert main(["analyze", "output"]) == 20
    assert "is a directory" in one_line_error(capsys)
    assert main(["analyze", "output/notes.wav"]) == 20
    line = one_line_error(capsys)
    assert "output/notes.wav is not a readable audio file" in line
    assert "BytesIO" not in line and "Error opening" not in line  # libsndfile's view of its buffer


def test_an_unknown_song_is_one_line_without_pydantics_prefix(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTUNE_SIM_SONG", "nope")
    assert main(["doctor"]) == 20
    line = one_line_error(capsys)
    assert "unknown song (choose from" in line and "Value error" not in line


def test_a_bad_storage_url_is_refused_before_live_is_read(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "configs/master_sweep.json", "--storage", "nope"]) == 20
    out, err = capsys.readouterr()
    assert "not a storage URL" in err and "Resolving devices" not in out


def test_a_mistyped_storage_folder_is_refused_and_not_created(
    project: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    assert main(["sweep", "configs/master_sweep.json", "--storage", str(missing / "x.journal")]) == 20
    assert "does not exist" in one_line_error(capsys)
    assert not missing.exists() and not missing.parent.exists()


@pytest.fixture
def busy_udp_port() -> Iterator[int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


def test_sim_serve_on_a_port_in_use_is_one_line(
    project: Path, busy_udp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "serve", "--port", str(busy_udp_port)]) == 20
    err = one_line_error(capsys)
    assert f"sim serve: cannot listen on 127.0.0.1:{busy_udp_port}" in err and "choose another --port" in err


def test_dashboard_on_a_port_in_use_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 20
    err = capsys.readouterr().err.strip().splitlines()[-1]  # optuna-dashboard prints its banner first
    assert err.startswith(f"error: dashboard: cannot serve on 127.0.0.1:{port}: ") and "another --port" in err


def test_device_map_without_live_does_not_talk_of_resuming(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--backend", "live", "--port", str(free_udp_port()), "--reply-port", "0", "--timeout", "0.2"]
    assert main(["device-map", *flags]) == 20
    err = one_line_error(capsys)
    assert "Live is not answering at 127.0.0.1:" in err and "or use --backend sim" in err
    assert "resume" not in err


def test_sim_export_without_a_server_says_what_to_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_udp_port()
    assert main(["sim", "export", "output/x.wav", "--port", str(port), "--timeout", "0.3"]) == 20
    err = one_line_error(capsys)
    assert "x.wav did not appear within 0.3 s" in err
    assert f"is `autotune sim serve` running on 127.0.0.1:{port}" in err
