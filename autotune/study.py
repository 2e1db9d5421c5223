"""Orchestration: `sweep` and `optimize` as Optuna studies in storage, with the JSONL mirror.

Every export is an ordinary trial, so storage, resume, several workers and the dashboard all see the same
thing. Receipts are appended by a callback after Optuna has recorded the trial; a finished trial whose
receipt is missing (a crash between the two) is logged at the next start: the storage and the JSONL agree,
one receipt per finished trial, none twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
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

from autotune import receipts
from autotune.backends import open_backend
from autotune.config import Run, SweepConfig
from autotune.doctor import preflight
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import LiveReadError, LiveTimeout
from autotune.live.tracks import resolve_track
from autotune.runner import Rig, TrialFailed, run_trial
from autotune.samplers import SamplerName, make_sampler
from autotune.settings import Settings
from autotune.space import build_space
from autotune.storage import WorkerLock, load_or_create_study, local_file, open_storage, recover_running
from objectives import Dim, flatten, loss, suggest

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
    for k in ("lufs_i", "peak_dbfs", "true_peak_dbtp", "pass_lufs", "pass_peak"):
        if k in results:
            trial.set_user_attr(k, results[k])
    trial.set_user_attr("export_file", receipt["export_file"])
    trial.set_user_attr("sha256", receipt.get("sha256"))
    trial.set_user_attr("status", receipt.get("status"))
    if "error" in receipt:
        trial.set_user_attr("error", receipt["error"])
    trial.set_user_attr("passed", bool(results.get("pass_lufs") and results.get("pass_peak")))
    trial.set_user_attr("receipt", receipt)


def prepare_chain(osc: OscClient, config: SweepConfig, settings: Settings, log: Log) -> MasterChain:
    """Reach Live, resolve devices and parameters, and check every value of the config before any export."""
    try:
        osc.ping()
    except LiveTimeout:
        raise LiveReadError(
            f"Live is not answering at {osc.host}:{osc.port} (replies expected on port {osc.reply_port}): "
            "start Live with the AbletonOSC control surface (autotune doctor checks the rig), or use --backend sim"
        ) from None
    track = resolve_track(osc, config.chain_track())
    chain = MasterChain(LiveSet(osc), track, config.device_names, log)
    chain.resolve()
    preflight(chain, config, settings)
    keys = {(a, k) for a, ks in config.physical_keys().items() for k in ks}
    keys |= {(a, k) for a, ks in config.search_keys().items() for k in ks}
    chain.snapshot(sorted(keys))  # before any probing moves them
    for i, run in enumerate(config.runs):
        for alias, values in run.devices.items():
            for key, value in values.items():
                chain.check(alias, key, value, f"runs[{i}]")
    return chain


def confirm_by_hand(message: str) -> None:
    """Interactive runs only: the producer does by hand what OSC could not."""
    input(f"  ⚠ {message}... ")


def _enqueue_runs(study: optuna.Study, runs: list[Run], log: Log) -> None:
    """Enqueue each run not done, queued or running yet (a second worker must not queue it again)."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs.get("run_key") for t in trials if t.state == TrialState.COMPLETE}
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


def _passed(study: optuna.Study) -> FrozenTrial | None:
    return next(
        (t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.user_attrs.get("passed")), None
    )


@dataclass
class _Plan:
    """What differs between a sweep and an optimisation; the trial loop is shared."""

    space: Mapping[str, Dim]
    runs: dict[str, tuple[int, Run]]
    n_runs: int
    budget: int | None
    sampler_label: str
    sweep: bool


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
                    for t in study.get_trials(
                        deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
                    )
                    if t.number < trial.number and t.user_attrs.get("run_key") == key
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
        trial.set_constraint("peak_over_limit_db", res["peak_dbfs"] - config.peak_limit_dbfs)
        return loss(res["lufs_i"], res["peak_dbfs"], config.target_lufs, config.peak_limit_dbfs)

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
    project_root: Path = Path("."),
) -> StudyResult:
    """`sweep`: the config's runs in order, stop at the first pass. `optimize`: search the space up to
    `trials` finished trials in total (over resumes), stop at the first pass unless `refine`.

    Everything that can refuse the input (sampler, exporter, Live, devices, every value against its range)
    is checked before the storage is opened: bad input writes nothing, to the receipts or to the storage."""
    sweep = mode == "sweep"
    optuna_sampler, label = (None, "sweep") if sweep else make_sampler(sampler, seed)
    with open_backend(settings, config, log) as backend:
        chain = prepare_chain(backend.osc, config, settings, log)
        space = build_space(chain, config, from_targets=not sweep)
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
            )
            rig = Rig(chain, backend.exporter, config, project_root, config.auto_export.timeout_s, log)
            return _run(study, rig, plan, settings, url=url, log=log, with_runs=with_runs, refine=refine)


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
) -> StudyResult:
    config, chain, sweep, trials = rig.config, rig.chain, plan.sweep, plan.budget
    study_name = study.study_name
    study.set_user_attr("kind", "sweep" if sweep else "optimize")
    study.set_user_attr("target_lufs", config.target_lufs)
    study.set_user_attr("peak_limit_dbfs", config.peak_limit_dbfs)
    path = settings.receipts_path()
    reconcile(study, path, log)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log(
            f"  (trial #{t.number} is running in another worker, or was killed less than {settings.grace_s} s "
            "ago: a dead one is retried once its heartbeat is that old)"
        )
    already = _passed(study)
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
    log("  ✓ Master fader set to 0.0 dB" + ("" if how == "over OSC" else f" ({how})"))
    if sweep or with_runs:
        _enqueue_runs(study, config.runs, log)
    store = FileSystemArtifactStore(str(_artifacts(settings)))
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [_mirror(path, log)]
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
    return StudyResult(study_name, url, study.get_trials(), _passed(study))


def _artifacts(settings: Settings) -> Path:
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return settings.artifacts_dir
