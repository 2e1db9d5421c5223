"""Cost of one model prediction (`ModelSearch.predict`: `ChainModel.predict` plus loudness gating) on a
30 s and a 4-minute dry reference, before (the plain model: Glue ballistics in a Python loop, the limiter
in whole-array numpy passes) and after (compiled kernels), and what the kernels cost to start.

    .venv/bin/python bench/model_speed.py [--repeat N] [--before N] [--no-startup]

Two workloads, as an offline proposal has them: "new glue" changes every dimension of the streaming space
at each prediction (TPE's trials: the Glue's ballistics run every time), "limiter only" keeps the Glue and
moves the limiter (the coordinate polish along a limiter dimension: the Glue's reduction is cached).
"per 100" is the wall time of 100 distinct predictions in a row ("before": 100 x its median, as it is
slow); "(cpu)" is the process CPU time of "after": on a shared machine the wall time also counts others.
"numpy path" is the model without numba (AUTOTUNE_NUMBA=0), which caches the Glue stage too. The project's target: a proposal of ~100 predictions in <= 1 s, i.e. <= 8 ms a prediction.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from autotune.dsp import ChainParams, DemoSpec, GlueParams, chain, compiled, demo_track
from autotune.dsp.chain import GLUE_AUTO_RELEASE_S, forward_min, release_envelope, trailing_mean
from autotune.dsp.model import DryFeatures, Predicted
from autotune.modelsearch import ModelSearch, Role, chain_params, features, gated_lufs
from objectives import Range, unflatten

Vec = NDArray[np.float64]
SR = 48_000
ROLES: dict[str, Role] = {"glue": "glue", "limiter": "limiter"}
#: configs/streaming.json's space as the virtual Live resolves it.
SPACE: dict[str, Range] = {
    "glue.threshold_db": Range(-30.0, 0.0),
    "glue.makeup_db": Range(0.0, 10.0),
    "limiter.gain_db": Range(0.0, 24.0),
    "limiter.ceiling_db": Range(-7.0, -1.05),
}


# -- before: the model as it was (a Python loop for the Glue's ballistics, numpy for the limiter) -------


def before_glue_gr(level_db: Vec, dt: float, p: GlueParams) -> Vec:
    over = level_db - p.threshold_db
    slope = 1.0 - 1.0 / p.ratio
    knee, half = 6.0, 3.0
    target = np.where(
        over <= -half, 0.0, np.where(over >= half, over * slope, slope * (over + half) ** 2 / (2 * knee))
    )
    target = np.minimum(target, p.range_db)
    a_att = math.exp(-dt / max(p.attack_ms / 1000.0, 1e-6))
    a_rel = math.exp(-dt / max(GLUE_AUTO_RELEASE_S if p.release_s is None else p.release_s, 1e-6))
    out = np.empty(len(target))
    g = 0.0
    for i, t in enumerate(target.tolist()):
        g = a_att * g + (1.0 - a_att) * t if t > g else a_rel * g + (1.0 - a_rel) * t
        out[i] = g
    return out


def before_predict(f: DryFeatures, params: ChainParams) -> Predicted:
    """`ChainModel.predict` before the kernels (standard limiter mode, Dry/Wet 100 %: the streaming space)."""
    g, lim = params.glue, params.limiter
    active = f.peak > 10.0 ** (-70.0 / 20.0)
    level = 20.0 * np.log10(np.maximum(f.peak, 1e-10))
    db = g.makeup_db - before_glue_gr(level, f.block / f.sample_rate, g)
    gain = np.power(10.0, db / 20.0)
    glue_gr = float(np.mean(g.makeup_db - db[active]))
    gain = gain * 10.0 ** (lim.gain_db / 20.0)
    q = f.peak * gain
    required = np.minimum(1.0, 10.0 ** (lim.ceiling_db / 20.0) / np.maximum(q, 1e-12))
    n = max(1, round(lim.lookahead_ms / 1000.0 * f.sample_rate / f.block))
    ahead = forward_min(required, n + 1)
    required = np.minimum(ahead, trailing_mean(ahead, n))
    gr_req = -20.0 * np.log10(np.maximum(required, 1e-12))
    lg = np.power(10.0, -release_envelope(gr_req, lim.effective_release_ms / 1000.0 * SR / f.block) / 20.0)
    gain = gain * lg
    lim_gr = float(np.mean(-20.0 * np.log10(lg[active])))
    return Predicted(f.energy * gain * gain, float(np.max(f.peak * gain)), glue_gr, lim_gr)


# -- workloads ---------------------------------------------------------------------------------------------


def workload(kind: str, count: int, seed: int) -> list[dict[str, float]]:
    """`count` distinct settings (ModelSearch memoises repeats)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        if kind == "new glue":
            out.append({k: float(rng.uniform(d.low, d.high)) for k, d in SPACE.items()})
        else:
            out.append(
                {
                    "glue.threshold_db": -18.0,
                    "glue.makeup_db": 4.0,
                    "limiter.gain_db": 6.0 + 12.0 * i / count,
                    "limiter.ceiling_db": float(rng.uniform(-7.0, -1.05)),
                }
            )
    return out


