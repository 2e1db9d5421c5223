from __future__ import annotations

import json
import random
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.live.client import OscClient
from autotune.sim import SimOptions, VirtualLive

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One on-disk demo-song cache for the whole session (synthesis costs ~0.7 s)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> Path:
    """A fresh project folder (configs/, output/) as the working directory, with clean AUTOTUNE_* env."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "output").mkdir()
    for var in list(__import__("os").environ):
        if var.startswith("AUTOTUNE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(demo_cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def many_runs_config(project: Path, n: int = 6) -> str:
    """configs/many.json: the example's second run repeated `n` times with different limiter gains."""
    config = json.loads((project / "configs" / "master_sweep.json").read_text())
    base = config["runs"][1]
    config["runs"] = [
        {
            **base,
            "id": f"run{i}",
            "export_file": f"output/run{i}.wav",
            "limiter": {"ceiling_db": -6.3, "gain_db": 10.0 + i},
        }
        for i in range(n)
    ]
    (project / "configs" / "many.json").write_text(json.dumps(config))
    return "configs/many.json"


def hear_sigint() -> None:
    """`preexec_fn` for a child a test will interrupt with SIGINT. A test run started in the background
    of a non-interactive shell (`.ci/run ... &`) inherits SIGINT ignored, and so would every autotune it
    starts: Python then installs no KeyboardInterrupt handler, and the Ctrl-C tests would send a signal no
    one hears. The child starts with the default disposition, as it does from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port that a process started later will bind. Taken below the kernel's ephemeral range: every
    socket the parallel tests bind to port 0 comes from that range, and one of them once took such a port
    between this check and the autotune process's bind ("Address already in use", CI)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12_000), low)
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise RuntimeError("no free port below the ephemeral range")


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture
def standalone_live(project: Path, demo_cache: Path) -> Iterator[tuple[VirtualLive, list[str]]]:
    """The virtual Live as a separate server (as `autotune sim serve` runs it) on free ports, and the CLI
    flags that reach it as a real Live."""
    reply_port = free_udp_port()
    sim = VirtualLive(
        "127.0.0.1",
        0,
        reply_port=reply_port,
        export_root=project / "output",
        options=SimOptions(cache_dir=demo_cache),
    )
    with sim:
        yield sim, ["--backend", "live", "--port", str(sim.port), "--reply-port", str(reply_port)]


@pytest.fixture
def live_pair(tmp_path: Path, demo_cache: Path) -> Iterator[tuple[VirtualLive, OscClient]]:
    """The virtual Live and a client, each on its own free UDP port on loopback."""
    sim = VirtualLive(
        "127.0.0.1", 0, reply_port=0, export_root=tmp_path, options=SimOptions(cache_dir=demo_cache)
    )
    client = OscClient("127.0.0.1", sim.port, reply_port=0, timeout=0.5, retries=1)
    sim.reply_port = client.reply_port
    sim.start()
    try:
        yield sim, client
    finally:
        client.close()
        sim.close()
