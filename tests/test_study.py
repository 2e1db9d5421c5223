"""Adaptive search and the study life cycle: budgets over resumes, samplers, kills, workers, dashboard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from autotune import samplers
from autotune.cli import main
from autotune.errors import ConfigError
from tests.conftest import free_port, hear_sigint, many_runs_config

STORAGE = "sqlite:///studies/autotune.db"


def receipts(project: Path) -> list[dict]:
    path = project / "output" / "experiments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def env_for(project: Path, demo_cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")}
    return {**env, "AUTOTUNE_CACHE_DIR": str(demo_cache), **extra}


def autotune(*args: str) -> list[str]:
    return [sys.executable, "-m", "autotune", *args]


def test_optimize_reaches_the_target_and_records_everything(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["optimize", "configs/streaming.json", "--trials", "20", "--seed", "3", "--sampler", "tpe"]) == 0
    )
    out = capsys.readouterr().out
    assert "Search space:" in out and "  limiter.ceiling_db: -7 .. -1.05" in out
    assert "✅ TARGET HIT" in out
    study = optuna.load_study(study_name="streaming-optimize", storage=STORAGE)
    trials = study.get_trials()
    rows = receipts(project)
    assert len(rows) == len(trials) <= 20
    assert [r["trial"] for r in rows] == [t.number for t in trials]
    last = trials[-1]
    assert last.user_attrs["passed"] and abs(last.user_attrs["lufs_i"] + 14.0) <= 0.5
    assert last.user_attrs["peak_dbfs"] <= -1.0
    for t in trials:
        assert set(t.params) == {
            "glue.threshold_db",
            "glue.makeup_db",
            "limiter.gain_db",
            "limiter.ceiling_db",
        }
        assert -7.0 <= t.params["limiter.ceiling_db"] <= -1.05
        assert t.constraints == {"peak_over_limit_db": pytest.approx(t.user_attrs["peak_dbfs"] + 1.0)}
        assert {
            "lufs_i",
            "peak_dbfs",
            "true_peak_dbtp",
            "pass_lufs",
            "pass_peak",
            "export_file",
            "sha256",
        } <= set(t.user_attrs)
    # Every export is attached to its trial as audio the dashboard can play.
    store = optuna.artifacts.FileSystemArtifactStore("studies/artifacts")
    metas = get_all_artifact_meta(last, storage=study._storage)
    assert [m.mimetype for m in metas] == ["audio/wav"]
    with store.open_reader(metas[0].artifact_id) as f:
        assert f.read(4) == b"RIFF"
    # A passed study is not searched again unless asked to refine.
    assert main(["optimize", "configs/streaming.json", "--trials", "20"]) == 0
    assert "already passed" in capsys.readouterr().out


def test_trials_budget_counts_over_resumes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["optimize", "configs/master_sweep.json", "--refine", "--study", "budget", "--sampler", "tpe"]
    assert main([*args, "--trials", "2"]) == 0
    assert len(receipts(project)) == 2
    assert main([*args, "--trials", "2"]) == 0
    assert "has used its budget of 2 trials" in capsys.readouterr().out
    assert main([*args, "--trials", "3"]) == 0
    assert len(receipts(project)) == 3
    assert [r["trial"] for r in receipts(project)] == [0, 1, 2]


def test_with_runs_enqueues_the_config_runs_first(project: Path) -> None:
    assert (
        main(["optimize", "configs/streaming.json", "--trials", "1", "--with-runs", "--sampler", "tpe"]) == 0
    )
    (row,) = receipts(project)
    assert row["id"] == "baseline" and row["export_file"] == "output/streaming_baseline.wav"
    assert row["params"]["limiter"] == {"gain_db": 3.0, "ceiling_db": -1.5}


def test_sampler_choice_depends_on_torch(monkeypatch: pytest.MonkeyPatch, project: Path, capsys) -> None:
    monkeypatch.setattr(samplers, "torch_available", lambda: False)
    sampler, label = samplers.make_sampler("auto")
    assert isinstance(sampler, optuna.samplers.TPESampler) and label == "TPE"
    assert sampler._n_startup_trials == samplers.STARTUP_TRIALS == 5
    with pytest.raises(ConfigError, match="needs torch"):
        samplers.make_sampler("gp")
    assert main(["optimize", "configs/streaming.json", "--sampler", "gp"]) == 20
    assert "needs torch" in capsys.readouterr().err
    assert receipts(project) == []
    monkeypatch.setattr(samplers, "torch_available", lambda: True)
    sampler, label = samplers.make_sampler("auto", seed=4)
    assert isinstance(sampler, optuna.samplers.GPSampler) and label == "GP"
    assert isinstance(samplers.make_sampler("cmaes")[0], optuna.samplers.CmaEsSampler)
    assert isinstance(samplers.make_sampler("random")[0], optuna.samplers.RandomSampler)
    # auto is model-based search on a Glue Compressor -> Limiter chain, a stock sampler on anything else.
    chain = {"glue": "Glue Compressor", "limiter": "Limiter"}
    assert samplers.resolve_sampler("auto", chain) == "model"
    assert samplers.resolve_sampler("auto", {**chain, "eq": "EQ Eight"}) == "gp"
    monkeypatch.setattr(samplers, "torch_available", lambda: False)
    assert samplers.resolve_sampler("auto", {"eq": "EQ Eight"}) == "tpe"
    assert samplers.resolve_sampler("tpe", chain) == "tpe"


def test_unseeded_workers_draw_different_points() -> None:
    a, _ = samplers.make_sampler("random")
    b, _ = samplers.make_sampler("random")
    sa = optuna.create_study(sampler=a)
    sb = optuna.create_study(sampler=b)
    assert sa.ask().suggest_float("x", 0, 1) != sb.ask().suggest_float("x", 0, 1)


def test_resume_after_sigkill_mid_trial(project: Path, demo_cache: Path) -> None:
    env = env_for(project, demo_cache)
    proc = subprocess.Popen(
        autotune("sweep", "configs/master_sweep.json"),
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("EXPERIMENT 2/3"):
            time.sleep(0.3)  # inside the trial: setting parameters or exporting
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    assert [r["id"] for r in receipts(project)] == ["iter7"]
    # No sleep: the worker lock tells the next worker that nobody else is alive, so it recovers at once.
    done = subprocess.run(
        autotune("sweep", "configs/master_sweep.json"),
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(trial #1 was left running by a crash or kill: failed, its settings queued again)" in done.stdout
    lines = (project / "output" / "experiments.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line parses: nothing torn
    assert sorted(r["id"] for r in rows) == ["iter7", "iter8", "iter9"]  # the killed run retried, none twice
    study = optuna.load_study(study_name="master_sweep", storage=STORAGE)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == 3
    killed = next(t for t in study.get_trials() if t.state == TrialState.FAIL)
    retried = next(t for t in study.get_trials() if t.system_attrs.get("failed_trial") == killed.number)
    assert retried.params == killed.params and retried.user_attrs["run_id"] == "iter8"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_trial_killed_after_its_receipt_is_logged_once_and_never_run_again(
    tmp_path: Path, kind: str
) -> None:
    """Optuna's stale-trial retry copies every user and system attribute. A retry of a trial killed after
    its receipt was made carried that receipt, was pruned as the run's duplicate, and so left a trial with
    a receipt that the JSONL never got (the random-signal test caught it once in CI); on a journal file
    the copied heartbeat made the fresh retry look dead at once."""
    from autotune.config import load_config
    from autotune.storage import HEARTBEAT_KEY, load_or_create_study, measured, open_storage, recover_running
    from autotune.trials import first_pass, reconcile
    from tests.conftest import ROOT

    storage = open_storage(
        f"sqlite:///{tmp_path / 'studies.db'}" if kind == "sqlite" else str(tmp_path / "s.journal")
    )
    study = load_or_create_study(storage, "s")
    for n, status in enumerate(["ok", None, "export_failed", None]):
        trial = study.ask()
        trial.set_user_attr("run_id", f"run{n}")
        trial.set_user_attr("run_key", f"key{n}")
        if kind == "journal":
            storage.record_heartbeat(trial._trial_id)
        if n == 3:  # a run whose worker died twice already
            storage.set_trial_system_attr(trial._trial_id, "retry_history", [7, 8])
        if status is not None:  # killed after `record`: the receipt is made, Optuna was never told
            trial.set_user_attr("lufs_i", -10.5)  # the example config's target, under its peak limit
            trial.set_user_attr("peak_dbfs", -6.5)
            trial.set_user_attr(
                "receipt", {"study": "s", "trial": n, "trial_started": "t", "id": f"run{n}", "status": status}
            )
    said = "  (trial #{} was left running by a crash or kill: failed, {})"
    assert recover_running(study) == [
        said.format(0, "its receipt is logged, it is not run again"),
        said.format(1, "its settings queued again"),
        said.format(2, "its receipt is logged, it is not run again"),
        said.format(3, "not queued again: it was retried 2 times already"),
    ]
    trials = study.get_trials()
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert [(t.system_attrs["failed_trial"], t.user_attrs) for t in retries] == [
        (1, {"run_id": "run1", "run_key": "key1"})
    ]
    assert HEARTBEAT_KEY not in retries[0].system_attrs
    assert [measured(t) for t in trials[:4]] == [True, False, False, False]
    jsonl = tmp_path / "experiments.jsonl"
    reconcile(study, jsonl, lambda line: None)
    reconcile(study, jsonl, lambda line: None)  # a second start logs nothing twice
    assert [json.loads(line)["trial"] for line in jsonl.read_text().splitlines()] == [0, 2]
    passed = first_pass(study, load_config(ROOT / "configs" / "master_sweep.json"))
    assert passed is not None and passed.number == 0  # what it measured counts: the study has passed


def test_a_receipt_an_older_retry_copied_counts_for_nothing(tmp_path: Path) -> None:
    """Studies stored before the fix hold retries that Optuna gave a copy of the dead trial's receipt:
    a copy names the trial it came from, and counts neither as an export of the budget nor as a pass."""
    from optuna.distributions import FloatDistribution

    from autotune.storage import load_or_create_study, measured, open_storage
    from autotune.trials import finished

    study = load_or_create_study(open_storage(f"sqlite:///{tmp_path / 'studies.db'}"), "s")
    receipt = {"study": "s", "trial": 0, "trial_started": "t", "id": "run0", "status": "ok"}
    dist = {"limiter.gain_db": FloatDistribution(0.0, 24.0)}
    for state, value in ((TrialState.FAIL, None), (TrialState.PRUNED, None), (TrialState.FAIL, None)):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params={"limiter.gain_db": 6.0},
                distributions=dist,
                user_attrs={"receipt": receipt, "lufs_i": -10.5, "peak_dbfs": -6.5},
            )
        )
    assert finished(study) == 1  # trial 0's own; #1 and #2 hold copies of it
    assert [measured(t) for t in study.get_trials()] == [True, False, False]


def test_a_refused_storage_transaction_is_tried_again_and_reported_in_the_databases_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune.storage import load_or_create_study, open_storage

    real, calls = optuna.create_study, {"n": 0}

    def refuse(times: int):  # type: ignore[no-untyped-def]
        def create(**kwargs: object) -> optuna.Study:
            calls["n"] += 1
            if calls["n"] <= times:
                try:
                    raise RuntimeError("database is locked")
                except RuntimeError as e:
                    raise optuna.exceptions.StorageInternalError(
                        "An exception is raised during the commit."
                    ) from e
            return real(**kwargs)  # type: ignore[arg-type]

        return create

    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    monkeypatch.setattr(optuna, "create_study", refuse(2))
    assert load_or_create_study(storage, "s").study_name == "s" and calls["n"] == 3
    calls["n"] = 0
    monkeypatch.setattr(optuna, "create_study", refuse(3))
    with pytest.raises(
        ConfigError, match=r"^storage: An exception is raised during the commit\. \(database is locked\)$"
    ):
        load_or_create_study(storage, "t")


def _two_workers(project: Path, demo_cache: Path, storage: str, workers_n: int = 4, runs: int = 8) -> None:
    """Several `sweep` processes on one study drain its list of runs and append to one JSONL: every line
    intact, each run done exactly once."""
    config = many_runs_config(project, runs)
    env = env_for(project, demo_cache)
    workers = [
        subprocess.Popen(
            autotune("sweep", config, "--storage", storage),
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers_n)
    ]
    outs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outs, strict=True):
        assert w.returncode == 0, out + err
    ok = [r["id"] for r in receipts(project) if r["status"] == "ok"]  # receipts() parses every line
    assert sorted(ok) == sorted(f"run{i}" for i in range(runs))
    assert sum("EXPERIMENT" in out for out, _ in outs) >= 2  # the work was shared


def test_two_workers_share_a_journal_file(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # A cold demo cache: both workers synthesise and cache the song at the same moment.
    _two_workers(project, tmp_path_factory.mktemp("cold-cache"), "studies/shared.journal")


def _pg_bin() -> Path | None:
    for cand in [
        shutil.which("pg_ctl"),
        *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True),
    ]:
        if cand:
            return Path(cand).parent
    return None


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port (initdb + pg_ctl), as a non-root user when root."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    data = Path(tempfile.mkdtemp(prefix="autotune-pg-"))  # outside pytest's root-only tmp tree
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "nobody")
        run_as = ["runuser", "-u", "nobody", "--"]
    db = str(data / "db")
    subprocess.run(
        # --no-sync, and no fsync in the server below: a throwaway cluster needs no crash safety.
        [*run_as, str(bindir / "initdb"), "-D", db, "-U", "autotune", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", db, "-l", str(data / "log"), "-w", "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://autotune@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", db, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_postgresql(project: Path, demo_cache: Path, postgres: str) -> None:
    _two_workers(project, demo_cache, postgres)
    study = optuna.load_study(study_name="many", storage=postgres)
    assert len([t for t in study.get_trials() if t.state == TrialState.COMPLETE]) == 8


def test_bad_storage_is_one_line_exit_20(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for storage, words in [
        ("nosuchdb://x", "storage 'nosuchdb://x'"),
        ("studies/plain.txt", "not a storage URL"),
    ]:
        assert main(["sweep", "configs/master_sweep.json", "--storage", storage]) == 20
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err
    assert receipts(project) == []


def test_report_prints_a_table_and_writes_plots(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "configs/master_sweep.json"]) == 0
    capsys.readouterr()
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "study master_sweep: 3 trials" in out and "limiter.gain_db" in out
    page = (project / "studies" / "master_sweep-report.html").read_text()
    assert page.count("<svg") == 3 and "LUFS against" in page
    assert main(["report", "--study", "nope"]) == 20


def test_dashboard_api_serves_the_study_and_its_audio(project: Path, demo_cache: Path) -> None:
    assert (
        main(
            [
                "optimize",
                "configs/streaming.json",
                "--trials",
                "2",
                "--refine",
                "--seed",
                "1",
                "--sampler",
                "tpe",
            ]
        )
        == 0
    )
    port = free_port()
    server = subprocess.Popen(
        autotune("dashboard", "--port", str(port)),
        cwd=project,
        env=env_for(project, demo_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # start-up is seconds, more on a busy machine: polled, not waited
        while True:
            try:
                studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=2))
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("dashboard did not start") from None
                time.sleep(0.1)
        (summary,) = studies["study_summaries"]
        assert summary["study_name"] == "streaming-optimize"
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}", timeout=5))
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert "lufs_i" in attrs and "peak_dbfs" in attrs
        (artifact,) = trial["artifacts"]
        assert artifact["mimetype"] == "audio/wav"
        url = f"{base}/artifacts/{summary['study_id']}/{trial['trial_id']}/{artifact['artifact_id']}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "audio/wav" and resp.read(4) == b"RIFF"
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_ctrl_c_mid_trial_exits_130_and_the_next_run_retries_it(project: Path, demo_cache: Path) -> None:
    env = env_for(project, demo_cache)
    args = autotune(
        "optimize", "configs/streaming.json", "--trials", "4", "--refine", "--seed", "2", "--sampler", "tpe"
    )
    proc = subprocess.Popen(
        args,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=hear_sigint,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("TRIAL 2/4"):
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted: finished trials are logged" in err and "Traceback" not in err
    assert "its settings are queued for the next run" in out
    assert len(receipts(project)) == 1
    study = optuna.load_study(study_name="streaming-optimize", storage=STORAGE)
    interrupted = next(t for t in study.get_trials() if t.state == TrialState.FAIL)
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = receipts(project)
    assert len(rows) == 4 and len({(r["trial"], r["trial_started"]) for r in rows}) == 4
    retried = study.get_trials()[interrupted.number + 1]
    assert retried.params == interrupted.params and retried.state == TrialState.COMPLETE


def test_a_worker_on_another_study_of_the_machine_does_not_block_recovery(project: Path) -> None:
    """The worker lock is per study: recovery of one study never waits for another study's worker."""
    from autotune.storage import WorkerLock

    db = project / "studies" / "autotune.db"
    with WorkerLock(db, "a") as alone_a, WorkerLock(db, "b") as alone_b:
        assert alone_a and alone_b
        with WorkerLock(db, "a") as second_a:
            assert not second_a
    with WorkerLock(db, "a") as again:
        assert again


def test_search_bound_outside_the_device_range_names_the_range(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((project / "configs" / "streaming.json").read_text())
    config["search"]["limiter"]["gain_db"] = [0.0, 48.0]
    (project / "configs" / "wide.json").write_text(json.dumps(config))
    assert main(["optimize", "configs/wide.json"]) == 20
    err = capsys.readouterr().err.strip()
    assert "search.limiter.gain_db = 48 is outside Limiter Input Gain range -24 dB .. 36 dB" in err
    assert receipts(project) == []


def test_stepped_parameters_are_searched_as_choices(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((project / "configs" / "streaming.json").read_text())
    config["search"]["glue"]["ratio"] = None
    (project / "configs" / "ratio.json").write_text(json.dumps(config))
    assert main(["optimize", "configs/ratio.json", "--trials", "3", "--refine", "--seed", "5"]) == 0
    assert "  glue.ratio: {2, 4, 10}" in capsys.readouterr().out
    study = optuna.load_study(study_name="ratio-optimize", storage=STORAGE)
    assert {t.params["glue.ratio"] for t in study.get_trials()} <= {2.0, 4.0, 10.0}
