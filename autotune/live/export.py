"""Live's exporters (how an export is started; the protocol they meet is `autotune.vocabulary.export`'s) and
the one waiter that hands the verifier only complete files."""

from __future__ import annotations

import platform
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from autotune.live.errors import ExportFailed
from autotune.vocabulary.export import RULE

#: Seconds between looks at the export: a stat and a 12-byte header read, cheap enough to do often.
POLL_S = 0.05


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


def _riff_size_disagrees(path: Path, size: int) -> bool:
    """The RIFF header announces a file size other than `size`: a placeholder a DAW patches when it is done,
    or the final size of a file still being copied."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    announced = struct.unpack_from("<I", head, 4)[0] + 8
    return announced not in (size, size - 1)


def wait_for_export(
    path: Path,
    *,
    timeout_s: float,
    before: FileStamp | None,
    poll_s: float = POLL_S,
    stable_checks: int = 2,
    log: Callable[[str], None] = print,
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Wait until a new file at `path` is complete: changed since `before`, a WAV header whose sizes match
    the file, and size and mtime unchanged for a while. `abort` (the exporter's `problem`) is polled too, so
    a failed export program ends the wait at once.

    How long "a while" is depends on what the header did. A header seen announcing another size than the
    file's (a DAW's placeholder, or a copy's final size) that now matches has been finalised by its writer:
    one unchanged poll confirms it. A header that has matched the file while it still grew may be rewritten
    with every write, so it must stay unchanged for `stable_checks` polls, a pause in writing being all that
    tells such a file apart from a finished one."""
    log(f"Waiting for {path.name} to stabilize...")
    deadline = time.monotonic() + timeout_s
    last: FileStamp | None = None
    header_ok = False
    stable = 0  # polls in a row that saw the same stamp and the same verdict on the header
    problem: str | None = None
    placeholder_seen = False  # a header announcing another size than the file had
    matched_while_growing = False  # a matching header on a file that then changed
    while True:
        now = stamp(path)
        if now is not None and now != before:
            problem = wav_problem(path)
            if (now, problem is None) == (last, header_ok):
                stable += 1
            else:
                matched_while_growing |= header_ok and now != last
                stable, last, header_ok = 0, now, problem is None
            if problem is not None:
                placeholder_seen |= _riff_size_disagrees(path, now.size)
            elif stable >= (1 if placeholder_seen and not matched_while_growing else stable_checks):
                log("  ✓ File ready")
                return
        failure = abort() if abort is not None else None
        if failure is not None:
            raise ExportFailed(failure)
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    if last is None:
        raise ExportFailed(f"{path} did not appear within {timeout_s:g} s")
    if problem is None or stable < stable_checks:
        raise ExportFailed(f"{path} was still being written after {timeout_s:g} s ({last.size} bytes)")
    raise ExportFailed(f"{path} is not a complete WAV file: {problem}")


class ManualExporter:
    """The spec's prompt: the producer exports by hand; the file appearing (or Enter) moves on."""

    name = "manual"

    def __init__(self, log: Callable[[str], None] = print, grace_after_enter_s: float = 10.0) -> None:
        self.log = log
        self.grace_after_enter_s = grace_after_enter_s
        self._started = 0.0
        self._enter_at: float | None = None
        self._reader: threading.Thread | None = None

    def trigger(self, path: Path, display_path: str) -> None:
        self.log(RULE)
        self.log("📤 EXPORT NOW:")
        self.log("   File → Export Audio/Video")
        self.log("   Rendered Track = Master")
        self.log("   Normalize = OFF")
        self.log(f"   Filename: {display_path}")
        self.log(RULE)
        self._started = time.monotonic()
        if sys.stdin is not None and sys.stdin.isatty():
            self.log("Press Enter after export completes...")
            if self._reader is None:  # one reader for the whole run: every Enter is timestamped
                self._reader = threading.Thread(target=self._read_enters, daemon=True)
                self._reader.start()
        else:
            self.log("Waiting for the file to appear (no terminal to press Enter in)...")

    def _read_enters(self) -> None:
        while True:
            try:
                if not sys.stdin.readline():
                    return
            except (OSError, ValueError):
                return
            self._enter_at = time.monotonic()

    def problem(self) -> str | None:
        """Enter pressed for this export, and still no file `grace_after_enter_s` later."""
        at = self._enter_at
        if at is not None and at >= self._started and time.monotonic() - at >= self.grace_after_enter_s:
            return f"Enter was pressed but the file did not appear within {self.grace_after_enter_s:g} s"
        return None

    def close(self) -> None:
        pass


