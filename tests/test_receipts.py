"""The JSONL audit trail: whole lines only, torn tails moved aside, several writers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from autotune import receipts


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "experiments.jsonl"
    for i in range(3):
        row = {
            "id": f"r{i}",
            "study": "s",
            "trial": i,
            "trial_started": "t0",
            "results": {"lufs_i": -12.5 + i},
        }
        assert receipts.append(path, row)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r0", "r1", "r2"]
    assert [r["trial"] for r in receipts.read(path)] == [0, 1, 2]


def test_a_trial_is_logged_once_but_a_restarted_study_is_new(tmp_path: Path) -> None:
    path = tmp_path / "experiments.jsonl"
    row = {"id": "a", "study": "s", "trial": 0, "trial_started": "2026-11-25T05:00:00.000001"}
    assert receipts.append(path, row)
    assert not receipts.append(path, {**row, "id": "again"})  # the mirror and the recovery agree: once
    # A restarted study numbers its trials from 0 again: the start time tells them apart.
    assert receipts.append(path, {**row, "trial_started": "2026-11-25T06:00:00.000001"})
    assert len(path.read_text().splitlines()) == 2


def test_a_torn_tail_is_moved_aside_and_nothing_whole_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "experiments.jsonl"
    receipts.append(path, {"id": "whole", "trial": 0})
    with path.open("ab") as f:
        f.write(b'{"id": "torn", "tri')  # what a power cut mid-write could leave
    assert [r["id"] for r in receipts.read(path)] == ["whole"]  # readers skip it
    receipts.append(path, {"id": "next", "trial": 1})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["whole", "next"]
    assert (tmp_path / "experiments.jsonl.torn").read_text() == '{"id": "torn", "tri\n'


def test_nan_is_refused_rather_than_written(tmp_path: Path) -> None:
    path = tmp_path / "experiments.jsonl"
    try:
        receipts.append(path, {"lufs_i": float("nan")})
    except ValueError:
        pass
    else:
        raise AssertionError("NaN must not reach the JSONL")
    assert not path.exists() or path.read_text() == ""


def _writer(path: str, worker: int) -> None:
    for i in range(50):
        receipts.append(Path(path), {"worker": worker, "i": i, "pad": "x" * 3000})


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "experiments.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 200
    assert sorted((r["worker"], r["i"]) for r in rows) == [(w, i) for w in range(4) for i in range(50)]
