"""`autotune doctor` on healthy and misconfigured virtual Live sets, and the preflight of sweep/optimize."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.cli import main
from autotune.sim import VirtualLive
from tests.conftest import free_udp_port

Setup = Callable[[VirtualLive], None]


@pytest.fixture
def rig(standalone_live: tuple[VirtualLive, list[str]]) -> tuple[VirtualLive, list[str]]:
    sim, flags = standalone_live
    return sim, [*flags, "--export", "sim"]


def lines(out: str, mark: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith(mark)]


def test_healthy_set(rig: tuple[VirtualLive, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    _, flags = rig
    assert main(["doctor", *flags]) == 0
    out = capsys.readouterr().out
    assert len(lines(out, "✓")) == 11 and not lines(out, "✗") and not lines(out, "⚠")
    assert any(line.startswith("✓ model readings") for line in lines(out, "✓"))
    assert "Ready to export" in out


def boosted_fader(sim: VirtualLive) -> None:
    sim.song.master.volume = 1.0


def bypassed_limiter(sim: VirtualLive) -> None:
    sim.song.master.devices[2].param("Device On").set(0)


def limiter_first(sim: VirtualLive) -> None:
    devs = sim.song.master.devices
    devs[1], devs[2] = devs[2], devs[1]


def device_after_limiter(sim: VirtualLive) -> None:
    devs = sim.song.master.devices
    devs.append(devs.pop(0))  # Utility moved behind the Limiter


@pytest.mark.parametrize(
    ("setup", "code", "mark", "expected"),
    [
        (
            boosted_fader,
            0,
            "⚠",
            "fader 0 dB           raw 1.000 (about +6.0 dB): the fader comes after the limiter",
        ),
        (bypassed_limiter, 20, "✗", "devices on           switched off: Limiter"),
        (limiter_first, 20, "✗", "limiter last         Limiter comes before Glue Compressor"),
        (device_after_limiter, 20, "✗", "limiter last         after Limiter: Utility"),
    ],
)
def test_misconfigured_sets(
    rig: tuple[VirtualLive, list[str]],
    capsys: pytest.CaptureFixture[str],
    setup: Setup,
    code: int,
    mark: str,
    expected: str,
) -> None:
    sim, flags = rig
    setup(sim)
    assert main(["doctor", *flags]) == code
    out = capsys.readouterr().out
    assert f"{mark} {expected}" in lines(out, mark)
    i = out.splitlines().index(next(line for line in out.splitlines() if expected in line))
    assert "fix: " in out.splitlines()[i + 1]


@pytest.mark.parametrize("setup", [bypassed_limiter, limiter_first])
def test_sweep_preflight_stops_before_any_export(
    rig: tuple[VirtualLive, list[str]], project: Path, capsys: pytest.CaptureFixture[str], setup: Setup
) -> None:
    sim, flags = rig
    setup(sim)
    assert main(["sweep", "configs/master_sweep.json", *flags]) == 20
    err = capsys.readouterr().err
    assert "autotune doctor checks the whole rig" in err and err[-1] == "\n" and err.count("\n") == 1
    assert not (project / "output" / "experiments.jsonl").exists()
    assert not list((project / "output").glob("*.wav"))


def test_no_live_at_all(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_udp_port()
    flags = [
        "--backend",
        "live",
        "--port",
        str(port),
        "--reply-port",
        "0",
        "--timeout",
        "0.2",
        "--export",
        "manual",
    ]
    assert main(["doctor", *flags]) == 20
    out = capsys.readouterr().out
    assert "✗ Live reachable" in out and "AbletonOSC selected as a Control Surface" in out


def test_stock_build_fails_the_addressing_check(project: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AUTOTUNE_SIM_ADDRESSING", "stock")
    assert main(["doctor"]) == 20
    assert "✗ track addressing" in capsys.readouterr().out


def test_device_map_prints_caches_and_restores(
    rig: tuple[VirtualLive, list[str]], project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    sim, flags = rig
    glue = sim.song.master.devices[1]
    glue.param("Makeup").set(0.3)
    before = [(p.name, p.value) for d in sim.song.master.devices for p in d.parameters]
    assert main(["device-map", *flags]) == 0
    out = capsys.readouterr().out
    assert "linear: raw 0..1 -> 0..20 dB" in out and "logarithmic: raw 0..1 -> 0.001..1 s" in out
    assert "stepped {2, 4, 10} ratio" in out
    assert [(p.name, p.value) for d in sim.song.master.devices for p in d.parameters] == before  # put back
    doc = json.loads((project / "data" / "registry" / "device_map_t-1000_d1.json").read_text())
    assert doc["name"] == "Glue Compressor" and doc["addressing"] == "minus-1000"
    makeup = next(p for p in doc["parameters"] if p["name"] == "Makeup")
    assert makeup["display"] == "6.00 dB" and makeup["min"] == 0 and makeup["max"] == 1
