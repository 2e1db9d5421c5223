"""The CLI end to end on the virtual Live, over real UDP sockets: console flow, receipts, study, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pyloudnorm as pyln
import pytest
import soundfile as sf

from autotune.audio import analyze_file
from autotune.cli import main
from autotune.sim.liveset import SimParameter
from tests.conftest import free_udp_port

STORAGE = "sqlite:///studies/autotune.db"


def receipts(project: Path) -> list[dict]:
    path = project / "output" / "experiments.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_config(project: Path, name: str, **changes: object) -> str:
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config.update(changes)
    path = project / "configs" / name
    path.write_text(json.dumps(config))
    return str(path.relative_to(project))


def test_sweep_on_the_virtual_live_follows_the_spec(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "configs/master_sweep.json", "--backend", "sim"]) == 0
    out = capsys.readouterr().out
    for line in [
        "Resolving devices on track -1000...",
        "  Glue Compressor: device 1",
        "  Limiter: device 2",
        "Resolving Glue Compressor parameters...",
        "  Found 12 params",
        "  Found 9 params",
        "  ✓ Master fader set to 0.0 dB",
        "EXPERIMENT 1/3: iter7",
        "EXPERIMENT 3/3: iter9",
        "  Setting Threshold = -30",
        "    ✓ Threshold set (-30.0 dB)",
        "📤 AUTO-EXPORTING: master_iter7.wav",
        "Waiting for master_iter7.wav to stabilize...",
        "  ✓ File ready",
        "Verifying master_iter7.wav...",
        "  ✓ Logged to output/experiments.jsonl",
    ]:
        assert line in out.splitlines(), line
    assert "  LUFS: " in out and "(target -10.50)" in out and "(limit -6.00)" in out

    rows = receipts(project)
    assert [r["id"] for r in rows] == ["iter7", "iter8", "iter9"]
    meter = pyln.Meter(48_000, filter_class="DeMan")
    for i, r in enumerate(rows):
        assert set(r) >= {"ts", "id", "export_file", "sha256", "params", "results", "study", "trial"}
        assert r["params"]["master_fader_db"] == 0.0
        assert r["study"] == "master_sweep" and r["trial"] == i
        assert r["status"] == "ok"
        # The receipt agrees with measuring the exported file again, and with pyloudnorm (exact filter).
        m = analyze_file(project / r["export_file"])
        assert r["sha256"] == m.sha256
        assert r["results"]["lufs_i"] == pytest.approx(m.lufs_i, abs=1e-3)
        assert r["results"]["peak_dbfs"] == pytest.approx(m.peak_dbfs, abs=1e-3)
        audio, _ = sf.read(project / r["export_file"])
        assert r["results"]["lufs_i"] == pytest.approx(meter.integrated_loudness(audio), abs=0.01)
        # The limiter's ceiling holds at a 0 dB fader.
        ceiling = r["params"]["limiter"]["ceiling_db"]
        assert r["results"]["peak_dbfs"] <= ceiling + 1e-3
        assert r["results"]["pass_peak"] is True
        assert r["results"]["pass_lufs"] is (abs(r["results"]["lufs_i"] + 10.5) <= 0.5)
        assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(r["results"]["peak_dbfs"], abs=1e-3)

    study = optuna.load_study(study_name="master_sweep", storage=STORAGE)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert trials[0].params == {
        "glue.threshold_db": -30.0,
        "glue.makeup_db": 15.0,
        "limiter.ceiling_db": -6.5,
        "limiter.gain_db": 28.0,
    }
    assert trials[2].user_attrs["lufs_i"] == rows[2]["results"]["lufs_i"]
    assert trials[0].value == pytest.approx(abs(rows[0]["results"]["lufs_i"] + 10.5), abs=1e-3)

    # The same command again resumes: every run is done, nothing is exported or logged twice.
    assert main(["sweep", "configs/master_sweep.json", "--backend", "sim"]) == 0
    assert "already done in this study" in capsys.readouterr().out
    assert len(receipts(project)) == 3
    # --restart starts the study afresh; the JSONL is append-only.
    assert main(["sweep", "configs/master_sweep.json", "--backend", "sim", "--restart"]) == 0
    assert len(receipts(project)) == 6


def test_sweep_stops_at_the_first_pass(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(project, "reachable.json", target_lufs=-13.6, lufs_tolerance=0.25)
    assert main(["sweep", config]) == 0
    out = capsys.readouterr().out
    rows = receipts(project)
    assert [r["id"] for r in rows] == ["iter7", "iter8"]  # iter8 passes: iter9 is never exported
    assert rows[1]["results"]["pass_lufs"] and rows[1]["results"]["pass_peak"]
    assert not (project / "output" / "master_iter9.wav").exists()
    assert "TARGET HIT in trial #1" in out
    assert main(["sweep", config]) == 0
    assert "already passed in trial #1" in capsys.readouterr().out
    assert len(receipts(project)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "configs/missing.json"], "file not found"),
        (["sweep", "configs/master_sweep.json", "--port", "70000"], "setting port"),
        (["sweep", "configs/master_sweep.json", "--backend", "cloud"], "invalid choice"),
        (["sweep"], "the following arguments are required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_invocations_are_one_line_exit_20(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 20
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (project / "output" / "experiments.jsonl").exists()
    assert not (project / "studies").exists()


def test_bad_config_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(project, "nan.json")
    Path(config).write_text(Path(config).read_text().replace("-10.5", "NaN"))
    assert main(["sweep", config]) == 20
    err = capsys.readouterr().err.strip()
    assert err == f"error: config {config}: NaN is not a number JSON allows"
    assert not (project / "studies").exists() and not (project / "output" / "experiments.jsonl").exists()


def test_value_outside_the_device_range_stops_before_any_export(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config["runs"][2]["glue"]["threshold_db"] = -80.0
    Path("configs/bad_range.json").write_text(json.dumps(config))
    assert main(["sweep", "configs/bad_range.json"]) == 20
    err = capsys.readouterr().err.strip()
    assert "runs[2].glue.threshold_db = -80 is outside Glue Compressor Threshold range -40 dB .. 0 dB" in err
    assert receipts(project) == [] and not list((project / "output").glob("*.wav"))


def test_unknown_parameter_lists_what_the_device_has(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config["runs"][0]["limiter"]["knee_db"] = 3.0
    Path("configs/bad_param.json").write_text(json.dumps(config))
    assert main(["sweep", "configs/bad_param.json"]) == 20
    err = capsys.readouterr().err
    assert "Limiter: no parameter matches 'knee_db'" in err and "Input Gain" in err
    assert receipts(project) == []


def test_no_live_is_a_quick_exit_20(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    code = main(
        [
            "sweep",
            "configs/master_sweep.json",
            "--backend",
            "live",
            "--port",
            str(free_udp_port()),
            "--reply-port",
            "0",
            "--timeout",
            "0.3",
            "--export",
            "manual",
        ]
    )
    assert code == 20
    assert time.monotonic() - t0 < 5
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Live is not answering at 127.0.0.1:") and "\n" not in err
    assert "autotune doctor" in err
    assert receipts(project) == []


def test_live_backend_with_manual_export_logs_export_failed_and_moves_on(
    project: Path, capsys: pytest.CaptureFixture[str], standalone_live
) -> None:
    _, flags = standalone_live
    config = write_config(project, "quick_timeout.json", auto_export={"enabled": False, "timeout_s": 0.4})
    assert main(["sweep", config, *flags]) == 0  # the spec: export failures are logged, the sweep goes on
    out = capsys.readouterr().out
    assert "📤 EXPORT NOW:" in out and "   Filename: output/master_iter7.wav" in out
    rows = receipts(project)
    assert [r["id"] for r in rows] == ["iter7", "iter8", "iter9"]
    for r in rows:
        assert r["status"] == "export_failed" and "did not appear within 0.4 s" in r["error"]
        assert "results" not in r
    study = optuna.load_study(study_name="quick_timeout", storage=STORAGE)
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL] * 3


def test_live_backend_with_sim_export_matches_the_embedded_backend(
    project: Path, capsys: pytest.CaptureFixture[str], standalone_live
) -> None:
    _, flags = standalone_live
    assert main(["sweep", "configs/master_sweep.json", *flags, "--export", "sim", "--study", "remote"]) == 0
    remote = [r["results"]["lufs_i"] for r in receipts(project)]
    assert main(["sweep", "configs/master_sweep.json", "--study", "embedded"]) == 0
    embedded = [r["results"]["lufs_i"] for r in receipts(project)][3:]
    assert remote == embedded


def test_a_refused_write_exits_30(
    project: Path, capsys: pytest.CaptureFixture[str], standalone_live, monkeypatch
) -> None:
    _, flags = standalone_live
    original = SimParameter.set

    def refuse_ceiling(self: SimParameter, raw: float) -> None:
        if self.name == "Ceiling" and raw == pytest.approx(-6.3, abs=1e-4):
            raise RuntimeError("Parameter is controlled by automation")
        original(self, raw)

    monkeypatch.setattr(SimParameter, "set", refuse_ceiling)
    assert main(["sweep", "configs/master_sweep.json", *flags, "--export", "sim"]) == 30
    err = capsys.readouterr().err
    assert "Live refused /live/device/set/parameter/value" in err and "automation" in err
    assert [r["id"] for r in receipts(project)] == ["iter7"]


def test_sim_serve_and_sweep_in_separate_processes(
    project: Path, demo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two processes, as a producer would run them: the virtual Live (`autotune sim serve`), and the tool
    (here the test's own process; test_faults runs `python -m autotune sweep --backend live` as a process of
    its own) talking to it over UDP."""
    port, reply_port = free_udp_port(), free_udp_port()
    env = {**os.environ, "AUTOTUNE_CACHE_DIR": str(demo_cache)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autotune",
            "sim",
            "serve",
            "--port",
            str(port),
            "--reply-port",
            str(reply_port),
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()  # printed once its socket is bound: no guessing at start-up time
        assert f"listening on 127.0.0.1:{port}" in ready, ready or server.communicate(timeout=10)[1]
        code = main(
            [
                "sweep",
                "configs/master_sweep.json",
                "--backend",
                "live",
                "--port",
                str(port),
                "--reply-port",
                str(reply_port),
                "--export",
                "sim",
            ]
        )
    finally:
        server.terminate()
        _, server_err = server.communicate(timeout=10)
    out, err = capsys.readouterr()
    assert code == 0, err + server_err
    assert "EXPERIMENT 3/3: iter9" in out
    assert len(receipts(project)) == 3
    # The exports are the server's: written by the other process, inside the project it was started in.
    assert all((project / r["export_file"]).is_file() for r in receipts(project))


def test_analyze_prints_measurements(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = np.arange(48_000 * 2) / 48_000
    tone = 10 ** (-23 / 20) * np.sin(2 * np.pi * 1000 * t)
    sf.write("output/tone.wav", np.stack([tone, tone], axis=1), 48_000, subtype="PCM_24")
    assert main(["analyze", "output/tone.wav", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["lufs_i"] == pytest.approx(-23.0, abs=0.1)
    assert main(["analyze", "output/missing.wav"]) == 20


def test_a_run_measures_the_same_whatever_ran_before_it(project: Path) -> None:
    """Runs set only their own parameters; the rest return to where they were, so order and resumes
    (which retry a killed run after later ones) do not change a run's export."""
    assert main(["sweep", "configs/master_sweep.json", "--study", "forward"]) == 0
    forward = {r["id"]: r["results"]["lufs_i"] for r in receipts(project)}
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config["runs"].reverse()
    Path("configs/reversed.json").write_text(json.dumps(config))
    assert main(["sweep", "configs/reversed.json"]) == 0
    backward = {r["id"]: r["results"]["lufs_i"] for r in receipts(project)[3:]}
    assert backward == forward
    iter8 = receipts(project)[4]
    assert iter8["id"] == "iter8" and iter8["applied"]["limiter.release"]["display"] == "300 ms"
