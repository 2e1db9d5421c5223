"""Orchestration: Optuna studies in storage, the backend, the JSONL mirror and stop-on-pass callbacks.

Every export is an ordinary trial of an Optuna study, so storage, resume and the dashboard see the same
thing. Receipts are written by a callback after Optuna has recorded the trial, and any finished trial whose
receipt is missing (a crash between the two) is logged at the next start-up: the storage and the JSONL agree.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotune import receipts
from autotune.config import Run, SweepConfig
from autotune.errors import ConfigError
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import LiveReadError, LiveTimeout
from autotune.live.export import Exporter, ManualExporter
from autotune.runner import Rig, TrialFailed, run_trial
from autotune.settings import Settings
from objectives import flatten, loss, suggest

Log = Callable[[str], None]

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass
class Backend:
    osc: OscClient
    exporter: Exporter
    description: str


@contextmanager
def open_backend(settings: Settings, config: SweepConfig, log: Log) -> Iterator[Backend]:
    """The virtual Live in-process on free ports (`sim`), or a real Live over AbletonOSC (`live`)."""
    if settings.backend == "sim":
        from autotune.sim import SimExporter, SimOptions, VirtualLive

        live = VirtualLive(
            "127.0.0.1",
            0,
            reply_port=0,
            export_root=settings.output_dir,
            options=SimOptions(cache_dir=settings.cache_dir),
        )
        osc = OscClient(
            "127.0.0.1",
            live.port,
            reply_host="127.0.0.1",
            reply_port=0,
            timeout=settings.timeout,
            retries=settings.retries,
        )
        live.reply_port = osc.reply_port
        live.start()
        try:
            yield Backend(osc, SimExporter(osc, log), f"virtual Live on 127.0.0.1:{live.port}")
        finally:
            osc.close()
            live.close()
        return
    osc = OscClient(
        settings.host,
        settings.port,
        reply_host=settings.reply_host,
        reply_port=settings.reply_port,
        timeout=settings.timeout,
        retries=settings.retries,
    )
    try:
        yield Backend(
            osc, make_exporter(settings, config, osc, log), f"Live at {settings.host}:{settings.port}"
        )
    finally:
        osc.close()


def make_exporter(settings: Settings, config: SweepConfig, osc: OscClient, log: Log) -> Exporter:
    choice = settings.export
    if choice == "sim":
        from autotune.sim import SimExporter

        return SimExporter(osc, log)
    if choice == "auto" and config.auto_export.is_enabled():
        raise ConfigError(
            "auto_export: AppleScript export is not available in this version; "
            'set "auto_export": {"enabled": false} to export by hand'
        )
    return ManualExporter(log)


def make_storage(settings: Settings) -> str:
    url = settings.storage_url()
    if settings.storage is None:
        settings.studies_dir.mkdir(parents=True, exist_ok=True)
    return url


def load_or_create_study(settings: Settings, name: str, *, restart: bool = False) -> optuna.Study:
    url = make_storage(settings)
    try:
        if restart and name in optuna.get_all_study_names(storage=url):
            optuna.delete_study(study_name=name, storage=url)
        study = optuna.create_study(storage=url, study_name=name, direction="minimize", load_if_exists=True)
    except (ValueError, ImportError, ModuleNotFoundError) as e:
        raise ConfigError(f"storage {url!r}: {e}") from None
    except Exception as e:  # SQLAlchemy errors: a bad URL or an unreachable database
        if type(e).__module__.startswith("sqlalchemy"):
            raise ConfigError(f"storage {url!r}: {str(e).splitlines()[0]}") from None
        raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["loss"])
    if "uid" not in study.user_attrs:
        study.set_user_attr("uid", uuid.uuid4().hex[:12])
    return study


def run_key(run: Run) -> str:
    blob = json.dumps({"export_file": run.export_file, "params": run.params()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fail_stale_running(study: optuna.Study, log: Log) -> None:
    """A trial left RUNNING by a crash or kill (one worker per SQLite study) is failed so its run retries."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        log(f"  (trial #{t.number} was left running by an earlier crash: marked failed, it will be retried)")


def reconcile(study: optuna.Study, path: Path, log: Log) -> set[int]:
    """Log the receipts of finished trials that never reached the JSONL; return the logged trial numbers."""
    logged = receipts.logged_trials(path, study.user_attrs["uid"])
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        r = t.user_attrs.get("receipt")
        if isinstance(r, dict) and t.number not in logged:
            receipts.append(path, r)
            logged.add(t.number)
            log(f"  (receipt of trial #{t.number} recovered into {path})")
    return logged


@dataclass
class SweepResult:
    study: str
    storage: str
    trials: list[FrozenTrial]
    passed: FrozenTrial | None


def _mirror(path: Path, logged: set[int], log: Log) -> Callable[[optuna.Study, FrozenTrial], None]:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        r = trial.user_attrs.get("receipt")
        if isinstance(r, dict) and trial.number not in logged:
            receipts.append(path, r)
            logged.add(trial.number)
            log(f"  ✓ Logged to {path}")

    return callback


def _stop_on_pass(study: optuna.Study, trial: FrozenTrial) -> None:
    if trial.user_attrs.get("passed"):
        study.stop()


def record(trial: optuna.Trial, receipt: dict[str, Any]) -> None:
    """User attributes the dashboard shows (optuna-dashboard does not show Optuna 5 constraints)."""
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
            f"Live is not answering at {settings.host}:{settings.port} (replies expected on port "
            f"{osc.reply_port}): start Live with the AbletonOSC control surface, or use --backend sim"
        ) from None
    chain = MasterChain(LiveSet(osc), config.master_track_id, config.device_names, log)
    chain.resolve()
    for i, run in enumerate(config.runs):
        for alias, values in run.devices.items():
            for key, value in values.items():
                chain.check(alias, key, value, f"runs[{i}]")
    return chain


