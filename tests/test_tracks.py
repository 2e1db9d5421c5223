"""Track addressing against every flavour of AbletonOSC build the virtual Live can imitate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import LiveReadError
from autotune.live.tracks import MASTER_HELP, resolve_track
from autotune.sim import SimOptions, VirtualLive

NAMES = {"glue": "Glue Compressor", "limiter": "Limiter"}


@contextmanager
def flavour(tmp_path: Path, demo_cache: Path, **options: object) -> Iterator[tuple[VirtualLive, OscClient]]:
    sim = VirtualLive(
        "127.0.0.1",
        0,
        reply_port=0,
        export_root=tmp_path,
        options=SimOptions(cache_dir=demo_cache, **options),  # type: ignore[arg-type]
    )
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=0.5, retries=0) as client:
        sim.reply_port = client.reply_port
        with sim:
            yield sim, client


@pytest.mark.parametrize(
    ("addressing", "style", "label"),
    [
        ("minus-1000", "minus-1000", "-1000"),
        ("master-string", "master-string", "master"),
        ("namespace", "namespace", "master (/live/master)"),
        ("append", "append", "master (index 4)"),
    ],
)
@pytest.mark.parametrize("spec", [-1000, "master", "Master"])
def test_each_build_reaches_the_master_its_own_way(
    tmp_path: Path, demo_cache: Path, addressing: str, style: str, label: str, spec: int | str
) -> None:
    with flavour(tmp_path, demo_cache, addressing=addressing) as (sim, client):
        track = resolve_track(client, spec)
        assert (track.style, track.label) == (style, label) and track.is_master
        lines: list[str] = []
        chain = MasterChain(LiveSet(client), track, NAMES, lines.append)
        chain.resolve()
        assert lines[0] == f"Resolving devices on track {label}..."
        chain.write("limiter", "ceiling_db", -6.5)
        assert sim.song.master.devices[2].param("Ceiling").display == "-6.50 dB"
        sim.song.master.volume = 1.0
        assert chain.set_fader_0db() == "over OSC"
        assert sim.song.master.volume == pytest.approx(0.85)


def test_stock_abletonosc_cannot_reach_the_master_and_minus_one_is_never_tried(
    tmp_path: Path, demo_cache: Path
) -> None:
    with flavour(tmp_path, demo_cache, addressing="stock") as (sim, client):
        assert sim.song.track(-1).name == "Mix Bus"  # what a naive client would take for the master
        with pytest.raises(LiveReadError) as err:
            resolve_track(client, "master")
        assert str(err.value) == MASTER_HELP
        tried = [args[0] for address, args in sim.received if address == "/live/track/get/devices/name"]
        assert -1 not in tried


def test_stock_build_with_the_chain_on_a_bus_track(tmp_path: Path, demo_cache: Path) -> None:
    with flavour(tmp_path, demo_cache, addressing="stock", chain_on="bus") as (sim, client):
        track = resolve_track(client, "mix bus")
        assert (track.arg, track.style, track.is_master) == (3, "index", False)
        chain = MasterChain(LiveSet(client), track, NAMES, lambda _: None)
        chain.resolve()
        chain.write("limiter", "gain_db", 6.0)
        assert sim.song.bus.devices[2].param("Input Gain").display == "6.00 dB"
        assert sim.song.master.devices == []


def test_tracks_by_index_and_unknown_names(tmp_path: Path, demo_cache: Path) -> None:
    with flavour(tmp_path, demo_cache) as (_, client):
        assert resolve_track(client, 1).label == "1 ('Bass')"
        with pytest.raises(
            LiveReadError, match=r"no track named 'Bus 2' \(tracks: 'Drums', 'Bass', 'Chords', 'Mix Bus'\)"
        ):
            resolve_track(client, "Bus 2")
        with pytest.raises(LiveReadError, match=r"track 9 does not exist"):
            resolve_track(client, 9)


def test_live_12_and_11_limiter_tables(tmp_path: Path, demo_cache: Path) -> None:
    for names, gain, release in [("live12", "Input Gain", "Release"), ("live11", "Gain", "Release time")]:
        with flavour(tmp_path, demo_cache, names=names) as (_, client):
            chain = MasterChain(LiveSet(client), resolve_track(client, -1000), NAMES, lambda _: None)
            chain.resolve()
            assert chain.write("limiter", "gain_db", 3.0).param == gain
            assert chain.write("limiter", "release_ms", 200).param == release


def _config(project: Path, **changes: object) -> str:
    import json

    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config.update(changes)
    (project / "configs" / "t.json").write_text(json.dumps(config))
    return "configs/t.json"


def test_sweep_on_stock_abletonosc_says_what_to_change(project: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from autotune.cli import main

    monkeypatch.setenv("AUTOTUNE_SIM_ADDRESSING", "stock")
    assert main(["sweep", "configs/master_sweep.json"]) == 20
    assert capsys.readouterr().err.strip() == f"error: {MASTER_HELP}"
    assert not (project / "output" / "experiments.jsonl").exists()
    monkeypatch.setenv("AUTOTUNE_SIM_CHAIN_ON", "bus")
    assert main(["sweep", _config(project, track="Mix Bus")]) == 0
    out = capsys.readouterr().out
    assert "Resolving devices on track 3 ('Mix Bus')..." in out
    assert "Setting fader of track 3 ('Mix Bus') to 0.0 dB..." in out
    assert "✓ Fader of track 3 ('Mix Bus') set to 0.0 dB" in out
    assert "Master fader" not in out  # it is the bus's fader, not the master's
    assert len((project / "output" / "experiments.jsonl").read_text().splitlines()) == 3


def test_negative_track_other_than_minus_1000_is_refused(project: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from autotune.cli import main

    assert main(["sweep", _config(project, track=-1)]) == 20
    assert "negative indices are ambiguous" in capsys.readouterr().err


def test_a_fader_that_cannot_be_set_stops_a_non_interactive_run(tmp_path: Path, demo_cache: Path) -> None:
    with flavour(tmp_path, demo_cache, addressing="namespace") as (sim, client):
        del sim.handlers["/live/master/set/volume"]
        chain = MasterChain(LiveSet(client), resolve_track(client, "master"), NAMES, lambda _: None)
        chain.resolve()
        with pytest.raises(
            LiveReadError, match=r"cannot set the fader of track master \(/live/master\) over OSC"
        ):
            chain.set_fader_0db(confirm_by_hand=None)
        asked: list[str] = []
        assert chain.set_fader_0db(confirm_by_hand=asked.append) == "by hand"
        assert "set it to 0.0 dB in Live, then press Enter" in asked[0] and chain.fader_by_hand
