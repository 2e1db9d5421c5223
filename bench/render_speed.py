"""Real-time factor of the virtual Live's render and cost of one analysis, on the 30 s demo song.

    .venv/bin/python bench/render_speed.py [--repeat N]

Prints medians; the project's target (issue 5) is >= 50x real time for the whole chain.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import numpy as np
import soundfile as sf

from autotune.audio import analyze_file, measure_audio
from autotune.dsp import ChainParams, DemoSpec, GlueParams, LimiterParams, demo_track, render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    spec = DemoSpec()
    t0 = time.perf_counter()
    x = demo_track(spec)
    synth = time.perf_counter() - t0
    params = ChainParams(
        GlueParams(threshold_db=-24.0, ratio=4.0, makeup_db=10.0),
        LimiterParams(gain_db=18.0, ceiling_db=-6.3),
    )
    renders, analyses = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        y = render(x, spec.sample_rate, params)
        renders.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        measure_audio(y, spec.sample_rate)
        analyses.append(time.perf_counter() - t0)
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), spec.sample_rate, subtype="PCM_24", format="WAV")
    path = "/tmp/autotune-bench-render.wav"
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    files = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        analyze_file(path)
        files.append(time.perf_counter() - t0)
    render_s = statistics.median(renders)
    print(f"demo synthesis ({spec.seconds:g} s):   {synth:.3f} s")
    print(f"render, whole chain:        median {render_s:.3f} s  = {spec.seconds / render_s:.0f}x real time")
    print(f"analysis in memory:         median {statistics.median(analyses):.3f} s")
    print(
        f"analysis of the 24-bit WAV: median {statistics.median(files):.3f} s (read + sha256 + LUFS + peaks)"
    )
    print(f"1-min load average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
