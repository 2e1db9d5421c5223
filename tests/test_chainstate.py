"""Reading the chain by meaning (autotune.chainstate): Live's display conventions, and what is reported."""

from __future__ import annotations

import pytest

from autotune.chainstate import read_state
from autotune.diagnosis import above_ceiling, diagnose

ROLES = {"glue": "glue", "limiter": "limiter"}
LIVE = {
    ("glue", "threshold_db"): "-20.0 dB",
    ("glue", "ratio"): "4.00 : 1",
    ("glue", "attack_ms"): "10 ms",
    ("glue", "release_s"): "Auto",
    ("glue", "makeup_db"): "3.00 dB",
    ("glue", "range_db"): "-70.0 dB",
    ("glue", "dry_wet"): "80 %",
    ("glue", "peak_clip_in"): "Off",
    ("limiter", "gain_db"): "6.00 dB",
    ("limiter", "ceiling_db"): "-1.00 dB",
    ("limiter", "release_ms"): "300 ms",
    ("limiter", "lookahead_ms"): "3.0 ms",
    ("limiter", "auto"): "On",
    ("limiter", "mode"): "True Peak",
    ("limiter", "link"): "On",
}


def reader(shown: dict[tuple[str, str], str]):  # type: ignore[no-untyped-def]
    def read_text(alias: str, key: str) -> str:
        if (alias, key) not in shown:
            raise KeyError(key)  # a parameter this build lacks
        return shown[(alias, key)]

    return read_text


def test_live_displays_are_read_in_lives_conventions() -> None:
    state, findings = read_state(reader(LIVE), ROLES)  # type: ignore[arg-type]
    assert findings == []
    g, lim = state.glue, state.limiter
    assert (g.threshold_db, g.ratio, g.attack_ms, g.release_s, g.makeup_db) == (-20.0, 4.0, 10.0, None, 3.0)
    assert g.range_db == 70.0  # "-70.0 dB": up to 70 dB of reduction, as on the hardware
    assert g.dry_wet == pytest.approx(0.8) and g.peak_clip is False
    assert (lim.gain_db, lim.ceiling_db, lim.release_ms, lim.lookahead_ms) == (6.0, -1.0, 300.0, 3.0)
    assert lim.auto_release is True and lim.mode == "true_peak"


def test_range_at_0_db_means_no_compression() -> None:
    state, findings = read_state(reader({**LIVE, ("glue", "range_db"): "0.0 dB"}), ROLES)  # type: ignore[arg-type]
    assert findings == [] and state.glue.range_db == 0.0


@pytest.mark.parametrize(
    ("key", "shown", "param"),
    [
        (("glue", "range_db"), "70.0 dB", "Range"),  # the wrong sign: not Live's convention
        (("glue", "threshold_db"), "50 %", "Threshold"),  # a unit never seen there
        (("limiter", "mode"), "Vintage", "Mode"),
        (("limiter", "auto"), "Maybe", "Auto"),
        (("limiter", "link"), "Off", "Link"),  # L/R limiting: louder than the linked model predicts
    ],
)
def test_a_display_not_understood_is_reported_not_predicted_from(
    key: tuple[str, str], shown: str, param: str
) -> None:
    _state, findings = read_state(reader({**LIVE, key: shown}), ROLES)  # type: ignore[arg-type]
    assert len(findings) == 1
    f = findings[0]
    assert f.param == param and f.display == shown
    text = f.describe()
    assert shown in text and "expected" in text and "assumes" in text


def test_a_parameter_the_build_lacks_keeps_the_default_silently() -> None:
    shown = {k: v for k, v in LIVE.items() if k != ("limiter", "mode")}  # Live 11: no Mode
    state, findings = read_state(reader(shown), ROLES)  # type: ignore[arg-type]
    assert findings == [] and state.limiter.mode == "standard"


def test_a_peak_above_the_ceiling_names_gain_after_the_chain() -> None:
    assert above_ceiling(-1.2, -1.1) is None  # the limiter's own rounding
    text = above_ceiling(1.9, -1.1)
    assert text is not None and "3.0 dB above the Limiter's ceiling" in text and "master fader" in text
    lines = diagnose(
        peak_dbfs=1.9,
        ceiling_db=-1.1,
        measured_lufs=-11.0,
        predicted_lufs=-14.0,
        first=True,
        findings=[],
        from_cache=False,
    )
    assert len(lines) == 2 and "missed by +3.00 LU" in lines[1] and "gain after the chain" in lines[1]


def test_a_first_miss_names_the_share_of_the_processing_the_devices_showed() -> None:
    """JUCE's limiter on the tabla: 3 LU louder than predicted because it takes off 60 % of what the
    model's takes off. The user learns that number, not only that the devices differ; within 10 % of
    the model's the share is not the story."""

    def said(share: float) -> list[str]:
        return diagnose(
            peak_dbfs=-1.1,
            ceiling_db=-1.1,
            measured_lufs=-8.9,
            predicted_lufs=-12.0,
            first=True,
            findings=[],
            from_cache=False,
            processing_share=share,
        )

    lines = said(0.6)
    assert len(lines) == 1 and "take off 60% of the loudness the model's Glue and Limiter" in lines[0]
    assert "drive harder or softer" in said(0.95)[0]


def test_a_first_miss_without_other_clues_blames_the_devices() -> None:
    lines = diagnose(
        peak_dbfs=-1.1,
        ceiling_db=-1.1,
        measured_lufs=-17.0,
        predicted_lufs=-14.0,
        first=True,
        findings=[],
        from_cache=False,
    )
    assert len(lines) == 1 and "drive harder or softer" in lines[0]
    assert (
        diagnose(
            peak_dbfs=-1.1,
            ceiling_db=-1.1,
            measured_lufs=-17.0,
            predicted_lufs=-14.0,
            first=False,
            findings=[],
            from_cache=False,
        )
        == []
    )
