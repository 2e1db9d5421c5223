"""The waiter hands the verifier only complete files: slow, truncated, never-written and corrupt exports."""

from __future__ import annotations

import io
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotune.live.errors import ExportFailed
from autotune.live.export import stamp, wait_for_export, wav_problem


def wav_bytes(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(48_000 * seconds)) / 48_000
    sf.write(
        buf, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5, 48_000, subtype="PCM_24", format="WAV"
    )
    return buf.getvalue()


def test_wav_problem_accepts_a_complete_file_and_names_each_defect(tmp_path: Path) -> None:
    data = wav_bytes()
    ok = tmp_path / "ok.wav"
    ok.write_bytes(data)
    assert wav_problem(ok) is None
    cases = {
        "short.wav": (data[:8], "shorter than a WAV header"),
        "half.wav": (data[: len(data) // 2], "incomplete"),
        "text.wav": (b"hello, this is not audio at all", "not a RIFF/WAVE file"),
    }
    placeholder = bytearray(data)
    struct.pack_into("<I", placeholder, 4, 0)  # what a DAW writes before it knows the size
    cases["placeholder.wav"] = (bytes(placeholder), "incomplete")
    for name, (content, why) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        problem = wav_problem(p)
        assert problem is not None and why in problem, (name, problem)


def _writer(
    path: Path,
    data: bytes,
    chunks: int,
    delay: float,
    finish: bool = True,
    stop: threading.Event | None = None,
) -> threading.Thread:
    """Writes like a DAW: placeholder header, body in chunks, real header last (unless `finish` is False);
    a set `stop` ends the writing early (a render cancelled), leaving the file unfinished."""

    def run() -> None:
        header = bytearray(data[:44])
        struct.pack_into("<I", header, 4, 0)
        struct.pack_into("<I", header, 40, 0)
        body = data[44:]
        step = -(-len(body) // chunks)
        with path.open("wb") as f:
            f.write(header)
            for i in range(chunks):
                if stop is not None and stop.is_set():
                    return
                f.write(body[i * step : (i + 1) * step])
                f.flush()
                time.sleep(delay)
            if finish:
                f.seek(0)
                f.write(data[:44])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_slow_writer_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "slow.wav"
    data = wav_bytes()
    lines: list[str] = []
    t0 = time.monotonic()
    writer = _writer(path, data, chunks=6, delay=0.15)
    wait_for_export(path, timeout_s=5, before=None, log=lines.append, poll_s=0.05)
    writer.join()
    assert path.read_bytes() == data
    assert time.monotonic() - t0 >= 0.8
    assert lines[-1] == "  ✓ File ready"


def test_file_that_never_appears(tmp_path: Path) -> None:
    with pytest.raises(ExportFailed, match=r"did not appear within 0.3 s"):
        wait_for_export(tmp_path / "never.wav", timeout_s=0.3, before=None, log=lambda _: None, poll_s=0.05)


def test_half_written_file_that_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    _writer(path, wav_bytes(), chunks=4, delay=0.01, finish=False).join()
    with pytest.raises(ExportFailed, match=r"not a complete WAV file: header announces"):
        wait_for_export(path, timeout_s=0.5, before=None, log=lambda _: None, poll_s=0.05)


def test_file_still_growing_at_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "growing.wav"
    stop = threading.Event()
    # 2 s of writing, far past the 0.5 s deadline even on a loaded machine; stopped once the waiter gave up.
    writer = _writer(path, wav_bytes(2.0), chunks=40, delay=0.05, stop=stop)
    with pytest.raises(ExportFailed, match=r"still being written after 0.5 s"):
        wait_for_export(path, timeout_s=0.5, before=None, log=lambda _: None, poll_s=0.04)
    stop.set()
    writer.join()


def test_a_stale_file_from_an_earlier_export_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "again.wav"
    path.write_bytes(wav_bytes())
    before = stamp(path)
    with pytest.raises(ExportFailed):
        wait_for_export(path, timeout_s=0.3, before=before, log=lambda _: None, poll_s=0.05)
    time.sleep(0.01)
    _writer(path, wav_bytes(0.6), chunks=2, delay=0.01).join()
    wait_for_export(path, timeout_s=2, before=before, log=lambda _: None, poll_s=0.05)


class ScriptedWriter:
    """Writes a WAV one step per look of the waiter (driven from its `abort` hook), so what the waiter sees
    at each look is fixed, however fast or loaded the machine is. Steps: "start" (the header and a third
    of the audio), "append" (another third), "patch the header" (the true sizes), "wait"; "start" and
    "append" may add "+ header": write the sizes the file has at that moment."""

    def __init__(self, path: Path, data: bytes, steps: list[str]) -> None:
        self.path, self.data, self.steps = path, data, steps
        self.looks = 0
        self.size = 0

    def sizes(self, size: int) -> bytes:
        """The header announcing a `size`-byte file (0 for both sizes when `size` is 0)."""
        head = bytearray(self.data[:44])
        struct.pack_into("<I", head, 4, max(0, size - 8))
        struct.pack_into("<I", head, 40, max(0, size - 44))
        return bytes(head)

    def __call__(self) -> str | None:
        step = self.steps[self.looks] if self.looks < len(self.steps) else "wait"
        self.looks += 1
        if step.startswith("start"):
            self.path.write_bytes(self.sizes(0))  # sizes 0: what a DAW writes before it knows them
            self.size = 44
        if step.startswith(("start", "append")):
            self.size = min(len(self.data), self.size + (len(self.data) - 44) // 3 + 2)
            with self.path.open("r+b") as f:
                f.seek(44)
                f.write(self.data[44 : self.size])
                if step.endswith("+ header"):
                    f.seek(0)
                    f.write(self.sizes(self.size))
        elif step == "patch the header":
            with self.path.open("r+b") as f:
                f.write(self.data[:44])
        return None


def test_a_finalised_placeholder_header_is_taken_after_one_confirming_look(tmp_path: Path) -> None:
    path = tmp_path / "daw.wav"
    data = wav_bytes()
    writer = ScriptedWriter(path, data, ["start", "append", "append", "patch the header", "wait"])
    wait_for_export(path, timeout_s=5, before=None, log=lambda _: None, poll_s=0.001, abort=writer)
    assert path.read_bytes() == data
    assert writer.looks == 5  # look 5 saw the patched header, look 6 the same again: taken


def test_a_header_kept_right_while_growing_needs_two_quiet_looks(tmp_path: Path) -> None:
    # Some writers rewrite the header with every write: it matches the file at every moment, so only a
    # pause tells a finished file from one still growing. One quiet look is not enough.
    path = tmp_path / "updating.wav"
    data = wav_bytes()
    steps = ["start + header", "wait", "append + header", "wait", "append + header"]
    writer = ScriptedWriter(path, data, steps)
    wait_for_export(path, timeout_s=5, before=None, log=lambda _: None, poll_s=0.001, abort=writer)
    assert path.read_bytes() == data
