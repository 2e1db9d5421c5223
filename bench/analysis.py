"""Analysis speed and agreement: the project's meter against pyloudnorm (+ scipy 4x true peak, what the
original tool did), libebur128 (pyebur128) and ffmpeg's ebur128 filter, each where installed.

    .venv/bin/python bench/analysis.py [--seconds 240] [--repeat 5]

Generates its own test files (the demo song, unprocessed and mastered), 48 kHz 24-bit stereo.
Prints medians, ratios, agreement in LU and dB, and peak memory against the decoded audio's size.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyloudnorm as pyln
import soundfile as sf
from scipy.signal import resample_poly

from autotune.audio import analyze_file
from autotune.dsp import ChainParams, DemoSpec, GlueParams, LimiterParams, demo_track, render


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def pyloudnorm_way(path: Path, filter_class: str) -> tuple[float, float]:
    audio, sr = sf.read(path)
    lufs = pyln.Meter(sr, filter_class=filter_class).integrated_loudness(audio)
    tp = float(np.abs(resample_poly(audio, 4, 1, axis=0)).max())
    return lufs, 20 * np.log10(tp)


def ebur128_way(path: Path) -> tuple[float, float]:
    import pyebur128 as e

    audio, sr = sf.read(path)
    st = e.R128State(audio.shape[1], sr, e.MeasurementMode.MODE_I | e.MeasurementMode.MODE_TRUE_PEAK)
    st.add_frames(np.ascontiguousarray(audio).ravel(), audio.shape[0])
    tp = max(e.get_true_peak(st, c) for c in range(audio.shape[1]))
    return e.get_loudness_global(st), 20 * np.log10(tp)


def ffmpeg_way(path: Path) -> tuple[float, float]:
    out = subprocess.run(
        [
            "ffmpeg",
            "-nostats",
            "-hide_banner",
            "-i",
            str(path),
            "-filter_complex",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = out[out.rfind("Summary:") :]
    lufs = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    tp = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))  # type: ignore[union-attr]
    return lufs, tp


def reference_true_peak(path: Path) -> float:
    audio, _ = sf.read(path)
    return float(20 * np.log10(max(np.abs(resample_poly(audio, 16, 1, axis=0)).max(), np.abs(audio).max())))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="autotune-bench-"))
    mix = demo_track(DemoSpec(seconds=args.seconds))
    files = {
        "mix (unprocessed)": mix,
        "mastered (-1 dBFS ceiling)": render(
            mix,
            48_000,
            ChainParams(
                GlueParams(threshold_db=-20, ratio=4, makeup_db=4), LimiterParams(gain_db=12, ceiling_db=-1)
            ),
        ),
    }
    try:
        import pyebur128  # noqa: F401

        have_ebur = True
    except ImportError:
        have_ebur = False
    have_ffmpeg = shutil.which("ffmpeg") is not None
    print(
        f"{args.seconds:g} s, 48 kHz, 24-bit stereo; median of {args.repeat}; libebur128: {have_ebur}, ffmpeg: {have_ffmpeg}; "
        f"1-min load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)"
    )
    for name, audio in files.items():
        path = tmp / "bench.wav"
        sf.write(path, audio, 48_000, subtype="PCM_24")
        decoded_mb = audio.shape[0] * audio.shape[1] * 4 / 1e6
        cpu0 = time.process_time()
        ours_t, m = median_time(lambda p=path: analyze_file(p), args.repeat)
        ours_cpu = (time.process_time() - cpu0) / args.repeat  # all threads: robust to a busy machine
        tracemalloc.start()
        analyze_file(path)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        ref_tp = reference_true_peak(path)
        print(f"\n== {name}: {path.stat().st_size / 1e6:.1f} MB")
        print(
            f"  autotune            {ours_t:6.3f} s  (CPU {ours_cpu:.3f} s)  LUFS {m.lufs_i:8.3f}  TP {m.true_peak_dbtp:7.3f} dBTP  "  # type: ignore[attr-defined]
            f"peak memory {peak_mb:.0f} MB = {peak_mb / decoded_mb:.2f}x the decoded float32 audio ({decoded_mb:.0f} MB)"
        )
        print(
            f"  16x reference TP                               {ref_tp:7.3f} dBTP  (autotune {m.true_peak_dbtp - ref_tp:+.3f} dB)"
        )  # type: ignore[attr-defined]
        rows = [
            ("pyloudnorm default + scipy 4x", lambda p=path: pyloudnorm_way(p, "K-weighting")),
            ("pyloudnorm DeMan + scipy 4x", lambda p=path: pyloudnorm_way(p, "DeMan")),
        ]
        if have_ebur:
            rows.append(("libebur128 (pyebur128)", lambda p=path: ebur128_way(p)))
        if have_ffmpeg:
            rows.append(("ffmpeg ebur128=peak=true", lambda p=path: ffmpeg_way(p)))
        for label, fn in rows:
            t, (lufs, tp) = median_time(fn, max(1, min(args.repeat, 3)))  # type: ignore[misc]
            print(
                f"  {label:30s} {t:6.3f} s  LUFS {lufs:8.3f} ({m.lufs_i - lufs:+.4f} LU)  TP {tp:7.3f} "  # type: ignore[attr-defined]
                f"({m.true_peak_dbtp - tp:+.3f} dB)  autotune is {t / ours_t:4.1f}x faster"
            )  # type: ignore[attr-defined]
    print(f"\n1-min load average at the end: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
