"""The JSONL audit trail: one receipt per finished trial, appended so that no line is ever torn.

Each receipt is serialised first and written with a single `write` on an O_APPEND descriptor under an
exclusive lock, then fsync'd: a crash leaves either the whole line or nothing, and several workers can
append to one file. A torn tail left by something else (a power cut, a hand edit) is moved aside to
`<name>.torn` before the next append, so the file stays parseable line by line.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _repair_tail(fd: int, path: Path) -> None:
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, max(0, size - 65536), os.SEEK_SET)
    tail = os.read(fd, 65536)
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    keep = size - len(tail) + cut + 1 if cut >= 0 else 0
    os.lseek(fd, keep, os.SEEK_SET)
    torn = os.read(fd, size - keep)
    with open(path.with_name(path.name + ".torn"), "ab") as f:
        f.write(torn + b"\n")
    os.ftruncate(fd, keep)


def _key(receipt: dict[str, Any]) -> tuple[str, int, str] | None:
    if not isinstance(receipt.get("trial"), int):
        return None
    return trial_key(str(receipt.get("study")), int(receipt["trial"]), str(receipt.get("trial_started")))


def _already_there(fd: int, key: tuple[str, int, str]) -> bool:
    """Whether a receipt of the same trial is in the file (checked under the lock, so workers agree)."""
    os.lseek(fd, 0, os.SEEK_SET)
    needle = json.dumps(key[2]).encode()
    with os.fdopen(os.dup(fd), "rb") as f:
        for raw in f:
            if needle in raw:
                try:
                    if _key(json.loads(raw)) == key:
                        return True
                except ValueError:
                    continue
    return False


def append(path: Path, receipt: dict[str, Any]) -> bool:
    """Append one receipt as one line; a trial's receipt is written once only. True when written."""
    line = (json.dumps(receipt, ensure_ascii=False, allow_nan=False, separators=(", ", ": ")) + "\n").encode()
    key = _key(receipt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_tail(fd, path)
        if key is not None and _already_there(fd, key):
            return False
        written = os.write(fd, line)
        if written != len(line):  # a short write on a full disk: undo it rather than leave half a line
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(f"short write to {path}")
        os.fsync(fd)
        return True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Every parseable receipt; a line that is not JSON (a torn tail) is skipped, never fatal."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj


def trial_key(study: str, number: int, started: str) -> tuple[str, int, str]:
    """What identifies a trial across restarts: a restarted study numbers its trials from 0 again."""
    return (study, number, started)
