"""Orchestration: `sweep` and `optimize` as Optuna studies in storage, with the JSONL mirror.

Every export is an ordinary trial, so storage, resume, several workers and the dashboard all see the same
thing. Receipts are appended by a callback after Optuna has recorded the trial; a finished trial whose
receipt is missing (a crash between the two) is logged at the next start: the storage and the JSONL agree,
one receipt per finished trial, none twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial, TrialState

from autotune import modelsearch, receipts
from autotune.backends import open_backend, reach_live
from autotune.chainstate import read_state
from autotune.config import Run, SweepConfig
from autotune.diagnosis import diagnose
from autotune.doctor import preflight
from autotune.dsp.model import DryFeatures
from autotune.errors import ConfigError
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import LiveError, LiveReadError
from autotune.live.tracks import resolve_track
from autotune.runner import (
    MEASURED_KEYS,
    REFERENCE_ID,
    Rig,
    TrialFailed,
    export_reference,
    run_trial,
)
from autotune.samplers import (
    SamplerName,
    StepwiseSampler,
    make_sampler,
    resolve_sampler,
    stepwise_start,
)
from autotune.settings import Settings
from autotune.space import build_space
from autotune.storage import (
    WorkerLock,
    check_url,
    load_or_create_study,
    local_file,
    open_storage,
    recover_running,
)
from objectives import Dim, flatten, suggest
from objectives.limits import Limits, results_pass

Log = Callable[[str], None]
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

optuna.logging.set_verbosity(optuna.logging.ERROR)  # our console reports every trial
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass
class StudyResult:
    study: str
    storage: str
    trials: list[FrozenTrial]
    passed: FrozenTrial | None
    budget_used: bool = False
    #: Set when model-based search found the target out of the chain's reach and an export confirmed it.
    out_of_reach: dict[str, Any] | None = None
    reference_exports: int = 0
    #: Set when the dry reference (devices off) already met the target: its receipt's file and results.
    dry_pass: dict[str, Any] | None = None


def run_key(run: Run) -> str:
    blob = json.dumps({"export_file": run.export_file, "params": run.params()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _started(trial: optuna.Trial | FrozenTrial) -> str:
    return trial.datetime_start.isoformat() if trial.datetime_start else ""


def reconcile(study: optuna.Study, path: Path, log: Log) -> None:
    """Log the receipts of finished trials that never reached the JSONL (a crash between tell and log)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        r = t.user_attrs.get("receipt")
        if isinstance(r, dict) and receipts.append(path, r):
            log(f"  (receipt of trial #{t.number} recovered into {path})")


def _mirror(path: Path, log: Log) -> Callable[[optuna.Study, FrozenTrial], None]:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        r = trial.user_attrs.get("receipt")
        if isinstance(r, dict) and receipts.append(path, r):
            log(f"  ✓ Logged to {path}")

    return callback


def _stop_on_pass(study: optuna.Study, trial: FrozenTrial) -> None:
    if trial.user_attrs.get("passed"):
        study.stop()


def record(trial: optuna.Trial, receipt: dict[str, Any]) -> None:
    """User attributes the dashboard shows (optuna-dashboard 0.21 does not show Optuna 5 constraints)."""
    results = receipt.get("results") or {}
    for k in (*MEASURED_KEYS, "pass_lufs", "pass_peak"):
        if k in results:
            trial.set_user_attr(k, results[k])
    trial.set_user_attr("export_file", receipt["export_file"])
    trial.set_user_attr("sha256", receipt.get("sha256"))
    trial.set_user_attr("status", receipt.get("status"))
    if "error" in receipt:
        trial.set_user_attr("error", receipt["error"])
    if "pass_true_peak" in results:
        trial.set_user_attr("pass_true_peak", results["pass_true_peak"])
    trial.set_user_attr("passed", results_pass(results))
    trial.set_user_attr("receipt", receipt)


