"""The model-search session of one invocation: its dry reference (cached or exported), the search
built on it, the checks each export gets (a stale reference, what it tells about the rig), the exports kept
for later studies, and the verdict about reach."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from autotune import modelsearch, receipts
from autotune.chainstate import read_state
from autotune.diagnosis import diagnose
from autotune.drive import MIN_COST_LU
from autotune.dsp.model import DryFeatures
from autotune.errors import TrialFailed
from autotune.live.errors import LiveReadError
from autotune.receipts import Receipt, Results
from autotune.rig import devices_off_marker, set_fingerprint
from autotune.settings import Settings
from autotune.trial import (
    REFERENCE_ID,
    Rig,
    export_reference,
)
from autotune.trials import (
    Log,
    export_name,
)
from objectives import Dim
from objectives.limits import Limits


@dataclass
class ModelSession:
    """What the model search holds over one invocation: the sampler built on the dry reference, and what
    its exports taught (a verdict, a dry mix that already passes, readings the model did not understand).
    A sweep or a stock sampler has none."""

    space: Mapping[str, Dim]
    limits: Limits
    refine: bool = False
    sampler: modelsearch.ModelSampler | None = None
    #: Set when an export at the end of the drive line proved the target out of reach.
    out_of_reach: dict[str, Any] | None = None
    reference_exports: int = 0
    #: The dry reference's receipt, when the mix already meets the target with the devices off.
    dry_pass: dict[str, Any] | None = None
    #: Readings of the chain the model did not understand (chainstate.Finding descriptions).
    findings: list[str] = dataclasses.field(default_factory=list)
    #: Whether the first model trial has been checked against its prediction yet.
    first_checked: bool = False

    @property
    def model(self) -> modelsearch.ModelSampler:
        """The running sampler (only asked for once the session has started)."""
        assert self.sampler is not None
        return self.sampler


def start_session(
    study: optuna.Study,
    rig: Rig,
    session: ModelSession,
    settings: Settings,
    seed: int | None,
    fresh: bool,
    log: Log,
) -> modelsearch.ModelSampler | None:
    """The dry reference (cached, or exported now) and the chain as Live holds it: the model of this study.
    None when the dry reference itself already meets the target: there is nothing to search."""
    chain, config = rig.chain, rig.config
    device_roles = modelsearch.roles(config.device_names)
    chain.restore_all()  # checking the config probed parameters: read the chain as the producer left it
    base, findings = read_state(chain.read_text, device_roles)
    for f in findings:
        log(f"  ⚠ Not understood: {f.describe()}")
    session.findings = [f.describe() for f in findings]
    exported = session.reference_exports
    feats, cached = reference(study, rig, session, settings, fresh, log)
    judged = judged_for(config.limits(), session.space)

    def dry_passed() -> bool:
        dry = study.user_attrs.get("dry_pass")
        if isinstance(dry, dict) and dry.get("judged_for") == judged and not session.refine:
            session.dry_pass = dry
        return session.dry_pass is not None

    if session.reference_exports > exported:
        study.set_user_attr("dry_checked", judged)  # this target was just judged on a real export
    if dry_passed():
        return None
    if (
        session.reference_exports == exported  # the reference came from a cache, this study's or another's
        and not session.refine
        and study.user_attrs.get("dry_checked") != judged
        and dry_meets(feats, config.limits())
    ):
        # A cached reference is the dry mix measured: when it already meets this target, one export with the
        # chain off proves it (and measures the true peak, which block features do not hold). Once per target.
        log("  The cached dry reference already meets the target: exporting the dry mix to confirm it...")
        study.set_user_attr("dry_checked", judged)
        feats, cached = reference(study, rig, session, settings, True, log)
        if dry_passed():
            return None
        log("  The dry mix misses the target after all (see its measurement above): searching the chain")
    prior = [] if session.refine else priors(study, settings)
    if prior:
        log(
            f"  Calibrated by {len(prior)} earlier export{'s' if len(prior) != 1 else ''} of this set "
            "(same dry reference)"
        )
    search = modelsearch.ModelSearch(
        feats,
        session.space,
        device_roles,
        base,
        config.target_lufs,
        config.limits().sample_budget_dbfs(0.0),
        config.lufs_tolerance,
        true_peak_limit_dbtp=config.peak_limit_dbtp,
        seed=random.SystemRandom().randrange(2**31) if seed is None else seed,  # workers differ unless seeded
        refine=session.refine,
        prior=prior,
    )
    first = search.propose(modelsearch.observations(study, session.space))
    if not first.reachable and first.exports_used == 0:
        side = "loudest" if first.lufs < config.target_lufs else "quietest"
        log(
            f"⚠ Model: the target looks out of reach (the closest it finds: {first.lufs:.2f} LUFS). Only an "
            f"export can tell: the first trial is the {side} safe setting "
            f"({modelsearch.describe_params(first.params)})."
        )
        study.set_user_attr(
            "reach_prediction",
            {"reachable": False, "closest_lufs": round(first.lufs, 3), "params": first.params},
        )
    return modelsearch.ModelSampler(search, from_cache=cached)


#: A cached reference whose first prediction misses by more than this is taken for another song's (an
#: edited arrangement keeps the set's fingerprint). A chain that merely behaves differently from the model
#: can miss by that much too (bench/efficiency.py's plants, by up to 2 LU at heavy settings): then the fresh
#: reference costs one export, no more than a cold cache would have.
STALE_REFERENCE_LU = 1.0


def check_cached_reference(
    session: ModelSession,
    trial: optuna.Trial,
    proposal: modelsearch.Proposal | None,
    results: Results,
    log: Log,
) -> None:
    """After the first export on a cached reference: does the model still describe this song? Calibrated
    by earlier exports of the set, the prediction to check is the corrected one; else the bare model's."""
    assert session.sampler is not None
    session.model.from_cache = False
    here = {k: float(v) for k, v in trial.params.items() if k in session.space}
    search = session.model.search
    expected = proposal.lufs if proposal is not None and search.prior else search.predict(here).lufs
    off = results.lufs_i - expected
    if abs(off) > STALE_REFERENCE_LU:
        log(f"  ⚠ The cached dry reference does not fit this song (the model is off by {off:+.2f} LU)")
        session.model.stale = True


