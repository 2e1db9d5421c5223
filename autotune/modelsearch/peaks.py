"""The peak side of the model search: the gain after the chain that exports prove, the corrected peak of
a proposal, the true peak's margin over the sample peak, and the ceiling the drive line keeps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from autotune.dsp.chain import ChainParams
from autotune.modelsearch.proposal import (
    CLIPPED_DBFS,
    CLIPPED_EXTRA_DB,
    PEAK_SAFETY_DB,
    PRIOR_AFTER_CHAIN_DB,
    TRUE_PEAK_MODE_ALLOWANCE_DB,
    Observation,
)
from objectives.limits import TRUE_PEAK_ALLOWANCE_DB

if TYPE_CHECKING:
    from autotune.modelsearch.search import ModelSearch


def above_ceiling(chain: ChainParams, peak_db: float) -> float:
    """Gain after the chain an export proves: how far its peak sits above the Limiter's ceiling (a
    limiter never outputs more; a model that merely under-predicted the peak proves nothing)."""
    if not chain.limiter.on or not math.isfinite(peak_db):
        return 0.0
    above = max(0.0, peak_db - chain.limiter.ceiling_db)
    if above > 0.0 and peak_db >= CLIPPED_DBFS:
        # The export clipped at full scale: the gain after the chain is more than it shows. Assume
        # CLIPPED_EXTRA_DB more, so the next export is under the limit rather than clipped again.
        above += CLIPPED_EXTRA_DB
    return above


def after_chain(search: ModelSearch, obs: Sequence[Observation]) -> list[float]:
    return [above_ceiling(search.chain_for(o.params), o.peak_db) for o in obs] + [
        above_ceiling(pr.chain, pr.peak_db) for pr in search.prior
    ]


def proven_after_chain(search: ModelSearch, obs: Sequence[Observation]) -> float:
    """The gain after the chain that exports measured rather than assumed: the most any export's peak sat
    above its Limiter's ceiling, counted from PRIOR_AFTER_CHAIN_DB (smaller is the Limiter's own
    overshoot), without the extra a clipped export is given. It is a lower bound: an export whose
    Limiter was idle passes its peak through and shows only part of it."""
    measured = [(search.chain_for(o.params), o.peak_db) for o in obs]
    measured += [(pr.chain, pr.peak_db) for pr in search.prior]
    above = [
        min(peak, CLIPPED_DBFS) - chain.limiter.ceiling_db
        for chain, peak in measured
        # Soft Clip's clipper may lift a peak over the ceiling by itself: no proof of gain after the chain.
        if chain.limiter.on and chain.limiter.mode != "soft_clip" and math.isfinite(peak)
    ]
    gain = max(above, default=0.0)
    return gain if gain > PRIOR_AFTER_CHAIN_DB else 0.0


def levels(search: ModelSearch, obs: Sequence[Observation]) -> tuple[float, float]:
    """Where the chain's input and output sit against the dry reference, as the exports' peaks show it:
    (input offset, gain after the chain), both in dB, for `ModelSearch.loudness`.

    A peak above the Limiter's ceiling proves a gain after the chain (`proven_after_chain`). A peak under
    it, from a Limiter in Standard mode, has two readings: the Limiter was idle, so the peak is its input
    peak passed through and the model's peak of the same chain with the Limiter held open says how much
    hotter or quieter the devices see the song (a gain after the chain cancels out: the dry reference
    went through it too); or, when the model expects that chain to limit, the Limiter limited and a gain
    under 0 dB follows it (a fader pulled down). The reading whose model loudness is nearer the export's
    measured loudness wins. The latest such export counts (this study's before an earlier study's)."""
    after = round(proven_after_chain(search, obs), 2)
    measured = [(search.chain_for(o.params), o.peak_db, o.lufs) for o in reversed(obs)]
    measured += [(pr.chain, pr.peak_db, pr.lufs) for pr in reversed(search.prior)]
    for chain, peak, lufs in measured:
        # Only a Standard Limiter's idle output is its input: True Peak mode holds the true peak (the sample
        # peak may sit under the ceiling while it limits), Soft Clip rounds peaks off below it.
        if not chain.limiter.on or chain.limiter.mode != "standard" or not math.isfinite(peak):
            continue
        ceiling = chain.limiter.ceiling_db
        if peak > ceiling - PRIOR_AFTER_CHAIN_DB or not math.isfinite(lufs):
            continue
        open_ = replace(chain, limiter=replace(chain.limiter, ceiling_db=math.inf))
        open_peak = search.predict_chain(open_).peak_db
        if abs(peak - open_peak) <= PRIOR_AFTER_CHAIN_DB:
            return 0.0, after
        offset = round(float(_input_for_peak(search, open_, peak, after, peak - open_peak)), 2)
        readings = [(offset, after)]
        if after == 0.0 and open_peak > ceiling + PRIOR_AFTER_CHAIN_DB:
            readings.append((0.0, round(peak - ceiling, 2)))
        return min(readings, key=lambda r: abs(search.loudness(chain, *r) - lufs))
    return 0.0, after


def _input_for_peak(
    search: ModelSearch, open_: ChainParams, peak: float, after: float, guess: float
) -> float:
    """The input offset at which the model's peak of `open_` (its Limiter held open) is `peak`. A Glue that
    compresses the peaks moves the output peak by less than the input moved, so the difference of peaks
    (`guess`) understates the offset; the model's peak rises with its input, so a safeguarded secant
    from that guess finds it in a few predictions."""
    lo, hi = -48.0, 48.0
    x0, f0 = 0.0, search.peak_db(open_, 0.0, after) - peak
    x1 = min(hi, max(lo, guess))
    for _ in range(8):
        f1 = search.peak_db(open_, x1, after) - peak
        if abs(f1) <= 0.05:
            break
        if f1 < 0:
            lo = max(lo, x1)
        else:
            hi = min(hi, x1)
        step = x1 - f1 * (x1 - x0) / (f1 - f0) if f1 != f0 else 0.5 * (lo + hi)
        x0, f0 = x1, f1
        x1 = step if lo < step < hi else 0.5 * (lo + hi)
    return x1


def corrected_peak(search: ModelSearch, flat: Mapping[str, float], obs: Sequence[Observation]) -> float:
    """The model's peak, raised by what exports showed it under-predicts (capped at the ceiling, which
    the Limiter holds), plus any gain after the chain: a proposal's peak errs on the safe side."""
    gain = max(after_chain(search, obs), default=0.0)
    under = [o.peak_db - gain - search.predict(o.params).peak_db for o in obs if math.isfinite(o.peak_db)] + [
        pr.peak_db - gain - search.predict_chain(pr.chain).peak_db for pr in search.prior
    ]
    lift = max([0.0, *(d for d in under if math.isfinite(d))])
    chain = search.chain_for(flat)
    peak = search.predict(flat).peak_db + lift
    if chain.limiter.on:
        peak = min(peak, chain.limiter.ceiling_db)
    return peak + gain