def prepare_chain(osc: OscClient, config: SweepConfig, settings: Settings, log: Log) -> MasterChain:
    """Reach Live, resolve devices and parameters, and check every value of the config before any export."""
    reach_live(osc)
    track = resolve_track(osc, config.chain_track())
    chain = MasterChain(LiveSet(osc), track, config.device_names, log)
    chain.resolve()
    _switch_on_after_interrupted_reference(chain, config, settings, log)
    preflight(chain, config, settings)
    keys = {(a, k) for a, ks in config.physical_keys().items() for k in ks}
    keys |= {(a, k) for a, ks in config.search_keys().items() for k in ks}
    chain.snapshot(sorted(keys))  # before any probing moves them
    for i, run in enumerate(config.runs):
        for alias, values in run.devices.items():
            for key, value in values.items():
                chain.check(alias, key, value, f"runs[{i}]")
    return chain


def devices_off_marker(settings: Settings) -> Path:
    return settings.cache_dir / "references" / "devices-off.json"


def _switch_on_after_interrupted_reference(
    chain: MasterChain, config: SweepConfig, settings: Settings, log: Log
) -> None:
    """A dry reference export killed before it could switch the devices on again left this marker: switch
    them on now (the preflight would only ask the producer to do it by hand)."""
    marker = devices_off_marker(settings)
    try:
        left = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(left, dict) or left.get("track") != chain.track.label:
        return
    if left.get("devices") != dict(config.device_names):
        return
    for alias in config.device_names:
        chain.switch(alias, True)
    marker.unlink(missing_ok=True)
    log("  (an interrupted dry reference export had left the devices off: switched on again)")


def confirm_by_hand(message: str) -> None:
    """Interactive runs only: the producer does by hand what OSC could not."""
    input(f"  ⚠ {message}... ")


def _measured(t: FrozenTrial) -> bool:
    """The trial exported and measured: COMPLETE, or failed by an interrupt that landed after its receipt
    was made (its receipt is logged by `reconcile`, so running it again would log the run twice)."""
    r = t.user_attrs.get("receipt")
    return t.state == TrialState.COMPLETE or (
        t.state == TrialState.FAIL and isinstance(r, dict) and r.get("status") == "ok"
    )


def _enqueue_runs(study: optuna.Study, runs: list[Run], log: Log) -> None:
    """Enqueue each run not done, queued or running yet (a second worker must not queue it again)."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs.get("run_key") for t in trials if _measured(t)}
    taken = done | {
        t.user_attrs.get("run_key") for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)
    }
    for r in runs:
        key = run_key(r)
        if key in done:
            log(f"  (run {r.id} already done in this study: skipped)")
        elif key not in taken:
            study.enqueue_trial(flatten(r.params()), user_attrs={"run_id": r.id, "run_key": key})


def _export_name(settings: Settings, study: str, number: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study).strip("._") or "study"
    return str(settings.output_dir / safe / f"trial-{number:04d}.wav")


def _finished(study: optuna.Study) -> int:
    """Trials that spent an export (they have a receipt): what `--trials` counts, over resumes.

    Like MaxTrialsCallback, but a trial interrupted or killed before its export counts nothing: its
    parameters are queued again and it is retried.
    """
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if "receipt" in t.user_attrs)


def _budget(n: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if _finished(study) >= n:
            study.stop()

    return callback


def _requeue_interrupted(study: optuna.Study, since: int, log: Log) -> None:
    """After Ctrl-C: queue the parameters of trials that failed without a receipt, so a resume retries them."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.number >= since and "receipt" not in t.user_attrs:
            attrs = {k: v for k, v in t.user_attrs.items() if k in ("run_id", "run_key")}
            study.enqueue_trial(t.params, user_attrs=attrs)
            log(f"  (trial #{t.number} was interrupted: its settings are queued for the next run)")


