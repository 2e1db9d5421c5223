"""Agreement with the meters engineers trust: libebur128 (through pyebur128) within 0.01 LU, and true peak
within 0.1 dB of a 16x oversampled reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from autotune.dsp import ChainParams, DemoSpec, GlueParams, LimiterParams, demo_track, render
from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.truepeak import to_db, true_peak

pyebur128 = pytest.importorskip("pyebur128")
SR = 48_000


def libebur128_lufs(x: np.ndarray, sr: int = SR) -> float:
    st = pyebur128.R128State(x.shape[1], sr, pyebur128.MeasurementMode.MODE_I)
    if x.shape[1] == 5:
        for c, kind in enumerate(["LEFT", "RIGHT", "CENTER", "LEFT_SURROUND", "RIGHT_SURROUND"]):
            st.set_channel(c, getattr(pyebur128.ChannelType, kind))
    st.add_frames(np.ascontiguousarray(x, dtype=np.float64).ravel(), x.shape[0])
    return float(pyebur128.get_loudness_global(st))


def sine(db: float, seconds: float, channels: int = 2, f: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.repeat((10 ** (db / 20) * np.sin(2 * np.pi * f * t))[:, None], channels, axis=1)


def seq(*parts: tuple[float, float]) -> np.ndarray:
    return np.concatenate([sine(db, s) for db, s in parts])


EBU_3341 = {
    "1": sine(-23, 20),
    "2": sine(-33, 20),
    "3": seq((-36, 10), (-23, 60), (-36, 10)),
    "4": seq((-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)),
    "5": seq((-26, 20), (-20, 20.1), (-26, 20)),
    "6": np.concatenate([sine(-28, 20, 2), sine(-24, 20, 1), sine(-30, 20, 2)], axis=1),
}


@pytest.mark.parametrize("case", sorted(EBU_3341))
def test_ebu_3341_cases_agree_with_libebur128(case: str) -> None:
    x = EBU_3341[case]
    assert integrated_loudness(x, SR) == pytest.approx(libebur128_lufs(x), abs=0.01)


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return demo_track(DemoSpec(seconds=20))


@pytest.mark.parametrize(
    "params",
    [
        None,
        ChainParams(
            GlueParams(threshold_db=-20, ratio=4, makeup_db=4), LimiterParams(gain_db=12, ceiling_db=-1)
        ),
        ChainParams(GlueParams(threshold_db=-30, makeup_db=15), LimiterParams(gain_db=28, ceiling_db=-6.5)),
    ],
    ids=["mix", "mastered", "crushed"],
)
def test_real_world_like_material_agrees(song: np.ndarray, params: ChainParams | None) -> None:
    x = song if params is None else render(song, SR, params)
    x32 = x.astype(np.float32)  # what analyze_file measures (decoded 24-bit fits float32 exactly)
    assert integrated_loudness(x32, SR) == pytest.approx(libebur128_lufs(x), abs=0.01)
    reference = max(np.abs(resample_poly(x, 16, 1, axis=0)).max(), np.abs(x).max())
    assert to_db(true_peak(x32)) == pytest.approx(to_db(reference), abs=0.1)
