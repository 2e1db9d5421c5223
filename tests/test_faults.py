"""Faults a rig meets for real, injected over real UDP: lost replies, Live going away, garbage on the reply
port, replies from elsewhere, exports that fail in every way, kills at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotune.cli import main
from autotune.live.client import OscClient
from autotune.sim import SimOptions, VirtualLive
from autotune.vocabulary.osc import build_message, parse_datagram
from tests.conftest import free_udp_port, hear_sigint, many_runs_config


class FaultProxy:
    """Sits between the client and the virtual Live: forwards queries, and forwards replies unless told
    to drop them (a fraction at random, or all of them once Live has "gone away")."""

    def __init__(self, sim: VirtualLive, client_reply_port: int, drop: float = 0.0, seed: int = 1) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        for s in (self.front, self.back):
            s.settimeout(0.05)
        self.port = self.front.getsockname()[1]
        sim.reply_port = self.back.getsockname()[1]
        self.sim_addr = ("127.0.0.1", sim.port)
        self.client_reply_port = client_reply_port
        self.drop, self.rng = drop, random.Random(seed)
        self.gone = False
        self.dropped = self.forwarded = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.front, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.back, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, sock: socket.socket, to_live: bool) -> None:
        while not self._stop.is_set():
            try:
                data, _ = sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            if self.gone:
                continue
            if to_live:
                self.back.sendto(data, self.sim_addr)
            elif self.rng.random() < self.drop:
                self.dropped += 1
            else:
                self.forwarded += 1
                self.front.sendto(data, ("127.0.0.1", self.client_reply_port))

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1)
        self.front.close()
        self.back.close()


@pytest.fixture
def proxied(project: Path, demo_cache: Path) -> Iterator[tuple[FaultProxy, list[str]]]:
    reply_port = free_udp_port()
    sim = VirtualLive(
        "127.0.0.1", 0, reply_port=0, export_root=project / "output", options=SimOptions(cache_dir=demo_cache)
    )
    with sim:
        proxy = FaultProxy(sim, reply_port)
        try:
            yield (
                proxy,
                [
                    "--backend",
                    "live",
                    "--port",
                    str(proxy.port),
                    "--reply-port",
                    str(reply_port),
                    "--export",
                    "sim",
                ],
            )
        finally:
            proxy.close()


def receipts(project: Path) -> list[dict]:
    path = project / "output" / "experiments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_fifth_of_replies_lost_the_run_completes_through_retries(
    project: Path, proxied: tuple[FaultProxy, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, flags = proxied
    proxy.drop = 0.2
    # Every lost reply costs one timeout: a short one (replies on loopback take well under a millisecond),
    # with retries to spare should a loaded machine let one run out before its reply is read.
    monkeypatch.setenv("AUTOTUNE_RETRIES", "10")
    assert main(["sweep", "configs/master_sweep.json", *flags, "--timeout", "0.1"]) == 0
    assert [r["status"] for r in receipts(project)] == ["ok", "ok", "ok"]
    assert proxy.dropped >= 10 and proxy.forwarded > proxy.dropped


def test_live_going_away_mid_run_exits_20_and_the_study_resumes(
    project: Path, proxied: tuple[FaultProxy, list[str]], demo_cache: Path
) -> None:
    proxy, flags = proxied
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")},
        "AUTOTUNE_CACHE_DIR": str(demo_cache),
        "AUTOTUNE_RETRIES": "1",
    }
    args = [
        sys.executable,
        "-m",
        "autotune",
        "sweep",
        "configs/master_sweep.json",
        *flags,
        "--timeout",
        "0.3",
    ]
    proc = subprocess.Popen(
        args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("EXPERIMENT 2/3"):
            proxy.gone = True  # Live quits: nothing answers any more
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 20, err
    assert err.strip().startswith("error: no reply from Live") and err.strip().count("\n") == 0
    assert [r["id"] for r in receipts(project)] == ["iter7"]
    proxy.gone = False  # Live is back: the same command finishes the study
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(r["id"] for r in receipts(project) if r["status"] == "ok") == ["iter7", "iter8", "iter9"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_reply_parsing_never_raises(data: bytes) -> None:
    for msg in parse_datagram(data, ("127.0.0.1", 1)):
        assert isinstance(msg.address, str)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=20))
def test_garbage_on_the_reply_port_does_not_disturb_the_client(live_pair_session, junk: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    _, client = live_pair_session
    noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in junk:
        noise.sendto(d, ("127.0.0.1", client.reply_port))
    noise.close()
    assert client.ping()


@pytest.fixture(scope="module")
def live_pair_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VirtualLive, OscClient]]:
    sim = VirtualLive("127.0.0.1", 0, reply_port=0, export_root=tmp_path_factory.mktemp("out"))
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=0.5, retries=1) as client:
        sim.reply_port = client.reply_port
        with sim:
            yield sim, client


def test_replies_from_another_address_are_ignored(tmp_path: Path) -> None:
    sim = VirtualLive("127.0.0.2", 0, reply_port=0, export_root=tmp_path)
    with OscClient("127.0.0.2", sim.port, reply_port=0, timeout=0.5, retries=0) as client:
        assert client._rx.getsockname()[0] == "127.0.0.1"  # the listener binds loopback by default
        sim.reply_port = client.reply_port
        with sim:
            forged = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            forged.bind(("127.0.0.1", 0))
            forged.sendto(
                build_message("/live/song/get/track_names", ["Evil"]), ("127.0.0.1", client.reply_port)
            )
            time.sleep(0.1)
            assert client.query("/live/song/get/track_names") == ("Drums", "Bass", "Chords", "Mix Bus")
            assert client.ignored >= 1
            forged.close()


EXPORT_FAULTS = """
import sys, time, os, random
path = sys.argv[1]
name = os.path.basename(path)
good = open(sys.argv[2], 'rb').read()
if 'iter7' in name:            # truncated: the header promises more than the file holds
    open(path, 'wb').write(good[: len(good) // 3])
elif 'iter8' in name:          # corrupt header
    open(path, 'wb').write(b'JUNK' + good[4:])
elif 'iter9' in name:          # never written
    pass
else:                          # still growing at the deadline (a background writer, for ~5 s)
    if os.fork() == 0:
        with open(path, 'wb') as f:
            for i in range(0, len(good), 8192):
                f.write(good[i:i + 8192]); f.flush(); time.sleep(0.05)
        os._exit(0)
"""


def test_export_faults_become_receipts_and_the_sweep_moves_on(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import soundfile as sf

    good = project / "good.wav"
    sf.write(good, np.zeros((48_000 * 3, 2)) + 0.1, 48_000, subtype="PCM_24")
    script = project / "faulty_export.py"
    script.write_text(EXPORT_FAULTS)
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    config["auto_export"] = {"enabled": False, "timeout_s": 1.0}
    config["runs"].append({**config["runs"][0], "id": "iter10", "export_file": "output/master_iter10.wav"})
    (project / "configs" / "faults.json").write_text(json.dumps(config))
    command = f"{sys.executable} {script} {{path}} {good}"
    assert main(["sweep", "configs/faults.json", "--export-command", command]) == 0
    errors = {r["id"]: r["error"] for r in receipts(project)}
    assert [r["status"] for r in receipts(project)] == ["export_failed"] * 4
    assert "is not a complete WAV file: header announces" in errors["iter7"]
    assert "is not a complete WAV file: not a RIFF/WAVE file" in errors["iter8"]
    assert "did not appear within 1 s" in errors["iter9"]
    assert "was still being written after 1 s" in errors["iter10"]


def test_random_sigint_and_sigkill_never_lose_or_duplicate_a_receipt(project: Path, demo_cache: Path) -> None:
    config = many_runs_config(project, 6)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")},
        "AUTOTUNE_CACHE_DIR": str(demo_cache),
    }
    args = [sys.executable, "-m", "autotune", "sweep", config]
    rng = random.Random(7)
    signals = [signal.SIGINT, signal.SIGKILL] * 3  # both kinds, in a random order
    rng.shuffle(signals)
    delays = [(k + rng.random()) * 0.6 for k in range(len(signals))]  # one in each 0.6 s of 0 .. 3.6 s
    rng.shuffle(delays)
    tried = []
    for sig, delay in zip(signals, delays, strict=True):
        proc = subprocess.Popen(
            args,
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=hear_sigint,
        )
        assert proc.stdout is not None
        # Timed from the first line of output, not from the spawn: start-up (imports) takes longer the
        # busier the machine and a signal there can lose nothing. From that line the signals spread from
        # resolving the chain and recovering the last kill's trial to the second trial (setting, exporting,
        # measuring, between Optuna's record and the JSONL's).
        proc.stdout.readline()
        time.sleep(delay)
        proc.send_signal(sig)  # a no-op if the sweep already finished by itself
        proc.communicate(timeout=60)
        tried.append((sig.name, proc.returncode))
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = (project / "output" / "experiments.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line parses
    keys = [(r["study"], r["trial"], r["trial_started"]) for r in rows]
    assert len(keys) == len(set(keys))  # no receipt twice
    ok = sorted(r["id"] for r in rows if r["status"] == "ok")
    assert ok == [f"run{i}" for i in range(6)]  # every run done once, none lost
    study = optuna.load_study(study_name="many", storage="sqlite:///studies/autotune.db")
    finished = {t.number for t in study.get_trials() if t.state.is_finished() and "receipt" in t.user_attrs}
    assert {r["trial"] for r in rows} == finished  # the JSONL and the storage agree
    assert any(code == 130 for _, code in tried) or any(code == -9 for _, code in tried)


def test_a_late_duplicate_reply_never_passes_for_a_later_read_back() -> None:
    """A reply that arrives after its query was retried must not answer the next query."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    with OscClient("127.0.0.1", peer.getsockname()[1], reply_port=0, timeout=0.2, retries=2) as client:

        def serve() -> None:
            getters = 0
            stale = b""
            while getters < 3:
                data, _ = peer.recvfrom(65536)
                (msg,) = parse_datagram(data, ("127.0.0.1", 0))
                if "/set/" in msg.address:
                    continue  # setters never answer
                getters += 1
                if getters == 1:  # the first query's answer comes late, after its retry has been answered
                    stale = build_message(msg.address, [*msg.args, "old"])
                    continue
                peer.sendto(
                    build_message(msg.address, [*msg.args, "old" if getters == 2 else "new"]),
                    ("127.0.0.1", client.reply_port),
                )
                if stale:
                    time.sleep(0.05)
                    peer.sendto(stale, ("127.0.0.1", client.reply_port))
                    stale = b""

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        assert client.query("/live/device/get/parameter/value_string", 0, 0, 0)[-1] == "old"
        time.sleep(0.1)  # the late duplicate is queued by now
        client.send("/live/device/set/parameter/value", 0, 0, 0, 1.0)
        assert client.query("/live/device/get/parameter/value_string", 0, 0, 0, after_send=True)[-1] == "new"
        t.join(timeout=2)
    peer.close()


def test_an_enter_meant_for_one_export_does_not_fail_the_next(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from autotune.live.export import ManualExporter

    class FakeTty:
        def __init__(self) -> None:
            self.lines = threading.Semaphore(0)

        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            self.lines.acquire()
            return "\n"

    tty = FakeTty()
    monkeypatch.setattr(sys, "stdin", tty)
    exporter = ManualExporter(log=lambda _: None, grace_after_enter_s=0.2)
    exporter.trigger(tmp_path / "a.wav", "a.wav")
    exporter.close()  # export 1 finished (its file appeared), and only then the producer presses Enter
    tty.lines.release()
    time.sleep(0.05)
    exporter.trigger(tmp_path / "b.wav", "b.wav")
    time.sleep(0.4)
    assert exporter.problem() is None  # that Enter was for export 1
    tty.lines.release()  # an Enter for export 2, with no file 0.2 s later: give up on it
    deadline = (
        time.monotonic() + 10
    )  # polled: the verdict comes 0.2 s after the Enter, later on a busy machine
    while exporter.problem() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exporter.problem() == "Enter was pressed but the file did not appear within 0.2 s"


def test_a_chatty_export_program_does_not_hang(tmp_path: Path) -> None:
    from autotune.live.export import CommandExporter, wait_for_export

    src = tmp_path / "src.wav"
    import numpy as np
    import soundfile as sf

    sf.write(src, np.zeros((4800, 2)) + 0.1, 48_000, subtype="PCM_24")
    script = tmp_path / "chatty.py"
    script.write_text(
        f"import sys, shutil\nsys.stderr.write('x' * 300000)\nshutil.copy({str(src)!r}, sys.argv[1])\n"
    )
    exporter = CommandExporter(f"{sys.executable} {script} {{path}}", log=lambda _: None)
    t0 = time.monotonic()
    exporter.trigger(tmp_path / "out.wav", "out.wav")
    wait_for_export(
        tmp_path / "out.wav", timeout_s=10, before=None, log=lambda _: None, abort=exporter.problem
    )
    exporter.close()
    assert time.monotonic() - t0 < 5


def test_nothing_is_written_outside_the_project(
    project: Path, demo_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """HOME and the temp folder stay as they were: exports, receipts, studies, caches live in the project."""
    home = tmp_path_factory.mktemp("home")
    tmp = tmp_path_factory.mktemp("tmp")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AUTOTUNE_", "XDG_"))},
        "HOME": str(home),
        "TMPDIR": str(tmp),
    }
    done = subprocess.run(
        [sys.executable, "-m", "autotune", "sweep", "configs/master_sweep.json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []
    made = {p.name for p in project.iterdir()}
    assert made <= {"configs", "output", "studies", ".cache"}


def test_an_interrupt_during_the_model_searchs_work_keeps_the_measurement(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an export the model search diagnoses it, remembers it and judges reach, which takes up to a
    second on a long song. Ctrl-C (or a kill) there once lost the measurement, and the resume exported the
    same setting again: the receipt is now recorded before that work."""
    import autotune.loop

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    real = autotune.loop.remember
    monkeypatch.setattr(autotune.loop, "remember", interrupt)
    assert main(["optimize", "configs/master_sweep.json", "--trials", "4"]) == 130
    first = [r for r in receipts(project) if r["trial"] is not None]
    assert [(r["trial"], r["status"]) for r in first] == [(0, "ok")]
    monkeypatch.setattr(autotune.loop, "remember", real)
    assert main(["optimize", "configs/master_sweep.json", "--trials", "4"]) in (0, 40)
    rows = [r for r in receipts(project) if r["trial"] is not None]
    assert [r["trial"] for r in rows].count(0) == 1
    settings = [json.dumps(r["params"], sort_keys=True) for r in rows]
    assert len(settings) == len(set(settings))  # no setting exported twice


def test_an_interrupt_after_the_receipt_is_made_never_runs_the_run_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C landing after a trial measured its export (attaching it for the dashboard) fails the trial in
    Optuna, but its receipt is real: the resume logs it and must not export the same run a second time."""
    import autotune.loop

    real = autotune.loop.upload_artifact
    calls = {"n": 0}

    def interrupt_second(**kwargs: object) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(autotune.loop, "upload_artifact", interrupt_second)
    assert main(["sweep", "configs/master_sweep.json"]) == 130
    # Optuna runs no callback for the interrupted trial: its receipt is logged before the exit, not only
    # by a resume the user may never start ("finished trials are logged", as the console says).
    assert [r["id"] for r in receipts(project)] == ["iter7", "iter8"]
    monkeypatch.setattr(autotune.loop, "upload_artifact", real)
    assert main(["sweep", "configs/master_sweep.json"]) == 0
    rows = receipts(project)
    assert sorted(r["id"] for r in rows if r["status"] == "ok") == ["iter7", "iter8", "iter9"]
