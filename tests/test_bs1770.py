"""autotune.dsp.bs1770 and autotune.dsp.truepeak as the one meter: the analysis of a file and model-based
search's gating of predicted energies must read the same loudness, and the dsp layer must stay importable
without the rest of the project."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.signal import sosfilt

import autotune.audio
from autotune.dsp import bs1770, truepeak
from autotune.dsp.bs1770 import (
    AudioTooShort,
    channel_energies,
    channel_weights,
    gated_loudness,
    gated_loudness_of_segments,
    integrated_loudness,
    k_weighted_block_sums,
    k_weighting_sos,
    segment_samples,
)
from autotune.dsp.demo import DemoSpec, demo_track

SR = 48_000
DSP = Path(bs1770.__file__).parent


@pytest.fixture(scope="module")
def song() -> NDArray[np.float64]:
    return demo_track(DemoSpec(seconds=8.0))


def test_the_model_path_reads_the_analysis_loudness(song: NDArray[np.float64]) -> None:
    # Model-based search keeps float64 block sums of the dry song and gates them from 100 ms segments; the
    # analysis filters in float32 and gates per-channel block means. Same meter: they differ by the float32
    # filter only (about 2e-5 LU, on any level and song).
    step = segment_samples(SR)
    seg = k_weighted_block_sums(song, SR, step)
    assert gated_loudness_of_segments(seg, step) == pytest.approx(integrated_loudness(song, SR), abs=1e-4)


def test_finer_blocks_summed_into_segments_read_the_same(song: NDArray[np.float64]) -> None:
    step = segment_samples(SR)
    fine = k_weighted_block_sums(song, SR, 32)
    per = step // 32
    n = len(fine) // per
    seg = fine[: n * per].reshape(n, per).sum(axis=1)
    coarse = gated_loudness_of_segments(k_weighted_block_sums(song, SR, step), step)
    assert gated_loudness_of_segments(seg, per * 32) == pytest.approx(coarse, abs=1e-9)


def test_block_sums_weight_the_channels_as_bs1770() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((SR, 6)) * 0.1
    sos = k_weighting_sos(SR, np.float64)
    expected = sum(
        w * (sosfilt(sos, x[:, c]) ** 2).reshape(-1, 480).sum(axis=1)
        for c, w in enumerate(channel_weights(6))
    )
    np.testing.assert_allclose(k_weighted_block_sums(x, SR, 480), expected, rtol=1e-12)


def test_segments_gate_like_blocks() -> None:
    rng = np.random.default_rng(4)
    seg = rng.uniform(0.0, 1.0, 50) * np.repeat([1e-9, 1.0, 0.01, 1.0, 1e-3], 10)
    blocks = (np.convolve(seg, np.ones(4), mode="valid") / (4 * 4800))[:, None]
    assert gated_loudness_of_segments(seg, 4800) == pytest.approx(gated_loudness(blocks), abs=1e-9)


def test_fewer_than_four_segments_have_no_loudness() -> None:
    assert gated_loudness_of_segments(np.ones(3), 4800) == float("-inf")
    assert gated_loudness_of_segments(np.zeros(10), 4800) == float("-inf")


def test_chunked_filtering_is_one_call_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(3 * bs1770._FILTER_CHUNK + 12_345) * 0.1).astype(np.float32)
    sos = k_weighting_sos(SR)
    block, step = bs1770.gating(SR, len(x))
    blocks, seg = channel_energies(x, sos, block, step)
    y = bs1770.sosfilt(sos, x)[0] ** 2
    whole = seg.size * step
    np.testing.assert_array_equal(seg, y[:whole].reshape(-1, step).sum(axis=1, dtype=np.float64))
    assert len(blocks) == (len(x) - block) // step + 1


@pytest.mark.parametrize("numba", [True, False], ids=["compiled", "scipy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_filter_is_scipys_sosfilt(monkeypatch: pytest.MonkeyPatch, numba: bool, dtype: type) -> None:
    """The compiled K-weighting (which spares a measuring process scipy.signal's 1.5 s import) against
    scipy's own, with and without numba, in both precisions and across a carried state."""
    from autotune.dsp import compiled

    monkeypatch.setattr(compiled, "_COMPILED", {})
    monkeypatch.setattr(compiled, "_NUMBA", None if numba else False)  # whatever AUTOTUNE_NUMBA said
    monkeypatch.delenv("AUTOTUNE_NUMBA", raising=False)
    assert (compiled.jit(bs1770._sosfilt_kernel) is not None) == numba
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(50_000) * 0.3).astype(dtype)
    sos = k_weighting_sos(SR, dtype)
    want, want_z = sosfilt(sos, x, zi=np.zeros((2, 2), dtype))
    first, z = bs1770.sosfilt(sos, x[:20_001])
    rest, z = bs1770.sosfilt(sos, x[20_001:], z)
    tol = 1e-5 if dtype == np.float32 else 1e-12  # of the signal's scale (its RMS is 0.3 or so)
    np.testing.assert_allclose(np.concatenate([first, rest]), want, rtol=0, atol=tol)
    np.testing.assert_allclose(z, want_z, rtol=0, atol=tol)
    assert first.dtype == dtype


