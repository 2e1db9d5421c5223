"""The receipt as a typed record: what it writes is the JSONL's documented line, key for key and in order,
it reads back whatever an earlier version stored, and a study stored by one resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from autotune import receipts
from autotune.cli import main
from autotune.errors import TrialFailed
from autotune.receipts import KEYS, RESULT_KEYS, Receipt, Results

STORAGE = "sqlite:///studies/autotune.db"

#: The order of a receipt's keys, and of its results', as every version has written them (readers and
#: diffs of the JSONL rely on it): stated here once more so that a change to the record's fields shows.
DOCUMENTED = [
    "ts",
    "id",
    "export_file",
    "sha256",
    "params",
    "study",
    "trial",
    "trial_started",
    "kind",
    "applied",
    "capture",
    "results",
    "status",
    "error",
    "duration_s",
    "diagnosis",
    "feasibility",
]
DOCUMENTED_RESULTS = [
    "lufs_i",
    "peak_dbfs",
    "pass_lufs",
    "pass_peak",
    "true_peak_dbtp",
    "pass_true_peak",
    "lra_lu",
    "max_momentary_lufs",
    "max_short_term_lufs",
    "plr_db",
    "playback_db",
]


def lines(project: Path) -> list[dict[str, Any]]:
    path = project / "output" / "experiments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def in_order(d: dict[str, Any], order: list[str]) -> bool:
    """Whether `d` holds only documented keys, in the documented order."""
    return list(d) == [k for k in order if k in d]


def full_receipt() -> Receipt:
    return Receipt(
        ts="2026-11-25T05:00:00Z",
        id="trial-3",
        export_file="output/s/trial-0003.wav",
        sha256="ab" * 32,
        params={"master_fader_db": 0.0, "glue": {"threshold_db": -20.0}, "limiter": {"gain_db": 6.5}},
        study="s",
        trial=3,
        trial_started="2026-11-25T04:59:58.123456",
        applied={"glue.threshold_db": {"param": "Threshold", "raw": 0.42, "display": "-20.0 dB"}},
        capture={"start_beats": 8.0, "length_beats": 6.0, "take_kept": False, "song_beats": None},
        results=Results(
            lufs_i=-14.0312,
            peak_dbfs=-1.2,
            pass_lufs=True,
            pass_peak=True,
            true_peak_dbtp=-1.05,
            pass_true_peak=False,
            lra_lu=4.1,
            max_momentary_lufs=-9.8,
            max_short_term_lufs=-11.2,
            plr_db=12.8,
            playback_db={"spotify": 0.0, "apple-music": -2.0},
        ),
        status="ok",
        duration_s=1.5,
    ).annotated(
        diagnosis=["the peak sits 3.0 dB above the Limiter's ceiling"], feasibility={"reachable": False}
    )


def test_the_record_declares_the_documented_order() -> None:
    assert list(KEYS) == DOCUMENTED
    assert list(RESULT_KEYS) == DOCUMENTED_RESULTS
    assert list(receipts._KINDS) == DOCUMENTED and list(receipts._RESULT_KINDS) == DOCUMENTED_RESULTS


def test_a_receipt_round_trips_through_its_json() -> None:
    r = full_receipt()
    d = r.to_json()
    assert list(d) == [
        k for k in DOCUMENTED if k not in ("kind", "error")
    ]  # every key that applies, in order
    assert list(d["results"]) == DOCUMENTED_RESULTS
    assert Receipt.from_json(d) == r
    assert Receipt.from_json(json.loads(json.dumps(d))) == r  # as the storage and the JSONL give it back
    assert not r.passed  # the true peak is over its limit
    d["params"]["glue"]["threshold_db"] = 0.0  # the dict is a copy: the record does not change with it
    assert r.to_json()["params"]["glue"]["threshold_db"] == -20.0


def test_absent_means_absent_and_only_sha256_and_trial_may_be_null() -> None:
    failed = Receipt(
        ts="2026-11-25T05:00:00Z",
        id="dry-reference",
        export_file="output/s/dry-reference.wav",
        sha256=None,
        params={"master_fader_db": 0.0, "glue": {"device_on": 0.0}},
        study="s",
        trial=None,
        kind="reference",
        status="export_failed",
        error="did not appear within 1 s",
        duration_s=1.0,
    )
    d = failed.to_json()
    assert list(d) == [*DOCUMENTED[:7], "kind", "status", "error", "duration_s"]
    assert d["sha256"] is None and d["trial"] is None
    assert Receipt.from_json(d) == failed
    assert not failed.passed
    with pytest.raises(ValueError, match="no results"):
        failed.measured()
    e = TrialFailed(failed)  # the error carries the record, and says what went wrong
    assert e.receipt is failed and str(e) == "did not appear within 1 s"
    results = Results(lufs_i=-14.0, peak_dbfs=-1.5, pass_lufs=True, pass_peak=True)
    assert list(results.to_json()) == ["lufs_i", "peak_dbfs", "pass_lufs", "pass_peak"]
    assert results.passed  # no true-peak limit: no pass_true_peak, and nothing it could fail


def test_what_an_older_version_stored_reads_back_as_it_was() -> None:
    """The first version's receipt: no trial_started, applied only, four results and a true peak. Keys this
    version does not know are kept, after the known ones."""
    old = {
        "ts": "2026-01-02T03:04:05Z",
        "id": "iter7",
        "export_file": "output/master_iter7.wav",
        "sha256": "cd" * 32,
        "params": {"master_fader_db": 0.0, "glue": {"threshold_db": -30.0}},
        "study": "master_sweep",
        "trial": 0,
        "applied": {"glue.threshold_db": {"param": "Threshold", "raw": 0.1, "display": "-30.0 dB"}},
        "results": {
            "lufs_i": -10.4,
            "peak_dbfs": -6.2,
            "pass_lufs": True,
            "pass_peak": True,
            "true_peak_dbtp": -6.0,
        },
        "status": "ok",
        "duration_s": 2.0,
        "from_a_newer_version": {"x": 1},
    }
    r = Receipt.from_json(old)
    assert r.trial_started is None and r.results is not None and r.results.lra_lu is None
    assert json.dumps(r.to_json()) == json.dumps(old)  # same keys, same order, same values
    assert r.device_params == {"glue": {"threshold_db": -30.0}}


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "x"},  # no receipt at all
        {**json.loads(json.dumps(full_receipt().to_json())), "status": "running"},
        {**json.loads(json.dumps(full_receipt().to_json())), "trial": "3"},
        {**json.loads(json.dumps(full_receipt().to_json())), "results": {"lufs_i": -14.0}},
    ],
)
def test_a_dict_that_is_no_receipt_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Receipt.from_json(broken)


def test_a_real_optimize_run_writes_the_documented_lines(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(project / ".cache"))  # a dry reference of its own
    argv = ["optimize", "configs/spotify.json", "--sampler", "model", "--seed", "1", "--trials", "2"]
    assert main([*argv, "--backend", "sim"]) == 0
    rows = lines(project)
    assert rows[0]["id"] == "dry-reference"
    assert list(rows[0]) == [
        *["ts", "id", "export_file", "sha256", "params", "study", "trial", "kind"],
        *["results", "status", "duration_s"],
    ]
    assert list(rows[1]) == [
        *["ts", "id", "export_file", "sha256", "params", "study", "trial", "trial_started", "applied"],
        *["results", "status", "duration_s"],
    ]
    assert list(rows[1]["results"]) == DOCUMENTED_RESULTS  # spotify sets a true-peak limit
    assert all(in_order(r, DOCUMENTED) and in_order(r["results"], DOCUMENTED_RESULTS) for r in rows)
    study = optuna.load_study(study_name="spotify-optimize", storage=STORAGE)
    stored = [t.user_attrs["receipt"] for t in study.trials]
    assert [json.dumps(s) for s in stored] == [json.dumps(r) for r in rows[1:]]  # the attribute is the line


TPE = ["--sampler", "tpe", "--seed", "1", "--backend", "sim"]


def one_real_trial() -> optuna.trial.FrozenTrial:
    """A finished trial of this version (its receipt, params and attributes) to make other versions' from."""
    assert main(["optimize", "configs/spotify.json", "--study", "new", "--trials", "1", *TPE]) == 0
    (t,) = optuna.load_study(study_name="new", storage=STORAGE).trials
    return t


