"""Loudness presets of streaming platforms and standards, and what each does to a master on playback.

A loudness target alone does not tell a user whether their master will be heard as they made it: a
master louder than the target is turned down everywhere, but a quieter one is turned up by some
platforms, only as far as its true-peak headroom allows by others, and not at all by the rest. The
presets carry that behaviour so `describe_playback` can say, in one line, what a listener will get.

Every figure comes from the source named in the preset's `sources`; where a platform publishes no
figure the preset says which source was followed instead and why (see `note`). Tolerances that no
source states are autotune's choice of 0.5 LU (`tolerance_is_stated` is False for those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autotune.errors import ConfigError

Normalisation = Literal["down-and-up", "down-only"]

#: Gains smaller than this print as "none": the description shows tenths of a dB.
_NEGLIGIBLE_DB = 0.05
#: Tolerance used where the platform states none, so every preset can be checked the same way.
DEFAULT_TOLERANCE_LU = 0.5

SPOTIFY_LOUDNESS = (
    "Spotify for Artists: Loudness normalization, "
    "https://support.spotify.com/us/artists/article/loudness-normalization/"
)
SPOTIFY_NOT_AS_LOUD = (
    "Spotify for Artists: Track not as loud as others?, "
    "https://support.spotify.com/ki/artists/article/track-not-as-loud-as-others/"
)
AES_TD1008 = (
    "AES TD1008: Recommendations for Loudness of Internet Audio Streaming and On-Demand Distribution "
    "(AESTD1008.1.21-9, 2021), https://aes2.org/wp-content/uploads/2024/01/20210924_TD1008_v3.13.pdf"
)
APPLE_DIGITAL_MASTERS = (
    "Apple Digital Masters (technology brief), "
    "https://www.apple.com/apple-music/apple-digital-masters/docs/apple-digital-masters.pdf"
)
METERPLUGS_TIDAL = (
    "MeterPlugs: Tidal Adds Loudness Normalization (2016), "
    "https://www.meterplugs.com/blog/2016/10/07/tidal-adds-loudness-normalization.html"
)
PRODUCTION_ADVICE_YOUTUBE = (
    "Production Advice (Ian Shepherd): YouTube Music loudness normalisation, "
    "https://productionadvice.co.uk/youtube-music/"
)
ADMIRAL_BUMBLEBEE_YOUTUBE = (
    "Admiral Bumblebee: Fast, Cheap, Easy YouTube volume normalization (2018), "
    "https://www.admiralbumblebee.com/mastering/2018/11/30/Fast-Cheap-Easy-Youtube.html"
)
AMAZON_ALEXA = (
    "Amazon Alexa: Normalizing the Loudness of Audio Content, "
    "https://developer.amazon.com/en-US/docs/alexa/flashbriefing/normalizing-the-loudness-of-audio-content.html"
)
EBU_R128 = (
    "EBU R 128: Loudness normalisation and permitted maximum level of audio signals, "
    "https://tech.ebu.ch/publications/r128"
)
EBU_TECH3343 = (
    "EBU Tech 3343: Guidelines for production of programmes in accordance with EBU R 128, "
    "https://tech.ebu.ch/publications/tech3343"
)


@dataclass(frozen=True, slots=True)
class Platform:
    """One loudness destination: where a master should land, and how playback will move it.

    `up_peak_ceiling_dbtp` is the true peak a "down-and-up" platform will not push a quiet master past
    (Spotify: -1 dBTP); None means it raises the whole way (Spotify's Loud setting, which then limits,
    see `up_limiter_db`). `loud_true_peak_limit_dbtp` replaces `true_peak_limit_dbtp` for masters
    louder than `loud_above_lufs`, because louder masters distort more in lossy encoding.
    """

    name: str
    label: str
    target_lufs: float
    tolerance_lu: float
    tolerance_is_stated: bool
    true_peak_limit_dbtp: float
    normalisation: Normalisation
    up_peak_ceiling_dbtp: float | None
    sources: tuple[str, ...]
    note: str
    loud_above_lufs: float | None = None
    loud_true_peak_limit_dbtp: float | None = None
    up_limiter_db: float | None = None

    def __post_init__(self) -> None:
        # A preset that contradicts itself would print advice the platform does not follow.
        if self.tolerance_lu <= 0:
            raise ValueError(f"{self.name}: tolerance_lu must be positive, not {self.tolerance_lu}")
        if (self.loud_above_lufs is None) != (self.loud_true_peak_limit_dbtp is None):
            raise ValueError(f"{self.name}: loud_above_lufs and loud_true_peak_limit_dbtp go together")
        if self.normalisation == "down-only" and (
            self.up_peak_ceiling_dbtp is not None or self.up_limiter_db is not None
        ):
            raise ValueError(f"{self.name}: a down-only platform has no gain-up ceiling or limiter")
        if not self.sources:
            raise ValueError(f"{self.name}: a preset needs at least one source")

    @property
    def up_limited_by_peak(self) -> bool:
        """Whether a quiet master is raised only as far as its true-peak headroom allows."""
        return self.normalisation == "down-and-up" and self.up_peak_ceiling_dbtp is not None


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            name="spotify",
            label="Spotify",
            target_lufs=-14.0,
            tolerance_lu=DEFAULT_TOLERANCE_LU,
            tolerance_is_stated=False,
            true_peak_limit_dbtp=-1.0,
            loud_above_lufs=-14.0,
            loud_true_peak_limit_dbtp=-2.0,
            normalisation="down-and-up",
            up_peak_ceiling_dbtp=-1.0,
            sources=(SPOTIFY_LOUDNESS, SPOTIFY_NOT_AS_LOUD),
            note=(
                "Normal setting (the default). Louder masters are turned down to -14 LUFS; softer ones are "
                "turned up, leaving 1 dB of true-peak headroom. Masters louder than -14 LUFS should stay "
                "below -2 dBTP. Spotify states no tolerance: 0.5 LU is autotune's choice."
            ),
        ),
        Platform(
            name="spotify-loud",
            label="Spotify (Loud)",
            target_lufs=-11.0,
            tolerance_lu=DEFAULT_TOLERANCE_LU,
            tolerance_is_stated=False,
            true_peak_limit_dbtp=-1.0,
            loud_above_lufs=-14.0,
            loud_true_peak_limit_dbtp=-2.0,
            normalisation="down-and-up",
            up_peak_ceiling_dbtp=None,
            up_limiter_db=-1.0,
            sources=(SPOTIFY_LOUDNESS, SPOTIFY_NOT_AS_LOUD),
            note=(
                "Premium listeners' Loud setting: -11 LUFS regardless of true peak; Spotify's limiter engages"
                " at -1 dB (sample values, 5 ms attack, 100 ms decay). A -11 LUFS master is louder than -14 "
                "LUFS, so Spotify's -2 dBTP advice applies. No stated tolerance: 0.5 LU is autotune's choice."
            ),
        ),
        Platform(
            name="apple-music",
            label="Apple Music",
            target_lufs=-16.0,
            tolerance_lu=DEFAULT_TOLERANCE_LU,
            tolerance_is_stated=False,
            true_peak_limit_dbtp=-1.0,
            normalisation="down-and-up",
            up_peak_ceiling_dbtp=-1.0,
            sources=(APPLE_DIGITAL_MASTERS, AES_TD1008, METERPLUGS_TIDAL),
            note=(
                "Sound Check. Apple publishes no loudness figure; -16 LUFS is the level engineers measure and"
                " AES TD1008's figure for track-normalised music. Apple asks for at least 1 dB of headroom. "
                "Apple applies no limiter, so quiet masters are assumed raised only up to -1 dBTP (autotune's"
                " assumption). No stated tolerance: 0.5 LU is autotune's choice."
            ),
        ),
        Platform(
            name="youtube",
            label="YouTube",
            target_lufs=-14.0,
            tolerance_lu=DEFAULT_TOLERANCE_LU,
            tolerance_is_stated=False,
            true_peak_limit_dbtp=-1.0,
            normalisation="down-only",
            up_peak_ceiling_dbtp=None,
            sources=(PRODUCTION_ADVICE_YOUTUBE, ADMIRAL_BUMBLEBEE_YOUTUBE, AES_TD1008),
            note=(
                "The video platform. YouTube publishes no figure: -14 LUFS and 'turns down only' are "
                "engineers' measurements (Stats for nerds). YouTube Music turns down only above about -7 "
                "LUFS. True peak follows AES TD1008's -1 dBTP at the codec input. No stated tolerance: 0.5 LU"
                " is autotune's choice."
            ),
        ),
        Platform(
            name="tidal",
            label="TIDAL",
            target_lufs=-14.0,
            tolerance_lu=DEFAULT_TOLERANCE_LU,
            tolerance_is_stated=False,
            true_peak_limit_dbtp=-1.0,
            normalisation="down-only",
            up_peak_ceiling_dbtp=None,
            sources=(METERPLUGS_TIDAL, AES_TD1008),
            note=(
                "TIDAL publishes no artist figure; -14 LUFS (ITU-R BS.1770) and 'does not raise quieter "
                "music' are what TIDAL told MeterPlugs (2016). True peak follows AES TD1008's -1 dBTP. No "
                "stated tolerance: 0.5 LU is autotune's choice."
            ),
        ),
        Platform(
            name="amazon-music",
            label="Amazon Music",
            target_lufs=-14.0,
            tolerance_lu=DEFAULT_TOLERANCE_LU,
            tolerance_is_stated=False,
            true_peak_limit_dbtp=-2.0,
            normalisation="down-only",
            up_peak_ceiling_dbtp=None,
            sources=(AMAZON_ALEXA,),
            note=(
                "Amazon publishes no Amazon Music figure; its only published loudness guideline (audio for "
                "Alexa) is -14 LUFS with true peak at most -2 dBFS, which this preset follows. Whether Amazon"
                " Music turns quiet masters up is not published: 'down only' is autotune's cautious "
                "assumption. No stated tolerance: 0.5 LU is autotune's choice."
            ),
        ),
        Platform(
            name="ebu-r128",
            label="EBU R 128",
            target_lufs=-23.0,
            tolerance_lu=0.2,
            tolerance_is_stated=True,
            true_peak_limit_dbtp=-1.0,
            normalisation="down-and-up",
            up_peak_ceiling_dbtp=-1.0,
            sources=(EBU_R128, EBU_TECH3343),
            note=(
                "Broadcast programme loudness. R 128 allows +-1.0 LU only where the target is not practically"
                " attainable (live); a rendered export is not live, and Tech 3343 accepts +-0.2 LU in "
                "post-production, so the preset uses 0.2 LU. The earlier +-0.5 LU (R 128 v3, 2014) is "
                "superseded. Gain up is modelled as stopping at -1 dBTP so normalising never breaks the peak "
                "rule."
            ),
        ),
        Platform(
            name="aes-streaming",
            label="AES TD1008 (streaming)",
            target_lufs=-16.0,
            tolerance_lu=0.2,
            tolerance_is_stated=True,
            true_peak_limit_dbtp=-1.0,
            normalisation="down-and-up",
            up_peak_ceiling_dbtp=-1.0,
            sources=(AES_TD1008,),
            note=(
                "TD1008's distribution loudness for track-normalised music (-16 LUFS, +0.2 LU upper "
                "tolerance, checked here as +-0.2 LU); its other rows are speech -18 and an album's loudest "
                "track -14. TD1008 replaced TD1004's -16..-20 LUFS range. Gain up is modelled as stopping at "
                "-1 dBTP, TD1008's peak recommendation."
            ),
        ),
    )
}


def get_platform(name: str) -> Platform:
    """The preset called `name`; a typo gets one line listing the names that exist."""
    key = name.strip().lower()
    if key not in PLATFORMS:
        raise ConfigError(f"unknown platform {name!r}; valid platforms: {', '.join(PLATFORMS)}")
    return PLATFORMS[key]


def true_peak_limit_for(platform: Platform, lufs_i: float) -> float:
    """The true-peak limit for a master this loud: Spotify asks louder-than-target masters for -2 dBTP."""
    if (
        platform.loud_above_lufs is not None
        and platform.loud_true_peak_limit_dbtp is not None
        and lufs_i > platform.loud_above_lufs
    ):
        return platform.loud_true_peak_limit_dbtp
    return platform.true_peak_limit_dbtp


def playback_gain_db(platform: Platform, lufs_i: float, true_peak_dbtp: float) -> float:
    """The gain the platform applies on playback, so a user sees how loud the master will be heard."""
    wanted = platform.target_lufs - lufs_i
    if wanted <= 0 or platform.normalisation == "down-only":
        return min(wanted, 0.0)
    if platform.up_peak_ceiling_dbtp is None:
        return wanted
    return max(0.0, min(wanted, platform.up_peak_ceiling_dbtp - true_peak_dbtp))


def describe_playback(platform: Platform, lufs_i: float, true_peak_dbtp: float) -> str:
    """One line on what a listener will hear, e.g. "Spotify: -1.2 dB (turned down)"."""
    gain = playback_gain_db(platform, lufs_i, true_peak_dbtp)
    wanted = platform.target_lufs - lufs_i
    target = f"{platform.target_lufs:g} LUFS"
    if abs(gain) < _NEGLIGIBLE_DB:
        if wanted < _NEGLIGIBLE_DB:
            return f"{platform.label}: none"
        if platform.normalisation == "down-only":
            return f"{platform.label}: none (quieter than {target}; {platform.label} does not turn up)"
        return f"{platform.label}: none (quieter than {target}, but no true-peak headroom to turn up)"
    if gain < 0:
        return f"{platform.label}: {gain:+.1f} dB (turned down)"
    if gain < wanted - _NEGLIGIBLE_DB:
        return f"{platform.label}: {gain:+.1f} dB (turned up, limited by true-peak headroom)"
    if platform.up_limiter_db is not None:
        limiter = f"{platform.up_limiter_db:g} dB"
        return f"{platform.label}: {gain:+.1f} dB (turned up; its limiter holds peaks at {limiter})"
    return f"{platform.label}: {gain:+.1f} dB (turned up)"


def playback_gains(lufs_i: float, true_peak_dbtp: float) -> dict[str, float]:
    """Every preset's playback gain for one master (dB, rounded to 0.1 as a meter shows it)."""
    return {name: round(playback_gain_db(p, lufs_i, true_peak_dbtp), 1) for name, p in PLATFORMS.items()}


def playback_lines(lufs_i: float, true_peak_dbtp: float) -> list[str]:
    """How every preset's platform will play one master back, one phrase each."""
    return [describe_playback(p, lufs_i, true_peak_dbtp) for p in PLATFORMS.values()]
