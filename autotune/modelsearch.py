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

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import soundfile as sf
from numpy.typing import NDArray
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.signal import sosfilt, tf2sos
from scipy.stats import qmc

from autotune.audio import channel_weights, gated_loudness, k_weighting
from autotune.chainstate import device_role
from autotune.drive import DriveLine, Point, build_line, invert, next_position
from autotune.dsp.chain import ChainParams, GlueParams, LimiterParams
from autotune.dsp.model import ChainModel, DryFeatures, block_peaks, block_sums, model_block
from autotune.errors import ConfigError
from autotune.live.values import split_key
from autotune.samplers import SpaceSampler
from objectives import Choice, Dim, Range
from objectives.limits import TRUE_PEAK_ALLOWANCE_DB

Role = Literal["glue", "limiter"]
#: unit-cube position -> (LUFS correction, peak correction, distance to the nearest measured setting)
Correct = Callable[[NDArray[np.float64]], tuple[float, float, float]]
optuna.logging.set_verbosity(optuna.logging.WARNING)  # offline studies: hundreds of model trials, not news

#: The model keeps the limiter's output this far under the peak limit (the plant may differ a little).
PEAK_SAFETY_DB = 0.1
#: Points of the quasi-random (Sobol) design per offline proposal, before the coordinate polish.
OFFLINE_TRIALS = 32
#: Points of the design over the knobs other than gains and ceiling, for the first proposal.
FIRST_DESIGN = 8
#: Misses this small count nothing in the offline score (far inside any tolerance).
DEAD_ZONE_LU = 0.05
#: What proposing a setting already measured costs in the offline score (in LU).
REPEAT_PENALTY = 0.3
#: An export peaking this close to 0 dBFS has clipped (a fixed-point WAV cannot hold more).
CLIPPED_DBFS = -0.05
#: What a clipped export's gain after the chain is assumed to exceed its visible part by.
CLIPPED_EXTRA_DB = 3.0
#: Gain after the chain that an earlier study's export must show before this study's ceiling allows for it.
PRIOR_AFTER_CHAIN_DB = 0.3
#: A Limiter in True Peak mode holds the true peak at its ceiling, but only as well as its own oversampled
#: detector sees it: a little margin for the difference from the BS.1770 meter's.
TRUE_PEAK_MODE_ALLOWANCE_DB = 0.1
#: Kernel width of the residual correction, in units of each dimension's range.
KERNEL_WIDTH = 0.25


def roles(device_names: Mapping[str, str]) -> dict[str, Role]:
    """alias -> which device of the model it is; the model knows Glue Compressor and Limiter only."""
    out: dict[str, Role] = {}
    for alias, name in device_names.items():
        role = device_role(name)
        if role is not None:
            out[alias] = role
        else:
            raise ConfigError(
                f"--sampler model knows Glue Compressor and Limiter only, not {name!r} ({alias}): "
                "use --sampler tpe"
            )
    return out


# config key base name -> (field of the device's params, factor from the key's canonical unit)
_GLUE: dict[str, tuple[str, float]] = {
    "threshold": ("threshold_db", 1.0),
    "ratio": ("ratio", 1.0),
    "attack": ("attack_ms", 1000.0),
    "release": ("release_s", 1.0),
    "makeup": ("makeup_db", 1.0),
    "range": ("range_db", 1.0),
    "dry_wet": ("dry_wet", 0.01),
}
_LIMITER: dict[str, tuple[str, float]] = {
    "gain": ("gain_db", 1.0),
    "input_gain": ("gain_db", 1.0),
    "ceiling": ("ceiling_db", 1.0),
    "release": ("release_ms", 1000.0),
    "release_time": ("release_ms", 1000.0),
    "lookahead": ("lookahead_ms", 1000.0),
}


def _field(role: Role, key: str) -> tuple[str, float]:
    base, unit = split_key(key)
    table = _GLUE if role == "glue" else _LIMITER
    if base not in table:
        raise ConfigError(f"--sampler model does not model {role} parameter {key!r}: use --sampler tpe")
    name, factor = table[base]
    return name, unit.factor * factor


def check_keys(keys: Iterable[tuple[str, str]], device_roles: Mapping[str, Role]) -> None:
    for alias, key in keys:
        _field(device_roles[alias], key)


