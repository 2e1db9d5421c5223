"""The trial loop shared by `sweep` and `optimize`: one Optuna trial per export, callbacks that mirror
receipts, stop on a pass and keep the budget, and the model-search session when the model samples."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial, TrialState

from autotune.config import Run
from autotune.errors import TrialFailed
from autotune.rig import confirm_by_hand
from autotune.session import (
    ModelSession,
    check_cached_reference,
    diagnose_export,
    judge_reach,
    judged_for,
    refresh_reference,
    remember,
    start_session,
)
from autotune.settings import Settings
from autotune.storage import measured
from autotune.trial import (
    Rig,
    export_trial,
)
from autotune.trials import (
    Log,
    annotate,
    artifacts_dir,
    budget,
    enqueue_runs,
    export_name,
    finished,
    first_pass,
    mirror,
    reconcile,
    record,
    requeue_interrupted,
    started,
    stop_on_pass,
)
from objectives import Dim, flatten, suggest
from objectives.limits import Limits, measurement


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


@dataclass(frozen=True)
class Plan:
    """What differs between a sweep and an optimisation, fixed for the invocation; the trial loop is shared.
    What changes as the study runs belongs to the model-search session (`autotune.session.ModelSession`)."""

    space: Mapping[str, Dim]
    runs: dict[str, tuple[int, Run]]
    n_runs: int
    budget: int | None
    sampler_label: str
    sweep: bool
    limits: Limits


def objective(
    rig: Rig,
    plan: Plan,
    session: ModelSession | None,
    study: optuna.Study,
    settings: Settings,
    store: FileSystemArtifactStore,
    log: Log,
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
                    and (t.state in (TrialState.WAITING, TrialState.RUNNING) or measured(t))
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
            done = finished(study)
            of = f"/{plan.budget}" if plan.budget else ""
            title = f"TRIAL {done + 1}{of} (#{trial.number}, {plan.sampler_label})"
            run_id, export_file = (
                f"trial-{trial.number}",
                export_name(settings, study.study_name, trial.number),
            )
            names = set(plan.space)
        log("")
        log("=" * 70)
        log(title)
        log("=" * 70)
        params = suggest(trial, plan.space, only=names)
        proposal = session.model.proposals.get(trial.number) if session is not None else None
        if proposal is not None:
            tp = session.model.true_peaks.get(trial.number) if session is not None else None
            tp_text = "" if tp is None else f", true peak about {tp:.2f} dBTP"
            log(f"  model: {proposal.describe()}{tp_text}")
            trial.set_user_attr("predicted_lufs", round(proposal.lufs, 4))
            trial.set_user_attr("predicted_peak_dbfs", round(proposal.peak_db, 4))
            trial.set_user_attr("predicted_reachable", proposal.reachable)
        for alias, vals in fixed.items():
            params.setdefault(alias, {}).update(vals)
        try:
            receipt = export_trial(
                rig,
                run_id,
                export_file,
                params,
                study=study.study_name,
                trial=trial.number,
                trial_started=started(trial),
            )
        except TrialFailed as e:
            record(trial, e.receipt)
            raise
        # Recorded at once: a kill during the model search's work below loses no measurement, and the
        # resume does not export the run again.
        record(trial, receipt)
        results = receipt.measured()
        reach = None
        if session is not None:
            # What the model search concludes from the export comes back to be added to its receipt here.
            from_cache = session.model.from_cache
            if from_cache:
                check_cached_reference(session, trial, proposal, results, log)
            diagnosis = diagnose_export(session, trial, proposal, results, from_cache, log)
            remember(session, settings, study, trial, results)
            reach = None if receipt.passed else judge_reach(session, study, trial, receipt, log)
            receipt = annotate(trial, receipt, diagnosis, reach)
        if reach is not None:  # stored after the receipt of the export that proves it, never before
            study.set_user_attr("out_of_reach", reach)
        try:
            upload_artifact(
                artifact_store=store,
                file_path=str(rig.project_root / export_file),
                study_or_trial=trial,
                mimetype="audio/wav",
            )
        except OSError as e:
            log(f"  (export not attached to the dashboard: {e})")
        m = measurement(results.to_json())
        assert m is not None  # an "ok" receipt always holds a measurement
        limits = config.limits()
        trial.set_constraint("peak_over_limit_db", limits.peak_over_db(m[1], m[2]))
        return limits.loss(*m)

    return objective


def run_loop(
    study: optuna.Study,
    rig: Rig,
    plan: Plan,
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
    already = first_pass(study, config)
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
    if not sweep and trials is not None and finished(study) >= trials:
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
        enqueue_runs(study, config.runs, log)
    session: ModelSession | None = None
    if plan.sampler_label == "model":
        verdict = study.user_attrs.get("out_of_reach")
        judged = judged_for(config.limits(), plan.space)
        if isinstance(verdict, dict) and verdict.get("judged_for") == judged and not refine:
            chain.restore_all()
            log(f"Study {study_name!r} found the target out of reach: {verdict.get('message')}")
            log("Nothing to do: change the target or the search ranges, or use --refine to search anyway.")
            return StudyResult(study_name, url, study.get_trials(), None, out_of_reach=verdict)
        session = ModelSession(plan.space, plan.limits, refine=refine)
        session.sampler = start_session(study, rig, session, settings, model_seed, fresh_reference, log)
        if session.sampler is None:
            assert session.dry_pass is not None
            res = session.dry_pass["results"]
            log(
                f"✅ The dry mix already meets the target: {res['lufs_i']:.2f} LUFS, peak {res['peak_dbfs']:.2f} "
                f"dBFS with the chain switched off ({session.dry_pass['export_file']}). Nothing to tune: no trial "
                "was run, and the devices are on again as you left them."
            )
            return StudyResult(
                study_name,
                url,
                study.get_trials(),
                None,
                reference_exports=session.reference_exports,
                dry_pass=session.dry_pass,
            )
        study.sampler = session.sampler
    store = FileSystemArtifactStore(str(artifacts_dir(settings)))
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [
        mirror(path, log),
    ]
    if session is not None:
        callbacks.append(refresh_reference(session, rig, settings, log))
    if not refine:
        callbacks.append(stop_on_pass)
    if sweep:
        n = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    else:
        assert trials is not None
        # Queued entries that turn out stale or duplicate are pruned without an export: room for them, and
        # the budget callback stops the study at exactly `trials` exports.
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        n = max(0, trials - finished(study)) + (waiting if finished(study) < trials else 0)
        callbacks.append(budget(trials))
    first = len(study.get_trials(deepcopy=False))
    if n:
        try:
            study.optimize(
                objective(rig, plan, session, study, settings, store, log),
                n_trials=n,
                callbacks=callbacks,
                catch=(TrialFailed,),
            )
        except KeyboardInterrupt:
            requeue_interrupted(study, first, log)
            raise
        finally:
            # A trial interrupted after its receipt was made ends before Optuna runs the callbacks that log
            # it, and another worker's dead trial may have been failed here: their receipts are logged now.
            reconcile(study, path, log)
    return StudyResult(
        study_name,
        url,
        study.get_trials(),
        first_pass(study, config),
        out_of_reach=session.out_of_reach if session is not None else None,
        reference_exports=session.reference_exports if session is not None else 0,
    )