def _passed(study: optuna.Study, config: SweepConfig) -> FrozenTrial | None:
    """The first trial that meets the config's targets as they are now (a study resumed after the target
    or the limit changed is judged against the new ones, not the flags stored with its trials)."""

    def meets(t: FrozenTrial) -> bool:
        lufs, peak = t.user_attrs.get("lufs_i"), t.user_attrs.get("peak_dbfs")
        tp = t.user_attrs.get("true_peak_dbtp", peak)
        if not (
            isinstance(lufs, (int, float)) and isinstance(peak, (int, float)) and isinstance(tp, (int, float))
        ):
            return False
        return config.limits().passes(float(lufs), float(peak), float(tp))

    return next((t for t in study.get_trials(states=(TrialState.COMPLETE,)) if meets(t)), None)


@dataclass
class _Plan:
    """What differs between a sweep and an optimisation; the trial loop is shared."""

    space: Mapping[str, Dim]
    runs: dict[str, tuple[int, Run]]
    n_runs: int
    budget: int | None
    sampler_label: str
    sweep: bool
    limits: Limits
    model: modelsearch.ModelSampler | None = None
    out_of_reach: dict[str, Any] | None = None
    reference_exports: int = 0
    refine: bool = False
    #: The dry reference's receipt, when the mix already meets the target with the devices off.
    dry_pass: dict[str, Any] | None = None
    #: Readings of the chain the model did not understand (chainstate.Finding descriptions).
    findings: list[str] = dataclasses.field(default_factory=list)
    #: Whether the first model trial has been checked against its prediction yet.
    first_checked: bool = False


def _objective(
    rig: Rig, plan: _Plan, study: optuna.Study, settings: Settings, store: FileSystemArtifactStore, log: Log
) -> Callable[[optuna.Trial], float]:
    config = rig.config

    def objective(trial: optuna.Trial) -> float:
        key = trial.user_attrs.get("run_key")
        fixed: dict[str, dict[str, float]] = {}
        if key is not None:
            if key not in plan.runs:
                raise optuna.TrialPruned("enqueued by another version of the config")
            i, run = plan.runs[key]
            # Workers that start together may both queue a run; the earliest queue entry is the one that runs.
            twin = next(
                (
                    t
                    for t in study.get_trials(deepcopy=False)
                    if t.number < trial.number
                    and t.user_attrs.get("run_key") == key
                    and (t.state in (TrialState.WAITING, TrialState.RUNNING) or _measured(t))
                ),
                None,
            )
            if twin is not None:
                log(
                    f"  (run {run.id} is queued or done as trial #{twin.number}: duplicate #{trial.number} skipped)"
                )
                raise optuna.TrialPruned(f"duplicate of trial #{twin.number}")
            title = f"EXPERIMENT {i + 1}/{plan.n_runs}: {run.id}"
            run_id, export_file = run.id, run.export_file
            names = set(flatten(run.params())) if plan.sweep else set(plan.space)
            fixed = {
                a: {k: v for k, v in vals.items() if f"{a}.{k}" not in plan.space}
                for a, vals in run.params().items()
            }
        elif plan.sweep:
            study.stop()  # another worker drained the queue between our check and this trial
            raise optuna.TrialPruned("no run left in the queue")
        else:
            done = _finished(study)
            of = f"/{plan.budget}" if plan.budget else ""
            title = f"TRIAL {done + 1}{of} (#{trial.number}, {plan.sampler_label})"
            run_id, export_file = (
                f"trial-{trial.number}",
                _export_name(settings, study.study_name, trial.number),
            )
            names = set(plan.space)
        log("")
        log("=" * 70)
        log(title)
        log("=" * 70)
        params = suggest(trial, plan.space, only=names)
        proposal = plan.model.proposals.get(trial.number) if plan.model is not None else None
        if proposal is not None:
            search = plan.model.search if plan.model is not None else None
            tp_text = ""
            if search is not None and search.true_peak_limit_dbtp is not None:
                over = search.true_peak_over(modelsearch.observations(study, plan.space))
                tp_text = f", true peak about {proposal.peak_db + over:.2f} dBTP"
            log(f"  model: {proposal.describe()}{tp_text}")
            trial.set_user_attr("predicted_lufs", round(proposal.lufs, 4))
            trial.set_user_attr("predicted_peak_dbfs", round(proposal.peak_db, 4))
            trial.set_user_attr("predicted_reachable", proposal.reachable)
        for alias, vals in fixed.items():
            params.setdefault(alias, {}).update(vals)
        try:
            receipt = run_trial(
                rig,
                run_id,
                export_file,
                params,
                study=study.study_name,
                trial=trial.number,
                trial_started=_started(trial),
            )
        except TrialFailed as e:
            record(trial, e.receipt)
            raise
        from_cache = plan.model is not None and plan.model.from_cache
        if from_cache:
            _check_cached_reference(plan, trial, proposal, receipt, log)
        if plan.model is not None:
            _diagnose(plan, trial, proposal, receipt, from_cache, log)
            _remember(plan, settings, study, trial, receipt)
        if plan.model is not None and not results_pass(receipt["results"]):
            _judge_reach(plan, study, trial, receipt, log)
        record(trial, receipt)
        try:
            upload_artifact(
                artifact_store=store,
                file_path=str(rig.project_root / export_file),
                study_or_trial=trial,
                mimetype="audio/wav",
            )
        except OSError as e:
            log(f"  (export not attached to the dashboard: {e})")
        res = receipt["results"]
        limits = config.limits()
        tp = res.get("true_peak_dbtp")
        tp = float(tp) if isinstance(tp, (int, float)) else float(res["peak_dbfs"])
        trial.set_constraint("peak_over_limit_db", limits.peak_over_db(res["peak_dbfs"], tp))
        return limits.loss(res["lufs_i"], res["peak_dbfs"], tp)

    return objective


