"""Study storage: SQLite by default, any Optuna URL, a `*.journal` file, or PostgreSQL; stale-trial recovery.

A trial whose worker died (crash, SIGKILL, a pulled cable) stays RUNNING forever unless something notices.
Optuna's heartbeat does that for RDB storages; `HeartbeatJournalStorage` gives a journal file the same
heartbeat, so every storage recovers the same way: a trial whose heartbeat is older than the grace period is
failed and its parameters (and run id) are enqueued again by `RetryUnmeasured`.
"""

from __future__ import annotations

import copy
import fcntl
import os
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
#: The user attributes that name a trial's run: all a retry of it may inherit.
RUN_ATTRS = ("run_id", "run_key")


def own_receipt(trial: FrozenTrial) -> dict[str, Any] | None:
    """The receipt the trial made itself. Before RetryUnmeasured, Optuna's retry copied a dead trial's
    receipt into its retry: a study stored then may hold such copies, which name the trial they came from."""
    receipt = trial.user_attrs.get("receipt")
    if not isinstance(receipt, dict):
        return None
    number = receipt.get("trial")
    return receipt if not isinstance(number, int) or number == trial.number else None


def made_receipt(trial: FrozenTrial) -> bool:
    """The trial made the receipt of a measured export (its process may have died before Optuna was told)."""
    receipt = own_receipt(trial)
    return receipt is not None and receipt.get("status") == "ok"


def measured(trial: FrozenTrial) -> bool:
    """The trial exported and measured: COMPLETE, or failed by a kill or an interrupt that landed after its
    receipt was made. Such a trial's receipt is logged by the next run's reconciling and what it measured
    is known, so running it again would spend an export on a run already done and log the run twice."""
    return trial.state == TrialState.COMPLETE or (trial.state == TrialState.FAIL and made_receipt(trial))


