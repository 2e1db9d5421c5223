"""What one trial costs besides the render itself, on the virtual Live over real UDP.

    .venv/bin/python bench/overhead.py [--trials 5]

For a 30 s and a 4-minute export: setting every parameter with read-back, the render (reported apart), the
time from the file being complete to the waiter noticing it, analysis, the receipt, and Optuna's tell.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from autotune import receipts
from autotune.audio import analyze_file
from autotune.dsp import DemoSpec
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.export import stamp, wait_for_export
from autotune.live.tracks import resolve_track
from autotune.sim import SimExporter, SimOptions, VirtualLive

optuna.logging.set_verbosity(optuna.logging.ERROR)


def run(seconds: float, trials: int, root: Path) -> dict[str, float]:
    options = SimOptions(demo=DemoSpec(seconds=seconds), cache_dir=root / "cache")
    sim = VirtualLive("127.0.0.1", 0, reply_port=0, export_root=root, options=options)
    parts: dict[str, list[float]] = {
        k: [] for k in ("set", "render", "notice", "analysis", "receipt", "tell")
    }
    with OscClient("127.0.0.1", sim.port, reply_port=0) as osc:
        sim.reply_port = osc.reply_port
        with sim:
            chain = MasterChain(
                LiveSet(osc),
                resolve_track(osc, -1000),
                {"glue": "Glue Compressor", "limiter": "Limiter"},
                lambda _: None,
            )
            chain.resolve()
            exporter = SimExporter(osc, lambda _: None)
            study = optuna.create_study(storage=f"sqlite:///{root / 'bench.db'}")
            for i in range(trials + 1):  # the first trial learns the display laws: not counted
                t0 = time.perf_counter()
                chain.set_fader_0db()
                for alias, key, value in [
                    ("glue", "threshold_db", -20.0 - i),
                    ("glue", "makeup_db", 4.0 + i / 4),
                    ("limiter", "gain_db", 10.0 + i),
                    ("limiter", "ceiling_db", -1.0 - i / 10),
                ]:
                    chain.write(alias, key, value)
                t1 = time.perf_counter()
                asked = time.monotonic()
                path = root / f"t{i}.wav"
                before = stamp(path)
                exporter.trigger(path, path.name)
                wait_for_export(path, timeout_s=120, before=before, log=lambda _: None)
                noticed = time.monotonic()
                t3 = time.perf_counter()
                m = analyze_file(path)
                t4 = time.perf_counter()
                receipts.append(
                    root / "experiments.jsonl",
                    {
                        "id": f"t{i}",
                        "trial": i,
                        "study": "bench",
                        "trial_started": str(i),
                        "lufs_i": m.lufs_i,
                    },
                )
                t5 = time.perf_counter()
                trial = study.ask()
                trial.set_user_attr("lufs_i", m.lufs_i)
                study.tell(trial, abs(m.lufs_i + 14))
                t6 = time.perf_counter()
                if i == 0:
                    continue
                parts["set"].append(t1 - t0)
                parts["render"].append(sim.export_done[str(path.resolve())] - asked)
                parts["notice"].append(noticed - sim.export_done[str(path.resolve())])
                parts["analysis"].append(t4 - t3)
                parts["receipt"].append(t5 - t4)
                parts["tell"].append(t6 - t5)
    return {k: statistics.median(v) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    print(
        f"median of {args.trials} trials on the virtual Live (loopback UDP), seconds; "
        f"1-min load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)"
    )
    print(
        f"{'export':>8} {'set+readback':>13} {'render':>8} {'notice':>8} {'analysis':>9} {'receipt':>8} {'tell':>7} {'overhead':>9}"
    )
    for seconds in (30.0, 240.0):
        with tempfile.TemporaryDirectory() as tmp:
            r = run(seconds, args.trials, Path(tmp))
        overhead = r["set"] + r["notice"] + r["analysis"] + r["receipt"] + r["tell"]
        print(
            f"{seconds:>7.0f}s {r['set']:>13.3f} {r['render']:>8.3f} {r['notice']:>8.3f} {r['analysis']:>9.3f} "
            f"{r['receipt']:>8.3f} {r['tell']:>7.3f} {overhead:>9.3f}  (render {seconds / r['render']:.0f}x real time)"
        )
    print(f"1-min load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