def run(
    config: SweepConfig,
    settings: Settings,
    *,
    study_name: str,
    log: Log,
    mode: str = "sweep",
    restart: bool = False,
    trials: int | None = None,
    sampler: SamplerName = "auto",
    seed: int | None = None,
    with_runs: bool = False,
    refine: bool = False,
    fresh_reference: bool = False,
    project_root: Path = Path("."),
) -> StudyResult:
    """`sweep`: the config's runs in order, stop at the first pass. `optimize`: search the space up to
    `trials` finished trials in total (over resumes), stop at the first pass unless `refine`.

    Everything that can refuse the input (sampler, exporter, Live, devices, every value against its range)
    is checked before the storage is opened: bad input writes nothing, to the receipts or to the storage."""
    sweep = mode == "sweep"
    chosen = None if sweep else resolve_sampler(sampler, config.device_names)
    if chosen == "model" and sampler == "auto":
        try:
            modelsearch.check_keys(
                ((a, k) for a, ks in config.search_keys().items() for k in ks),
                modelsearch.roles(config.device_names),
            )
        except ConfigError:  # a parameter the model does not know: a stock sampler searches instead
            chosen = resolve_sampler("auto", {})
    use_model = chosen == "model"
    optuna_sampler: optuna.samplers.BaseSampler | None = None
    if sweep:
        label = "sweep"
    elif chosen in ("model", "stepwise"):
        label = str(chosen)
    else:
        optuna_sampler, label = make_sampler(chosen or "tpe", seed)
    if use_model:
        device_roles = modelsearch.roles(config.device_names)
        modelsearch.check_keys(((a, k) for a, ks in config.search_keys().items() for k in ks), device_roles)
    check_url(settings.storage_url())
    with open_backend(settings, config, log) as backend:
        chain = prepare_chain(backend.osc, config, settings, log)
        space = build_space(chain, config, from_targets=not sweep)
        if chosen == "stepwise":
            start = stepwise_start(space, [flatten(r.params()) for r in config.runs])
            optuna_sampler = StepwiseSampler(space, start, config.limits())
        url = settings.storage_url()
        storage = open_storage(url, heartbeat_s=settings.heartbeat_s, grace_s=settings.grace_s)
        study = load_or_create_study(storage, study_name, restart=restart)
        if optuna_sampler is not None:
            study.sampler = optuna_sampler
        local = local_file(url)
        with contextlib.ExitStack() as stack:
            if local is not None and stack.enter_context(WorkerLock(local, study_name)):
                for n in recover_running(study):
                    log(
                        f"  (trial #{n} was left running by a crash or kill: failed, its settings queued again)"
                    )
            plan = _Plan(
                space=space,
                runs={run_key(r): (i, r) for i, r in enumerate(config.runs)},
                n_runs=len(config.runs),
                budget=trials,
                sampler_label=label,
                sweep=sweep,
                limits=config.limits(),
            )
            rig = Rig(chain, backend.exporter, config, project_root, config.auto_export.timeout_s, log)
            return _run(
                study,
                rig,
                plan,
                settings,
                url=url,
                log=log,
                with_runs=with_runs,
                refine=refine,
                model_seed=seed if use_model else None,
                fresh_reference=fresh_reference,
            )