def sweep(
    config: SweepConfig,
    settings: Settings,
    *,
    study_name: str,
    restart: bool,
    log: Log,
    project_root: Path = Path("."),
) -> SweepResult:
    """Run the config's runs in order as enqueued trials, stopping at the first export that passes."""
    study = load_or_create_study(settings, study_name, restart=restart)
    url = settings.storage_url()
    path = settings.receipts_path()
    study.set_user_attr("kind", "sweep")
    study.set_user_attr("target_lufs", config.target_lufs)
    study.set_user_attr("peak_limit_dbfs", config.peak_limit_dbfs)
    uid = str(study.user_attrs["uid"])
    logged = reconcile(study, path, log)
    fail_stale_running(study, log)
    already = next(
        (t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.user_attrs.get("passed")), None
    )
    if already is not None:
        log(
            f"Study {study_name!r} already passed in trial #{already.number} ({already.user_attrs.get('export_file')})."
        )
        log("Nothing to do: use --restart (or another --study) to sweep again.")
        return SweepResult(study_name, url, study.get_trials(), already)

    with open_backend(settings, config, log) as backend:
        chain = prepare_chain(backend.osc, config, settings, log)
        space: dict[str, tuple[float, float]] = {}
        for alias, keys in config.physical_keys().items():
            for key in keys:
                lo, hi, _ = chain.learn(alias, key)
                space[f"{alias}.{key}"] = (lo, hi)
        log("Setting master fader to 0.0 dB...")
        chain.set_fader_0db()
        log("  ✓ Master fader set to 0.0 dB")

        trials = study.get_trials(deepcopy=False)
        done = {t.user_attrs.get("run_key") for t in trials if t.state == TrialState.COMPLETE}
        waiting = {t.user_attrs.get("run_key") for t in trials if t.state == TrialState.WAITING}
        todo = [r for r in config.runs if run_key(r) not in done]
        for r in config.runs:
            if run_key(r) in done:
                log(f"  (run {r.id} already done in this study: skipped)")
        for r in todo:
            if run_key(r) not in waiting:
                study.enqueue_trial(flatten(r.params()), user_attrs={"run_id": r.id, "run_key": run_key(r)})
        by_key = {run_key(r): (i, r) for i, r in enumerate(config.runs)}
        rig = Rig(chain, backend.exporter, config, project_root, config.auto_export.timeout_s, log)

        def objective(trial: optuna.Trial) -> float:
            key = trial.user_attrs.get("run_key")
            if key not in by_key:
                raise TrialFailed({"error": "enqueued by an earlier version of the config: skipped"})
            i, run = by_key[key]
            log("")
            log("=" * 70)
            log(f"EXPERIMENT {i + 1}/{len(config.runs)}: {run.id}")
            log("=" * 70)
            params = suggest(trial, space, only=flatten(run.params()))
            try:
                receipt = run_trial(
                    rig, run.id, run.export_file, params, study=study_name, study_uid=uid, trial=trial.number
                )
            except TrialFailed as e:
                record(trial, e.receipt)
                raise
            record(trial, receipt)
            res = receipt["results"]
            trial.set_constraint("peak_over_limit_db", res["peak_dbfs"] - config.peak_limit_dbfs)
            return loss(res["lufs_i"], res["peak_dbfs"], config.target_lufs, config.peak_limit_dbfs)

        n_waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if n_waiting:
            study.optimize(
                objective,
                n_trials=n_waiting,
                callbacks=[_mirror(path, logged, log), _stop_on_pass],
                catch=(TrialFailed,),
            )
    trials = study.get_trials()
    passed = next((t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("passed")), None)
    return SweepResult(study_name, url, trials, passed)
