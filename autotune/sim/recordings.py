"""Real recordings as the virtual Live's songs: Sonic Pi's CC0 loops made into pre-master-like material.

Debian's package `sonic-pi-samples` installs the loops Sonic Pi ships (freesound.org recordings placed in the
public domain, CC0; FLAC, 44.1 kHz stereo) under /usr/share/sonic-pi/samples/. A song here is one loop, or
two or three loops mixed at stated gains, each repeated end to end at its own rate (the loops are cut to
loop seamlessly) and cut to 30 s or 4 minutes, resampled to 48 kHz with `scipy.signal.resample_poly`
(160/147), and peak-normalised to a sample peak of `REC_PEAK_DBFS` (-2.0 dBFS): the headroom of a mix
bounced for mastering. The result is cached on disk by the virtual Live like the demo song.

This module imports only the standard library at import time (the settings' validator reads the names);
numpy, scipy and soundfile are imported when a song is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

SAMPLES_DIR = Path("/usr/share/sonic-pi/samples")
PACKAGE = "sonic-pi-samples"
#: The sample peak every recording is normalised to (dBFS).
REC_PEAK_DBFS = -2.0
SAMPLE_RATE = 48_000
#: The loops' sample rate and the resampling ratio to 48 kHz (48000 / 44100 = 160 / 147).
SOURCE_RATE = 44_100
UP, DOWN = 160, 147
#: Version of the recipe: part of every cache key, so a changed recipe never reads an old cache.
RECIPE = "rec-v1"

#: Beats in one pass of each loop (as Sonic Pi's docs count them), for the tempo the virtual Live reports.
LOOP_BEATS: dict[str, int] = {
    "amen": 4,
    "breakbeat": 4,
    "compus": 16,
    "garzul": 16,
    "mika": 16,
    "safari": 16,
    "tabla": 16,
}


@dataclass(frozen=True)
class RecordingSpec:
    """A song made of real loops: `loops` are (loop name without `loop_`, gain in dB) mixed together."""

    name: str
    loops: tuple[tuple[str, float], ...]
    seconds: float = 30.0
    sample_rate: int = SAMPLE_RATE
    peak_dbfs: float = REC_PEAK_DBFS
    #: Nominal tempo (from the first loop's length and beat count): the virtual Live reports it to clients.
    tempo_bpm: float = 120.0
    samples_dir: Path = field(default=SAMPLES_DIR, compare=False)

    def cache_key(self) -> str:
        loops = "+".join(f"{n}{g:+g}" for n, g in self.loops)
        return f"{RECIPE}-{loops}-{self.seconds:g}s-{self.sample_rate}-pk{self.peak_dbfs:g}"

    def files(self) -> list[Path]:
        return [self.samples_dir / f"loop_{n}.flac" for n, _ in self.loops]

    def check(self) -> None:
        """One line naming the package when the loops are not on this machine."""
        missing = [p for p in self.files() if not p.is_file()]
        if missing:
            raise ConfigError(
                f"song {self.name} needs the Sonic Pi loops ({missing[0]} is missing): install Debian's "
                f"package {PACKAGE} (apt-get install {PACKAGE}), or point AUTOTUNE_SIM_SAMPLES_DIR at "
                "a folder of Sonic Pi's samples"
            )

    def with_samples_dir(self, samples_dir: Path) -> RecordingSpec:
        return RecordingSpec(
            self.name, self.loops, self.seconds, self.sample_rate, self.peak_dbfs, self.tempo_bpm, samples_dir
        )


def _tempo(loop: str, samples_seconds: float) -> float:
    return round(60.0 * LOOP_BEATS[loop] / samples_seconds, 2)


#: (song name, loops, length of one pass of the first loop in seconds at 44.1 kHz, for the nominal tempo)
_SONGS: list[tuple[str, tuple[tuple[str, float], ...], float]] = [
    ("amen", (("amen", 0.0),), 1.753),
    ("breakbeat", (("breakbeat", 0.0),), 1.905),
    ("compus", (("compus", 0.0),), 6.486),
    ("garzul", (("garzul", 0.0),), 8.0),
    ("mika", (("mika", 0.0),), 8.0),
    ("safari", (("safari", 0.0),), 8.005),
    ("tabla", (("tabla", 0.0),), 10.674),
    # A busier arrangement: the break up front, the synth loop 3 dB under it, tabla 6 dB under that.
    ("mix", (("amen", 0.0), ("garzul", -3.0), ("tabla", -6.0)), 1.753),
]

RECORDINGS: dict[str, RecordingSpec] = {}
for _name, _loops, _pass_s in _SONGS:
    _bpm = _tempo(_loops[0][0], _pass_s)
    RECORDINGS[f"rec-{_name}"] = RecordingSpec(f"rec-{_name}", _loops, 30.0, tempo_bpm=_bpm)
    RECORDINGS[f"rec-{_name}-4min"] = RecordingSpec(f"rec-{_name}-4min", _loops, 240.0, tempo_bpm=_bpm)


def _read_loop(path: Path) -> NDArray[np.float64]:
    import numpy as np
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float64", always_2d=True)
    if int(sr) != SOURCE_RATE:
        raise ConfigError(
            f"{path} is {sr} Hz; the recordings recipe expects Sonic Pi's {SOURCE_RATE} Hz loops"
        )
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return np.asarray(audio[:, :2], dtype=np.float64)


def build_recording(spec: RecordingSpec) -> NDArray[np.float64]:
    """(frames, 2) float64 audio of `spec` at 48 kHz, its sample peak exactly at `spec.peak_dbfs`."""
    import numpy as np
    from scipy.signal import resample_poly

    spec.check()
    frames_out = round(spec.seconds * spec.sample_rate)
    # Enough source frames that the resampled signal covers the whole length, plus the filter's tail.
    frames_in = math.ceil(spec.seconds * SOURCE_RATE) + 64
    mix = np.zeros((frames_in, 2))
    for path, (_, gain_db) in zip(spec.files(), spec.loops, strict=True):
        loop = _read_loop(path)
        reps = -(-frames_in // len(loop))
        mix += np.tile(loop, (reps, 1))[:frames_in] * 10.0 ** (gain_db / 20.0)
    if spec.sample_rate == SOURCE_RATE:
        audio = mix[:frames_out]
    else:
        g = math.gcd(spec.sample_rate, SOURCE_RATE)
        audio = resample_poly(mix, spec.sample_rate // g, SOURCE_RATE // g, axis=0)[:frames_out]
    peak = float(np.abs(audio).max())
    if peak <= 0.0:
        raise ConfigError(f"song {spec.name}: the loops are silent")
    out: NDArray[np.float64] = audio * (10.0 ** (spec.peak_dbfs / 20.0) / peak)
    return out
