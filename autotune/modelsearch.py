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

from autotune.audio import channel_weights, gated_loudness, k_weighting
from autotune.dsp.chain import ChainParams
from autotune.dsp.model import ChainModel, DryFeatures, block_peaks, block_sums, model_block
from autotune.errors import ConfigError
from autotune.live.values import split_key
from autotune.samplers import SpaceSampler
from objectives import Choice, Dim

Role = Literal["glue", "limiter"]
#: unit-cube position -> (LUFS correction, peak correction, distance to the nearest measured setting)
Correct = Callable[[NDArray[np.float64]], tuple[float, float, float]]
optuna.logging.set_verbosity(optuna.logging.WARNING)  # offline studies: hundreds of model trials, not news

#: The model keeps the limiter's output this far under the peak limit (the plant may differ a little).
PEAK_SAFETY_DB = 0.1
#: Offline model evaluations per proposal (TPE), before the coordinate polish.
OFFLINE_TRIALS = 80
#: Misses this small count nothing in the offline score (far inside any tolerance).
DEAD_ZONE_LU = 0.05
#: What proposing a setting already measured costs in the offline score (in LU).
REPEAT_PENALTY = 0.3
#: Kernel width of the residual correction, in units of each dimension's range.
KERNEL_WIDTH = 0.25


