"""`autotune doctor`: check the rig before spending exports, with a fix for every failure.

The original tool lost most of its real sessions to things a checklist catches: a fader after the limiter,
edits going to the wrong chain, a bypassed device, exports that never appeared. `sweep` and `optimize` run
the fast, read-only part of this list (`preflight`) before their first export.

The checks live in submodules by what they look at: `check` (the result type), `live` (Live and the
chain), `export` (the export method, the output folder, the last export), `resample` (the capture route
of `--export resample`) and `run` (the full list and the preflight). Their names are re-exported here.
"""

from __future__ import annotations

from autotune.doctor.check import Check, Status
from autotune.doctor.export import check_export, check_last_export, check_output
from autotune.doctor.live import check_chain, check_fader, check_readback, check_readings, live_checks
from autotune.doctor.resample import TEST_CAPTURE_S, check_resample
from autotune.doctor.run import preflight, run_doctor

__all__ = [
    "TEST_CAPTURE_S",
    "Check",
    "Status",
    "check_chain",
    "check_export",
    "check_fader",
    "check_last_export",
    "check_output",
    "check_readback",
    "check_readings",
    "check_resample",
    "live_checks",
    "preflight",
    "run_doctor",
]
