"""Measurement (autotune.audio) against EBU Tech 3341, pyloudnorm and the files a user actually hands it.

Every signal is synthesised here: no test vectors are downloaded. "A dBFS" for a sine means peak
amplitude 10 ** (A / 20), as in EBU Tech 3341.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf
from numpy.typing import NDArray
from scipy.signal import resample_poly, upfirdn

from autotune.audio import AnalysisError, analyze_file, measure_audio
from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.chain import LimiterParams, limiter
from autotune.dsp.demo import DemoSpec, demo_track
from autotune.dsp.truepeak import _TP_H, TP_PHASES, to_db, true_peak

SR = 48_000
Audio = NDArray[np.float64]


def tone(db: float, seconds: float, channels: int = 2, freq: float = 1000.0, sr: int = SR) -> Audio:
    """A sine of peak amplitude `db` dBFS on every channel, shape (frames, channels)."""
    t = np.arange(round(seconds * sr)) / sr
    x = 10.0 ** (db / 20.0) * np.sin(2.0 * np.pi * freq * t)
    return np.repeat(x[:, None], channels, axis=1)


def sequence(*segments: tuple[float, float]) -> Audio:
    """Stereo 1 kHz tone segments (dBFS, seconds) back to back, as in the EBU test signals."""
    return np.concatenate([tone(db, s) for db, s in segments])


def sample_peak_db(x: NDArray[np.floating]) -> float:
    return to_db(float(np.max(np.abs(x))))


@pytest.fixture(scope="module")
def demo8() -> Audio:
    return demo_track(DemoSpec(seconds=8))


@pytest.fixture(scope="module")
def noise() -> Audio:
    rng = np.random.default_rng(2024)
    return 0.1 * rng.standard_normal((6 * SR, 2))


# --- EBU Tech 3341 loudness (integrated) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        pytest.param([(-23.0, 20.0)], -23.0, id="case1"),
        pytest.param([(-33.0, 20.0)], -33.0, id="case2"),
        # Cases 3-5 exercise the gates, so their durations matter and are kept as specified.
        pytest.param([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0, id="case3"),
        pytest.param(
            [(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0, id="case4"
        ),
        pytest.param([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0, id="case5"),
    ],
)
def test_ebu3341_stereo_cases(segments: list[tuple[float, float]], expected: float) -> None:
    assert integrated_loudness(sequence(*segments), SR) == pytest.approx(expected, abs=0.1)


def test_ebu3341_case6_five_channels() -> None:
    # EBU Tech 3341 case 6 (5.0, channel order L R C Ls Rs): L and R at -28 dBFS, C at -24 dBFS,
    # Ls and Rs at -30 dBFS, 20 s -> -23.0 LUFS. The surround channels count with weight 1.41.
    # (Duration does not affect a steady tone's reading; 5 s keeps the test quick.)
    levels = [-28.0, -28.0, -24.0, -30.0, -30.0]
    x = np.concatenate([tone(db, 5.0, channels=1) for db in levels], axis=1)
    assert integrated_loudness(x, SR) == pytest.approx(-23.0, abs=0.1)


@pytest.mark.parametrize(
    "levels",
    [
        # L, R, C at -28 dBFS and Ls, Rs at -24.5 dBFS: reads -21.3 LUFS (not -23: this is not case 6).
        pytest.param([-28.0, -28.0, -28.0, -24.5, -24.5], id="LRC-28_LsRs-24.5"),
        pytest.param([-40.0, -40.0, -40.0, -20.0, -40.0], id="Ls-only-loud"),
        pytest.param([-30.0, -20.0, -40.0, -35.0, -25.0], id="all-different"),
    ],
)
def test_five_channel_loudness_sums_weighted_channel_powers(levels: list[float]) -> None:
    # A stereo 1 kHz tone at A dBFS reads A LUFS (case 1), so one channel alone contributes half of that
    # power; surround channels are weighted 1.41. Check the weighting independently of the EBU case.
    weights = [1.0, 1.0, 1.0, 1.41, 1.41]
    expected = 10.0 * math.log10(
        sum(w * 10.0 ** (db / 10.0) for w, db in zip(weights, levels, strict=True)) / 2
    )
    x = np.concatenate([tone(db, 3.0, channels=1) for db in levels], axis=1)
    assert integrated_loudness(x, SR) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize(
    "sr",
    [
        44_100,
        96_000,
        8_000,
        11_025,
        47_952,
    ],
)
def test_case1_reads_minus_23_at_other_sample_rates(sr: int) -> None:
    x = tone(-23.0, 5.0, sr=sr)
    assert integrated_loudness(x, sr) == pytest.approx(-23.0, abs=0.1)


def test_loudness_scales_exactly_with_gain(demo8: Audio) -> None:
    base = integrated_loudness(demo8, SR)
    assert integrated_loudness(demo8 * 10 ** (-6.0 / 20), SR) == pytest.approx(base - 6.0, abs=1e-3)


# --- EBU Tech 3341 true peak ---------------------------------------------------------------------------


def tp_signal(freq: float, amplitude: float, phase_deg: float) -> Audio:
    """1 s stereo sine with a 10 ms raised-cosine fade-in and fade-out.

    The fades matter: a sine switched on or off abruptly has a step at its edge, and the interpolation
    filter rings on that step, adding an inter-sample overshoot that is not part of the test signal."""
    n = SR
    t = np.arange(n) / SR
    x = amplitude * np.sin(2.0 * np.pi * freq * t + math.radians(phase_deg))
    fade = round(0.010 * SR)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    return np.stack([x, x], axis=1)


@pytest.mark.parametrize(
    ("freq", "amplitude", "phase_deg", "expected"),
    [
        pytest.param(SR / 4, 0.5, 0.0, -6.0, id="case15"),
        pytest.param(SR / 4, 0.5, 45.0, -6.0, id="case16"),
        pytest.param(SR / 6, 0.5, 60.0, -6.0, id="case17"),
        pytest.param(SR / 8, 0.5, 67.5, -6.0, id="case18"),
        pytest.param(SR / 4, 1.41, 45.0, 3.0, id="case19"),
    ],
)
def test_ebu3341_true_peak_cases(freq: float, amplitude: float, phase_deg: float, expected: float) -> None:
    x = tp_signal(freq, amplitude, phase_deg)
    tp = to_db(true_peak(x))
    assert expected - 0.4 <= tp <= expected + 0.2
    assert tp >= sample_peak_db(x) - 1e-9


def test_true_peak_sees_between_the_samples() -> None:
    # Case 16: fs/4 at 45 degrees puts every sample at 0.5 * sin(45 deg): the sample peak is -9 dBFS
    # although the waveform peaks at -6 dBFS. A meter without oversampling would be 3 dB wrong.
    x = tp_signal(SR / 4, 0.5, 45.0)
    assert sample_peak_db(x) == pytest.approx(-9.03, abs=0.05)
    assert to_db(true_peak(x)) - sample_peak_db(x) > 2.5


def test_true_peak_of_a_limited_master_matches_16x_reference(demo8: Audio) -> None:
    # A brick-wall limited master has sample peaks pinned at the ceiling and overs between them.
    y = limiter(demo8, SR, LimiterParams(gain_db=18.0, ceiling_db=-0.3))
    reference = to_db(float(np.max(np.abs(resample_poly(y, 16, 1, axis=0)))))
    assert to_db(true_peak(y)) == pytest.approx(reference, abs=0.1)
    assert to_db(true_peak(y)) > -0.3 + 0.3  # the overs are real and the meter sees them


def test_true_peak_of_mono_and_empty() -> None:
    x = tp_signal(SR / 4, 0.5, 45.0)[:, 0]
    assert to_db(true_peak(x)) == pytest.approx(-6.0, abs=0.2)
    assert true_peak(np.zeros((0, 2))) == 0.0
    assert to_db(0.0) == float("-inf")


def every_phase_at_8x(x: NDArray[np.floating]) -> float:
    """The interpolator applied to every sample, no shortcuts: what true_peak promises to equal."""
    frames = x.reshape(len(x), -1)
    up = max(
        float(np.abs(upfirdn(_TP_H.astype(np.float64), frames[:, c], up=TP_PHASES)).max())
        for c in range(frames.shape[1])
    )
    return max(up, float(np.abs(frames).max()))


def hard_cases() -> dict[str, Audio]:
    """Signals where skipping work is most tempting to get wrong: everything near full scale, energy at
    and near Nyquist, steps, lone impulses, a few samples only."""
    rng = np.random.default_rng(5)
    n = 3 * 4096 + 17
    k = np.arange(n)[:, None]
    cases = {
        "clipped noise": np.clip(rng.standard_normal((n, 2)), -0.9, 0.9),
        "full-scale square": 0.95 * np.sign(np.sin(2 * np.pi * k / 37.3 + np.array([0.0, 1.0]))),
        "nyquist": 0.8 * (-1.0) ** k * np.ones((1, 2)),
        "0.47 fs sines": 0.7 * np.sin(2 * np.pi * 0.47 * k + np.array([0.3, 2.0])),
        "random signs": 0.9 * np.sign(rng.standard_normal((n, 2))),
        "impulses": np.zeros((n, 2)),
        "five samples, mono": np.array([[0.2], [-0.9], [0.9], [-0.9], [0.3]]),
    }
    cases["impulses"][[100, 5000, 9001], [0, 1, 0]] = [0.5, -0.99, 0.7]
    limited = limiter(
        np.clip(rng.standard_normal((n, 2)), -3, 3) * 0.3, SR, LimiterParams(gain_db=20.0, ceiling_db=-0.1)
    )
    cases["brick-walled noise"] = limited
    return {name: np.pad(x, ((40, 40), (0, 0))) for name, x in cases.items()}  # silence at both ends


@pytest.mark.parametrize("name", sorted(hard_cases()))
def test_true_peak_equals_interpolating_every_sample(name: str) -> None:
    # true_peak skips blocks it can prove cannot hold the peak; the answer must be the same as if it had
    # interpolated everything (float32 arithmetic: a few parts in 1e7).
    x = hard_cases()[name].astype(np.float32)
    assert true_peak(x) == pytest.approx(every_phase_at_8x(x), rel=1e-5)


# --- Agreement with pyloudnorm -----------------------------------------------------------------------------


@pytest.mark.parametrize("signal", ["demo8", "noise"])
def test_agrees_with_pyloudnorm_deman_filter(signal: str, request: pytest.FixtureRequest) -> None:
    x = request.getfixturevalue(signal)
    ours = integrated_loudness(x, SR)
    theirs = pyln.Meter(SR, filter_class="DeMan").integrated_loudness(x)
    assert ours == pytest.approx(theirs, abs=0.01)


@pytest.mark.parametrize("signal", ["demo8", "noise"])
def test_pyloudnorm_default_filter_reads_about_0p04_lu_low(
    signal: str, request: pytest.FixtureRequest
) -> None:
    # pyloudnorm's default "K-weighting" filter is not the exact BS.1770 biquad pair at 48 kHz; it reads
    # about 0.04 LU low (measured: 0.037 LU on the demo, 0.043 LU on white noise).
    x = request.getfixturevalue(signal)
    diff = integrated_loudness(x, SR) - pyln.Meter(SR).integrated_loudness(x)
    assert 0.02 < diff < 0.06


# --- All channels, never a downmix -------------------------------------------------------------------------


def test_left_only_reads_3_db_below_both_channels(demo8: Audio) -> None:
    mono = demo8[:, 0]
    both = np.stack([mono, mono], axis=1)
    left_only = np.stack([mono, np.zeros_like(mono)], axis=1)
    diff = integrated_loudness(both, SR) - integrated_loudness(left_only, SR)
    assert diff == pytest.approx(10 * math.log10(2), abs=0.02)


def test_antiphase_stereo_reads_like_in_phase() -> None:
    # A mono downmix of L = s, R = -s is silence; BS.1770 sums channel powers, so it reads like L = R = s.
    x = tone(-20.0, 3.0)
    anti = x * np.array([1.0, -1.0])
    assert integrated_loudness(anti, SR) == pytest.approx(integrated_loudness(x, SR), abs=1e-6)
    assert integrated_loudness(anti, SR) == pytest.approx(-20.0, abs=0.1)


def test_channel_order_does_not_matter_for_stereo(demo8: Audio) -> None:
    assert integrated_loudness(demo8[:, ::-1], SR) == pytest.approx(integrated_loudness(demo8, SR), abs=1e-6)


# --- analyze_file ------------------------------------------------------------------------------------------


def write_wav(path: Path, x: Audio, sr: int = SR) -> Path:
    sf.write(path, x, sr, subtype="PCM_24")
    return path


def test_analyze_file_reads_a_known_tone(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "tone.wav", tone(-10.0, 2.0))
    m = analyze_file(p)
    assert m.lufs_i == pytest.approx(-10.0, abs=0.1)
    assert m.peak_dbfs == pytest.approx(-10.0, abs=0.001)
    assert m.true_peak_dbtp == pytest.approx(-10.0, abs=0.05)
    assert m.true_peak_dbtp >= m.peak_dbfs
    assert m.duration_s == pytest.approx(2.0, abs=1e-9)
    assert (m.sample_rate, m.channels) == (SR, 2)
    assert m.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert m.as_dict()["sha256"] == m.sha256


def test_analyze_file_matches_in_memory_measurement(tmp_path: Path, demo8: Audio) -> None:
    p = write_wav(tmp_path / "demo.wav", demo8)
    m = analyze_file(p)
    assert m.lufs_i == pytest.approx(integrated_loudness(demo8, SR), abs=0.001)
    assert m.peak_dbfs == pytest.approx(-3.8, abs=0.001)  # DemoSpec's peak, through 24-bit quantisation
    assert m.duration_s == pytest.approx(8.0)
    assert m.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_analyze_file_mono_and_44k1(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "mono.wav", tone(-20.0, 1.5, channels=1, sr=44_100)[:, 0], sr=44_100)
    m = analyze_file(p)
    assert (m.sample_rate, m.channels) == (44_100, 1)
    assert m.duration_s == pytest.approx(1.5)
    # One channel carries half the power of the stereo tone that reads -20 LUFS.
    assert m.lufs_i == pytest.approx(-20.0 - 10 * math.log10(2), abs=0.1)


def test_hash_changes_with_content(tmp_path: Path) -> None:
    a = analyze_file(write_wav(tmp_path / "a.wav", tone(-10.0, 1.0)))
    b = analyze_file(write_wav(tmp_path / "b.wav", tone(-10.5, 1.0)))
    assert a.sha256 != b.sha256
    assert len(a.sha256) == 64


def _bad_file(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nope.wav"
    if kind == "directory":
        d = tmp_path / "folder.wav"
        d.mkdir()
        return d
    p = tmp_path / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not audio\n" * 50)
    elif kind == "silent":
        write_wav(p, np.zeros((SR, 2)))
    elif kind == "below_gate":
        write_wav(p, tone(-80.0, 1.0))  # -80 LUFS: every block is under the -70 LUFS absolute gate
    elif kind == "short":
        write_wav(p, tone(-10.0, 0.3))
    elif kind == "no_frames":
        write_wav(p, np.zeros((0, 2)))
    elif kind == "header_only":
        full = write_wav(tmp_path / "full.wav", tone(-10.0, 1.0)).read_bytes()
        p.write_bytes(full[:30])
    else:
        raise AssertionError(kind)
    return p


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "cannot read .*No such file"),
        ("directory", "is a directory"),
        ("empty", r"is empty \(0 bytes\)"),
        ("text", "not a readable audio file"),
        ("header_only", "not a readable audio file"),
        ("silent", "silent"),
        ("below_gate", "silent"),
        ("short", r"too short .*0\.300 s < 0\.4 s"),
        ("no_frames", "no audio frames"),
    ],
)
def test_analyze_file_errors_are_clear(kind: str, message: str, tmp_path: Path) -> None:
    p = _bad_file(kind, tmp_path)
    with pytest.raises(AnalysisError, match=message) as info:
        analyze_file(p)
    assert p.name in str(info.value)  # the message names the file
    assert "nan" not in str(info.value).lower()


def test_exactly_one_block_is_long_enough(tmp_path: Path) -> None:
    m = analyze_file(write_wav(tmp_path / "block.wav", tone(-10.0, 0.4)))
    assert m.lufs_i == pytest.approx(-10.0, abs=0.1)


def test_truncated_wav_is_read_as_a_shorter_file(tmp_path: Path) -> None:
    # Observed behaviour, documented: libsndfile reads a WAV whose data chunk is cut short (its header
    # still claims 2 s) and returns the frames that are there. analyze_file therefore measures the first
    # ~1 s without error: it cannot tell a half-written export from a short one. The hash is of the bytes
    # on disk, so a later complete file hashes differently.
    full = write_wav(tmp_path / "full.wav", tone(-10.0, 2.0))
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    m = analyze_file(cut)
    assert m.duration_s == pytest.approx(1.0, abs=0.01)
    assert math.isfinite(m.lufs_i)
    assert m.lufs_i == pytest.approx(-10.0, abs=0.1)
    assert m.sha256 == hashlib.sha256(data[: len(data) // 2]).hexdigest()
    assert m.sha256 != analyze_file(full).sha256


@pytest.mark.parametrize(
    ("fmt", "subtype", "channels"),
    [
        ("WAV", "PCM_24", 2),
        ("WAV", "PCM_24", 1),
        ("WAV", "PCM_24", 6),
        ("WAV", "PCM_16", 2),
        ("WAV", "PCM_16", 6),
        ("WAVEX", "PCM_24", 2),
        ("WAV", "PCM_32", 2),
        ("WAV", "FLOAT", 2),
        ("FLAC", "PCM_24", 2),
    ],
)
def test_analyze_file_reads_every_format_like_libsndfile(
    fmt: str, subtype: str, channels: int, tmp_path: Path, demo8: Audio
) -> None:
    # 16- and 24-bit PCM WAV files are decoded by autotune itself (the fast path, as the bytes come in,
    # in reads of a few MB that split frames); everything else by libsndfile. Either way the file must
    # measure exactly like the audio libsndfile reads from it.
    x = np.concatenate([demo8] * 3, axis=1)[:, :channels]
    p = tmp_path / f"take.{fmt.lower()}"
    sf.write(p, x, SR, subtype=subtype, format=fmt)
    decoded, sr = sf.read(p, dtype="float32", always_2d=True)
    expected = measure_audio(decoded, sr, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    assert analyze_file(p) == expected


def test_wav_with_chunks_around_the_audio_and_an_odd_length(tmp_path: Path) -> None:
    # A LIST chunk before the data, an odd-sized chunk after it (padded to even), 3 frames of a 24-bit
    # mono file: the fast path must find the samples by walking the chunks, as libsndfile does.
    p = write_wav(tmp_path / "plain.wav", tone(-10.0, 1.0, channels=1)[:, 0])
    raw = p.read_bytes()
    fmt_end = raw.find(b"data")
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"
    tail = b"junk" + (3).to_bytes(4, "little") + b"abc\x00"
    body = raw[12:fmt_end] + extra + raw[fmt_end:] + tail
    q = tmp_path / "chunks.wav"
    q.write_bytes(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body)
    decoded, sr = sf.read(q, dtype="float32", always_2d=True)
    assert analyze_file(q) == measure_audio(decoded, sr, sha256=hashlib.sha256(q.read_bytes()).hexdigest())


# --- measure_audio -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_measure_audio_rejects_non_finite_samples(bad: float) -> None:
    x = tone(-10.0, 1.0)
    x[1234, 1] = bad
    with pytest.raises(AnalysisError, match="NaN or infinite"):
        measure_audio(x, SR)


def test_measure_audio_rejects_empty_and_keeps_the_hash() -> None:
    with pytest.raises(AnalysisError, match="no audio frames"):
        measure_audio(np.zeros((0, 2)), SR)
    m = measure_audio(tone(-10.0, 1.0), SR, sha256="abc")
    assert m.sha256 == "abc"
    assert all(math.isfinite(v) for v in (m.lufs_i, m.peak_dbfs, m.true_peak_dbtp))
