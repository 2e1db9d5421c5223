"""Model-based search: predict exports from a dry reference, correct the model by real exports.

One export with the devices switched off gives the chain's input. The chain model (`autotune.dsp.model`)
then predicts the loudness and peak of any setting in milliseconds; every real export corrects it by its
measured error (a kernel-weighted mean of residuals: exact at measured settings, an offset far from them).
The next trial is the setting the corrected model predicts closest to the target, with the peak safely
under the limit, preferring gentle processing and settings near ones already measured (where the
correction is known best). When even the closest reachable setting misses the target, the target is out
of reach: one export at that setting confirms it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from autotune.drive import DriveLine, Point, build_line, invert, next_position
from autotune.dsp.chain import ChainParams
from autotune.dsp.model import ChainModel, DryFeatures, Predicted
from autotune.modelsearch import offline, peaks
from autotune.modelsearch.keys import chain_params, field_of
from autotune.modelsearch.proposal import (
    DEAD_ZONE_LU,
    FIRST_DESIGN,
    PEAK_SAFETY_DB,
    REPEAT_PENALTY,
    Correct,
    Observation,
    Prediction,
    Proposal,
)
from autotune.modelsearch.reference import Prior, gated_lufs
from autotune.vocabulary.roles import Role
from objectives import Choice, Dim, Range


def _input_shift(input_db: float, after_db: float) -> float:
    """How much louder than the dry reference the chain's input is, when `after_db` of gain follows the
    chain (the reference went through it too), rounded so a rebased model can be reused."""
    return round(input_db - after_db, 3)


@dataclass
class ModelSearch:
    """The chain model of one study: space, targets, the device roles and the chain state outside the space."""

    features: DryFeatures
    space: Mapping[str, Dim]
    device_roles: Mapping[str, Role]
    base: ChainParams
    target_lufs: float
    peak_limit_dbfs: float
    tolerance: float
    seed: int = 0
    #: A true-peak limit beside the sample-peak one (`peak_limit_dbfs`, which is then the true-peak limit
    #: itself when the config gives no sample-peak limit: a sample peak never exceeds the true peak).
    true_peak_limit_dbtp: float | None = None
    #: --refine: after a pass, keep looking for a lower loss (the kernel-corrected offline search).
    refine: bool = False
    #: Exports of earlier studies on the same reference: a calibration before this study's first export.
    prior: Sequence[Prior] = ()
    _model: ChainModel = field(init=False)
    _memo: dict[tuple[tuple[str, float], ...], Prediction] = field(init=False, default_factory=dict)
    _proposed: dict[Any, Proposal] = field(init=False, default_factory=dict)
    _rebased: dict[float, ChainModel] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._model = ChainModel(self.features)

    # prediction
    def predict(self, flat: Mapping[str, float]) -> Prediction:
        key = tuple(sorted((k, round(float(v), 9)) for k, v in flat.items()))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        out = self.predict_chain(self.chain_for(flat))
        if len(self._memo) < 20000:
            self._memo[key] = out
        return out

    def predict_chain(self, chain: ChainParams) -> Prediction:
        p = self._model.predict(chain)
        return Prediction(
            gated_lufs(p.energy, self.features),
            20.0 * math.log10(p.peak) if p.peak > 0 else -math.inf,
            p.glue_gr_db + p.limiter_gr_db,
        )

    def loudness(self, chain: ChainParams, input_db: float = 0.0, after_db: float = 0.0) -> float:
        """The model's loudness of `chain` when the chain's input is `input_db` away from the dry reference
        and `after_db` of gain follows the chain (a master fader OSC cannot see; the dry reference was
        exported through it too, so the chain's own input is that much quieter than the reference says,
        and its output that much louder). A Limiter's work depends on its input level, so neither is the
        bare model plus an offset."""
        if input_db == 0.0 and after_db == 0.0:
            return self.predict_chain(chain).lufs
        return gated_lufs(self._rebased_predict(chain, input_db, after_db).energy, self.features)

    def unprocessed_loudness(self, chain: ChainParams, input_db: float = 0.0, after_db: float = 0.0) -> float:
        """The loudness `loudness` would give for `chain` with its Glue and Limiter doing nothing (Range 0 dB,
        no peak at the ceiling): the dry reference through the gains alone. Every step along the drive line
        evaluates it as often as the model, so it is a gating of the dry energies, not the devices' kernels."""
        g, lim = chain.glue, chain.limiter
        amp = 1.0
        if g.on:
            wet = 10.0 ** (g.makeup_db / 20.0)
            amp = g.dry_wet * wet + (1.0 - g.dry_wet) if g.dry_wet < 1.0 else wet
        if lim.on:
            amp *= 10.0 ** (lim.gain_db / 20.0)
        amp *= 10.0 ** ((_input_shift(input_db, after_db) + chain.fader_db + after_db) / 20.0)
        return gated_lufs(self.features.energy * (amp * amp), self.features)

    def peak_db(self, chain: ChainParams, input_db: float = 0.0, after_db: float = 0.0) -> float:
        """The model's sample peak of `chain` on the levels `loudness` takes."""
        peak = self._rebased_predict(chain, input_db, after_db).peak
        return 20.0 * math.log10(peak) if peak > 0 else -math.inf

    def _rebased_predict(self, chain: ChainParams, input_db: float, after_db: float) -> Predicted:
        shift = _input_shift(input_db, after_db)
        model = self._model if shift == 0.0 else self._rebased.get(shift)
        if model is None:
            f, scale = self.features, 10.0 ** (shift / 20.0)
            model = ChainModel(DryFeatures(f.sample_rate, f.block, f.peak * scale, f.energy * scale * scale))
            self._rebased = {shift: model}  # one at a time: it changes only when an export shows more
        return model.predict(replace(chain, fader_db=chain.fader_db + after_db))

    def chain_for(self, flat: Mapping[str, float]) -> ChainParams:
        """The model's chain for flat Optuna params over the state Live holds."""
        values: dict[str, dict[str, float | None]] = {}
        for name, v in flat.items():
            alias, k = name.split(".", 1)
            values.setdefault(alias, {})[k] = v
        return chain_params(values, self.device_roles, self.base)

    def unit(self, flat: Mapping[str, float]) -> NDArray[np.float64]:
        out = []
        for name, dim in self.space.items():
            v = flat.get(name)
            if v is None:
                out.append(0.5)
            elif isinstance(dim, Choice):
                idx = min(range(len(dim.values)), key=lambda i: abs(dim.values[i] - v))
                out.append(idx / max(1, len(dim.values) - 1))
            else:
                out.append((v - dim.low) / (dim.high - dim.low))
        return np.asarray(out)

    def score(
        self, flat: Mapping[str, float], correct: Correct, tp_over: float | None = None
    ) -> tuple[float, Prediction, float, float]:
        """`tp_over`: how far the true peak sits above the sample peak (the usual allowance by default)."""
        p = self.predict(flat)
        dl, dp, near = correct(self.unit(flat))
        lufs, peak = p.lufs + dl, p.peak_db + dp
        over = max(0.0, peak - (self.peak_limit_dbfs - PEAK_SAFETY_DB))
        if self.true_peak_limit_dbtp is not None:
            margin = peaks.tp_allowance(self) if tp_over is None else tp_over
            over = max(over, peak + margin - (self.true_peak_limit_dbtp - PEAK_SAFETY_DB))
        # Within a few hundredths of an LU of the target, gentler processing and settings near measured
        # ones win: there, a plant that differs from the model differs least from its prediction.
        miss = max(0.0, abs(lufs - self.target_lufs) - DEAD_ZONE_LU)
        score = miss + 4.0 * over + 0.01 * p.effort_db + 0.05 * near
        if near < 1e-3:  # measured already: another export there teaches nothing (--refine goes on searching)
            score += REPEAT_PENALTY
        return score, p, lufs, peak

    # -- the drive line ------------------------------------------------------------------------------
    def knobs(self) -> tuple[list[str], str | None]:
        """The space's gains (Limiter input gain first, then Glue makeup) and the Limiter's ceiling: the
        knobs whose every increase makes the chain louder."""
        gains: list[tuple[int, str]] = []
        ceiling = None
        for name, dim in self.space.items():
            if not isinstance(dim, Range):
                continue
            alias, key = name.split(".", 1)
            role = self.device_roles[alias]
            field_name = field_of(role, key)[0]
            if field_name == "gain_db" and role == "limiter":
                gains.append((0, name))
            elif field_name == "makeup_db" and role == "glue":
                gains.append((1, name))
            elif field_name == "ceiling_db" and role == "limiter":
                ceiling = name
        return [n for _, n in sorted(gains)], ceiling

    def line(self, obs: Sequence[Observation]) -> DriveLine | None:
        """The drive line through the model's own first proposal, or None for a space without gains."""
        gains, ceiling = self.knobs()
        if not gains and ceiling is None:
            return None
        first = self._model_proposal()
        return build_line(first.params, self.space, gains, ceiling, peaks.safe_ceiling(self, obs))

    # -- proposals -----------------------------------------------------------------------------------
    def propose(self, obs: Sequence[Observation]) -> Proposal:
        """The next setting to export.

        No export yet: the model's own proposal, with the ceiling just under the limit (or, when the model
        sees the target out of reach, the end of the drive line in that direction, so the one export that
        checks it is the one that can prove it). After exports: a safeguarded secant step along the drive
        line (autotune.drive), which converges whatever the model's errors of offset and slope."""
        key = (tuple((tuple(sorted(o.params.items())), o.lufs, o.peak_db) for o in obs), self.refine)
        if key in self._proposed:
            return self._proposed[key]
        line = self.line(obs)
        if self.refine or line is None:
            out = offline.offline(self, obs, "offline" if obs else "model")
        elif not obs and not self.prior:
            first = self._model_proposal()
            out = first if first.reachable else self._at_end(line, first, obs)
        else:
            out = self._step(line, obs)
        self._proposed[key] = out
        return out

    def _at_end(self, line: DriveLine, first: Proposal, obs: Sequence[Observation]) -> Proposal:
        position = 1.0 if first.lufs < self.target_lufs else 0.0
        flat = line.at(position)
        p = self.predict(flat)
        dl = first.lufs - first.model.lufs
        return Proposal(flat, p, p.lufs + dl, p.peak_db, False, len(obs), "end")

    def _step(self, line: DriveLine, obs: Sequence[Observation]) -> Proposal:
        into, after = peaks.levels(self, obs)

        def point(position: float | None, chain: ChainParams, measured: float) -> Point:
            return Point(
                position,
                self.loudness(chain, into, after),
                measured,
                self.unprocessed_loudness(chain, into, after),
            )

        points = [point(line.position_of(o.params), self.chain_for(o.params), o.lufs) for o in obs]
        points += [point(None, pr.chain, pr.lufs) for pr in self.prior]
        on_line = [q for q in points if q.position is not None]
        step = next_position(
            on_line if len(on_line) >= 2 else points,
            self.target_lufs,
            lambda pos: self.loudness(self.chain_for(line.at(pos)), into, after),
            self.tolerance,
            lambda pos: self.unprocessed_loudness(self.chain_for(line.at(pos)), into, after),
        )
        flat = line.at(step.position)
        p = self.predict(flat)
        chain = self.chain_for(flat)
        lufs = step.expected(self.loudness(chain, into, after), self.unprocessed_loudness(chain, into, after))
        peak = peaks.corrected_peak(self, flat, obs)
        reachable = (
            abs(lufs - self.target_lufs) <= self.tolerance
            and peak <= self.peak_limit_dbfs
            and peaks.true_peak_ok(self, peak, obs)
        )
        verdict: Literal["louder", "quieter"] | None = None
        if step.how == "exhausted":
            end = next(
                q for q in on_line if q.position is not None and abs(q.position - step.position) < 1e-3
            )
            if step.position >= 0.5 and end.measured < self.target_lufs - self.tolerance:
                verdict = "louder"
            elif step.position < 0.5 and end.measured > self.target_lufs + self.tolerance:
                verdict = "quieter"
            reachable = False
        return Proposal(flat, p, lufs, peak, reachable, len(obs), step.how, verdict)

    def _model_proposal(self) -> Proposal:
        """The bare model's proposal, with the ceiling (when searched) just under the limit: a mastering
        engineer's choice, the gentlest limiting for the loudness, and the ceiling the drive line keeps."""
        if "first" not in self._proposed:
            self._proposed["first"] = self._on_target() or offline.offline(
                self, [], "model", fixed_ceiling=True
            )
        return self._proposed["first"]

    def _on_target(self) -> Proposal | None:
        """The gentlest setting the model puts on target: for each point of a small design over the other
        knobs (threshold, ratio, ...), the drive line from every gain at the bottom is solved for the target
        (limiter gain first, or makeup first), and the candidate with the least processing wins. Every
        candidate is on target, so the choice is only about how gently, which a coordinate search cannot
        trade (it cannot move threshold and gain together)."""
        gains, ceiling = self.knobs()
        if not gains:
            return None
        others = {k: d for k, d in self.space.items() if k not in gains and k != ceiling}
        safe = peaks.safe_ceiling(self, [])
        points: list[dict[str, float]] = [{}]
        if others:
            points = offline.sobol_design(others, FIRST_DESIGN, self.seed)
        none: Correct = lambda u: (0.0, 0.0, 1.0)  # noqa: E731
        best: tuple[float, dict[str, float]] | None = None
        for flat in points:
            low = {k: d.low for k in gains if isinstance(d := self.space[k], Range)}
            anchor = {**flat, **low}
            if ceiling is not None:
                anchor[ceiling] = safe
            for order in (gains, gains[::-1]) if len(gains) > 1 else (gains,):
                line = build_line(anchor, self.space, order, ceiling, safe)

                def loudness(pos: float, line: DriveLine = line) -> float:
                    return self.predict(line.at(pos)).lufs

                cand = line.at(invert(loudness, self.target_lufs))
                score = self.score(cand, none)[0]
                if best is None or score < best[0]:
                    best = (score, cand)
        assert best is not None
        _, p, lufs, peak = self.score(best[1], none)
        reachable = (
            abs(lufs - self.target_lufs) <= self.tolerance
            and peak <= self.peak_limit_dbfs
            and peaks.true_peak_ok(self, peak, [])
        )
        return Proposal(best[1], p, lufs, peak, reachable, 0, "model")

    def safe_ceiling(self, obs: Sequence[Observation]) -> float:
        """The ceiling the drive line uses (`peaks.safe_ceiling`)."""
        return peaks.safe_ceiling(self, obs)

    def true_peak_over(self, obs: Sequence[Observation]) -> float:
        """How far the true peak sits above the sample peak (`peaks.true_peak_over`)."""
        return peaks.true_peak_over(self, obs)
