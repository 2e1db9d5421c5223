"""Bookkeeping over a study's Optuna trials: which spent an export, which passed, what is queued, and
the receipts mirrored to the JSONL."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotune import receipts
from autotune.config import Run, SweepConfig
from autotune.receipts import Receipt
from autotune.settings import Settings
from autotune.storage import RUN_ATTRS, measured, own_receipt
from autotune.trial import (
    MEASURED_KEYS,
)
from objectives import flatten
from objectives.limits import measurement

Log = Callable[[str], None]


FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def run_key(run: Run) -> str:
    blob = json.dumps({"export_file": run.export_file, "params": run.params()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def started(trial: optuna.Trial | FrozenTrial) -> str:
    return trial.datetime_start.isoformat() if trial.datetime_start else ""


def stored(t: FrozenTrial) -> Receipt | None:
    """The receipt `record` stored with a trial, as whichever version stored it (None: it has none, or
    one this version cannot read, such as a newer worker's with a status it does not know)."""
    r = t.user_attrs.get("receipt")
    if not isinstance(r, dict):
        return None
    try:
        return Receipt.from_json(r)
    except ValueError:
        return None


def reconcile(study: optuna.Study, path: Path, log: Log) -> None:
    """Log the receipts of finished trials that never reached the JSONL (a crash between tell and log),
    each as its trial stored it."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        r = t.user_attrs.get("receipt")
        if isinstance(r, dict) and receipts.write(path, r):
            log(f"  (receipt of trial #{t.number} recovered into {path})")


def mirror(path: Path, log: Log) -> Callable[[optuna.Study, FrozenTrial], None]:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        r = trial.user_attrs.get("receipt")
        if isinstance(r, dict) and receipts.write(path, r):
            log(f"  ✓ Logged to {path}")

    return callback


def annotate(
    trial: optuna.Trial,
    receipt: Receipt,
    diagnosis: Sequence[str],
    feasibility: Mapping[str, Any] | None,
) -> Receipt:
    """The receipt `record` stored, again with what the model search concluded from its export (the
    measurement and the verdict do not change, so nothing else is written twice)."""
    annotated = receipt.annotated(diagnosis=diagnosis, feasibility=feasibility)
    if annotated != receipt:
        trial.set_user_attr("receipt", annotated.to_json())
    return annotated


def stop_on_pass(study: optuna.Study, trial: FrozenTrial) -> None:
    if trial.user_attrs.get("passed"):
        study.stop()


def record(trial: optuna.Trial, receipt: Receipt) -> None:
    """User attributes the dashboard shows (optuna-dashboard 0.21 does not show Optuna 5 constraints),
    and the finished receipt itself, which the mirror logs once the trial is told."""
    results = receipt.results.to_json() if receipt.results is not None else {}
    for k in (*MEASURED_KEYS, "pass_lufs", "pass_peak", "pass_true_peak"):
        if k in results:
            trial.set_user_attr(k, results[k])
    trial.set_user_attr("export_file", receipt.export_file)
    trial.set_user_attr("sha256", receipt.sha256)
    trial.set_user_attr("status", receipt.status)
    if receipt.error is not None:
        trial.set_user_attr("error", receipt.error)
    trial.set_user_attr("passed", receipt.passed)
    trial.set_user_attr("receipt", receipt.to_json())


def enqueue_runs(study: optuna.Study, runs: list[Run], log: Log) -> None:
    """Enqueue each run not done, queued or running yet (a second worker must not queue it again)."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs.get("run_key") for t in trials if measured(t)}
    taken = done | {
        t.user_attrs.get("run_key") for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)
    }
    for r in runs:
        key = run_key(r)
        if key in done:
            log(f"  (run {r.id} already done in this study: skipped)")
        elif key not in taken:
            study.enqueue_trial(flatten(r.params()), user_attrs={"run_id": r.id, "run_key": key})


def export_name(settings: Settings, study: str, number: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study).strip("._") or "study"
    return str(settings.output_dir / safe / f"trial-{number:04d}.wav")


def finished(study: optuna.Study) -> int:
    """Trials that spent an export (they have a receipt): what `--trials` counts, over resumes.

    Like MaxTrialsCallback, but a trial interrupted or killed before its export counts nothing: its
    parameters are queued again and it is retried.
    """
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if own_receipt(t) is not None)


def budget(n: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if finished(study) >= n:
            study.stop()

    return callback


def requeue_interrupted(study: optuna.Study, since: int, log: Log) -> None:
    """After Ctrl-C: queue the parameters of trials that failed without a receipt, so a resume retries them."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.number >= since and own_receipt(t) is None:
            attrs = {k: v for k, v in t.user_attrs.items() if k in RUN_ATTRS}
            study.enqueue_trial(t.params, user_attrs=attrs)
            log(f"  (trial #{t.number} was interrupted: its settings are queued for the next run)")


def first_pass(study: optuna.Study, config: SweepConfig) -> FrozenTrial | None:
    """The first trial that meets the config's targets as they are now (a study resumed after the target
    or the limit changed is judged against the new ones, not the flags stored with its trials)."""

    def meets(t: FrozenTrial) -> bool:
        m = measurement(t.user_attrs)
        return m is not None and config.limits().passes(*m)

    return next(
        (
            t
            for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))
            if measured(t) and meets(t)
        ),
        None,
    )


def artifacts_dir(settings: Settings) -> Path:
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return settings.artifacts_dir