class RetryUnmeasured(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry copies every user and system attribute into the new trial. A trial killed after its
    receipt was made would hand that receipt, and its measurements, to its retry: the retry, pruned as the
    run's duplicate, then counted as a trial with a receipt that the JSONL never gets. On a journal file
    the copied heartbeat would make the fresh retry look dead at once to another worker. So a retry
    inherits only what names its run, and a trial that made its receipt is not retried at all: it spent
    its export, like a trial that finished, and `reconcile` logs the receipt."""

    def __init__(self, max_retry: int) -> None:
        super().__init__(max_retry=max_retry)
        self.max_retry = max_retry

    def retries(self, dead: FrozenTrial) -> bool:
        return own_receipt(dead) is None and len(dead.system_attrs.get("retry_history", [])) < self.max_retry

    def outcome(self, dead: FrozenTrial) -> str:
        """What recovery does with a dead trial, as the console says it."""
        if own_receipt(dead) is not None:
            return "its receipt is logged, it is not run again"
        if not self.retries(dead):
            return f"not queued again: it was retried {self.max_retry} times already"
        return "its settings queued again"

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.retries(trial):
            return
        named = copy.copy(trial)
        named.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in RUN_ATTRS}
        named.system_attrs = {
            k: list(v) if isinstance(v, list) else v
            for k, v in trial.system_attrs.items()
            if k != HEARTBEAT_KEY
        }
        super().__call__(study, named)


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


def check_url(url: str) -> None:
    """The storage URL's form, checked before Live is touched: a typo is one line before any device is read."""
    if url.endswith(".journal") and "://" not in url:
        return
    if "://" not in url:
        raise ConfigError(
            f"storage {url!r}: not a storage URL (use sqlite:///path.db, postgresql+psycopg://…, "
            "or a path ending in .journal)"
        )
    if url.startswith("sqlite:///") and not url.removeprefix("sqlite:///").split("?", 1)[0]:
        raise ConfigError(f"storage {url!r}: names no database file (sqlite:///path/to/studies.db)")


def _make_parent(url: str, path: Path) -> None:
    """The storage's own folder (`studies/`) is made on first use, one level only: a mistyped path fails
    with one line instead of leaving a tree of folders behind."""
    try:
        path.parent.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise ConfigError(f"storage {url!r}: folder {path.parent.parent} does not exist") from None
    except OSError as e:
        raise ConfigError(f"storage {url!r}: cannot create {path.parent}: {e.strerror or e}") from None


def open_storage(url: str, *, heartbeat_s: int = 5, grace_s: int = 20) -> BaseStorage:
    """`sqlite:///…`, `postgresql+psycopg://…` or any SQLAlchemy URL, or a path ending in `.journal`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryUnmeasured(max_retry=2)
        if url.endswith(".journal") and "://" not in url:
            path = Path(url)
            if path.is_dir():
                raise ConfigError(f"storage {url!r}: is a directory, not a journal file")
            _make_parent(url, path)
            try:
                backend = JournalFileBackend(str(path))
            except OSError as e:
                raise ConfigError(f"storage {url!r}: {e.strerror or e}") from None
            return HeartbeatJournalStorage(backend, interval=heartbeat_s, grace=grace_s, callback=retry)
        check_url(url)
        if url.startswith("sqlite:///"):
            name = url.removeprefix("sqlite:///").split("?", 1)[0]
            if name != ":memory:":
                _make_parent(url, Path(name))
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
                if _creation_race(e) and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise ConfigError(f"storage {url!r}: {_first_line(e)}") from None
        raise AssertionError("unreachable")


def _creation_race(e: Exception) -> bool:
    """Two workers creating a new database's tables at once: one sees the other's half-made schema."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    return isinstance(e, (IntegrityError, ProgrammingError)) and any(
        word in str(e) for word in ("already exists", "UniqueViolation", "DuplicateTable", "duplicate key")
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {}


def load_or_create_study(storage: BaseStorage, name: str, *, restart: bool = False) -> optuna.Study:
    """Create or resume `name`; `restart` deletes it first. Stale RUNNING trials are recovered now."""
    for attempt in range(3):
        try:
            if restart and name in optuna.get_all_study_names(storage=storage):
                optuna.delete_study(study_name=name, storage=storage)
            study = optuna.create_study(
                storage=storage, study_name=name, direction="minimize", load_if_exists=True
            )
            break
        except Exception as e:
            if isinstance(e, ConfigError) or not type(e).__module__.startswith(("sqlalchemy", "optuna")):
                raise
            # Optuna's "an exception is raised during the commit" hides what the database said. SQLite may
            # refuse a transaction at once rather than wait (its busy handler is skipped where waiting could
            # deadlock), seen once in CI on the first start after a string of kills: such a refusal is tried
            # again, twice, before it is reported with the database's own words.
            cause = e.__cause__ if isinstance(e, optuna.exceptions.StorageInternalError) else None
            if cause is not None and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            first = _first_line(e) + (f" ({_first_line(cause)})" if cause is not None else "")
            raise ConfigError(f"storage: {first}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["loss"])
        optuna.storages.fail_stale_trials(study)
    return study


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def local_file(url: str) -> Path | None:
    """The file behind a SQLite URL or a journal path: storage only this machine's workers can share."""
    if url.startswith("sqlite:///"):
        name = url.removeprefix("sqlite:///").split("?", 1)[0]
        return Path(name) if name and name != ":memory:" else None
    if url.endswith(".journal") and "://" not in url:
        return Path(url)
    return None


class WorkerLock:
    """Every worker holds a shared lock beside a local storage file while it runs. A worker that can take
    it exclusively at start-up knows no other worker on this machine is alive, so every RUNNING trial was
    left by a crash or kill and is retried at once instead of after the heartbeat's grace period. (The
    kernel drops a dead process's lock, SIGKILL included.)"""

    def __init__(self, storage_file: Path, study: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
        self.path = storage_file.with_name(f"{storage_file.name}.{safe}.workers")
        self.fd: int | None = None

    def __enter__(self) -> bool:
        """Take the lock; True when this is the only worker on this machine."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(self.fd, fcntl.LOCK_SH)  # converting keeps other workers' shared locks possible
        return alone

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def recover_running(study: optuna.Study) -> list[str]:
    """Fail every RUNNING trial and queue its parameters again unless it made its receipt (only when no
    other worker is alive). The console line of each recovered trial."""
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback() if isinstance(storage, BaseHeartbeat) else None
    lines = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        dead = storage.get_trial(t._trial_id)
        then = callback.outcome(dead) if isinstance(callback, RetryUnmeasured) else "not queued again"
        lines.append(f"  (trial #{t.number} was left running by a crash or kill: failed, {then})")
        if callback is not None:
            callback(study, dead)
    return lines