def chain_params(
    values: Mapping[str, Mapping[str, float | None]], device_roles: Mapping[str, Role], base: ChainParams
) -> ChainParams:
    """The model's chain for config-keyed physical values (`{"glue": {"threshold_db": -20}}`) over `base`."""
    glue: dict[str, Any] = {}
    lim: dict[str, Any] = {}
    for alias, vals in values.items():
        role = device_roles[alias]
        for key, v in vals.items():
            name, factor = _field(role, key)
            value = None if v is None else float(v) * factor
            if value is None and name != "release_s":
                continue
            (glue if role == "glue" else lim)[name] = value
    return ChainParams(
        glue=replace(base.glue, **glue), limiter=replace(base.limiter, **lim), fader_db=base.fader_db
    )


# -- the dry reference ----------------------------------------------------------------------------


def features(audio: NDArray[np.floating], sample_rate: int) -> DryFeatures:
    """Block peaks and K-weighted block energies of the dry song (channels weighted as BS.1770 does)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    step = round(0.1 * sample_rate)
    block = model_block(step)
    sos = np.vstack([tf2sos(b, a) for b, a in k_weighting(sample_rate)])
    weights = channel_weights(x.shape[1])
    energy = np.zeros(x.shape[0] // block)
    for c in range(x.shape[1]):
        if weights[c] == 0.0:
            continue
        y = sosfilt(sos, x[:, c])
        energy += weights[c] * block_sums(y * y, block)
    return DryFeatures(sample_rate, block, block_peaks(x, block), energy)


def features_of_file(path: Path) -> DryFeatures:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return features(audio, int(sr))


def gated_lufs(block_energy: NDArray[np.float64], f: DryFeatures) -> float:
    """Integrated loudness from per-block output energies: 400 ms gating blocks every 100 ms."""
    per = f.blocks_per_step
    n_steps = len(block_energy) // per
    seg = block_energy[: n_steps * per].reshape(n_steps, per).sum(axis=1)
    if n_steps < 4:
        return float("-inf")
    cs = np.concatenate(([0.0], np.cumsum(seg)))
    z = (cs[4:] - cs[:-4]) / (4 * per * f.block)
    return gated_loudness(z[:, None])


@dataclass(frozen=True)
class Prior:
    """An export of an earlier study of the same set (same dry reference): the chain it was made with and
    what it measured. The rig is the same, so it calibrates the model before this study spends an export."""

    chain: ChainParams
    lufs: float
    peak_db: float
    study: str


def _chain_from(d: Mapping[str, Any]) -> ChainParams:
    """A ChainParams from its asdict() form, ignoring fields this version does not know."""

    def known(cls: type, values: Any) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in dict(values).items() if k in names}

    return ChainParams(
        glue=GlueParams(**known(GlueParams, d["glue"])),
        limiter=LimiterParams(**known(LimiterParams, d["limiter"])),
        fader_db=float(d.get("fader_db", 0.0)),
    )


class ReferenceCache:
    """Dry references by sha256 (`<sha>.npz`), which Live set fingerprint last gave which sha, and the
    exports made on each reference (`<sha>.exports.jsonl`), which later studies of the set start from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _index(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / "index.json").read_text())
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def lookup(self, fingerprint: str) -> tuple[str, DryFeatures] | None:
        sha = self._index().get(fingerprint)
        if sha is None:
            return None
        f = self.load(sha)
        return None if f is None else (sha, f)

    def load(self, sha: str) -> DryFeatures | None:
        try:
            with np.load(self.root / f"{sha}.npz") as z:
                return DryFeatures(int(z["sample_rate"]), int(z["block"]), z["peak"], z["energy"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # missing, truncated or foreign: a miss, so the reference is exported again

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Index updates are read-modify-write: one process and one thread at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.root / ".index.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def forget(self, fingerprint: str) -> None:
        with self._locked():
            index = self._index()
            if index.pop(fingerprint, None) is not None:
                self._write_index(index)

    def _write_index(self, index: dict[str, str]) -> None:
        tmp_index = self.root / f".index.{os.getpid()}.tmp"
        tmp_index.write_text(json.dumps(index, indent=1, sort_keys=True))
        tmp_index.replace(self.root / "index.json")

    def remember(self, sha: str, prior: Prior) -> None:
        """Appends one export, one whole line in one write: a crash never leaves half a line read as data."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {
                "chain": dataclasses.asdict(prior.chain),
                "lufs": prior.lufs,
                "peak_db": prior.peak_db,
                "study": prior.study,
            }
        )
        fd = os.open(self.root / f"{sha}.exports.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def priors(self, sha: str, *, exclude_study: str | None = None, last: int = 50) -> list[Prior]:
        """The latest exports made on this reference (malformed lines are skipped)."""
        try:
            lines = (self.root / f"{sha}.exports.jsonl").read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines[-4 * last :]:
            try:
                d = json.loads(line)
                p = Prior(_chain_from(d["chain"]), float(d["lufs"]), float(d["peak_db"]), str(d["study"]))
            except (ValueError, KeyError, TypeError):
                continue
            if p.study != exclude_study and math.isfinite(p.lufs) and math.isfinite(p.peak_db):
                out.append(p)
        return out[-last:]

    def store(self, fingerprint: str, sha: str, f: DryFeatures) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{sha}.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, sample_rate=f.sample_rate, block=f.block, peak=f.peak, energy=f.energy)
        tmp.replace(self.root / f"{sha}.npz")
        with self._locked():
            index = self._index()
            index[fingerprint] = sha
            self._write_index(index)


def fingerprint(parts: Mapping[str, Any]) -> str:
    """What identifies "the same song" before exporting it: what Live reports about the set."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


# -- prediction, correction, proposal -------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    params: dict[str, float]  # flat Optuna names -> values
    lufs: float
    peak_db: float
    #: The export's true peak (dBTP); NaN when not measured.
    true_peak_db: float = math.nan


@dataclass(frozen=True)
class Prediction:
    lufs: float
    peak_db: float
    effort_db: float


@dataclass(frozen=True)
class Proposal:
    params: dict[str, float]
    model: Prediction  # what the bare model says
    lufs: float  # corrected
    peak_db: float  # corrected
    reachable: bool
    exports_used: int
    #: How the setting was chosen: "model" (the model alone), "secant"/"bisect" (a step along the drive
    #: line, see autotune.drive), "end" (an end of that line), "offline" (the kernel-corrected model, for
    #: --refine or a space without gains), "exhausted" (the end of the line is measured and misses).
    how: str = "model"
    #: Set when the end of the drive line in the direction of the shortfall has been exported and still
    #: misses by more than the tolerance: the physics, not the model, says the target is out of reach.
    verdict: Literal["louder", "quieter"] | None = None

    @property
    def correction_lu(self) -> float:
        return self.lufs - self.model.lufs

    def describe(self) -> str:
        corr = (
            f" (model {self.model.lufs:+.2f}, corrected by {self.correction_lu:+.2f} LU from "
            f"{self.exports_used} export{'s' if self.exports_used != 1 else ''}; {self.how} step)"
            if self.exports_used
            else ""
        )
        return f"predicts {self.lufs:.2f} LUFS, peak {self.peak_db:.2f} dBFS{corr}"


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

    def __post_init__(self) -> None:
        self._model = ChainModel(self.features)

    # prediction
    def predict(self, flat: Mapping[str, float]) -> Prediction:
        key = tuple(sorted((k, round(float(v), 9)) for k, v in flat.items()))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        out = self._predict_chain(self.chain_for(flat))
        if len(self._memo) < 20000:
            self._memo[key] = out
        return out

    def _predict_chain(self, chain: ChainParams) -> Prediction:
        p = self._model.predict(chain)
        return Prediction(
            gated_lufs(p.energy, self.features),
            20.0 * math.log10(p.peak) if p.peak > 0 else -math.inf,
            p.glue_gr_db + p.limiter_gr_db,
        )

    def chain_for(self, flat: Mapping[str, float]) -> ChainParams:
        """The model's chain for flat Optuna params over the state Live holds."""
        values: dict[str, dict[str, float | None]] = {}
        for name, v in flat.items():
            alias, k = name.split(".", 1)
            values.setdefault(alias, {})[k] = v
        return chain_params(values, self.device_roles, self.base)

    def _unit(self, flat: Mapping[str, float]) -> NDArray[np.float64]:
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

    def _corrector(self, obs: Sequence[Observation]) -> Correct:
        """Residual correction: a kernel-weighted mean of (measured - predicted), plus how close the nearest
        measured setting is. Exact at a measured setting, their plain mean far from all of them."""
        if not obs:
            return lambda u: (0.0, 0.0, 1.0)
        us = np.stack([self._unit(o.params) for o in obs])
        preds = [self.predict(o.params) for o in obs]
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

    def _score(self, flat: Mapping[str, float], correct: Correct) -> tuple[float, Prediction, float, float]:
        p = self.predict(flat)
        dl, dp, near = correct(self._unit(flat))
        lufs, peak = p.lufs + dl, p.peak_db + dp
        over = max(0.0, peak - (self.peak_limit_dbfs - PEAK_SAFETY_DB))
        if self.true_peak_limit_dbtp is not None:
            tp_over = peak + self._tp_allowance - (self.true_peak_limit_dbtp - PEAK_SAFETY_DB)
            over = max(over, tp_over)
        # Within a few hundredths of an LU of the target, gentler processing and settings near measured
        # ones win: there, a plant that differs from the model differs least from its prediction.
        miss = max(0.0, abs(lufs - self.target_lufs) - DEAD_ZONE_LU)
        score = miss + 4.0 * over + 0.01 * p.effort_db + 0.05 * near
        if near < 1e-3:  # measured already: another export there teaches nothing (--refine goes on searching)
            score += REPEAT_PENALTY
        return score, p, lufs, peak

    # -- the drive line ------------------------------------------------------------------------------
    def _knobs(self) -> tuple[list[str], str | None]:
        """The space's gains (Limiter input gain first, then Glue makeup) and the Limiter's ceiling: the
        knobs whose every increase makes the chain louder."""
        gains: list[tuple[int, str]] = []
        ceiling = None
        for name, dim in self.space.items():
            if not isinstance(dim, Range):
                continue
            alias, key = name.split(".", 1)
            role = self.device_roles[alias]
            field_name = _field(role, key)[0]
            if field_name == "gain_db" and role == "limiter":
                gains.append((0, name))
            elif field_name == "makeup_db" and role == "glue":
                gains.append((1, name))
            elif field_name == "ceiling_db" and role == "limiter":
                ceiling = name
        return [n for _, n in sorted(gains)], ceiling

    def _above_ceiling(self, chain: ChainParams, peak_db: float) -> float:
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

    def _after_chain(self, obs: Sequence[Observation]) -> list[float]:
        return [self._above_ceiling(self.chain_for(o.params), o.peak_db) for o in obs] + [
            self._above_ceiling(pr.chain, pr.peak_db) for pr in self.prior
        ]

    def _corrected_peak(self, flat: Mapping[str, float], obs: Sequence[Observation]) -> float:
        """The model's peak, raised by what exports showed it under-predicts (capped at the ceiling, which
        the Limiter holds), plus any gain after the chain: a proposal's peak errs on the safe side."""
        gain = max(self._after_chain(obs), default=0.0)
        under = [
            o.peak_db - gain - self.predict(o.params).peak_db for o in obs if math.isfinite(o.peak_db)
        ] + [pr.peak_db - gain - self._predict_chain(pr.chain).peak_db for pr in self.prior]
        lift = max([0.0, *(d for d in under if math.isfinite(d))])
        chain = self.chain_for(flat)
        peak = self.predict(flat).peak_db + lift
        if chain.limiter.on:
            peak = min(peak, chain.limiter.ceiling_db)
        return peak + gain

    @property
    def _tp_allowance(self) -> float:
        """The true peak's assumed margin over the ceiling before exports measure it: small when the Limiter
        is in True Peak mode (Live 12.1: the ceiling is then a true-peak ceiling), else the usual one."""
        if self.base.limiter.mode == "true_peak":
            return TRUE_PEAK_MODE_ALLOWANCE_DB
        return TRUE_PEAK_ALLOWANCE_DB

    def true_peak_over(self, obs: Sequence[Observation]) -> float:
        """How far the true peak sits above the sample peak: the largest the study's exports measured,
        the starting allowance before any (the model predicts sample peaks only)."""
        over = [o.true_peak_db - o.peak_db for o in obs if math.isfinite(o.true_peak_db - o.peak_db)]
        return max(over) if over else self._tp_allowance

    def _true_peak_ok(self, peak: float, obs: Sequence[Observation]) -> bool:
        limit = self.true_peak_limit_dbtp
        return limit is None or peak + self.true_peak_over(obs) <= limit + 1e-3

    def safe_ceiling(self, obs: Sequence[Observation]) -> float:
        """The ceiling the drive line uses: just under the peak limit, lowered by the gain after the chain
        that an earlier study's export showed, or that an export of this study showed by going over the
        limit. Changing only on such a failure keeps the line fixed while the secant converges on it.

        Under a true-peak limit the Limiter's ceiling (a sample peak in Standard mode) sits lower by the
        true peak's allowance above the sample peak, and lower again by what an export that went over the
        true-peak limit measured: a ceiling at -1 dB does not give -1 dBTP."""
        gains = [
            self._above_ceiling(pr.chain, pr.peak_db)
            for pr in self.prior
            if self._above_ceiling(pr.chain, pr.peak_db) > PRIOR_AFTER_CHAIN_DB
        ]
        gains += [
            self._above_ceiling(self.chain_for(o.params), o.peak_db)
            for o in obs
            if o.peak_db > self.peak_limit_dbfs
        ]
        after = max(gains, default=0.0)
        ceiling = self.peak_limit_dbfs - PEAK_SAFETY_DB - after
        if self.true_peak_limit_dbtp is not None:
            tp_over = max(
                [self._tp_allowance]
                + [
                    o.true_peak_db - o.peak_db
                    for o in obs
                    if o.true_peak_db > self.true_peak_limit_dbtp and math.isfinite(o.peak_db)
                ]
            )
            ceiling = min(ceiling, self.true_peak_limit_dbtp - tp_over - PEAK_SAFETY_DB - after)
        return ceiling

    def line(self, obs: Sequence[Observation]) -> DriveLine | None:
        """The drive line through the model's own first proposal, or None for a space without gains."""
        gains, ceiling = self._knobs()
        if not gains and ceiling is None:
            return None
        first = self._model_proposal()
        return build_line(first.params, self.space, gains, ceiling, self.safe_ceiling(obs))

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
            out = self._offline(obs, "offline" if obs else "model")
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
        points = [Point(line.position_of(o.params), self.predict(o.params).lufs, o.lufs) for o in obs]
        points += [Point(None, self._predict_chain(pr.chain).lufs, pr.lufs) for pr in self.prior]
        on_line = [q for q in points if q.position is not None]
        step = next_position(
            on_line if len(on_line) >= 2 else points,
            self.target_lufs,
            lambda pos: self.predict(line.at(pos)).lufs,
            self.tolerance,
        )
        flat = line.at(step.position)
        p = self.predict(flat)
        lufs = step.expected(p.lufs)
        peak = self._corrected_peak(flat, obs)
        reachable = (
            abs(lufs - self.target_lufs) <= self.tolerance
            and peak <= self.peak_limit_dbfs
            and self._true_peak_ok(peak, obs)
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
            self._proposed["first"] = self._on_target() or self._offline([], "model", fixed_ceiling=True)
        return self._proposed["first"]

    def _on_target(self) -> Proposal | None:
        """The gentlest setting the model puts on target: for each point of a small design over the other
        knobs (threshold, ratio, ...), the drive line from every gain at the bottom is solved for the target
        (limiter gain first, or makeup first), and the candidate with the least processing wins. Every
        candidate is on target, so the choice is only about how gently, which a coordinate search cannot
        trade (it cannot move threshold and gain together)."""
        gains, ceiling = self._knobs()
        if not gains:
            return None
        others = {k: d for k, d in self.space.items() if k not in gains and k != ceiling}
        safe = self.safe_ceiling([])
        points: list[dict[str, float]] = [{}]
        if others:
            points = sobol_design(others, FIRST_DESIGN, self.seed)
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
                score = self._score(cand, none)[0]
                if best is None or score < best[0]:
                    best = (score, cand)
        assert best is not None
        _, p, lufs, peak = self._score(best[1], none)
        reachable = (
            abs(lufs - self.target_lufs) <= self.tolerance
            and peak <= self.peak_limit_dbfs
            and self._true_peak_ok(peak, [])
        )
        return Proposal(best[1], p, lufs, peak, reachable, 0, "model")

    def _offline(self, obs: Sequence[Observation], how: str, fixed_ceiling: bool = False) -> Proposal:
        """The setting the (kernel-corrected) model predicts closest to the target with the peak safely under
        the limit: a quasi-random design over the space, then a coordinate polish."""
        correct = self._corrector(obs)
        _, ceiling = self._knobs()
        fixed: dict[str, float] = {}
        if fixed_ceiling and ceiling is not None:
            dim = self.space[ceiling]
            assert isinstance(dim, Range)
            fixed[ceiling] = min(dim.high, max(dim.low, self.safe_ceiling([])))
        free = {k: d for k, d in self.space.items() if k not in fixed}
        starts: list[dict[str, float]] = [
            {**{k: v for k, v in o.params.items() if k in free}, **fixed}
            for o in sorted(obs, key=lambda o: abs(o.lufs - self.target_lufs))[:2]
        ]
        if free:
            starts += [
                {**fixed, **point} for point in sobol_design(free, OFFLINE_TRIALS, self.seed + len(obs))
            ]
        else:
            starts.append(dict(fixed))
        best = min(starts, key=lambda f: self._score(f, correct)[0])
        best = self._polish(best, correct, free)
        _, p, lufs, peak = self._score(best, correct)
        reachable = (
            abs(lufs - self.target_lufs) <= self.tolerance
            and peak <= self.peak_limit_dbfs
            and self._true_peak_ok(peak, obs)
        )
        return Proposal(best, p, lufs, peak, reachable, len(obs), how)

    def _polish(self, flat: dict[str, float], correct: Correct, free: Mapping[str, Dim]) -> dict[str, float]:
        """Coordinate search around the design's best point: a few sweeps per dimension land on the optimum
        (the loss is smooth and nearly monotone in every gain)."""
        best = dict(flat)
        best_score = self._score(best, correct)[0]
        for width in (0.25, 0.06, 0.015):
            for name, dim in free.items():
                if isinstance(dim, Choice):
                    candidates = list(dim.values)
                else:
                    span = (dim.high - dim.low) * width
                    candidates = [
                        min(dim.high, max(dim.low, best[name] + span * k / 3)) for k in range(-3, 4)
                    ]
                for v in candidates:
                    trial = {**best, name: float(v)}
                    s = self._score(trial, correct)[0]
                    if s < best_score - 1e-9:
                        best, best_score = trial, s
        return best


def sobol_design(dims: Mapping[str, Dim], n: int, seed: int) -> list[dict[str, float]]:
    """`n` scrambled Sobol points over `dims` (a choice takes the value its cell falls in)."""
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


def observations(study: optuna.Study, space: Mapping[str, Dim]) -> list[Observation]:
    """Completed trials with a measurement, whatever sampler or worker ran them."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        lufs, peak = t.user_attrs.get("lufs_i"), t.user_attrs.get("peak_dbfs")
        tp = t.user_attrs.get("true_peak_dbtp")
        if isinstance(lufs, (int, float)) and isinstance(peak, (int, float)) and set(space) <= set(t.params):
            out.append(
                Observation(
                    {k: float(t.params[k]) for k in space},
                    float(lufs),
                    float(peak),
                    float(tp) if isinstance(tp, (int, float)) else math.nan,
                )
            )
    return out


class ModelSampler(SpaceSampler):
    """Optuna sampler over the corrected chain model: trials stay ordinary trials of the study (storage,
    resume, several workers, the dashboard), only where they are placed comes from the model."""

    def __init__(self, search: ModelSearch, *, from_cache: bool = False) -> None:
        super().__init__(search.space, seed=search.seed)
        self.search = search
        #: The dry reference came from the cache: the first export checks that it still fits the song.
        self.from_cache = from_cache
        #: That check failed: a fresh reference is due before the next trial.
        self.stale = False
        self.proposals: dict[int, Proposal] = {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        prop = self.search.propose(observations(study, self.search.space))
        if not trial.system_attrs.get("fixed_params"):
            # A queued run (--with-runs, a retried trial) sets its own values: only the parameters it leaves
            # open come from the model, and it is neither predicted nor judged as the model's setting.
            self.proposals[trial.number] = prop
        return {k: v for k, v in prop.params.items() if k in search_space}


def same_setting(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(b[k])) for k in b)


def describe_params(flat: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in flat.items())