def _run(
    study: optuna.Study,
    rig: Rig,
    plan: _Plan,
    settings: Settings,
    *,
    url: str,
    log: Log,
    with_runs: bool,
    refine: bool,
    model_seed: int | None = None,
    fresh_reference: bool = False,
) -> StudyResult:
    config, chain, sweep, trials = rig.config, rig.chain, plan.sweep, plan.budget
    study_name = study.study_name
    study.set_user_attr("kind", "sweep" if sweep else "optimize")
    study.set_user_attr("target_lufs", config.target_lufs)
    study.set_user_attr("peak_limit_dbfs", config.peak_limit_dbfs)
    study.set_user_attr("peak_limit_dbtp", config.peak_limit_dbtp)
    path = settings.receipts_path()
    reconcile(study, path, log)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log(
            f"  (trial #{t.number} is running in another worker, or was killed less than {settings.grace_s} s "
            "ago: a dead one is retried once its heartbeat is that old)"
        )
    already = _passed(study, config)
    if already is not None and not refine:
        chain.restore_all()  # checking the config moved parameters: leave Live as it was
        log(
            f"Study {study_name!r} already passed in trial #{already.number} ({already.user_attrs.get('export_file')})."
        )
        log(
            "Nothing to do: use --restart (or another --study) to start again"
            + ("" if sweep else ", --refine to go on")
            + "."
        )
        return StudyResult(study_name, url, study.get_trials(), already)
    if not sweep and trials is not None and _finished(study) >= trials:
        chain.restore_all()
        log(f"Study {study_name!r} has used its budget of {trials} trials: raise --trials to go on.")
        return StudyResult(study_name, url, study.get_trials(), None, budget_used=True)
    if not sweep:
        log("Search space:")
        for name, dim in plan.space.items():
            log(f"  {name}: {dim.describe()}")
    log(
        "Setting master fader to 0.0 dB..."
        if chain.track.is_master
        else f"Setting fader of track {chain.track.label} to 0.0 dB..."
    )
    how = chain.set_fader_0db(confirm_by_hand if sys.stdin is not None and sys.stdin.isatty() else None)
    whose = "Master fader" if chain.track.is_master else f"Fader of track {chain.track.label}"
    log(f"  ✓ {whose} set to 0.0 dB" + ("" if how == "over OSC" else f" ({how})"))
    if sweep or with_runs:
        _enqueue_runs(study, config.runs, log)
    if plan.sampler_label == "model":
        verdict = study.user_attrs.get("out_of_reach")
        judged_for = _judged_for(config.limits(), plan.space)
        if isinstance(verdict, dict) and verdict.get("judged_for") == judged_for and not refine:
            chain.restore_all()
            log(f"Study {study_name!r} found the target out of reach: {verdict.get('message')}")
            log("Nothing to do: change the target or the search ranges, or use --refine to search anyway.")
            return StudyResult(study_name, url, study.get_trials(), None, out_of_reach=verdict)
        plan.refine = refine
        plan.model = _model_sampler(study, rig, plan, settings, model_seed, fresh_reference, log)
        if plan.model is None:
            assert plan.dry_pass is not None
            res = plan.dry_pass["results"]
            log(
                f"✅ The dry mix already meets the target: {res['lufs_i']:.2f} LUFS, peak {res['peak_dbfs']:.2f} "
                f"dBFS with the chain switched off ({plan.dry_pass['export_file']}). Nothing to tune: no trial "
                "was run, and the devices are on again as you left them."
            )
            return StudyResult(
                study_name,
                url,
                study.get_trials(),
                None,
                reference_exports=plan.reference_exports,
                dry_pass=plan.dry_pass,
            )
        study.sampler = plan.model
    store = FileSystemArtifactStore(str(_artifacts(settings)))
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [
        _mirror(path, log),
        _refresh_reference(plan, rig, settings, log),
    ]
    if not refine:
        callbacks.append(_stop_on_pass)
    if sweep:
        n = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    else:
        assert trials is not None
        # Queued entries that turn out stale or duplicate are pruned without an export: room for them, and
        # the budget callback stops the study at exactly `trials` exports.
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        n = max(0, trials - _finished(study)) + (waiting if _finished(study) < trials else 0)
        callbacks.append(_budget(trials))
    first = len(study.get_trials(deepcopy=False))
    if n:
        try:
            study.optimize(
                _objective(rig, plan, study, settings, store, log),
                n_trials=n,
                callbacks=callbacks,
                catch=(TrialFailed,),
            )
        except KeyboardInterrupt:
            _requeue_interrupted(study, first, log)
            raise
    return StudyResult(
        study_name,
        url,
        study.get_trials(),
        _passed(study, config),
        out_of_reach=plan.out_of_reach,
        reference_exports=plan.reference_exports,
    )


