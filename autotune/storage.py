"""Study storage: SQLite by default, any Optuna URL, a `*.journal` file, or PostgreSQL; stale-trial recovery.

A trial whose worker died (crash, SIGKILL, a pulled cable) stays RUNNING forever unless something notices.
Optuna's heartbeat does that for RDB storages; `HeartbeatJournalStorage` gives a journal file the same
heartbeat, so every storage recovers the same way: a trial whose heartbeat is older than the grace period is
failed and its parameters (and run id) are enqueued again by `RetryHeartbeatStaleTrialCallback`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import ConfigError

HEARTBEAT_KEY = "autotune:heartbeat"
StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal file storage with Optuna's heartbeat protocol, kept as a trial system attribute."""

    def __init__(
        self, backend: JournalFileBackend, *, interval: int, grace: int, callback: StaleCallback | None
    ) -> None:
        super().__init__(backend)
        self._interval = interval
        self._grace = grace
        self._callback = callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(HEARTBEAT_KEY)
            last = (
                float(beat)
                if isinstance(beat, (int, float))
                else t.datetime_start.timestamp()
                if t.datetime_start
                else now
            )
            if now - last > self._grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self._callback


def open_storage(url: str, *, heartbeat_s: int = 5, grace_s: int = 20) -> BaseStorage:
    """`sqlite:///…`, `postgresql+psycopg://…` or any SQLAlchemy URL, or a path ending in `.journal`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=2)
        if url.endswith(".journal") and "://" not in url:
            path = Path(url)
            if path.is_dir():
                raise ConfigError(f"storage {url!r}: is a directory, not a journal file")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                backend = JournalFileBackend(str(path))
            except OSError as e:
                raise ConfigError(f"storage {url!r}: {e.strerror or e}") from None
            return HeartbeatJournalStorage(backend, interval=heartbeat_s, grace=grace_s, callback=retry)
        if "://" not in url:
            raise ConfigError(
                f"storage {url!r}: not a storage URL (use sqlite:///path.db, postgresql+psycopg://…, "
                "or a path ending in .journal)"
            )
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            try:
                return RDBStorage(
                    url,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=retry,
                    engine_kwargs=_engine_kwargs(url),
                )
            except (ImportError, ModuleNotFoundError) as e:
                driver = (
                    "pip install 'psycopg[binary]'" if "postgres" in url else "install the database driver"
                )
                raise ConfigError(f"storage {url!r}: {e} ({driver})") from None
            except Exception as e:  # SQLAlchemy: unknown dialect, unreachable server, bad credentials
                # Workers starting together on a new database race to create its tables: try again.
                if "UniqueViolation" in type(e).__name__ + str(e) and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"storage {url!r}: {first}") from None
        raise AssertionError("unreachable")


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {}


def load_or_create_study(storage: BaseStorage, name: str, *, restart: bool = False) -> optuna.Study:
    """Create or resume `name`; `restart` deletes it first. Stale RUNNING trials are recovered now."""
    try:
        if restart and name in optuna.get_all_study_names(storage=storage):
            optuna.delete_study(study_name=name, storage=storage)
        study = optuna.create_study(
            storage=storage, study_name=name, direction="minimize", load_if_exists=True
        )
    except Exception as e:
        if isinstance(e, ConfigError) or not type(e).__module__.startswith(("sqlalchemy", "optuna")):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"storage: {first}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["loss"])
        optuna.storages.fail_stale_trials(study)
    return study