def after_times(
    f: DryFeatures, settings: list[dict[str, float]], cpu: list[float] | None = None
) -> list[float]:
    """Wall time of each `ModelSearch.predict` (and its process CPU time into `cpu`)."""
    search = ModelSearch(f, SPACE, ROLES, ChainParams(), -14.0, -1.0, 0.5)
    search.predict({k: (d.low + d.high) / 2 for k, d in SPACE.items()})  # the first call pays any warm-up
    times = []
    for flat in settings:
        c0, t0 = time.process_time(), time.perf_counter()
        search.predict(flat)
        times.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return times


def before_times(f: DryFeatures, settings: list[dict[str, float]]) -> list[float]:
    times = []
    for flat in settings:
        t0 = time.perf_counter()
        params = chain_params(unflatten(flat), ROLES, ChainParams())
        p = before_predict(f, params)
        gated_lufs(p.energy, f)
        math.log10(p.peak)
        times.append(time.perf_counter() - t0)
    return times


def with_numpy_path(fn: Callable[[], list[float]]) -> list[float]:
    """`fn` with the kernels switched off, as on a machine without numba."""
    saved = compiled._NUMBA, compiled._COMPILED
    compiled._NUMBA, compiled._COMPILED = False, {}
    try:
        return fn()
    finally:
        compiled._NUMBA, compiled._COMPILED = saved


# -- start-up ----------------------------------------------------------------------------------------------

STARTUP = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from autotune.dsp import ChainParams
from autotune.dsp.model import ChainModel, DryFeatures
import autotune.cli
t1 = time.perf_counter()
cli_imports_numba = "numba" in sys.modules
rng = np.random.default_rng(0)
peak = 10.0 ** rng.uniform(-3, 0, 45_000)
m = ChainModel(DryFeatures(48_000, 32, peak, peak**2))
t2 = time.perf_counter()
m.predict(ChainParams())
t3 = time.perf_counter()
m.predict(ChainParams())
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "cli_imports_numba": cli_imports_numba, "first": t3 - t2,
                  "second": t4 - t3, "numba": "numba" in sys.modules}))
"""


def startup(env: Mapping[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", STARTUP], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def ms(s: float) -> str:
    return f"{s * 1e3:8.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=100, help="predictions per workload (after)")
    ap.add_argument("--before", type=int, default=15, help="predictions per workload (before)")
    ap.add_argument("--no-startup", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    print(f"1-min load average at start: {load0:.2f} ({os.cpu_count()} cores)")
    if chain.jit(chain._ballistics_kernel) is None:
        print("numba is not available: 'after' is the numpy path")
    if not args.no_startup:
        print("\nstart-up (fresh interpreter, 45k-block reference):")
        with tempfile.TemporaryDirectory() as cold:
            c = startup({"NUMBA_CACHE_DIR": cold})
        w = startup({})
        off = startup({"AUTOTUNE_NUMBA": "0"})
        print(
            f"  import autotune.cli + dsp:           {ms(w['import'])}  (imports numba: {w['cli_imports_numba']})"
        )
        print(f"  first predict, kernels compiled:     {ms(c['first'])}  (empty numba cache: import + JIT)")
        print(f"  first predict, kernels cached:       {ms(w['first'])}  (import numba + load from disk)")
        print(f"  first predict, AUTOTUNE_NUMBA=0:     {ms(off['first'])}")
        print(f"  second predict (jit / numpy):        {ms(w['second'])} / {ms(off['second']).strip()}")
    for seconds in (30.0, 240.0):
        t0 = time.perf_counter()
        f = features(demo_track(DemoSpec(seconds=seconds)), SR)
        print(f"\n{seconds:g} s reference ({len(f.peak)} blocks, built in {time.perf_counter() - t0:.1f} s):")
        print(
            f"  {'workload':14s} {'before':>11s} {'numpy path':>11s} {'after':>11s} {'(cpu)':>11s} {'ratio':>7s}"
            "   per 100: before / after"
        )
        for kind in ("new glue", "limiter only"):
            settings = workload(kind, args.repeat, seed=1)
            before = statistics.median(before_times(f, settings[: args.before]))
            numpy_path = statistics.median(
                with_numpy_path(functools.partial(after_times, f, settings[: args.before]))
            )
            cpu: list[float] = []
            after_all = after_times(f, settings, cpu)
            after = statistics.median(after_all)
            print(
                f"  {kind:14s} {ms(before)} {ms(numpy_path)} {ms(after)} {ms(statistics.median(cpu))}"
                f" {before / after:6.1f}x"
                f"   {100 * before:6.2f} s / {sum(after_all) * 100 / len(after_all):5.3f} s"
            )
    print(f"\n1-min load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