def refresh_reference(
    session: ModelSession, rig: Rig, settings: Settings, log: Log
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Runs after the trial's receipt is logged, so the JSONL keeps the exports in the order they happened."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if session.sampler is None or not session.model.stale:
            return
        session.model.stale = False
        if session.out_of_reach is not None:
            return  # the study has stopped: a fresh reference would be an export nobody uses
        if trial.user_attrs.get("passed"):
            modelsearch.ReferenceCache(settings.cache_dir / "references").forget(set_fingerprint(rig))
            log(
                "  (stale dry reference dropped from the cache: the next study of this set exports a fresh one)"
            )
            return
        log("  Exporting a fresh dry reference...")
        feats, _ = reference(study, rig, session, settings, True, log)
        # The stale reference's calibration was another song's: the fresh one's earlier exports replace it.
        session.model.search = dataclasses.replace(
            session.model.search, features=feats, prior=priors(study, settings)
        )

    return callback


def reference(
    study: optuna.Study, rig: Rig, session: ModelSession, settings: Settings, fresh: bool, log: Log
) -> tuple[DryFeatures, bool]:
    cache = modelsearch.ReferenceCache(settings.cache_dir / "references")
    sha = study.user_attrs.get("reference_sha256")
    fp = set_fingerprint(rig)
    if not fresh:
        own = cache.load(sha) if isinstance(sha, str) else None
        if own is not None:  # this study's own reference (a resume): nothing to doubt
            log(f"Dry reference: this study's ({str(sha)[:12]}…), from the cache")
            return own, False
        hit = cache.lookup(fp)
        if hit is not None:
            log(f"Dry reference: cached ({hit[0][:12]}…), no export needed")
            study.set_user_attr("reference_sha256", hit[0])
            return hit[1], True
    export_file = str(Path(export_name(settings, study.study_name, 0)).with_name(f"{REFERENCE_ID}.wav"))
    try:
        receipt, m = export_reference(
            rig, export_file, study=study.study_name, marker=devices_off_marker(settings)
        )
    except TrialFailed as e:
        receipts.write(settings.receipts_path(), e.receipt)
        raise LiveReadError(f"the dry reference export failed: {e}") from None
    session.reference_exports += 1
    receipts.write(settings.receipts_path(), receipt)
    if receipt.passed:
        study.set_user_attr(
            "dry_pass",
            {
                "judged_for": judged_for(rig.config.limits(), session.space),
                "export_file": receipt.export_file,
                "results": receipt.measured().to_json(),
            },
        )
    feats = modelsearch.features_of_file(rig.project_root / export_file)
    cache.store(fp, m.sha256, feats)
    study.set_user_attr("reference_sha256", m.sha256)
    study.set_user_attr("reference_lufs", round(m.lufs_i, 4))
    study.set_user_attr("reference_file", export_file)
    log(f"  ✓ Dry reference cached ({m.sha256[:12]}…): later studies of this set reuse it")
    return feats, False


def dry_meets(feats: DryFeatures, limits: Limits) -> bool:
    """Whether the dry mix a reference's features describe may meet the target and the peak limits (the
    features are the analysis's own K-weighted block energies and sample peaks; the true peak needs the
    export)."""
    peak = float(feats.peak.max()) if len(feats.peak) else 0.0
    lufs = modelsearch.gated_lufs(feats.energy, feats)
    # Under a true-peak limit the sample peak must sit under it too (a true peak is never lower).
    return peak > 0.0 and limits.pass_lufs(lufs) and 20.0 * math.log10(peak) <= limits.sample_budget_dbfs(0.0)


def judged_for(limits: Limits, space: Mapping[str, Dim]) -> dict[str, Any]:
    """What a verdict holds for: another target, limit, tolerance or search space is judged afresh."""
    judged: dict[str, Any] = {
        "target_lufs": limits.target_lufs,
        "peak_limit_dbfs": limits.peak_dbfs,
        "lufs_tolerance": limits.tolerance,
        "space": {k: d.describe() for k, d in space.items()},
    }
    if limits.peak_dbtp is not None:
        judged["peak_limit_dbtp"] = limits.peak_dbtp
    return judged


def priors(study: optuna.Study, settings: Settings) -> list[modelsearch.Prior]:
    """Other studies' exports on this study's dry reference."""
    sha = study.user_attrs.get("reference_sha256")
    if not isinstance(sha, str) or not sha:
        return []
    cache = modelsearch.ReferenceCache(settings.cache_dir / "references")
    return cache.priors(sha, exclude_study=study.study_name)


def remember(
    session: ModelSession,
    settings: Settings,
    study: optuna.Study,
    trial: optuna.Trial,
    results: Results,
) -> None:
    """Keeps this export with the dry reference it was predicted from, for later studies of the set."""
    assert session.sampler is not None
    sha = study.user_attrs.get("reference_sha256")
    here = {k: float(v) for k, v in trial.params.items() if k in session.space}
    if not isinstance(sha, str) or session.model.stale or len(here) != len(session.space):
        return
    chain = session.model.search.chain_for(here)
    prior = modelsearch.Prior(chain, float(results.lufs_i), float(results.peak_dbfs), study.study_name)
    with contextlib.suppress(
        OSError
    ):  # a cache that cannot be written costs later studies an export, no more
        modelsearch.ReferenceCache(settings.cache_dir / "references").remember(sha, prior)


def diagnose_export(
    session: ModelSession,
    trial: optuna.Trial,
    proposal: modelsearch.Proposal | None,
    results: Results,
    from_cache: bool,
    log: Log,
) -> list[str]:
    """Says what this export tells about the rig (gain after the chain, a first prediction far off): the
    sentences for the console, returned for the receipt's diagnosis."""
    assert session.sampler is not None
    search = session.model.search
    here = {k: float(v) for k, v in trial.params.items() if k in session.space}
    chain = search.chain_for(here)
    first = proposal is not None and not session.first_checked
    share = None
    if first and math.isfinite(float(results.lufs_i)):  # only a first prediction's miss is explained
        linear = search.unprocessed_loudness(chain)
        model_cost = linear - search.loudness(chain)
        if model_cost >= MIN_COST_LU:
            share = (linear - float(results.lufs_i)) / model_cost
    lines = diagnose(
        peak_dbfs=float(results.peak_dbfs),
        ceiling_db=chain.limiter.ceiling_db if "limiter" in search.device_roles.values() else None,
        measured_lufs=float(results.lufs_i),
        predicted_lufs=None if proposal is None else proposal.lufs,
        first=first,
        findings=session.findings,
        from_cache=from_cache,
        processing_share=share,
    )
    if proposal is not None:
        session.first_checked = True
    for line in lines:
        log(f"  ⚠ {line[0].upper()}{line[1:]}")
    return lines


def judge_reach(
    session: ModelSession,
    study: optuna.Study,
    trial: optuna.Trial,
    receipt: Receipt,
    log: Log,
) -> dict[str, Any] | None:
    """After a miss: the target is out of reach only when the drive line's end in the direction of the
    shortfall (every gain at the top and the ceiling as high as the peak limit allows, or everything at the
    bottom) has been exported and still misses by more than the tolerance. A model can be wrong; a
    measurement at the physical extreme cannot be argued with. Returns the verdict (the receipt's
    feasibility) when it is out of reach, and stops the study."""
    assert session.sampler is not None
    search = session.model.search
    if search.refine:
        return None  # asked to search on whatever the model thinks
    res = receipt.measured().to_json()
    obs = modelsearch.observations(study, session.space)
    here = {k: float(trial.params[k]) for k in session.space if k in trial.params}
    if len(here) == len(session.space) and (this := modelsearch.Observation.of(here, res)) is not None:
        obs.append(this)
    after = search.propose(obs)
    if after.verdict is None:
        return None
    target = search.target_lufs
    limits = session.limits
    # The measured end of the line (this export, or an earlier one at the same setting).
    end = next((o for o in obs if modelsearch.same_setting(o.params, after.params)), obs[-1])
    side = after.verdict
    extreme = "loudest" if side == "louder" else "quietest"
    message = (
        f"within the search ranges the chain cannot get {side} than about {end.lufs:.2f} LUFS with the "
        f"{limits.describe_peak()} (target {target:.2f} ±{search.tolerance:g}); measured "
        f"{end.lufs:.2f} LUFS, peak {end.peak_db:.2f} dBFS{_tp(end)} at its {extreme} safe setting "
        f"({modelsearch.describe_params(end.params)})"
    )
    verdict = {
        "reachable": False,
        "direction": side,
        "judged_for": judged_for(limits, session.space),
        "message": message,
        "closest_lufs": end.lufs,
        "closest_peak_dbfs": end.peak_db,
        "params": end.params,
        "trial": trial.number,
        "export_file": receipt.export_file,
    }
    session.out_of_reach = verdict  # the study stores it with the receipt of the export that proves it
    log(f"  ✗ Out of reach: {message}")
    study.stop()
    return verdict


def _tp(o: modelsearch.Observation) -> str:
    return f", true peak {o.true_peak_db:.2f} dBTP" if math.isfinite(o.true_peak_db) else ""