class CommandExporter:
    """Any program that writes the file: `--export-command 'render-master {path}'`.

    The template is split like a shell would split it, but no shell runs it: `{path}` is replaced inside the
    argument list, so no file name can become shell syntax. A non-zero exit fails the export at once; after
    a zero exit the waiter goes on until the file is complete or the timeout passes (the program may only
    have asked something else to export).
    """

    name = "command"

    def __init__(self, template: str, log: Callable[[str], None] = print) -> None:
        try:
            self.argv = shlex.split(template)
        except ValueError as e:
            raise ValueError(f"export command {template!r}: {e}") from None
        if not self.argv or not any("{path}" in a for a in self.argv):
            raise ValueError(f"export command {template!r} must name the file as {{path}}")
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        self.path: Path | None = None

    def command_for(self, path: Path) -> list[str]:
        return [a.replace("{path}", str(path)) for a in self.argv]

    def trigger(self, path: Path, display_path: str) -> None:
        argv = self.command_for(path)
        self.log(RULE)
        self.log(f"📤 EXPORTING WITH: {shlex.join(argv)}")
        self.log(RULE)
        self.path = path
        try:
            # stderr goes to a file, not a pipe: a chatty program would fill a pipe nobody reads and hang
            self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr
            )
        except OSError as e:
            raise ExportFailed(f"export command {argv[0]!r} could not start: {e.strerror or e}") from None

    def problem(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        if rc != 0:
            raw = b""
            if self.stderr is not None:
                self.stderr.seek(0)
                raw = self.stderr.read()[-4096:]
            err = raw.decode(errors="replace").strip()
            tail = err.splitlines()[-1] if err else "no message"
            return f"export command exited with status {rc}: {tail}"
        return None  # exit 0: the program may have started an export that finishes later; the waiter decides

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None


#: Drives Live's menus: Cmd+Shift+R opens Export Audio/Video (its defaults: Rendered Track = Master,
#: Normalize off), Return accepts it, and the Save dialog gets the folder (Cmd+Shift+G) and the file name.
#: Folder, name and application come in as arguments (`on run argv`), never spliced into the script text,
#: so no file name can change what the script does.
APPLESCRIPT = """on run argv
    set targetFolder to item 1 of argv
    set targetName to item 2 of argv
    set liveApp to item 3 of argv
    tell application liveApp to activate
    delay 0.5
    tell application "System Events"
        keystroke "r" using {command down, shift down}
        delay 1.5
        key code 36
        delay 1.5
        keystroke "g" using {command down, shift down}
        delay 0.8
        keystroke targetFolder
        key code 36
        delay 0.8
        keystroke "a" using {command down}
        keystroke targetName
        key code 36
    end tell
end run
"""


def applescript_argv(path: Path, app: str) -> list[str]:
    """`osascript - folder name app`: the script on stdin, every variable part an argument."""
    for part in (str(path), app):
        if any(ord(c) < 32 or c == "\x7f" for c in part):
            raise ValueError(f"{part!r}: control characters cannot be typed into a Save dialog")
    return ["osascript", "-", str(path.parent), path.name, app]


class AppleScriptExporter:
    """macOS only: UI automation of Live's export (needs Accessibility and Automation permissions)."""

    name = "applescript"

    def __init__(self, app: str = "Live", log: Callable[[str], None] = print) -> None:
        if platform.system() != "Darwin":
            raise ValueError("AppleScript export needs macOS; use --export manual or --export-command")
        if shutil.which("osascript") is None:
            raise ValueError("osascript is not on PATH")
        self.app = app
        self.log = log
        self.failure: str | None = None

    def trigger(self, path: Path, display_path: str) -> None:
        self.log(RULE)
        self.log(f"📤 AUTO-EXPORTING: {path.name}")
        self.log(RULE)
        self.failure = None
        done = subprocess.run(
            applescript_argv(path, self.app), input=APPLESCRIPT.encode(), capture_output=True, timeout=60
        )
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()
            hint = (
                " (allow your terminal in System Settings → Privacy & Security → Accessibility and Automation)"
                if "not allowed" in err or "1002" in err or "-1743" in err
                else ""
            )
            raise ExportFailed(f"AppleScript export failed: {err or done.returncode}{hint}")

    def problem(self) -> str | None:
        return None

    def close(self) -> None:
        pass
