"""What starts an export: the contract between one trial and each exporter, and the banner they print.

A trial neither knows nor cares whether Live's Export dialog is driven by the producer, AppleScript, a
command, a resample capture or the virtual Live; it calls `trigger` and leaves the waiting to the one
waiter (`autotune.live.export.wait_for_export`). Live's exporters and the virtual Live's implement the
same protocol, so it is stated here, below both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

#: The line an exporter prints above and below "📤 AUTO-EXPORTING: ...", the same for every exporter.
RULE = "─" * 66


class Exporter(Protocol):
    """Starts one export of the master to `path`; the waiter then decides when the file is complete."""

    name: str

    def trigger(self, path: Path, display_path: str) -> None: ...

    def problem(self) -> str | None:
        """Polled while waiting: a reason to give up at once (a failed export program, Enter with no file)."""
        ...

    def close(self) -> None:
        """After each wait, done or failed: stop whatever the export left running."""
        ...
