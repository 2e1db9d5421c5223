"""Exporters (how an export is started) and the one waiter that hands the verifier only complete files."""

from __future__ import annotations

import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from autotune.live.errors import ExportFailed

POLL_S = 0.1


class Exporter(Protocol):
    """Starts one export of the master to `path`; the waiter then decides when the file is complete."""

    name: str

    def trigger(self, path: Path, display_path: str) -> None: ...


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int
    inode: int


def stamp(path: Path) -> FileStamp | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return FileStamp(st.st_size, st.st_mtime_ns, st.st_ino)


def wav_problem(path: Path) -> str | None:
    """None when the RIFF/WAVE header agrees with the file's size; otherwise what is wrong with it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12:
                return f"only {size} bytes, shorter than a WAV header"
            riff, riff_size, wave = struct.unpack("<4sI4s", head)
            if riff != b"RIFF" or wave != b"WAVE":
                return "not a RIFF/WAVE file (bad header)"
            if riff_size + 8 != size and riff_size + 8 + 1 != size:
                return f"header announces {riff_size + 8} bytes but the file has {size} (incomplete)"
            pos, have_fmt = 12, False
            while pos + 8 <= size:
                f.seek(pos)
                cid, csize = struct.unpack("<4sI", f.read(8))
                if cid == b"fmt ":
                    have_fmt = True
                if cid == b"data":
                    if not have_fmt:
                        return "data chunk before the fmt chunk"
                    if pos + 8 + csize > size:
                        return f"data chunk announces {csize} bytes but only {size - pos - 8} are there"
                    if csize == 0:
                        return "data chunk is empty"
                    return None
                pos += 8 + csize + (csize & 1)
            return "no data chunk"
    except OSError as e:
        return f"cannot read: {e.strerror or e}"


def wait_for_export(
    path: Path,
    *,
    timeout_s: float,
    before: FileStamp | None,
    poll_s: float = POLL_S,
    stable_checks: int = 2,
    log: Callable[[str], None] = print,
    give_up: threading.Event | None = None,
) -> None:
    """Wait until a new file at `path` is complete: changed since `before`, size and mtime stable for
    `stable_checks` polls in a row, and a WAV header whose sizes match the file."""
    log(f"Waiting for {path.name} to stabilize...")
    deadline = time.monotonic() + timeout_s
    last: FileStamp | None = None
    stable = 0
    problem: str | None = None
    while True:
        now = stamp(path)
        if now is not None and now != before:
            if now == last:
                stable += 1
            else:
                stable, last = 0, now
            if stable >= stable_checks:
                problem = wav_problem(path)
                if problem is None:
                    log("  ✓ File ready")
                    return
        if time.monotonic() >= deadline or (give_up is not None and give_up.is_set()):
            break
        time.sleep(poll_s)
    if last is None:
        why = "Enter was pressed but" if give_up is not None and give_up.is_set() else ""
        raise ExportFailed(f"{why} {path} did not appear within {timeout_s:g} s".strip())
    if stable < stable_checks:
        raise ExportFailed(f"{path} was still being written after {timeout_s:g} s ({last.size} bytes)")
    raise ExportFailed(f"{path} is not a complete WAV file: {problem}")


RULE = "─" * 66


class ManualExporter:
    """The spec's prompt: the producer exports by hand; the file appearing (or Enter) moves on."""

    name = "manual"

    def __init__(self, log: Callable[[str], None] = print, grace_after_enter_s: float = 10.0) -> None:
        self.log = log
        self.grace_after_enter_s = grace_after_enter_s
        self.entered = threading.Event()

    def trigger(self, path: Path, display_path: str) -> None:
        self.log(RULE)
        self.log("📤 EXPORT NOW:")
        self.log("   File → Export Audio/Video")
        self.log("   Rendered Track = Master")
        self.log("   Normalize = OFF")
        self.log(f"   Filename: {display_path}")
        self.log(RULE)
        self.entered.clear()
        if sys.stdin is not None and sys.stdin.isatty():
            self.log("Press Enter after export completes...")
            threading.Thread(target=self._wait_enter, daemon=True).start()
        else:
            self.log("Waiting for the file to appear (no terminal to press Enter in)...")

    def _wait_enter(self) -> None:
        try:
            sys.stdin.readline()
        except (OSError, ValueError):
            return
        time.sleep(self.grace_after_enter_s)
        self.entered.set()
