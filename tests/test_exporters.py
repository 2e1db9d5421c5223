"""Exporters: a program that writes the file (slow, half, never, failing), AppleScript quoting, end to end."""

from __future__ import annotations

import io
import json
import platform
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotune.cli import main
from autotune.live.errors import ExportFailed
from autotune.live.export import (
    APPLESCRIPT,
    AppleScriptExporter,
    CommandExporter,
    applescript_argv,
    wait_for_export,
)
from autotune.sim import VirtualLive

HOSTILE = [
    'mix "final".wav',
    "it's a $(rm -rf ~) `x`.wav",
    'back\\slash; " & do shell script "say pwned" & ".wav',
    "ünïcødé mix ✓.wav",
    "--help.wav",
]


def wav_bytes(seconds: float = 0.5) -> bytes:
    t = np.arange(int(48_000 * seconds)) / 48_000
    buf = io.BytesIO()
    sf.write(
        buf, np.stack([np.sin(2 * np.pi * 220 * t)] * 2, axis=1) * 0.4, 48_000, subtype="PCM_24", format="WAV"
    )
    return buf.getvalue()


def program(tmp_path: Path, body: str) -> str:
    """An export program: a Python script that gets the target path as argv[1]."""
    script = tmp_path / "export_prog.py"
    source = tmp_path / "source.wav"
    source.write_bytes(wav_bytes())
    script.write_text(f"import sys, time\nsrc = open({str(source)!r}, 'rb').read()\n" + textwrap.dedent(body))
    return f"{sys.executable} {script} {{path}}"


def run_export(template: str, path: Path, timeout_s: float = 5.0) -> float:
    exporter = CommandExporter(template, log=lambda _: None)
    t0 = time.monotonic()
    try:
        exporter.trigger(path, str(path))
        wait_for_export(
            path, timeout_s=timeout_s, before=None, log=lambda _: None, poll_s=0.05, abort=exporter.problem
        )
    finally:
        exporter.close()
    return time.monotonic() - t0


def test_a_slow_writer_is_waited_for(tmp_path: Path) -> None:
    template = program(
        tmp_path,
        """
        with open(sys.argv[1], 'wb') as f:
            for i in range(0, len(src), 8192):
                f.write(src[i:i + 8192]); f.flush(); time.sleep(0.02)
    """,
    )
    took = run_export(template, tmp_path / "slow.wav")
    assert took > 0.3
    assert (tmp_path / "slow.wav").read_bytes() == (tmp_path / "source.wav").read_bytes()


def test_half_a_file_is_an_export_failure(tmp_path: Path) -> None:
    template = program(tmp_path, "open(sys.argv[1], 'wb').write(src[: len(src) // 2])\n")
    with pytest.raises(ExportFailed, match="is not a complete WAV file: header announces"):
        run_export(template, tmp_path / "half.wav", timeout_s=1.0)


def test_a_program_that_never_writes_is_an_export_failure(tmp_path: Path) -> None:
    template = program(tmp_path, "pass\n")
    with pytest.raises(ExportFailed, match="did not appear within 1 s"):
        run_export(template, tmp_path / "never.wav", timeout_s=1.0)


def test_a_non_zero_exit_fails_at_once_with_its_message(tmp_path: Path) -> None:
    template = program(tmp_path, "sys.stderr.write('render engine crashed\\n'); sys.exit(3)\n")
    t0 = time.monotonic()
    with pytest.raises(ExportFailed, match="exited with status 3: render engine crashed"):
        run_export(template, tmp_path / "fail.wav", timeout_s=30)
    assert time.monotonic() - t0 < 5


def test_a_program_still_running_at_the_deadline_is_stopped(tmp_path: Path) -> None:
    template = program(tmp_path, "time.sleep(30)\n")
    exporter = CommandExporter(template, log=lambda _: None)
    exporter.trigger(tmp_path / "late.wav", "late.wav")
    with pytest.raises(ExportFailed, match=r"did not appear within 0\.3 s"):
        wait_for_export(
            tmp_path / "late.wav", timeout_s=0.3, before=None, log=lambda _: None, abort=exporter.problem
        )
    exporter.close()
    assert exporter.proc is not None and exporter.proc.poll() is not None


@pytest.mark.parametrize("name", HOSTILE)
def test_file_names_reach_the_program_as_one_argument(tmp_path: Path, name: str) -> None:
    template = program(tmp_path, "open(sys.argv[1], 'wb').write(src); assert len(sys.argv) == 2\n")
    run_export(template, tmp_path / name)
    assert (tmp_path / name).exists()
    assert not (tmp_path.parent / "pwned").exists()


def test_export_command_must_name_the_path() -> None:
    with pytest.raises(ValueError, match=r"must name the file as \{path\}"):
        CommandExporter("render-master out.wav")
    with pytest.raises(ValueError, match="No closing quotation"):
        CommandExporter("render 'unterminated {path}")


@pytest.mark.parametrize("name", HOSTILE)
def test_applescript_never_splices_names_into_the_script(name: str) -> None:
    path = Path("/Users/p/My Project/output") / name
    argv = applescript_argv(path, "Ableton Live 12 Suite")
    assert argv == ["osascript", "-", "/Users/p/My Project/output", name, "Ableton Live 12 Suite"]
    assert name not in APPLESCRIPT and "item 2 of argv" in APPLESCRIPT
    assert 'keystroke "r" using {command down, shift down}' in APPLESCRIPT


def test_applescript_refuses_control_characters_and_other_systems() -> None:
    with pytest.raises(ValueError, match="control characters"):
        applescript_argv(Path("/tmp/a\nb.wav"), "Live")
    if platform.system() != "Darwin":
        with pytest.raises(ValueError, match="needs macOS"):
            AppleScriptExporter()


def test_sweep_with_the_command_exporter(
    project: Path, standalone_live: tuple[VirtualLive, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The virtual Live as a separate server; each export made by a program (`autotune sim export`)."""
    sim, flags = standalone_live
    command = f"{sys.executable} -m autotune sim export {{path}} --port {sim.port}"
    assert main(["sweep", "configs/master_sweep.json", *flags, "--export-command", command]) == 0
    out = capsys.readouterr().out
    assert "📤 EXPORTING WITH: " in out and "sim export" in out
    rows = [json.loads(line) for line in (project / "output" / "experiments.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
