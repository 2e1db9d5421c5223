"""What a CLI process pays before its first line, and before its first measurement.

    .venv/bin/python bench/startup.py [--repeat 7]

Each figure is a fresh interpreter (`python -c`), timed inside it, median of `--repeat`: importing the
library and the CLI (what every `autotune` command pays before it prints), then measuring a 30 s 48 kHz
stereo WAV (what `sweep`, `optimize` and `analyze` pay once). It also lists which of the heavy scipy
modules a measuring process imported. Run it with PYTHONPATH=<tree> to measure another checkout (the probe runs outside the working folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HEAVY = ("scipy.signal", "scipy.stats", "scipy.ndimage", "numba")

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import autotune.api, autotune.cli
t1 = time.perf_counter()
from autotune.audio import analyze_file
analyze_file(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "measure": t2 - t1, "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tone.wav"
        rng = np.random.default_rng(0)
        sf.write(wav, 0.1 * rng.standard_normal((48_000 * 30, 2)), 48_000, subtype="PCM_24")
        runs = []
        for _ in range(args.repeat + 1):  # the first run also compiles or loads numba's cache: dropped
            done = subprocess.run(
                [sys.executable, "-c", PROBE, str(wav)],
                capture_output=True,
                text=True,
                check=True,
                cwd=tmp,  # not the checkout's folder: `python -c` puts the working folder first on the path
            )
            runs.append(json.loads(done.stdout))
        runs = runs[1:]
    imp = statistics.median(r["import"] for r in runs)
    mea = statistics.median(r["measure"] for r in runs)
    print(f"median of {args.repeat}; 1-min load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(f"  import autotune.api + autotune.cli   {imp:.2f} s")
    print(f"  first measurement of a 30 s WAV      {mea:.2f} s")
    print(f"  together                             {imp + mea:.2f} s")
    print(f"  heavy modules a measuring process imported: {', '.join(runs[-1]['heavy']) or 'none'}")


if __name__ == "__main__":
    main()
