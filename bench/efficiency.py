"""Exports needed to hit a loudness target: model-based search against the alternatives, on plants.

    .venv/bin/python bench/efficiency.py [--suites plants,third-party,maximizer,stress] [--seeds 5]
        [--budget 20]
        [--jobs 2] [--strategies grid,stepwise,tpe,gp,model] [--references cold,cached]
        [--songs rec-amen,...] [--targets=-14/-1,-12/-1] [--stresses offset+6,slope2,...] [--json FILE]

`--strategies` also takes `cmaes` and `random`, Optuna's other stock samplers (not run by default); every
stock sampler and the model run once per seed, and the summary names the best stock sampler.

Four suites, each reported on its own:

- `plants`: the virtual Live on the project's own plant variants (`autotune.dsp.PHYSICS`: "vintage",
  "punchy"), which the model does not know but which share its conventions and code, playing the four
  synthesised songs (`autotune.dsp.SONGS`). Targets -14, -12 and -10.5 LUFS under -1 and -6 dBFS; the space
  of configs/streaming.json.
- `third-party`: a plant we did not write, "pedalboard" (Spotify's pedalboard: JUCE's Compressor as Live's
  Glue Compressor and Limiter, behind Live's parameter tables and the conventions of Live's manual,
  `autotune.sim.plants`), playing real recordings (Sonic Pi's CC0
  loops from Debian's sonic-pi-samples, `autotune.sim.recordings`). Targets -14/-1, -12/-1 and -10.5/-6
  LUFS/dBFS; space Threshold -40..0, Makeup 0..20, Limiter Gain 0..24, Ceiling null (the 6 dB under the
  limit). The model strategy is run with a cold cache (its dry reference export counted) and with a cached
  reference: another study of the same set ran first (its dry reference and one trial, not counted), so the
  measured study finds the reference, and that earlier export, in the cache, as a producer's second study
  of a song would.
- `maximizer`: the same songs, targets and space on "pedalboard-maximizer": the same Glue, and JUCE's
  `dsp::Limiter` as it comes (a fixed 4:1 stage above -10 dBFS, its own 3.75 dB make-up, the Ceiling a gain
  after it). It is not Live's Limiter (it changes a signal with no peak above the ceiling), so it is no
  measure of the search on Live; it shows what the search does on a limiter design the model does not have.
- `stress`: plants that disagree with the model on purpose (`autotune.sim.plants.Stress`): the devices'
  input +6 / -6 dB hotter than the dry signal, Makeup and Limiter Gain acting as half / twice the dB they
  show, +3 dB after the chain (a master fader OSC can neither read nor set) or -6 dB (that fader pulled
  down, which makes a limiting export peak under the ceiling as an idle Limiter would), and the plain plant with Glue's
  Range at its default "-70.0 dB" (Live's display convention, which a model must read as "up to 70 dB of
  reduction"). The chain is on a bus track, "Mix Bus", of a stock AbletonOSC build (no master addressing).

Every case runs the real `optimize` (or `sweep`) path in-process: OSC over loopback UDP, exports written and
measured, receipts; the count of exports is the count of receipts, the model's dry reference included when
the cache is cold.

Whether a target is reachable is decided independently of every strategy, on the plant itself: the loudest
the plant gets under the peak limit within the space is found by rendering it, through the same code the
virtual Live exports with, at the top of every gain with the ceiling as high as the limit allows, over a
grid of thresholds (loudness never falls when a gain rises); the quietest with every gain at the bottom, the
ceiling lowest and the most compression. A target counts as reachable when it lies within the tolerance of
that span. A strategy that calls a reachable target out of reach (exit 40) is a false verdict.
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
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 0.5
#: Each song on one plant (all four songs on both plants doubles the run time and adds little).
PLANT_PROBLEMS = [("demo", "vintage"), ("dense", "punchy"), ("bright", "vintage"), ("dynamic", "punchy")]
PLANT_TARGETS = [(-14.0, -1.0), (-12.0, -1.0), (-10.5, -1.0), (-14.0, -6.0), (-12.0, -6.0), (-10.5, -6.0)]
PLANT_SPACE: dict[str, dict[str, Any]] = {
    "glue": {"threshold_db": [-30.0, 0.0], "makeup_db": [0.0, 10.0]},
    "limiter": {"gain_db": [0.0, 24.0], "ceiling_db": None},
}
THIRD_PARTY_PHYSICS = "pedalboard"
MAXIMIZER_PHYSICS = "pedalboard-maximizer"
THIRD_PARTY_SONGS = ["rec-amen", "rec-breakbeat", "rec-tabla", "rec-mix", "rec-mix-4min"]
THIRD_PARTY_TARGETS = [(-14.0, -1.0), (-12.0, -1.0), (-10.5, -6.0)]
WIDE_SPACE: dict[str, dict[str, Any]] = {
    "glue": {"threshold_db": [-40.0, 0.0], "makeup_db": [0.0, 20.0]},
    "limiter": {"gain_db": [0.0, 24.0], "ceiling_db": None},
}
#: stress name -> (settings of the virtual Live, what it means)
STRESSES: dict[str, tuple[dict[str, float], str]] = {
    "offset+6": ({"sim_input_offset_db": 6.0}, "devices' input +6 dB hotter than the dry signal"),
    "offset-6": ({"sim_input_offset_db": -6.0}, "devices' input 6 dB quieter than the dry signal"),
    "slope0.5": ({"sim_drive_slope": 0.5}, "Makeup and Limiter Gain act as half the dB shown"),
    "slope2": ({"sim_drive_slope": 2.0}, "Makeup and Limiter Gain act as twice the dB shown"),
    "post+3": ({"sim_post_gain_db": 3.0}, "+3 dB after the chain (master fader OSC cannot see)"),
    "post-6": ({"sim_post_gain_db": -6.0}, "-6 dB after the chain (a master fader pulled down)"),
    "range-70": ({}, 'Glue Range shows "-70.0 dB" (the default): no other disagreement'),
}
STRESS_PHYSICS = "model"
STRESS_SONG = "rec-mix"
STRESS_TARGETS = THIRD_PARTY_TARGETS
#: The original design's three-run grid (its master_sweep.json).
GRID_RUNS = [
    {
        "id": "iter7",
        "glue": {"threshold_db": -30.0, "makeup_db": 15.0},
        "limiter": {"ceiling_db": -6.5, "gain_db": 28.0},
    },
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
#: Optuna's stock samplers (`autotune.samplers.make_sampler`), the model's competition.
STOCK = ("tpe", "gp", "cmaes", "random")
SEEDED = (*STOCK, "model")
STRATEGIES = ("grid", "stepwise", "tpe", "gp", "model")  # the default run
KNOWN_STRATEGIES = ("grid", "stepwise", *STOCK, "model")
SUITES = ("plants", "third-party", "maximizer", "stress")
BUS = "Mix Bus"


@dataclass
class Case:
    song: str
    plant: str
    target: float
    limit: float
    strategy: str
    seed: int
    suite: str = "plants"
    stress: str = "none"
    #: "cold": the model exports its own dry reference (counted); "cached": another study of the same set
    #: exported it (and one trial) first, not counted. Only the model strategy uses a reference.
    reference: str = "cold"

    @property
    def label(self) -> str:
        return (
            f"model/{self.reference}"
            if self.strategy == "model" and self.suite != "plants"
            else self.strategy
        )

    def problem(self) -> Problem:
        return Problem(self.suite, self.song, self.plant, self.stress, self.limit)


@dataclass(frozen=True)
class Problem:
    """What reachability depends on (not the target: the span found serves every target)."""

    suite: str
    song: str
    plant: str
    stress: str
    limit: float


@dataclass
class Outcome:
    case: Case
    exports: int  # all exports spent by the measured study, its reference included
    to_pass: int | None  # exports up to and including the first pass
    out_of_reach: bool  # the strategy said so (optimize exits 40)
    seconds: float


@dataclass
class Span:
    quietest: float
    loudest: float


@dataclass
class SuiteSpec:
    name: str
    problems: list[tuple[str, str, str]]  # song, physics, stress
    targets: list[tuple[float, float]]
    space: dict[str, dict[str, Any]]
    chain_on: str = "master"
    references: list[str] = field(default_factory=lambda: ["cold"])


def sim_settings(suite: str, song: str, plant: str, stress: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"sim_physics": plant, "sim_song": song}
    if suite == "stress":
        settings.update(sim_chain_on="bus", sim_addressing="stock", **STRESSES[stress][0])
    return settings


def config_json(target: float, limit: float, space: dict[str, Any], chain_on: str) -> dict[str, Any]:
    runs = [{**r, "export_file": f"output/grid_{r['id']}.wav"} for r in GRID_RUNS]
    config: dict[str, Any] = {
        "render_track": "Master",
        "loop": "selection",
        "normalize": False,
        "target_lufs": target,
        "peak_limit_dbfs": limit,
        "lufs_tolerance": TOLERANCE,
        "device_names": {"glue": "Glue Compressor", "limiter": "Limiter"},
        "search": space,
        "runs": runs,  # optimize ignores them (no --with-runs); stepwise starts from the first
    }
    if chain_on == "bus":
        config["track"] = BUS
    else:
        config["master_track_id"] = -1000
    return config


def _use_sim_presets() -> None:
    """Build the virtual Live from every AUTOTUNE_SIM_* setting (plants, recordings, stress).

    `autotune.backends.sim_options` predates the third-party plant, the recordings and the stress settings;
    `autotune.sim.presets.sim_options` knows them all. Until backends delegates to it, the benchmark's
    workers use it directly (the same function, so this is a no-op once backends does)."""
    import autotune.backends
    from autotune.sim.presets import sim_options

    autotune.backends.sim_options = sim_options


def _link_songs(song_cache: Path, cache_dir: Path) -> None:
    """The songs already made (the parent builds them once) in this case's own, otherwise empty cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for f in song_cache.glob("*.npy"):
        target = cache_dir / f.name
        if not target.exists():
            target.symlink_to(f.resolve())