def store_trial(name: str, like: optuna.trial.FrozenTrial, user_attrs: dict[str, Any]) -> None:
    """A study `name` holding one finished trial like `like`, with the user attributes another version stored."""
    study = optuna.create_study(study_name=name, storage=STORAGE)
    study.add_trial(
        optuna.trial.create_trial(
            params=like.params,
            distributions=like.distributions,
            value=like.value,
            user_attrs=user_attrs,
            system_attrs=like.system_attrs,
        )
    )


def test_a_study_stored_by_an_older_version_resumes(project: Path) -> None:
    """A finished trial whose receipt predates trial_started, applied, the loudness report and the
    true-peak flag: the resume recovers it into the JSONL as stored, sums it up, and goes on."""
    t = one_real_trial()
    old = dict(t.user_attrs["receipt"])
    for k in ("trial_started", "applied"):
        del old[k]
    old["study"] = "old"
    lufs = -30.0  # a miss, so that the resume has something to do
    old["results"] = {**{k: old["results"][k] for k in RESULT_KEYS[:5]}, "lufs_i": lufs, "pass_lufs": False}
    attrs = {k: v for k, v in t.user_attrs.items() if k in ("export_file", "sha256", "status", "peak_dbfs")}
    store_trial("old", t, {**attrs, "lufs_i": lufs, "passed": False, "receipt": old})
    before = len(lines(project))
    assert main(["optimize", "configs/spotify.json", "--study", "old", "--trials", "2", *TPE]) == 0
    rows = lines(project)[before:]
    assert json.dumps(rows[0]) == json.dumps(old)  # recovered as the older version stored it
    assert [r["trial"] for r in rows] == [0, 1] and rows[1]["study"] == "old"
    assert in_order(rows[1], DOCUMENTED) and "trial_started" in rows[1]
    assert main(["optimize", "configs/spotify.json", "--study", "old", "--trials", "2", *TPE]) == 0
    assert len(lines(project)) == before + 2  # and a second resume logs neither again


def test_a_receipt_this_version_cannot_read_is_logged_as_stored_and_nothing_crashes(project: Path) -> None:
    """Shared storage may hold a newer worker's trial: a status this version does not know, a key in the
    middle it never wrote. Resuming the study logs that receipt exactly as stored (no reordering, nothing
    dropped) and goes on; the summary skips what it cannot read rather than stopping."""
    t = one_real_trial()
    mine = dict(t.user_attrs["receipt"])
    newer: dict[str, Any] = {}
    for k, v in mine.items():
        newer[k] = "newer" if k == "study" else v
        if k == "study":
            newer["study_uid"] = "c0ffee"
    newer["status"] = "interrupted"
    store_trial("newer", t, {"status": "interrupted", "passed": False, "receipt": newer})
    before = len(lines(project))
    assert main(["optimize", "configs/spotify.json", "--study", "newer", "--trials", "2", *TPE]) == 0
    rows = lines(project)[before:]
    assert json.dumps(rows[0]) == json.dumps(newer)
    assert rows[1]["study"] == "newer" and rows[1]["status"] == "ok"
