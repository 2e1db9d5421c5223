"""The loudness report (LRA, max momentary, max short-term, PLR) against libebur128 through pyebur128.

Every signal is synthesised here. EBU Tech 3342's cases 1-4 are 1 kHz stereo sines in 20 s steps ("A dBFS"
is peak amplitude 10 ** (A / 20)); cases 5 and 6 are authentic programme in the EBU test set (two film
excerpts, expected LRA 5 and 15 LU, both at -23 LUFS), which is not shipped here, so they are replaced by
seeded stand-ins of the same kind: stereo noise at -23 LUFS in 2.7 s scenes with 0.3 s
pauses, the scene levels spread to give about 5 LU (narrow) and about 15 LU (wide, with silent and very
quiet scenes that the absolute and the relative gate must drop). libebur128 is the reference for all six;
Tech 3342's nominal values (±1 LU, its tolerance) check the stand-ins' design as well.

libebur128 is read as a meter would: fed 100 ms at a time, momentary and short-term read after each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray
from scipy.signal import resample_poly

from autotune.audio import Measurement, analyze_file, measure_audio
from autotune.dsp import ChainParams, DemoSpec, GlueParams, LimiterParams, demo_track, render
from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.loudness import loudness_range
from autotune.dsp.truepeak import to_db

pyebur128 = pytest.importorskip("pyebur128")
SR = 48_000
Audio = NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Reference:
    lra_lu: float
    max_momentary_lufs: float
    max_short_term_lufs: float
    lufs_i: float


def libebur128_report(x: Audio, sr: int = SR) -> Reference:
    mode = pyebur128.MeasurementMode
    st = pyebur128.R128State(x.shape[1], sr, mode.MODE_LRA | mode.MODE_S | mode.MODE_M | mode.MODE_I)
    step = (sr + 5) // 10  # libebur128's samples_in_100ms
    data = np.ascontiguousarray(x, dtype=np.float64)
    momentary, short_term = -math.inf, -math.inf
    for start in range(0, len(data) // step * step, step):
        st.add_frames(data[start : start + step].ravel(), step)
        momentary = max(momentary, pyebur128.get_loudness_momentary(st))
        short_term = max(short_term, pyebur128.get_loudness_shortterm(st))
    return Reference(
        pyebur128.get_loudness_range(st), momentary, short_term, pyebur128.get_loudness_global(st)
    )


def sine(db: float, seconds: float, sr: int = SR, channels: int = 2) -> Audio:
    n = round(seconds * sr)
    if sr % 1000 == 0:  # a whole number of 1 kHz periods repeats exactly: tile one instead of n sines
        period = np.sin(2.0 * np.pi * np.arange(sr // 1000) / (sr // 1000))
        wave = np.tile(period, -(-n // len(period)))[:n]
    else:
        wave = np.sin(2.0 * np.pi * 1000.0 * np.arange(n) / sr)
    return np.repeat((10.0 ** (db / 20.0) * wave)[:, None], channels, axis=1)


def steps(*dbs: float, sr: int = SR) -> Audio:
    return np.concatenate([sine(db, 20.0, sr) for db in dbs])


def programme(spread_db: float, extra_db: tuple[float, ...] = (), seed: int = 1) -> Audio:
    """Stand-in for Tech 3342's programme cases: 20 scenes evenly spread over `spread_db` (and `extra_db`),
    in seeded order, of two partly correlated white-noise channels, normalised to -23 LUFS."""
    rng = np.random.default_rng(seed)
    levels = [*np.linspace(-spread_db, 0.0, 20), *extra_db]
    levels = [levels[i] for i in rng.permutation(len(levels))]
    scene, pause = round(2.7 * SR), round(0.3 * SR)
    env = np.concatenate([np.r_[np.full(scene, 10.0 ** (db / 20.0)), np.zeros(pause)] for db in levels])
    noise = rng.standard_normal((len(env), 3))
    x = (noise[:, :1] + 0.5 * noise[:, 1:]) * env[:, None]
    return np.asarray(x * 10.0 ** ((-23.0 - integrated_loudness(x, SR)) / 20.0))


#: Tech 3342 case: (signal, Tech 3342's expected LRA).
CASES: dict[str, tuple[Callable[[], Audio], float]] = {
    "1": (lambda: steps(-20, -30), 10.0),
    "2": (lambda: steps(-20, -15), 5.0),
    "3": (lambda: steps(-40, -20), 20.0),
    "4": (lambda: steps(-50, -35, -20, -35, -50), 15.0),
    "5 (stand-in)": (lambda: programme(6.8), 5.0),
    "6 (stand-in)": (lambda: programme(19.9, extra_db=(-90.0, -90.0, -45.0, -45.0)), 15.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_tech_3342_cases_agree_with_libebur128(name: str) -> None:
    signal, expected_lra = CASES[name]
    x = signal()
    m, ref = measure_audio(x.astype(np.float32), SR), libebur128_report(x)
    assert m.lra_lu == pytest.approx(ref.lra_lu, abs=0.1)
    assert m.lra_lu == pytest.approx(expected_lra, abs=1.0)  # Tech 3342's tolerance
    assert m.max_momentary_lufs == pytest.approx(ref.max_momentary_lufs, abs=0.1)
    assert m.max_short_term_lufs == pytest.approx(ref.max_short_term_lufs, abs=0.1)


def test_a_loud_burst_sets_max_momentary_and_short_term_like_libebur128() -> None:
    # 250 ms at -8 dBFS in -30 dBFS, starting off the 100 ms grid: the momentary maximum is the burst,
    # the short-term one the burst averaged over 3 s, both well above the bed.
    bed = sine(-30.0, 5.03)
    x = np.concatenate([bed, sine(-8.0, 0.25), sine(-30.0, 5.0)])
    m, ref = measure_audio(x.astype(np.float32), SR), libebur128_report(x)
    assert m.max_momentary_lufs == pytest.approx(ref.max_momentary_lufs, abs=0.1)
    assert m.max_short_term_lufs == pytest.approx(ref.max_short_term_lufs, abs=0.1)
    assert m.max_momentary_lufs > m.max_short_term_lufs + 5.0 > m.lufs_i + 5.0


def test_plr_is_true_peak_minus_integrated_loudness() -> None:
    x = render(
        demo_track(DemoSpec(seconds=5)),
        SR,
        ChainParams(
            GlueParams(threshold_db=-20, ratio=4, makeup_db=4), LimiterParams(gain_db=12, ceiling_db=-1)
        ),
    )
    m = measure_audio(x.astype(np.float32), SR)
    assert m.plr_db == m.true_peak_dbtp - m.lufs_i
    reference_tp = to_db(float(max(np.abs(resample_poly(x, 16, 1, axis=0)).max(), np.abs(x).max())))
    assert m.plr_db == pytest.approx(reference_tp - libebur128_report(x).lufs_i, abs=0.1)
    assert 5.0 < m.plr_db < 20.0


@pytest.mark.parametrize("seconds", [0.45, 2.0, 2.95])
def test_audio_shorter_than_3_s_reports_what_libebur128_reports(seconds: float) -> None:
    # No 3 s window: LRA is 0.0 and max short-term the zero-padded reading (the energy over 3 s), as in
    # libebur128; nothing raises and nothing is infinite.
    x = sine(-20.0, seconds)
    m, ref = measure_audio(x.astype(np.float32), SR), libebur128_report(x)
    assert m.lra_lu == ref.lra_lu == 0.0
    assert m.max_short_term_lufs == pytest.approx(ref.max_short_term_lufs, abs=0.1)
    assert m.max_momentary_lufs == pytest.approx(ref.max_momentary_lufs, abs=0.1)
    assert m.max_short_term_lufs == pytest.approx(
        m.lufs_i + 10 * math.log10(round(seconds * SR) // 4800 / 30), abs=0.05
    )
    assert all(math.isfinite(v) for v in (m.lra_lu, m.max_momentary_lufs, m.max_short_term_lufs, m.plr_db))


@pytest.mark.parametrize("sr", [44_100, 11_025])
def test_other_sample_rates_agree(sr: int) -> None:
    # 11.025 kHz is a rate where 400 ms is not four 100 ms steps: the segments come from the other path.
    x = np.concatenate([steps(-20, -30, sr=sr), sine(-14.0, 0.3, sr), sine(-30.0, 4.0, sr)])
    m, ref = measure_audio(x.astype(np.float32), sr), libebur128_report(x, sr)
    assert m.lra_lu == pytest.approx(ref.lra_lu, abs=0.1)
    assert m.max_momentary_lufs == pytest.approx(ref.max_momentary_lufs, abs=0.1)
    assert m.max_short_term_lufs == pytest.approx(ref.max_short_term_lufs, abs=0.1)


def test_analyze_file_reports_the_same_as_measuring_the_decoded_audio(tmp_path: Path) -> None:
    x = np.concatenate([sine(-26.0, 4.0), sine(-12.0, 0.5), sine(-26.0, 4.0)])
    path = tmp_path / "burst.wav"
    sf.write(path, x, SR, subtype="PCM_24")
    m = analyze_file(path)
    decoded, _ = sf.read(path, dtype="float32")
    assert dataclasses.replace(m, sha256="") == measure_audio(decoded, SR)
    assert m.max_momentary_lufs > m.max_short_term_lufs > m.lufs_i


def test_new_fields_come_after_the_ones_receipts_are_built_from() -> None:
    names = [f.name for f in dataclasses.fields(Measurement)]
    assert names == [
        "lufs_i",
        "peak_dbfs",
        "true_peak_dbtp",
        "duration_s",
        "sample_rate",
        "channels",
        "sha256",
        "lra_lu",
        "max_momentary_lufs",
        "max_short_term_lufs",
        "plr_db",
    ]


def lufs_energy(lufs: list[float]) -> NDArray[np.float64]:
    return np.asarray(10.0 ** ((np.asarray(lufs) + 0.691) / 10.0))


def test_loudness_range_uses_libebur128_percentiles_and_gates() -> None:
    # Ten windows at -30 .. -21 LUFS: nearest rank with index int((n - 1) p + 0.5) picks -29 and -21
    # (8 LU); numpy's interpolated percentiles would say 7.65 LU.
    ten = [-30.0 + i for i in range(10)]
    assert loudness_range(lufs_energy(ten)) == pytest.approx(8.0, abs=1e-9)
    # Windows below -70 LUFS, and more than 20 LU below the mean energy of the rest, are left out.
    assert loudness_range(lufs_energy([*ten, -71.0, -80.0])) == pytest.approx(8.0, abs=1e-9)
    assert loudness_range(lufs_energy([*ten, -50.0, -55.0])) == pytest.approx(8.0, abs=1e-9)
    # A window exactly at the absolute gate stays (libebur128 keeps energies >= the gate).
    assert loudness_range(lufs_energy([-70.0, -60.0])) == pytest.approx(10.0, abs=1e-9)
    assert loudness_range(np.empty(0)) == 0.0