def run_case(case: Case, budget: int, space: dict[str, Any], chain_on: str, song_cache: str) -> Outcome:
    from autotune import receipts
    from autotune.config import load_config
    from autotune.settings import load_settings
    from autotune.study import run_study

    _use_sim_presets()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autotune-eff-") as tmp:
        os.chdir(tmp)
        Path("configs").mkdir()
        _link_songs(Path(song_cache), Path(".cache"))
        grid = case.strategy == "grid"
        Path("configs/bench.json").write_text(
            json.dumps(config_json(case.target, case.limit, space, chain_on))
        )
        settings = load_settings(
            backend="sim", **sim_settings(case.suite, case.song, case.plant, case.stress)
        )
        config = load_config("configs/bench.json", settings.output_dir)
        before = 0
        if case.strategy == "model" and case.reference == "cached":
            # Another study of the same set exports the dry reference (and one trial) first.
            run_study(
                config,
                settings,
                study_name="warm-up",
                log=lambda _: None,
                mode="optimize",
                trials=1,
                sampler="model",
                seed=case.seed,
            )
            before = len(list(receipts.read(settings.receipts_path())))
        result = run_study(
            config,
            settings,
            study_name="bench",
            log=lambda _: None,
            mode="sweep" if grid else "optimize",
            trials=None if grid else budget,
            sampler="tpe" if grid else case.strategy,  # type: ignore[arg-type]
            seed=case.seed,
        )
        lines = list(receipts.read(settings.receipts_path()))[before:]
        os.chdir("/")
    to_pass = next(
        (
            i + 1
            for i, r in enumerate(lines)
            if (r.get("results") or {}).get("pass_lufs")
            and r["results"].get("pass_peak")
            # A dry reference that already meets the target ends the study there: that export is the pass.
            and (r.get("kind") != "reference" or result.dry_pass is not None)
        ),
        None,
    )
    return Outcome(case, len(lines), to_pass, result.out_of_reach is not None, time.monotonic() - started)