def tp_allowance(search: ModelSearch) -> float:
    """The true peak's assumed margin over the ceiling before exports measure it: small when the Limiter
    is in True Peak mode (Live 12.1: the ceiling is then a true-peak ceiling), else the usual one."""
    if search.base.limiter.mode == "true_peak":
        return TRUE_PEAK_MODE_ALLOWANCE_DB
    return TRUE_PEAK_ALLOWANCE_DB


def true_peak_over(search: ModelSearch, obs: Sequence[Observation]) -> float:
    """How far the true peak sits above the sample peak: the largest the study's exports measured,
    the starting allowance before any (the model predicts sample peaks only)."""
    over = [o.true_peak_db - o.peak_db for o in obs if math.isfinite(o.true_peak_db - o.peak_db)]
    return max(over) if over else tp_allowance(search)


def true_peak_ok(search: ModelSearch, peak: float, obs: Sequence[Observation]) -> bool:
    limit = search.true_peak_limit_dbtp
    return limit is None or peak + true_peak_over(search, obs) <= limit + 1e-3


def safe_ceiling(search: ModelSearch, obs: Sequence[Observation]) -> float:
    """The ceiling the drive line uses: just under the peak limit, lowered by the gain after the chain
    that an earlier study's export showed, or that an export of this study showed by going over the
    limit. Changing only on such a failure keeps the line fixed while the secant converges on it.

    Under a true-peak limit the Limiter's ceiling (a sample peak in Standard mode) sits lower by the
    true peak's allowance above the sample peak, and lower again by what an export that went over the
    true-peak limit measured: a ceiling at -1 dB does not give -1 dBTP."""
    gains = [
        above_ceiling(pr.chain, pr.peak_db)
        for pr in search.prior
        if above_ceiling(pr.chain, pr.peak_db) > PRIOR_AFTER_CHAIN_DB
    ]
    gains += [
        above_ceiling(search.chain_for(o.params), o.peak_db)
        for o in obs
        if o.peak_db > search.peak_limit_dbfs
    ]
    after = max(gains, default=0.0)
    ceiling = search.peak_limit_dbfs - PEAK_SAFETY_DB - after
    if search.true_peak_limit_dbtp is not None:
        tp_over = max(
            [tp_allowance(search)]
            + [
                o.true_peak_db - o.peak_db
                for o in obs
                if o.true_peak_db > search.true_peak_limit_dbtp and math.isfinite(o.peak_db)
            ]
        )
        ceiling = min(ceiling, search.true_peak_limit_dbtp - tp_over - PEAK_SAFETY_DB - after)
    return ceiling