def test_the_filter_refuses_what_its_kernel_would_read_out_of_bounds() -> None:
    sos = k_weighting_sos(SR)
    with pytest.raises(ValueError, match="state"):
        bs1770.sosfilt(sos, np.zeros(100, np.float32), np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="one channel"):
        bs1770.sosfilt(sos, np.zeros((100, 2), np.float32))


def test_the_k_weighting_and_the_true_peak_filter_are_what_scipy_designs() -> None:
    from scipy.signal import firwin, tf2sos

    for rate in (44_100, 48_000, 96_000):
        by_scipy = np.vstack([tf2sos(b, a) for b, a in bs1770.k_weighting(rate)])
        np.testing.assert_allclose(k_weighting_sos(rate, np.float64), by_scipy, rtol=0, atol=1e-12)
    taps, cutoff = truepeak.TP_PHASES * truepeak.TP_TAPS, 0.97 / truepeak.TP_PHASES
    np.testing.assert_allclose(
        truepeak.kaiser_lowpass(taps, cutoff, 8.0),
        firwin(taps, cutoff, window=("kaiser", 8.0)),
        rtol=0,
        atol=1e-14,
    )


def test_measuring_a_file_imports_no_scipy_signal(tmp_path: Path) -> None:
    """scipy.signal takes 1.5 s to import (scipy.stats with it): a process that only measures, as every
    CLI command does before its first line, must not pay for it."""
    import os
    import subprocess
    import sys

    import soundfile as sf

    path = tmp_path / "tone.wav"
    t = np.arange(SR * 2) / SR
    sf.write(path, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5, SR, subtype="PCM_24")
    code = (
        "import sys; import autotune.api, autotune.cli; from autotune.audio import analyze_file; "
        f"m = analyze_file({str(path)!r}); "
        "print(round(m.lufs_i, 2), sorted(k for k in ('scipy.signal', 'scipy.stats') if k in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "AUTOTUNE_NUMBA"}  # numba off uses scipy's filter
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    lufs, loaded = done.stdout.split(" ", 1)
    # Two channels of 0.125 mean square, K-weighting about 0 dB at 440 Hz: -0.691 + 10 log10(0.25) LUFS.
    assert abs(float(lufs) - (-6.71)) < 0.05 and loaded.strip() == "[]"


def test_short_audio_is_a_value_error_here_and_an_analysis_error_for_files() -> None:
    x = np.zeros((SR // 4, 2))
    with pytest.raises(AudioTooShort, match=r"too short .*0\.250 s < 0\.4 s"):
        integrated_loudness(x, SR)
    assert issubclass(AudioTooShort, ValueError)
    with pytest.raises(autotune.audio.AnalysisError, match=r"too short .*0\.250 s < 0\.4 s"):
        autotune.audio.measure_audio(x + 0.1, SR)


def test_the_dsp_layer_imports_nothing_of_the_project_above_it() -> None:
    for path in sorted(DSP.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                if name == "autotune" or name.startswith("autotune."):
                    assert name.startswith("autotune.dsp"), f"{path.name} imports {name}"


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("channel_weights", bs1770),
        ("gated_loudness", bs1770),
        ("integrated_loudness", bs1770),
        ("k_weighting", bs1770),
        ("to_db", truepeak),
        ("true_peak", truepeak),
    ],
)
def test_autotune_audio_still_re_exports_the_meters(name: str, module: object) -> None:
    # Until every importer takes these from autotune.dsp (issue 14); then the re-exports and this go.
    assert getattr(autotune.audio, name) is getattr(module, name)