def plant_span(problem: Problem, space: dict[str, Any], song_cache: str) -> Span:
    """The quietest and loudest exports of the plant under the peak limit within `space`, rendered by the
    virtual Live's own plant code (Live's parameter tables, the plant, its stress, the faders)."""
    from autotune.dsp.bs1770 import integrated_loudness
    from autotune.settings import load_settings
    from autotune.sim.liveset import SimSong
    from autotune.sim.plants import make_plant
    from autotune.sim.presets import sim_options
    from autotune.sim.server import DemoSource

    settings = load_settings(
        backend="sim",
        cache_dir=song_cache,
        **sim_settings(problem.suite, problem.song, problem.plant, problem.stress),
    )
    options = sim_options(settings)
    plant_render = make_plant(options.physics).render  # what VirtualLive.render_wav renders with
    source = DemoSource.get(options.demo, Path(song_cache))
    sr = options.demo.sample_rate
    glue_space, lim_space = space["glue"], space["limiter"]
    t_lo, t_hi = glue_space["threshold_db"]
    m_lo, m_hi = glue_space["makeup_db"]
    g_lo, g_hi = lim_space["gain_db"]
    c_lo, c_hi = problem.limit - 6.0, problem.limit - 0.05  # what `ceiling: null` searches

    def render(threshold: float, makeup: float, gain: float, ceiling: float) -> tuple[float, float]:
        song = SimSong(names=options.names, addressing=options.addressing, chain_on=options.chain_on)
        devices = {d.name: d for d in song.chain_track().devices}
        devices["Glue Compressor"].param("Threshold").set(threshold)
        devices["Glue Compressor"].param("Makeup").set(makeup / 20.0)  # raw 0..1 shows 0..20 dB
        lim = devices["Limiter"]
        lim.param("Gain" if options.names == "live11" else "Input Gain").set(gain)
        lim.param("Ceiling").set(ceiling)
        stages, fader = song.stages()
        y = np.clip(plant_render(source, sr, stages, fader, options.stress), -1.0, 1.0)  # a 24-bit WAV clips
        return integrated_loudness(y, sr), 20.0 * math.log10(max(float(np.abs(y).max()), 1e-12))

    def under_limit(threshold: float, makeup: float, gain: float, ceiling: float) -> float:
        """Loudness with the ceiling lowered (down to the space's bottom) until the peak is under the limit."""
        for _ in range(4):
            lufs, peak = render(threshold, makeup, gain, ceiling)
            if peak <= problem.limit:
                return lufs
            if ceiling <= c_lo:
                return -math.inf
            ceiling = max(c_lo, ceiling - (peak - problem.limit) - 0.05)
        return -math.inf

    loudest = max(under_limit(float(t), m_hi, g_hi, c_hi) for t in np.arange(t_lo, t_hi + 0.01, 2.0))
    quietest = under_limit(t_lo, m_lo, g_lo, c_lo)
    return Span(quietest if math.isfinite(quietest) else math.inf, loudest)


