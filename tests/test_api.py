"""The library as the README shows it: `from autotune import optimize, sweep`, typed results, no console."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.errors import EXIT_OK, EXIT_OUT_OF_REACH


@pytest.mark.slow
def test_optimize_and_sweep_return_typed_outcomes(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune import StudyOutcome, optimize, sweep

    # A cache of its own: a test run before this one on the same worker may have cached this set's dry
    # reference, and then no reference export would be needed.
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(project / ".cache"))
    out = optimize("configs/spotify.json", trials=8)
    assert isinstance(out, StudyOutcome) and out.ending == "passed" and out.exit_code == EXIT_OK
    assert out.passed is not None and abs(out.passed.lufs_i + 14.0) <= 0.5
    assert out.passed.true_peak_dbtp is not None and out.passed.true_peak_dbtp <= -2.0
    assert (project / out.passed.export_file).is_file()
    assert any("TARGET HIT" in line for line in out.summary)
    assert out.reference_exports == 1 and out.study == "spotify-optimize"
    swept = sweep("configs/master_sweep.json")
    assert swept.ending == "no-pass" and swept.passed is None and swept.closest is not None
    assert swept.trials == 3
    assert capsys.readouterr().out == ""  # the library prints nothing unless given log=print


@pytest.mark.slow
def test_a_target_out_of_reach_is_an_ending_with_its_exit_code(project: Path) -> None:
    from autotune import optimize
    from autotune.config import load_config

    config = load_config("configs/streaming.json").model_copy(
        update={"target_lufs": -2.0, "peak_limit_dbfs": -6.0}
    )
    out = optimize(config, trials=6)
    assert out.ending == "out-of-reach" and out.exit_code == EXIT_OUT_OF_REACH
    assert out.out_of_reach is not None and out.out_of_reach["direction"] == "louder"


def test_analyze_returns_the_measurement_and_playback(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    from autotune import analyze

    sr = 48_000
    x = 0.1 * np.sin(2 * np.pi * 440 * np.arange(4 * sr) / sr)
    sf.write(str(tmp_path / "a.wav"), np.stack([x, x], axis=1), sr, subtype="PCM_24")
    a = analyze(tmp_path / "a.wav")
    assert a.measurement.lufs_i < -14.0
    assert a.playback_db["youtube"] == 0.0  # YouTube does not turn a quiet master up
    assert a.as_dict()["playback_db"] == a.playback_db
