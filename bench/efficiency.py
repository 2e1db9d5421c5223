"""Exports needed to hit a loudness target: model-based search against the alternatives, on plants.

    .venv/bin/python bench/efficiency.py [--seeds 5] [--budget 20] [--jobs 2] [--strategies grid,stepwise,tpe,gp,model]

Plants are the virtual Live with physics the model does not know (`autotune.dsp.PHYSICS`: "vintage" and
"punchy"), playing four songs with different crest factors and spectra (`autotune.dsp.SONGS`). Targets:
-14, -12 and -10.5 LUFS under -1 and -6 dBFS (tolerance 0.5 LU), searched over the space of
configs/streaming.json. Every case runs the real `optimize` (or `sweep`) path in-process: OSC over loopback
UDP, exports written and measured, receipts; the count of exports is the count of receipts, the model's dry
reference included (a cold cache: every case starts with no reference).

Whether a target is reachable at all is decided independently of every strategy: the loudest the plant gets
under the peak limit within the space is found by rendering it at the top of every gain, over a grid of
thresholds (loudness never falls when a gain rises), and a target counts as reachable when that maximum is
within the tolerance of it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = [(-14.0, -1.0), (-12.0, -1.0), (-10.5, -1.0), (-14.0, -6.0), (-12.0, -6.0), (-10.5, -6.0)]
#: Each song on one plant (all four songs on both plants doubles the run time and adds little).
PROBLEMS = [("demo", "vintage"), ("dense", "punchy"), ("bright", "vintage"), ("dynamic", "punchy")]
TOLERANCE = 0.5
SPACE = {
    "glue": {"threshold_db": [-30.0, 0.0], "makeup_db": [0.0, 10.0]},
    "limiter": {"gain_db": [0.0, 24.0], "ceiling_db": None},
}
#: The original design's three-run grid (its master_sweep.json).
GRID_RUNS = [
    {"id": "iter7", "glue": {"threshold_db": -30.0, "makeup_db": 15.0}, "limiter": {"ceiling_db": -6.5, "gain_db": 28.0}},
    {
        "id": "iter8",
        "glue": {"threshold_db": -24.0, "makeup_db": 10.0, "ratio": 4.0},
        "limiter": {"ceiling_db": -6.3, "gain_db": 18.0},
    },
    {
        "id": "iter9",
        "glue": {"threshold_db": -20.0, "makeup_db": 8.0, "ratio": 10.0},
        "limiter": {"ceiling_db": -6.2, "gain_db": 20.0, "release": 0.1},
    },
]
SEEDED = ("tpe", "gp", "model")
STRATEGIES = ("grid", "stepwise", "tpe", "gp", "model")


@dataclass
class Case:
    song: str
    plant: str
    target: float
    limit: float
    strategy: str
    seed: int


@dataclass
class Outcome:
    case: Case
    exports: int  # all exports spent, reference included
    to_pass: int | None  # exports up to and including the first pass
    out_of_reach: bool  # the strategy said so
    seconds: float


def config_json(target: float, limit: float) -> dict[str, Any]:
    runs = [
        {**r, "export_file": f"output/grid_{r['id']}.wav"}  # type: ignore[dict-item]
        for r in GRID_RUNS
    ]
    return {
        "render_track": "Master",
        "loop": "selection",
        "normalize": False,
        "target_lufs": target,
        "peak_limit_dbfs": limit,
        "lufs_tolerance": TOLERANCE,
        "master_track_id": -1000,
        "device_names": {"glue": "Glue Compressor", "limiter": "Limiter"},
        "search": SPACE,
        "runs": runs,  # optimize ignores them (no --with-runs); stepwise starts from the first
    }


def run_case(case: Case, budget: int) -> Outcome:
    from autotune import receipts
    from autotune.config import load_config
    from autotune.settings import load_settings
    from autotune.study import run

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autotune-eff-") as tmp:
        os.chdir(tmp)
        Path("configs").mkdir()
        grid = case.strategy == "grid"
        Path("configs/bench.json").write_text(json.dumps(config_json(case.target, case.limit)))
        settings = load_settings(backend="sim", sim_physics=case.plant, sim_song=case.song)
        config = load_config("configs/bench.json", settings.output_dir)
        result = run(
            config,
            settings,
            study_name="bench",
            log=lambda _: None,
            mode="sweep" if grid else "optimize",
            trials=None if grid else budget,
            sampler="tpe" if grid else case.strategy,  # type: ignore[arg-type]
            seed=case.seed,
        )
        lines = list(receipts.read(settings.receipts_path()))
        os.chdir("/")
    to_pass = next(
        (i + 1 for i, r in enumerate(lines) if (r.get("results") or {}).get("pass_lufs") and r["results"].get("pass_peak") and r.get("kind") != "reference"),
        None,
    )
    return Outcome(case, len(lines), to_pass, result.out_of_reach is not None, time.monotonic() - started)


def loudest(song: str, plant: str, limit: float) -> float:
    """The loudest the plant gets under `limit` in the space: every gain at its top, thresholds on a grid."""
    from autotune.audio import integrated_loudness
    from autotune.dsp import PHYSICS, SONGS, ChainParams, GlueParams, LimiterParams, demo_track, render

    spec = SONGS[song]
    x = demo_track(spec)
    best = -math.inf
    for threshold in np.arange(-30.0, 0.01, 2.0):
        p = ChainParams(
            GlueParams(threshold_db=float(threshold), makeup_db=10.0),
            LimiterParams(gain_db=24.0, ceiling_db=limit - 0.05),
        )
        y = render(x, spec.sample_rate, p, PHYSICS[plant])
        assert float(np.abs(y).max()) <= 10 ** (limit / 20)
        best = max(best, integrated_loudness(y, spec.sample_rate))
    return best


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95, method="higher")) if values else math.nan


def summarize(
    outcomes: list[Outcome], reach: dict[tuple[str, str, float], float], budget: int, strategies: list[str]
) -> None:
    def feasible(c: Case) -> bool:
        return reach[(c.song, c.plant, c.limit)] >= c.target - TOLERANCE

    by: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by[o.case.strategy].append(o)
    problems = sorted({(o.case.song, o.case.plant, o.case.target, o.case.limit) for o in outcomes})
    n_feasible = sum(1 for p in problems if reach[(p[0], p[1], p[3])] >= p[2] - TOLERANCE)
    seeds = max((o.case.seed for o in outcomes), default=0)
    print(
        f"\n{len(problems)} problems ({n_feasible} reachable, {len(problems) - n_feasible} out of reach); budget "
        f"{budget} exports; {seeds} seeds for {', '.join(s for s in strategies if s in SEEDED)}; a miss counts "
        f"as {budget + 1} exports"
    )
    fail = budget + 1
    medians: dict[str, float] = {}
    means: dict[str, float] = {}
    print(
        f"\n{'strategy':10s} {'runs':>5s} {'median':>7s} {'mean':>6s} {'p95':>5s} {'hit<=' + str(budget):>8s}   "
        f"{'out-of-reach called':>20s} {'exports on those':>17s} {'wrong calls':>11s}"
    )
    for s in strategies:
        feas = [o for o in by[s] if feasible(o.case)]
        infeas = [o for o in by[s] if not feasible(o.case)]
        counts = [float(o.to_pass if o.to_pass is not None else fail) for o in feas]
        medians[s] = statistics.median(counts) if counts else math.nan
        means[s] = statistics.mean(counts) if counts else math.nan
        called = [o for o in infeas if o.out_of_reach]
        wrong = sum(1 for o in feas if o.out_of_reach)
        hit = sum(1 for o in feas if o.to_pass is not None)
        spent = f"max {max(o.exports for o in called)}" if called else "-"
        print(
            f"{s:10s} {len(by[s]):5d} {medians[s]:7.1f} {means[s]:6.2f} {p95(counts):5.0f} {hit:4d}/{len(feas):<3d}   "
            f"{len(called):>12d}/{len(infeas):<7d} {spent:>17s} {wrong:>11d}"
        )
    stock = [s for s in ("tpe", "gp") if s in medians]
    if "model" in medians and stock:
        print()
        for s in stock:
            print(
                f"model vs {s}: {medians[s] / medians['model']:.1f}x fewer exports by the median "
                f"({medians[s]:.1f} -> {medians['model']:.1f}), {means[s] / means['model']:.1f}x by the mean "
                f"({means[s]:.2f} -> {means['model']:.2f})"
            )
    print("\nmedian exports to pass per reachable problem (model's dry reference included):")
    shown = [s for s in ("tpe", "gp", "model") if s in by]
    print(f"  {'song/plant':18s} {'target':>14s}  " + " ".join(f"{s:>6s}" for s in shown))
    for song, plant, target, limit in problems:
        if reach[(song, plant, limit)] < target - TOLERANCE:
            continue
        row = []
        for s in shown:
            n = [
                float(o.to_pass or fail)
                for o in by[s]
                if (o.case.song, o.case.plant, o.case.target, o.case.limit) == (song, plant, target, limit)
            ]
            row.append(f"{statistics.median(n):6.1f}" if n else "     -")
        print(f"  {song + '/' + plant:18s} {target:6.1f} / {limit:+.0f}  " + " ".join(row))
    misses = [o for o in by.get("model", []) if feasible(o.case) and (o.to_pass is None or o.to_pass > 4)]
    for o in misses:
        c = o.case
        print(
            f"  model needed {o.to_pass or 'more than ' + str(budget)} exports: {c.song}/{c.plant} "
            f"{c.target} under {c.limit} seed {c.seed}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--strategies", default="grid,stepwise,tpe,gp,model")
    ap.add_argument("--json", type=Path, help="also write every outcome here")
    ap.add_argument("--summary", type=Path, help="print the summary of outcomes written by --json, run nothing")
    args = ap.parse_args()

    from autotune.samplers import torch_available

    t0 = time.monotonic()
    reach = {(song, plant, limit): loudest(song, plant, limit) for song, plant in PROBLEMS for limit in (-1.0, -6.0)}
    print("Loudest reachable under the limit (plant rendered at the top of every gain):")
    for (song, plant, limit), lufs in reach.items():
        print(f"  {song:8s} on {plant:8s} under {limit:+.0f} dBFS: {lufs:6.2f} LUFS")
    if args.summary:
        outcomes = [
            Outcome(Case(**o["case"]), o["exports"], o["to_pass"], o["out_of_reach"], o["seconds"])
            for o in json.loads(args.summary.read_text())
        ]
        present = {o.case.strategy for o in outcomes}
        summarize(outcomes, reach, args.budget, [s for s in STRATEGIES if s in present])
        return
    strategies = [s for s in args.strategies.split(",") if s]
    if "gp" in strategies and not torch_available():
        print("(gp skipped: torch is not installed)")
        strategies.remove("gp")
    cases = [
        Case(song, plant, target, limit, s, seed)
        for song, plant in PROBLEMS
        for target, limit in TARGETS
        for s in strategies
        for seed in (range(1, args.seeds + 1) if s in SEEDED else [0])
    ]
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_case, c, args.budget) for c in cases]
        for f in as_completed(futures):
            outcomes.append(f.result())
            if len(outcomes) % 20 == 0 or len(outcomes) == len(cases):
                print(f"  ... {len(outcomes)}/{len(cases)} cases, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print(f"{len(cases)} runs in {time.monotonic() - t0:.0f} s with {args.jobs} jobs")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    summarize(outcomes, reach, args.budget, strategies)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