def reachable(span: Span, target: float) -> bool:
    return span.quietest - TOLERANCE <= target <= span.loudest + TOLERANCE


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95, method="higher")) if values else math.nan


def _labels(outcomes: Iterable[Outcome]) -> list[str]:
    order = ["grid", "stepwise", *STOCK, "model", "model/cold", "model/cached"]
    present = {o.case.label for o in outcomes}
    return [s for s in order if s in present]


def summarize_suite(name: str, outcomes: list[Outcome], spans: dict[Problem, Span], budget: int) -> int:
    """Print one suite's tables; return the number of false out-of-reach verdicts."""
    if not outcomes:
        return 0

    def feasible(c: Case) -> bool:
        return reachable(spans[c.problem()], c.target)

    fail = budget + 1
    by: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by[o.case.label].append(o)
    labels = _labels(outcomes)
    problems = sorted(
        {(o.case.song, o.case.plant, o.case.stress, o.case.target, o.case.limit) for o in outcomes}
    )
    n_feasible = sum(
        1 for o in {(o.case.problem(), o.case.target) for o in outcomes} if reachable(spans[o[0]], o[1])
    )
    seeds = max((o.case.seed for o in outcomes), default=0)
    print(
        f"\n=== {name}: {len(problems)} problems ({n_feasible} reachable, {len(problems) - n_feasible} out of reach); "
        f"budget {budget} exports; {seeds} seeds for seeded strategies; a miss counts as {fail} exports"
    )
    print(
        f"{'strategy':13s} {'runs':>5s} {'median':>7s} {'mean':>6s} {'p95':>5s} {'hit<=' + str(budget):>8s} "
        f"{'misses':>6s}   {'out-of-reach called':>20s} {'exports on those':>17s} {'false verdicts':>14s}"
    )
    medians: dict[str, float] = {}
    means: dict[str, float] = {}
    wrong_total = 0
    for s in labels:
        feas = [o for o in by[s] if feasible(o.case)]
        infeas = [o for o in by[s] if not feasible(o.case)]
        counts = [float(o.to_pass if o.to_pass is not None else fail) for o in feas]
        medians[s] = statistics.median(counts) if counts else math.nan
        means[s] = statistics.mean(counts) if counts else math.nan
        called = [o for o in infeas if o.out_of_reach]
        wrong = [o for o in feas if o.out_of_reach]
        wrong_total += len(wrong)
        hit = sum(1 for o in feas if o.to_pass is not None)
        spent = f"max {max(o.exports for o in called)}" if called else "-"
        print(
            f"{s:13s} {len(by[s]):5d} {medians[s]:7.1f} {means[s]:6.2f} {p95(counts):5.0f} {hit:4d}/{len(feas):<3d} "
            f"{len(feas) - hit:6d}   {len(called):>12d}/{len(infeas):<7d} {spent:>17s} {len(wrong):>14d}"
        )
    models = [s for s in labels if s.startswith("model")]
    stock = [s for s in STOCK if s in medians]
    if models and stock:
        print()
        for m in models:
            for s in stock:
                if medians[m] and not math.isnan(medians[m]) and not math.isnan(medians[s]):
                    print(
                        f"{m} vs {s}: {medians[s] / medians[m]:.1f}x fewer exports by the median "
                        f"({medians[s]:.1f} -> {medians[m]:.1f}), {means[s] / means[m]:.1f}x by the mean "
                        f"({means[s]:.2f} -> {means[m]:.2f})"
                    )
    ranked = [s for s in stock if not math.isnan(medians[s])]
    if len(ranked) > 1:
        by_median = min(ranked, key=lambda s: (medians[s], means[s]))
        by_mean = min(ranked, key=lambda s: (means[s], medians[s]))
        print(
            f"best stock sampler: {by_median} by the median ({medians[by_median]:.1f}), "
            f"{by_mean} by the mean ({means[by_mean]:.2f})"
        )
    shown = [s for s in labels if s in STOCK or s.startswith("model")]
    key = "stress" if name == "stress" else "song/plant"
    print(f"\nmedian exports to pass per reachable problem ({', '.join(shown)}):")
    print(f"  {key:22s} {'target':>14s}  " + " ".join(f"{s:>12s}" for s in shown))
    for song, plant, stress, target, limit in problems:
        cases = [
            o
            for o in outcomes
            if (o.case.song, o.case.plant, o.case.stress, o.case.target, o.case.limit)
            == (song, plant, stress, target, limit)
        ]
        if not feasible(cases[0].case):
            continue
        row = []
        for s in shown:
            n = [float(o.to_pass or fail) for o in cases if o.case.label == s]
            row.append(f"{statistics.median(n):12.1f}" if n else f"{'-':>12s}")
        what = stress if name == "stress" else f"{song}/{plant}"
        print(f"  {what:34s} {target:6.1f} / {limit:+.0f}  " + " ".join(row))
    for o in outcomes:
        c = o.case
        if feasible(c) and o.out_of_reach:
            span = spans[c.problem()]
            print(
                f"  FALSE VERDICT ({c.label}): {c.song}/{c.plant} stress {c.stress} target {c.target} under "
                f"{c.limit} seed {c.seed} called out of reach (exit 40) after {o.exports} exports; the plant "
                f"spans {span.quietest:.2f} .. {span.loudest:.2f} LUFS"
            )
        elif c.strategy == "model" and feasible(c) and (o.to_pass is None or o.to_pass > 4):
            print(
                f"  {c.label} needed {o.to_pass or 'more than ' + str(budget)} exports: {c.song}/{c.plant} "
                f"stress {c.stress} {c.target} under {c.limit} seed {c.seed}"
            )
    return wrong_total


