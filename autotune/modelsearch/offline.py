"""The offline search over the kernel-corrected model (--refine, and spaces without gains): a Sobol
design over the space, then a coordinate polish."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from autotune.modelsearch import peaks
from autotune.modelsearch.proposal import KERNEL_WIDTH, OFFLINE_TRIALS, Correct, Observation, Proposal
from objectives import Choice, Dim, Range

if TYPE_CHECKING:
    from autotune.modelsearch.search import ModelSearch


def corrector(search: ModelSearch, obs: Sequence[Observation]) -> Correct:
    """Residual correction: a kernel-weighted mean of (measured - predicted), plus how close the nearest
    measured setting is. Exact at a measured setting, their plain mean far from all of them."""
    if not obs:
        return lambda u: (0.0, 0.0, 1.0)
    us = np.stack([search.unit(o.params) for o in obs])
    preds = [search.predict(o.params) for o in obs]
    r_lufs = np.array([o.lufs - p.lufs for o, p in zip(obs, preds, strict=True)])
    r_peak = np.array([o.peak_db - p.peak_db for o, p in zip(obs, preds, strict=True)])
    r_peak = np.where(np.isfinite(r_peak), r_peak, 0.0)

    def correct(u: NDArray[np.float64]) -> tuple[float, float, float]:
        d2 = ((us - u) ** 2).sum(axis=1)
        w = np.exp(-d2 / (2 * KERNEL_WIDTH**2)) + 1e-3
        w = np.where(d2 < 1e-12, 1e6, w)
        return (
            float(w @ r_lufs / w.sum()),
            float(w @ r_peak / w.sum()),
            float(math.sqrt(d2.min()) / math.sqrt(max(1, len(u)))),
        )

    return correct


def offline(
    search: ModelSearch, obs: Sequence[Observation], how: str, fixed_ceiling: bool = False
) -> Proposal:
    """The setting the (kernel-corrected) model predicts closest to the target with the peak safely under
    the limit: a quasi-random design over the space, then a coordinate polish."""
    correct = corrector(search, obs)
    # Under a true-peak limit, the margin of true over sample peak that the exports measured (the usual
    # allowance before any), as the drive line's steps use it.
    tp_over = peaks.true_peak_over(search, obs)

    def score(flat: Mapping[str, float]) -> float:
        return search.score(flat, correct, tp_over)[0]

    _, ceiling = search.knobs()
    fixed: dict[str, float] = {}
    if fixed_ceiling and ceiling is not None:
        dim = search.space[ceiling]
        assert isinstance(dim, Range)
        fixed[ceiling] = min(dim.high, max(dim.low, search.safe_ceiling([])))
    free = {k: d for k, d in search.space.items() if k not in fixed}
    starts: list[dict[str, float]] = [
        {**{k: v for k, v in o.params.items() if k in free}, **fixed}
        for o in sorted(obs, key=lambda o: abs(o.lufs - search.target_lufs))[:2]
    ]
    if free:
        starts += [{**fixed, **point} for point in sobol_design(free, OFFLINE_TRIALS, search.seed + len(obs))]
    else:
        starts.append(dict(fixed))
    best = polish(min(starts, key=score), score, free)
    _, p, lufs, peak = search.score(best, correct, tp_over)
    reachable = (
        abs(lufs - search.target_lufs) <= search.tolerance
        and peak <= search.peak_limit_dbfs
        and peaks.true_peak_ok(search, peak, obs)
    )
    return Proposal(best, p, lufs, peak, reachable, len(obs), how)


def polish(
    flat: dict[str, float], score: Callable[[Mapping[str, float]], float], free: Mapping[str, Dim]
) -> dict[str, float]:
    """Coordinate search around the design's best point: a few sweeps per dimension land on the optimum
    (the loss is smooth and nearly monotone in every gain)."""
    best = dict(flat)
    best_score = score(best)
    for width in (0.25, 0.06, 0.015):
        for name, dim in free.items():
            if isinstance(dim, Choice):
                candidates = list(dim.values)
            else:
                span = (dim.high - dim.low) * width
                candidates = [min(dim.high, max(dim.low, best[name] + span * k / 3)) for k in range(-3, 4)]
            for v in candidates:
                trial = {**best, name: float(v)}
                s = score(trial)
                if s < best_score - 1e-9:
                    best, best_score = trial, s
    return best


def sobol_design(dims: Mapping[str, Dim], n: int, seed: int) -> list[dict[str, float]]:
    """`n` scrambled Sobol points over `dims` (a choice takes the value its cell falls in)."""
    from scipy.stats import qmc  # 1.2 s to import: only a model search's design needs it

    out = []
    for row in qmc.Sobol(len(dims), scramble=True, seed=seed).random(n):
        flat: dict[str, float] = {}
        for u, (name, dim) in zip(row, dims.items(), strict=True):
            if isinstance(dim, Choice):
                flat[name] = float(dim.values[min(len(dim.values) - 1, int(u * len(dim.values)))])
            else:
                flat[name] = float(dim.low + u * (dim.high - dim.low))
        out.append(flat)
    return out
