"""Orchestration: `sweep` and `optimize` as Optuna studies in storage, with the JSONL mirror.

Every export is an ordinary trial, so storage, resume, several workers and the dashboard all see the same
thing. Receipts are appended by a callback after Optuna has recorded the trial; a finished trial whose
receipt is missing (a crash between the two) is logged at the next start: the storage and the JSONL agree,
one receipt per finished trial, none twice.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import optuna

from autotune import modelsearch
from autotune.backends import open_backend
from autotune.config import SweepConfig
from autotune.errors import ConfigError
from autotune.loop import Plan, StudyResult, run_loop
from autotune.rig import prepare_chain
from autotune.samplers import (
    SamplerName,
    StepwiseSampler,
    make_sampler,
    resolve_sampler,
    stepwise_start,
)
from autotune.searchspace import build_space
from autotune.settings import Settings
from autotune.storage import (
    WorkerLock,
    check_url,
    load_or_create_study,
    local_file,
    open_storage,
    recover_running,
)
from autotune.trial import (
    Rig,
)
from autotune.trials import (
    Log,
    run_key,
)
from objectives import flatten

optuna.logging.set_verbosity(optuna.logging.ERROR)  # our console reports every trial
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_study(
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
                for line in recover_running(study):
                    log(line)
            plan = Plan(
                space=space,
                runs={run_key(r): (i, r) for i, r in enumerate(config.runs)},
                n_runs=len(config.runs),
                budget=trials,
                sampler_label=label,
                sweep=sweep,
                limits=config.limits(),
            )
            rig = Rig(chain, backend.exporter, config, project_root, config.auto_export.timeout_s, log)
            return run_loop(
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