def suite_specs(args: argparse.Namespace) -> dict[str, SuiteSpec]:
    def targets(default: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not args.targets:
            return default
        return [(float(t), float(limit)) for t, limit in (x.split("/") for x in args.targets.split(","))]

    references = [r for r in args.references.split(",") if r]
    songs = [s for s in args.songs.split(",") if s] if args.songs else THIRD_PARTY_SONGS
    stresses = [s for s in args.stresses.split(",") if s] if args.stresses else list(STRESSES)
    return {
        "plants": SuiteSpec(
            "plants", [(s, p, "none") for s, p in PLANT_PROBLEMS], targets(PLANT_TARGETS), PLANT_SPACE
        ),
        # The same songs, targets and space on JUCE's DSP in Live's conventions, and on JUCE's own limiter.
        **{
            name: SuiteSpec(
                name,
                [(s, physics, "none") for s in songs],
                targets(THIRD_PARTY_TARGETS),
                WIDE_SPACE,
                references=references,
            )
            for name, physics in (("third-party", THIRD_PARTY_PHYSICS), ("maximizer", MAXIMIZER_PHYSICS))
        },
        "stress": SuiteSpec(
            "stress",
            [(args.stress_song, args.stress_physics, s) for s in stresses],
            targets(STRESS_TARGETS),
            WIDE_SPACE,
            chain_on="bus",
            references=references,
        ),
    }


def unavailable(suite: SuiteSpec) -> str | None:
    """Why a suite cannot run on this machine (a package missing), or None."""
    from autotune.errors import ConfigError
    from autotune.sim.presets import check_physics, song

    try:
        for s, p, _ in suite.problems:
            check_physics(p)
            song(s)
    except ConfigError as e:
        return str(e)
    return None


def prepare_songs(suites: list[SuiteSpec], song_cache: Path) -> None:
    from autotune.sim.presets import song
    from autotune.sim.server import DemoSource

    for name in sorted({s for suite in suites for s, _, _ in suite.problems}):
        DemoSource.get(song(name), song_cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default=",".join(SUITES), help=f"any of {', '.join(SUITES)}")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--strategies", default=",".join(STRATEGIES), help=f"any of {', '.join(KNOWN_STRATEGIES)}"
    )
    ap.add_argument(
        "--references", default="cold,cached", help="the model's dry reference: cold, cached (not in plants)"
    )
    ap.add_argument("--songs", help=f"third-party suite's songs (default {','.join(THIRD_PARTY_SONGS)})")
    ap.add_argument(
        "--targets", help="TARGET/LIMIT pairs, e.g. --targets=-14/-1,-10.5/-6 (default: each suite's)"
    )
    ap.add_argument("--stresses", help=f"stress suite's stresses (default {','.join(STRESSES)})")
    ap.add_argument("--stress-physics", default=STRESS_PHYSICS, help="the plant the stresses act on")
    ap.add_argument("--stress-song", default=STRESS_SONG, help="the song of the stress suite")
    ap.add_argument("--cache", type=Path, help="where the songs are made once (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write every outcome here")
    ap.add_argument(
        "--summary", type=Path, help="print the summary of outcomes written by --json, run nothing"
    )
    args = ap.parse_args()

    from autotune.samplers import torch_available

    t0 = time.monotonic()
    specs = suite_specs(args)
    chosen: list[SuiteSpec] = []
    for name in [s for s in args.suites.split(",") if s]:
        if name not in specs:
            ap.error(f"unknown suite {name!r} (choose from {', '.join(SUITES)})")
        why = unavailable(specs[name])
        if why:
            print(f"(suite {name} skipped: {why})")
            continue
        chosen.append(specs[name])
    strategies = [s for s in args.strategies.split(",") if s]
    for s in strategies:
        if s not in KNOWN_STRATEGIES:
            ap.error(f"unknown strategy {s!r} (choose from {', '.join(KNOWN_STRATEGIES)})")
    if "gp" in strategies and not torch_available():
        print("(gp skipped: torch is not installed)")
        strategies.remove("gp")

    with tempfile.TemporaryDirectory(prefix="autotune-eff-songs-") as tmp:
        song_cache = (args.cache or Path(tmp)).resolve()
        prepare_songs(chosen, song_cache)
        outcomes = _run_all(args, chosen, strategies, song_cache, t0)
    wrong = 0
    for suite in chosen:
        wrong += summarize_suite(
            suite.name, [o for o in outcomes if o.case.suite == suite.name], _SPANS, args.budget
        )
    print(f"\nfalse out-of-reach verdicts (exit 40 on a reachable case): {wrong}")
    sys.stdout.flush()


