"""Wall time of one model-search proposal (`ModelSearch.propose`) on a 30 s and a 4-minute dry reference.

    .venv/bin/python bench/proposal_speed.py [--repeat 5]

A proposal is what the producer waits for between two exports: the first (the offline search: a Sobol
design and a coordinate polish over the space, with the ceiling just under the limit) and the later steps
along the drive line (a secant inverted on the model). Each timing is a fresh `ModelSearch` (no memo from
an earlier proposal; for the later steps it has made the first proposal, as a study has) after one
warm-up that loads the compiled kernels. The target: <= 1 s on 4 minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from autotune.dsp import DemoSpec, demo_track
from autotune.dsp.chain import ChainParams
from autotune.dsp.model import DryFeatures
from autotune.modelsearch import ModelSearch, Observation, Role, features
from objectives import Dim, Range

ROLES: dict[str, Role] = {"glue": "glue", "limiter": "limiter"}
SPACE: dict[str, Dim] = {
    "glue.threshold_db": Range(-40.0, 0.0),
    "glue.makeup_db": Range(0.0, 20.0),
    "limiter.gain_db": Range(0.0, 24.0),
    "limiter.ceiling_db": Range(-7.0, -1.05),
}


def timed(make: ModelSearch, obs: list[Observation]) -> float:
    t = time.perf_counter()
    make.propose(obs)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'reference':>10} {'proposal':>22} {'median':>9} {'max':>9}")
    for seconds in (30.0, 240.0):
        feats = features(demo_track(DemoSpec(seconds=seconds)), 48_000)

        def search(feats: DryFeatures = feats) -> ModelSearch:
            return ModelSearch(feats, SPACE, ROLES, ChainParams(), -14.0, -1.0, 0.5, seed=1)

        first = search().propose([])  # warm-up: kernels loaded
        one = [Observation(first.params, first.lufs - 1.5, first.peak_db)]
        second = search().propose(one)
        two = [*one, Observation(second.params, second.lufs - 0.8, second.peak_db)]
        for label, obs in (("first (offline)", []), ("after 1 export", one), ("after 2 exports", two)):
            times = []
            for _ in range(args.repeat):
                s = search()
                if obs:
                    s.propose([])  # as in a study: the first proposal was made before the first export
                times.append(timed(s, obs))
            print(f"{seconds:>9.0f}s {label:>22} {statistics.median(times):>8.3f}s {max(times):>8.3f}s")
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