def roles(device_names: Mapping[str, str]) -> dict[str, Role]:
    """alias -> which device of the model it is; the model knows Glue Compressor and Limiter only."""
    out: dict[str, Role] = {}
    for alias, name in device_names.items():
        n = name.lower()
        if "glue" in n:
            out[alias] = "glue"
        elif "limiter" in n:
            out[alias] = "limiter"
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
#: What is read from Live to know the chain's state outside the search space.
STATE_KEYS: dict[Role, tuple[str, ...]] = {
    "glue": ("threshold_db", "ratio", "attack_ms", "release_s", "makeup_db", "range_db", "dry_wet"),
    "limiter": ("gain_db", "ceiling_db", "release_ms", "lookahead_ms"),
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


def base_state(
    read: Callable[[str, str], float | None],
    device_roles: Mapping[str, Role],
    read_text: Callable[[str, str], str],
) -> ChainParams:
    """The chain as Live shows it now (parameters the build does not have keep the model's defaults).
    `read(alias, key)` -> physical value or None (a word such as "Auto"); `read_text` -> display text."""
    values: dict[str, dict[str, float | None]] = {}
    mode: Literal["standard", "soft_clip", "true_peak"] = "standard"
    peak_clip = False
    for alias, role in device_roles.items():
        for key in STATE_KEYS[role]:
            try:
                values.setdefault(alias, {})[key] = read(alias, key)
            except Exception:  # a parameter this Live build lacks: the model's default stands
                continue
            if values[alias][key] is None and key != "release_s":
                del values[alias][key]
        try:
            if role == "limiter":
                text = str(read_text(alias, "mode")).lower()
                mode = "soft_clip" if "soft" in text else "true_peak" if "true" in text else "standard"
            else:
                peak_clip = str(read_text(alias, "peak_clip_in")).strip().lower() == "on"
        except Exception:
            pass
    p = chain_params(values, device_roles, ChainParams())
    return replace(p, glue=replace(p.glue, peak_clip=peak_clip), limiter=replace(p.limiter, mode=mode))


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


class ReferenceCache:
    """Dry references by sha256 (`<sha>.npz`), and which Live set fingerprint last gave which sha."""

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

    @property
    def correction_lu(self) -> float:
        return self.lufs - self.model.lufs

    def describe(self) -> str:
        corr = (
            f" (model {self.model.lufs:+.2f}, corrected by {self.correction_lu:+.2f} LU from "
            f"{self.exports_used} export{'s' if self.exports_used != 1 else ''})"
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
        values: dict[str, dict[str, float | None]] = {}
        for name, v in flat.items():
            alias, k = name.split(".", 1)
            values.setdefault(alias, {})[k] = v
        p = self._model.predict(chain_params(values, self.device_roles, self.base))
        out = Prediction(
            gated_lufs(p.energy, self.features),
            20.0 * math.log10(p.peak) if p.peak > 0 else -math.inf,
            p.glue_gr_db + p.limiter_gr_db,
        )
        if len(self._memo) < 20000:
            self._memo[key] = out
        return out

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
        # Within a few hundredths of an LU of the target, gentler processing and settings near measured
        # ones win: there, a plant that differs from the model differs least from its prediction.
        miss = max(0.0, abs(lufs - self.target_lufs) - DEAD_ZONE_LU)
        score = miss + 4.0 * over + 0.01 * p.effort_db + 0.05 * near
        if near < 1e-3:  # measured already: another export there teaches nothing (--refine goes on searching)
            score += REPEAT_PENALTY
        return score, p, lufs, peak

    def propose(self, obs: Sequence[Observation]) -> Proposal:
        """The setting the corrected model predicts closest to the target with the peak safely under the
        limit; `reachable` says whether that is within the tolerance."""
        key = tuple((tuple(sorted(o.params.items())), o.lufs, o.peak_db) for o in obs)
        if key in self._proposed:
            return self._proposed[key]
        correct = self._corrector(obs)
        sampler = optuna.samplers.TPESampler(
            seed=self.seed + len(obs), n_startup_trials=20, multivariate=True
        )
        offline = optuna.create_study(sampler=sampler)
        for o in sorted(obs, key=lambda o: abs(o.lufs - self.target_lufs))[:2]:
            offline.enqueue_trial({k: v for k, v in o.params.items() if k in self.space})

        def objective(t: optuna.Trial) -> float:
            flat = {
                name: (
                    float(t.suggest_categorical(name, list(dim.values)))
                    if isinstance(dim, Choice)
                    else t.suggest_float(name, dim.low, dim.high)
                )
                for name, dim in self.space.items()
            }
            return self._score(flat, correct)[0]

        offline.optimize(objective, n_trials=OFFLINE_TRIALS)
        best = {k: float(v) for k, v in offline.best_params.items()}
        best = self._polish(best, correct)
        _, p, lufs, peak = self._score(best, correct)
        reachable = abs(lufs - self.target_lufs) <= self.tolerance and peak <= self.peak_limit_dbfs
        self._proposed[key] = Proposal(best, p, lufs, peak, reachable, len(obs))
        return self._proposed[key]

    def _polish(self, flat: dict[str, float], correct: Correct) -> dict[str, float]:
        """Coordinate search around the offline optimum: TPE lands near it, a few sweeps per dimension
        land on it (the loss is smooth and nearly monotone in every gain)."""
        best = dict(flat)
        best_score = self._score(best, correct)[0]
        for width in (0.25, 0.06, 0.015):
            for name, dim in self.space.items():
                if isinstance(dim, Choice):
                    candidates = list(dim.values)
                else:
                    span = (dim.high - dim.low) * width
                    candidates = [
                        min(dim.high, max(dim.low, best[name] + span * k / 4)) for k in range(-4, 5)
                    ]
                for v in candidates:
                    trial = {**best, name: float(v)}
                    s = self._score(trial, correct)[0]
                    if s < best_score - 1e-9:
                        best, best_score = trial, s
        return best


def observations(study: optuna.Study, space: Mapping[str, Dim]) -> list[Observation]:
    """Completed trials with a measurement, whatever sampler or worker ran them."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        lufs, peak = t.user_attrs.get("lufs_i"), t.user_attrs.get("peak_dbfs")
        if isinstance(lufs, (int, float)) and isinstance(peak, (int, float)) and set(space) <= set(t.params):
            out.append(Observation({k: float(t.params[k]) for k in space}, float(lufs), float(peak)))
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


def describe_params(flat: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in flat.items())
