"""The virtual Live's Export dialog, driven over the same OSC connection as everything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autotune.live.client import OscClient
from autotune.live.errors import ExportFailed, LiveError
from autotune.live.export import RULE
from autotune.sim.server import EXPORT_ADDRESS


class SimExporter:
    """The virtual Live's Export dialog, driven over the same OSC connection as everything else."""

    name = "sim"

    def __init__(self, osc: OscClient, log: Callable[[str], None] = print) -> None:
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