_SPANS: dict[Problem, Span] = {}


def _run_all(
    args: argparse.Namespace, suites: list[SuiteSpec], strategies: list[str], song_cache: Path, t0: float
) -> list[Outcome]:
    problems = {
        Problem(suite.name, song, plant, stress, limit): suite
        for suite in suites
        for song, plant, stress in suite.problems
        for limit in sorted({lim for _, lim in suite.targets})
    }
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        span_jobs = {pool.submit(plant_span, p, s.space, str(song_cache)): p for p, s in problems.items()}
        for done in as_completed(span_jobs):
            _SPANS[span_jobs[done]] = done.result()
        print("Reachable span under the limit (the plant rendered at the ends of the space):")
        for p in sorted(_SPANS, key=lambda p: (p.suite, p.song, p.plant, p.stress, p.limit)):
            span = _SPANS[p]
            what = f"{p.song} on {p.plant}" + (f" ({p.stress})" if p.stress != "none" else "")
            print(
                f"  {p.suite:11s} {what:36s} under {p.limit:+.0f} dBFS: {span.quietest:6.2f} .. {span.loudest:6.2f} LUFS"
            )
        if args.summary:
            stored = [
                Outcome(Case(**o["case"]), o["exports"], o["to_pass"], o["out_of_reach"], o["seconds"])
                for o in json.loads(args.summary.read_text())
            ]
            return [o for o in stored if any(o.case.suite == s.name for s in suites)]
        cases: list[tuple[Case, SuiteSpec]] = []
        for suite in suites:
            for song, plant, stress in suite.problems:
                for target, limit in suite.targets:
                    for s in strategies:
                        refs = suite.references if s == "model" and suite.name != "plants" else ["cold"]
                        for ref in refs:
                            for seed in range(1, args.seeds + 1) if s in SEEDED else [0]:
                                cases.append(
                                    (
                                        Case(song, plant, target, limit, s, seed, suite.name, stress, ref),
                                        suite,
                                    )
                                )
        outcomes: list[Outcome] = []
        futures: list[Future[Outcome]] = [
            pool.submit(run_case, c, args.budget, s.space, s.chain_on, str(song_cache)) for c, s in cases
        ]
        for f in as_completed(futures):
            outcomes.append(f.result())
            if len(outcomes) % 20 == 0 or len(outcomes) == len(cases):
                print(
                    f"  ... {len(outcomes)}/{len(cases)} cases, {time.monotonic() - t0:.0f} s",
                    file=sys.stderr,
                )
    print(f"{len(cases)} runs in {time.monotonic() - t0:.0f} s with {args.jobs} jobs")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return outcomes


if __name__ == "__main__":
    main()