def _model_sampler(
    study: optuna.Study,
    rig: Rig,
    plan: _Plan,
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
    plan.findings = [f.describe() for f in findings]
    feats, cached = _reference(study, rig, plan, settings, fresh, log)
    dry = study.user_attrs.get("dry_pass")
    judged = _judged_for(config.limits(), plan.space)
    if isinstance(dry, dict) and dry.get("judged_for") == judged and not plan.refine:
        plan.dry_pass = dry
        return None
    prior = [] if plan.refine else _priors(study, settings)
    if prior:
        log(
            f"  Calibrated by {len(prior)} earlier export{'s' if len(prior) != 1 else ''} of this set "
            "(same dry reference)"
        )
    search = modelsearch.ModelSearch(
        feats,
        plan.space,
        device_roles,
        base,
        config.target_lufs,
        config.limits().sample_budget_dbfs(0.0),
        config.lufs_tolerance,
        true_peak_limit_dbtp=config.peak_limit_dbtp,
        seed=random.SystemRandom().randrange(2**31) if seed is None else seed,  # workers differ unless seeded
        refine=plan.refine,
        prior=prior,
    )
    first = search.propose(modelsearch.observations(study, plan.space))
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


def _check_cached_reference(
    plan: _Plan,
    trial: optuna.Trial,
    proposal: modelsearch.Proposal | None,
    receipt: dict[str, Any],
    log: Log,
) -> None:
    """After the first export on a cached reference: does the model still describe this song? Calibrated
    by earlier exports of the set, the prediction to check is the corrected one; else the bare model's."""
    assert plan.model is not None
    plan.model.from_cache = False
    here = {k: float(v) for k, v in trial.params.items() if k in plan.space}
    search = plan.model.search
    expected = proposal.lufs if proposal is not None and search.prior else search.predict(here).lufs
    off = receipt["results"]["lufs_i"] - expected
    if abs(off) > STALE_REFERENCE_LU:
        log(f"  ⚠ The cached dry reference does not fit this song (the model is off by {off:+.2f} LU)")
        plan.model.stale = True


def _refresh_reference(
    plan: _Plan, rig: Rig, settings: Settings, log: Log
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Runs after the trial's receipt is logged, so the JSONL keeps the exports in the order they happened."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if plan.model is None or not plan.model.stale:
            return
        plan.model.stale = False
        if plan.out_of_reach is not None:
            return  # the study has stopped: a fresh reference would be an export nobody uses
        if trial.user_attrs.get("passed"):
            modelsearch.ReferenceCache(settings.cache_dir / "references").forget(_set_fingerprint(rig))
            log(
                "  (stale dry reference dropped from the cache: the next study of this set exports a fresh one)"
            )
            return
        log("  Exporting a fresh dry reference...")
        feats, _ = _reference(study, rig, plan, settings, True, log)
        # The stale reference's calibration was another song's: the fresh one's earlier exports replace it.
        plan.model.search = dataclasses.replace(
            plan.model.search, features=feats, prior=_priors(study, settings)
        )

    return callback


def _set_fingerprint(rig: Rig) -> str:
    """What Live says about the set: track names, the chain's devices, tempo and length where answered."""
    osc, chain = rig.chain.live.osc, rig.chain
    parts: dict[str, Any] = {
        "track": chain.track.label,
        "devices": chain.live.device_names(chain.track),
        "config_devices": dict(rig.config.device_names),
    }
    for what in ("track_names", "tempo", "song_length"):
        try:
            parts[what] = list(osc.query(f"/live/song/get/{what}", timeout=1.0, retries=0))
        except LiveError:
            parts[what] = None
    return modelsearch.fingerprint(parts)


def _reference(
    study: optuna.Study, rig: Rig, plan: _Plan, settings: Settings, fresh: bool, log: Log
) -> tuple[DryFeatures, bool]:
    cache = modelsearch.ReferenceCache(settings.cache_dir / "references")
    sha = study.user_attrs.get("reference_sha256")
    fp = _set_fingerprint(rig)
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
    export_file = str(Path(_export_name(settings, study.study_name, 0)).with_name(f"{REFERENCE_ID}.wav"))
    try:
        receipt, m = export_reference(
            rig, export_file, study=study.study_name, marker=devices_off_marker(settings)
        )
    except TrialFailed as e:
        receipts.append(settings.receipts_path(), e.receipt)
        raise LiveReadError(f"the dry reference export failed: {e}") from None
    plan.reference_exports += 1
    receipts.append(settings.receipts_path(), receipt)
    if results_pass(receipt["results"]):
        study.set_user_attr(
            "dry_pass",
            {
                "judged_for": _judged_for(rig.config.limits(), plan.space),
                "export_file": receipt["export_file"],
                "results": receipt["results"],
            },
        )
    feats = modelsearch.features_of_file(rig.project_root / export_file)
    cache.store(fp, m.sha256, feats)
    study.set_user_attr("reference_sha256", m.sha256)
    study.set_user_attr("reference_lufs", round(m.lufs_i, 4))
    study.set_user_attr("reference_file", export_file)
    log(f"  ✓ Dry reference cached ({m.sha256[:12]}…): later studies of this set reuse it")
    return feats, False


def _judged_for(limits: Limits, space: Mapping[str, Dim]) -> dict[str, Any]:
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


def _priors(study: optuna.Study, settings: Settings) -> list[modelsearch.Prior]:
    """Other studies' exports on this study's dry reference."""
    sha = study.user_attrs.get("reference_sha256")
    if not isinstance(sha, str) or not sha:
        return []
    cache = modelsearch.ReferenceCache(settings.cache_dir / "references")
    return cache.priors(sha, exclude_study=study.study_name)


def _remember(
    plan: _Plan, settings: Settings, study: optuna.Study, trial: optuna.Trial, receipt: dict[str, Any]
) -> None:
    """Keeps this export with the dry reference it was predicted from, for later studies of the set."""
    assert plan.model is not None
    sha = study.user_attrs.get("reference_sha256")
    here = {k: float(v) for k, v in trial.params.items() if k in plan.space}
    if not isinstance(sha, str) or plan.model.stale or len(here) != len(plan.space):
        return
    res = receipt["results"]
    chain = plan.model.search.chain_for(here)
    prior = modelsearch.Prior(chain, float(res["lufs_i"]), float(res["peak_dbfs"]), study.study_name)
    with contextlib.suppress(
        OSError
    ):  # a cache that cannot be written costs later studies an export, no more
        modelsearch.ReferenceCache(settings.cache_dir / "references").remember(sha, prior)


def _diagnose(
    plan: _Plan,
    trial: optuna.Trial,
    proposal: modelsearch.Proposal | None,
    receipt: dict[str, Any],
    from_cache: bool,
    log: Log,
) -> None:
    """Says what this export tells about the rig (gain after the chain, a first prediction far off)."""
    assert plan.model is not None
    search = plan.model.search
    here = {k: float(v) for k, v in trial.params.items() if k in plan.space}
    res = receipt["results"]
    lines = diagnose(
        peak_dbfs=float(res["peak_dbfs"]),
        ceiling_db=search.chain_for(here).limiter.ceiling_db
        if "limiter" in search.device_roles.values()
        else None,
        measured_lufs=float(res["lufs_i"]),
        predicted_lufs=None if proposal is None else proposal.lufs,
        first=proposal is not None and not plan.first_checked,
        findings=plan.findings,
        from_cache=from_cache,
    )
    if proposal is not None:
        plan.first_checked = True
    for line in lines:
        log(f"  ⚠ {line[0].upper()}{line[1:]}")
    if lines:
        receipt["diagnosis"] = lines


def _judge_reach(
    plan: _Plan,
    study: optuna.Study,
    trial: optuna.Trial,
    receipt: dict[str, Any],
    log: Log,
) -> None:
    """After a miss: the target is out of reach only when the drive line's end in the direction of the
    shortfall (every gain at the top and the ceiling as high as the peak limit allows, or everything at the
    bottom) has been exported and still misses by more than the tolerance. A model can be wrong; a
    measurement at the physical extreme cannot be argued with."""
    assert plan.model is not None
    search = plan.model.search
    if search.refine:
        return  # asked to search on whatever the model thinks
    res = receipt["results"]
    obs = modelsearch.observations(study, plan.space)
    here = {k: float(trial.params[k]) for k in plan.space if k in trial.params}
    if len(here) == len(plan.space):
        tp = res.get("true_peak_dbtp")
        obs.append(
            modelsearch.Observation(
                here,
                float(res["lufs_i"]),
                float(res["peak_dbfs"]),
                float(tp) if isinstance(tp, (int, float)) else math.nan,
            )
        )
    after = search.propose(obs)
    if after.verdict is None:
        return
    target = search.target_lufs
    limits = plan.limits
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
        "judged_for": _judged_for(limits, plan.space),
        "message": message,
        "closest_lufs": end.lufs,
        "closest_peak_dbfs": end.peak_db,
        "params": end.params,
        "trial": trial.number,
        "export_file": receipt["export_file"],
    }
    receipt["feasibility"] = verdict
    study.set_user_attr("out_of_reach", verdict)
    plan.out_of_reach = verdict
    log(f"  ✗ Out of reach: {message}")
    study.stop()


def _tp(o: modelsearch.Observation) -> str:
    return f", true peak {o.true_peak_db:.2f} dBTP" if math.isfinite(o.true_peak_db) else ""


def _artifacts(settings: Settings) -> Path:
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return settings.artifacts_dir
