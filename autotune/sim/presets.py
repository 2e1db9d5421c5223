"""The virtual Live's named presets: physics (plants) and songs, and its options built from the settings.

Importing this module is cheap and never imports pedalboard, numpy's heavier users or the UDP server: the
settings' validator reads `PHYSICS_NAMES` and `SONG_NAMES` from here (lazily, inside the validator).

- Physics: `autotune.dsp.PHYSICS` ("model", "vintage", "punchy") and the third-party "pedalboard" and
  "pedalboard-maximizer".
- Songs: `autotune.dsp.SONGS` (synthesised) and real recordings "rec-<loop>" (30 s) and "rec-<loop>-4min"
  from Debian's `sonic-pi-samples` (`autotune.sim.recordings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autotune.dsp import PHYSICS, SONGS, DemoSpec
from autotune.errors import ConfigError
from autotune.sim.recordings import RECORDINGS, SAMPLES_DIR, RecordingSpec

if TYPE_CHECKING:
    from autotune.settings import Settings
    from autotune.sim.server import SimOptions

#: Plants whose DSP is third-party code (name -> what it is), beside `autotune.dsp.PHYSICS`; they are built
#: by `autotune.sim.plants.make_plant`.
THIRD_PARTY_PHYSICS: dict[str, str] = {
    "pedalboard": "Spotify's pedalboard: JUCE's Compressor, as Live's Glue Compressor and Limiter",
    "pedalboard-maximizer": "pedalboard's Glue, and JUCE's Limiter as it comes (not Live's conventions)",
}
PHYSICS_NAMES: tuple[str, ...] = (*PHYSICS, *THIRD_PARTY_PHYSICS)
SONG_NAMES: tuple[str, ...] = (*SONGS, *RECORDINGS)

Song = DemoSpec | RecordingSpec


def song(name: str, samples_dir: Path = SAMPLES_DIR) -> Song:
    """The song of that name; a recording whose loops are not installed is one line naming the package."""
    if name in SONGS:
        return SONGS[name]
    if name in RECORDINGS:
        spec = RECORDINGS[name].with_samples_dir(samples_dir)
        spec.check()
        return spec
    raise ConfigError(f"unknown song {name!r} (choose from {', '.join(SONG_NAMES)})")


def check_physics(name: str) -> None:
    """A third-party plant whose package is missing is one line naming it (pedalboard is imported here)."""
    if name not in PHYSICS_NAMES:
        raise ConfigError(f"unknown physics {name!r} (choose from {', '.join(PHYSICS_NAMES)})")
    if name in THIRD_PARTY_PHYSICS:
        from autotune.sim.plants import make_plant

        make_plant(name)


def sim_options(settings: Settings) -> SimOptions:
    """The virtual Live's flavour, physics, song and stress as the AUTOTUNE_SIM_* settings (or flags) say."""
    from autotune.sim.plants import Stress
    from autotune.sim.server import SimOptions

    check_physics(settings.sim_physics)
    physics = PHYSICS.get(settings.sim_physics)
    return SimOptions(
        names=settings.sim_names,
        addressing=settings.sim_addressing,
        chain_on=settings.sim_chain_on,
        cache_dir=settings.cache_dir,
        physics=physics if physics is not None else settings.sim_physics,
        demo=song(settings.sim_song, settings.sim_samples_dir),
        stress=Stress(
            input_offset_db=settings.sim_input_offset_db,
            drive_slope=settings.sim_drive_slope,
            post_gain_db=settings.sim_post_gain_db,
        ),
        clock_speed=settings.sim_clock,
        # The virtual Live's Set lives in the cache: its takes stay inside the project's folders.
        set_dir=settings.cache_dir / "virtual-live",
    )
