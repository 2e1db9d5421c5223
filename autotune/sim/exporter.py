"""The virtual Live's Export dialog, driven over the same OSC connection as everything else."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from autotune.errors import ExportFailed, LiveError
from autotune.sim.server import EXPORT_ADDRESS
from autotune.vocabulary.export import RULE
from autotune.vocabulary.osc import OscConnection, build_message


class SimExporter:
    """The virtual Live's Export dialog, driven over the same OSC connection as everything else."""

    name = "sim"

    def __init__(self, osc: OscConnection, log: Callable[[str], None] = print) -> None:
        self.osc = osc
        self.log = log

    def trigger(self, path: Path, display_path: str) -> None:
        self.log(RULE)
        self.log(f"📤 AUTO-EXPORTING: {path.name}")
        self.log(RULE)
        try:
            # A lost acknowledgement only makes the virtual Live render the same file again: retrying is safe.
            self.osc.query(
                EXPORT_ADDRESS, str(path.resolve()), timeout=max(self.osc.timeout, 10.0), retries=2
            )
        except LiveError as e:
            raise ExportFailed(f"the virtual Live did not start the export: {e}") from None

    def problem(self) -> str | None:
        return None

    def close(self) -> None:
        pass


def request_export(host: str, port: int, path: Path) -> None:
    """Ask the virtual Live at host:port to export to `path` and do not wait for its answer, as a click on
    Export would: this is what `autotune sim export` runs as another autotune's export command, and that
    autotune holds the reply port, so nothing here may listen on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(build_message(EXPORT_ADDRESS, [str(path)]), (host, port))
