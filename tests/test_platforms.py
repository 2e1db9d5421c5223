"""Platform presets: each one exists with its source, and the playback line tells a user what they will hear."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotune.errors import ConfigError
from autotune.platforms import (
    DEFAULT_TOLERANCE_LU,
    PLATFORMS,
    Platform,
    describe_playback,
    get_platform,
    playback_gain_db,
    true_peak_limit_for,
)

REQUIRED = (
    "spotify",
    "spotify-loud",
    "apple-music",
    "youtube",
    "tidal",
    "amazon-music",
    "ebu-r128",
    "aes-streaming",
)

# --------------------------------------------------------------------------------------------------
# The presets


def test_every_required_preset_exists_with_a_titled_source() -> None:
    assert set(REQUIRED) <= set(PLATFORMS)
    for name in REQUIRED:
        p = PLATFORMS[name]
        assert p.name == name
        assert p.sources, name
        for source in p.sources:
            title, _, url = source.rpartition(", ")
            assert title.strip(), source
            assert re.fullmatch(r"https://\S+", url), source


@pytest.mark.parametrize(
    ("name", "target", "true_peak"),
    [
        ("spotify", -14.0, -1.0),
        ("spotify-loud", -11.0, -1.0),
        ("apple-music", -16.0, -1.0),
        ("youtube", -14.0, -1.0),
        ("tidal", -14.0, -1.0),
        ("amazon-music", -14.0, -2.0),
        ("ebu-r128", -23.0, -1.0),
        ("aes-streaming", -16.0, -1.0),
    ],
)
def test_preset_figures(name: str, target: float, true_peak: float) -> None:
    p = get_platform(name)
    assert p.target_lufs == target
    assert p.true_peak_limit_dbtp == true_peak


def test_standards_carry_their_stated_tolerance_and_platforms_autotunes_half_lu() -> None:
    assert get_platform("ebu-r128").tolerance_lu == 0.2
    assert get_platform("aes-streaming").tolerance_lu == 0.2
    for p in PLATFORMS.values():
        if not p.tolerance_is_stated:
            assert p.tolerance_lu == DEFAULT_TOLERANCE_LU, p.name
            assert "autotune's choice" in p.note, p.name


def test_normalisation_kinds() -> None:
    assert {n for n, p in PLATFORMS.items() if p.normalisation == "down-only"} == {
        "youtube",
        "tidal",
        "amazon-music",
    }
    assert get_platform("spotify").up_limited_by_peak
    assert not get_platform("spotify-loud").up_limited_by_peak  # Loud raises regardless, then limits
    assert not get_platform("youtube").up_limited_by_peak


def test_a_self_contradicting_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="down-only"):
        replace(get_platform("youtube"), up_peak_ceiling_dbtp=-1.0)
    with pytest.raises(ValueError, match="source"):
        replace(get_platform("spotify"), sources=())


# --------------------------------------------------------------------------------------------------
# The loudness-dependent true-peak limit


def test_spotify_asks_louder_masters_for_two_db_of_true_peak_headroom() -> None:
    spotify = get_platform("spotify")
    assert true_peak_limit_for(spotify, -13.0) == -2.0
    assert true_peak_limit_for(spotify, -14.0) == -1.0  # "louder than -14" is strict
    assert true_peak_limit_for(spotify, -18.0) == -1.0
    assert true_peak_limit_for(get_platform("spotify-loud"), -11.0) == -2.0


def test_platforms_without_the_rule_keep_one_limit() -> None:
    for name in ("apple-music", "youtube", "ebu-r128"):
        p = get_platform(name)
        assert true_peak_limit_for(p, -6.0) == true_peak_limit_for(p, -30.0) == p.true_peak_limit_dbtp


# --------------------------------------------------------------------------------------------------
# What playback does: louder, at target, quieter, on each kind of normalisation


def test_louder_master_is_turned_down_everywhere() -> None:
    assert describe_playback(get_platform("spotify"), -12.8, -1.5) == "Spotify: -1.2 dB (turned down)"
    assert describe_playback(get_platform("youtube"), -10.0, -1.0) == "YouTube: -4.0 dB (turned down)"
    assert describe_playback(get_platform("apple-music"), -9.0, -1.0) == "Apple Music: -7.0 dB (turned down)"
    assert playback_gain_db(get_platform("ebu-r128"), -20.0, -1.0) == pytest.approx(-3.0)


@pytest.mark.parametrize("name", REQUIRED)
def test_master_at_target_is_left_alone(name: str) -> None:
    p = get_platform(name)
    assert describe_playback(p, p.target_lufs, -3.0) == f"{p.label}: none"
    assert describe_playback(p, p.target_lufs + 0.04, -3.0) == f"{p.label}: none"  # prints as 0.0 dB


def test_down_only_platform_never_turns_up() -> None:
    assert (
        describe_playback(get_platform("youtube"), -16.0, -6.0)
        == "YouTube: none (quieter than -14 LUFS; YouTube does not turn up)"
    )
    assert playback_gain_db(get_platform("tidal"), -20.0, -10.0) == 0.0
    assert playback_gain_db(get_platform("amazon-music"), -30.0, -20.0) == 0.0


def test_quiet_master_with_headroom_is_turned_up_to_target() -> None:
    assert describe_playback(get_platform("spotify"), -15.5, -4.0) == "Spotify: +1.5 dB (turned up)"
    assert describe_playback(get_platform("apple-music"), -18.0, -6.0) == "Apple Music: +2.0 dB (turned up)"


def test_gain_up_stops_at_the_true_peak_ceiling() -> None:
    spotify = get_platform("spotify")
    # Spotify's own example: -20 LUFS with a -5 dB true peak is lifted only to -16 LUFS.
    assert playback_gain_db(spotify, -20.0, -5.0) == pytest.approx(4.0)
    assert (
        describe_playback(spotify, -17.0, -2.5)
        == "Spotify: +1.5 dB (turned up, limited by true-peak headroom)"
    )
    assert (
        describe_playback(spotify, -16.0, -0.5)
        == "Spotify: none (quieter than -14 LUFS, but no true-peak headroom to turn up)"
    )


def test_spotify_loud_turns_up_past_the_headroom_and_limits() -> None:
    loud = get_platform("spotify-loud")
    assert playback_gain_db(loud, -14.0, -0.3) == pytest.approx(3.0)
    assert (
        describe_playback(loud, -14.0, -0.3)
        == "Spotify (Loud): +3.0 dB (turned up; its limiter holds peaks at -1 dB)"
    )


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(REQUIRED),
    lufs=st.floats(-60.0, 0.0),
    true_peak=st.floats(-40.0, 3.0),
)
def test_playback_never_overshoots_the_target_or_the_ceiling(
    name: str, lufs: float, true_peak: float
) -> None:
    p: Platform = get_platform(name)
    gain = playback_gain_db(p, lufs, true_peak)
    assert lufs + gain <= p.target_lufs + 1e-9
    if gain > 0:
        assert p.normalisation == "down-and-up"
        if p.up_peak_ceiling_dbtp is not None:
            assert true_peak + gain <= p.up_peak_ceiling_dbtp + 1e-9
    if lufs > p.target_lufs:
        assert lufs + gain == pytest.approx(p.target_lufs)


# --------------------------------------------------------------------------------------------------
# Looking a preset up


def test_unknown_name_fails_in_one_line_listing_the_valid_names() -> None:
    with pytest.raises(ConfigError) as e:
        get_platform("spotfy")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("unknown platform 'spotfy'"), msg
    for name in REQUIRED:
        assert name in msg


def test_names_are_matched_without_regard_to_case_or_spaces() -> None:
    assert get_platform(" Apple-Music ") is PLATFORMS["apple-music"]
