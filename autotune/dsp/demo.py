"""A deterministic demo song (drums, bass, chords) that stands in for the producer's mix.

It is synthesised, never downloaded, from a seed, so every machine renders bit-identical audio. The levels
give it the crest factor of an unmastered mix (about -19 LUFS at a -4 dBFS sample peak, like the song in the
original project's real sessions), which is what makes hitting a loud target under a peak limit hard.

`SONGS` holds variants with other crest factors and spectra, so a benchmark does not tune to one song: the
chain's trade-offs (how much a limiter can take before it pumps, how much the low end drives a compressor)
move with both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Audio = NDArray[np.float64]


@dataclass(frozen=True)
class DemoSpec:
    seconds: float = 30.0
    sample_rate: int = 48_000
    seed: int = 7
    tempo_bpm: float = 120.0
    drums_db: float = 0.0
    bass_db: float = -4.0
    chords_db: float = -9.0
    peak_dbfs: float = -3.8
    #: Hi-hats relative to the rest of the kit (dB): the top end, and transients a peak detector sees.
    hats_db: float = 0.0
    #: Low-pass cutoff of the chord pads (Hz): dark pads leave the top to the drums, bright ones fill it.
    pad_cutoff_hz: float = 2200.0
    #: Decay time constant of the kick's body (s): longer kicks carry more low-end energy per peak.
    kick_decay_s: float = 0.12
    #: Share of the bass level held between eighth-note attacks (0 = plucked, 1 = an organ-like drone).
    bass_hold: float = 0.0

    def cache_key(self) -> str:
        """Names the audio in on-disk caches; the default spec keeps the key it had before the song options.

        Song options appear only when they differ from their defaults, so existing caches stay valid and
        every distinct song still gets its own key.
        """
        key = (
            f"demo-v1-{self.seconds:g}s-{self.sample_rate}-{self.seed}-{self.tempo_bpm:g}-"
            f"{self.drums_db:g}-{self.bass_db:g}-{self.chords_db:g}-{self.peak_dbfs:g}"
        )
        default = DemoSpec()
        for label, value, base in (
            ("hats", self.hats_db, default.hats_db),
            ("padlp", self.pad_cutoff_hz, default.pad_cutoff_hz),
            ("kick", self.kick_decay_s, default.kick_decay_s),
            ("bhold", self.bass_hold, default.bass_hold),
        ):
            if value != base:
                key += f"-{label}{value:g}"
        return key


def _place(out: Audio, hit: Audio, start: int, gain: float, pan: float = 0.0) -> None:
    end = min(len(out), start + len(hit))
    if end <= start:
        return
    seg = hit[: end - start] * gain
    out[start:end, 0] += seg * np.sqrt(0.5 * (1.0 - pan))
    out[start:end, 1] += seg * np.sqrt(0.5 * (1.0 + pan))


def _kick(sr: int, decay_s: float = 0.12) -> Audio:
    t = np.arange(int(max(0.35, 2.5 * decay_s) * sr)) / sr
    freq = 45.0 + 110.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    click = np.exp(-t / 0.002) * 0.5
    return (np.sin(phase) * np.exp(-t / decay_s) + click * np.sin(2 * np.pi * 1800 * t)) * 1.0


def _snare(sr: int, rng: np.random.Generator) -> Audio:
    from scipy.signal import butter, sosfilt  # synthesis only: a cached song needs no scipy.signal

    t = np.arange(int(0.25 * sr)) / sr
    noise = sosfilt(butter(2, [1500, 7000], btype="band", fs=sr, output="sos"), rng.standard_normal(len(t)))
    body = np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
    return np.asarray(noise * np.exp(-t / 0.07) * 1.6 + body * 0.6, dtype=np.float64)


def _hat(sr: int, rng: np.random.Generator) -> Audio:
    from scipy.signal import butter, sosfilt  # synthesis only: a cached song needs no scipy.signal

    t = np.arange(int(0.06 * sr)) / sr
    noise = sosfilt(butter(4, 7000, btype="high", fs=sr, output="sos"), rng.standard_normal(len(t)))
    return np.asarray(noise * np.exp(-t / 0.015) * 0.5, dtype=np.float64)


def _saw(freq: float, n: int, sr: int, detune_cents: float = 0.0) -> Audio:
    f = freq * 2 ** (detune_cents / 1200.0)
    phase = (np.arange(n) * f / sr) % 1.0
    return 2.0 * phase - 1.0


def demo_track(spec: DemoSpec | None = None) -> Audio:
    """Return (frames, 2) float64 audio in -1..1 for `spec` (default: the 30 s, 48 kHz demo)."""
    from scipy.signal import butter, sosfilt  # synthesis only: a cached song needs no scipy.signal

    spec = spec or DemoSpec()
    sr = spec.sample_rate
    n = round(spec.seconds * sr)
    rng = np.random.default_rng(spec.seed)
    beat = 60.0 / spec.tempo_bpm
    n_beats = int(spec.seconds / beat)

    drums = np.zeros((n, 2))
    kick, snare, hat = _kick(sr, spec.kick_decay_s), _snare(sr, rng), _hat(sr, rng)
    hat_gain = 10 ** (spec.hats_db / 20)
    for b in range(n_beats):
        start = round(b * beat * sr)
        _place(drums, kick, start, 0.95 + 0.05 * rng.random())
        if b % 2 == 1:
            _place(drums, snare, start, 0.55 + 0.1 * rng.random(), pan=0.05)
        for half in (0, 1):
            hit = (0.25 + 0.15 * rng.random()) * hat_gain
            _place(drums, hat, start + int(half * beat * sr / 2), hit, pan=0.35)

    # i - VI - III - VII in A minor, one chord per bar; bass plays the root in eighths.
    roots = [55.0, 43.65, 65.41, 49.0]
    chords = [
        (220.0, 261.63, 329.63),
        (174.61, 220.0, 261.63),
        (261.63, 329.63, 392.0),
        (196.0, 246.94, 293.66),
    ]
    bar = 4 * beat
    bass = np.zeros((n, 2))
    pads = np.zeros((n, 2))
    lp_bass = butter(2, 300, btype="low", fs=sr, output="sos")
    lp_pad = butter(2, spec.pad_cutoff_hz, btype="low", fs=sr, output="sos")
    for k in range(int(np.ceil(spec.seconds / bar))):
        start = round(k * bar * sr)
        length = min(int(bar * sr), n - start)
        if length <= 0:
            break
        t = np.arange(length) / sr
        idx = k % len(roots)
        env8 = np.exp(-((t % (beat / 2)) / 0.18))
        if spec.bass_hold > 0.0:
            env8 = spec.bass_hold + (1.0 - spec.bass_hold) * env8
        note = _saw(roots[idx], length, sr) * env8
        bass[start : start + length] += np.asarray(sosfilt(lp_bass, note))[:, None]
        fade = np.minimum(1.0, np.minimum(t / 0.05, (bar - t) / 0.05))
        for j, f in enumerate(chords[idx]):
            left = _saw(f, length, sr, detune_cents=-7.0 + j)
            right = _saw(f, length, sr, detune_cents=7.0 - j)
            pads[start : start + length, 0] += np.asarray(sosfilt(lp_pad, left)) * fade / 3
            pads[start : start + length, 1] += np.asarray(sosfilt(lp_pad, right)) * fade / 3

    def norm(x: Audio) -> Audio:
        return x / max(float(np.abs(x).max()), 1e-12)

    mix = (
        norm(drums) * 10 ** (spec.drums_db / 20)
        + norm(bass) * 10 ** (spec.bass_db / 20)
        + norm(pads) * 10 ** (spec.chords_db / 20)
    )
    return mix * (10 ** (spec.peak_dbfs / 20) / float(np.abs(mix).max()))


#: Benchmark songs: the same arrangement mixed for different crest factors (peak-to-loudness ratio, PLR) and
#: spectra, all at the same -3.8 dBFS sample peak. PLR of the 30 s versions, lowest first: "dense" about
#: 10.8 dB (held bass and loud pads), "bright" 12.4 dB (hats and open pads up, little low end), "demo"
#: 14.5 dB, "dynamic" 17.3 dB (drums alone on top).
SONGS: dict[str, DemoSpec] = {
    "demo": DemoSpec(),
    "dense": DemoSpec(drums_db=-4.0, bass_db=-1.0, chords_db=-3.0, bass_hold=0.7, kick_decay_s=0.2),
    "bright": DemoSpec(
        drums_db=-2.0, hats_db=10.0, bass_db=-14.0, chords_db=-4.0, pad_cutoff_hz=8000.0, kick_decay_s=0.05
    ),
    "dynamic": DemoSpec(bass_db=-10.0, chords_db=-16.0, kick_decay_s=0.08),
}
