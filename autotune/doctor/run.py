"""The doctor's two lists: every check in order (`run_doctor`, for `autotune doctor`), and the fast,
read-only part that `sweep` and `optimize` run before their first export (`preflight`).
"""

from __future__ import annotations

from collections.abc import Callable

from autotune.backends import export_method
from autotune.config import SweepConfig
from autotune.doctor.check import Check
from autotune.doctor.export import check_export, check_last_export, check_output
from autotune.doctor.live import check_chain, live_checks
from autotune.doctor.resample import check_resample
from autotune.live.client import OscClient
from autotune.live.devices import MasterChain
from autotune.live.errors import LiveReadError
from autotune.settings import Settings


def run_doctor(
    osc: OscClient, config: SweepConfig, settings: Settings, log: Callable[[str], None]
) -> list[Check]:
    """Every check, in order. The export method and the output folder need no Live: they are reported even
    when Live cannot be reached or the chain cannot be read, so one run shows every problem it can."""
    last = check_last_export(settings)
    live = live_checks(osc, config, log)
    reachable = bool(live) and live[0].name == "Live reachable" and live[0].status == "ok"
    route = (
        check_resample(osc, config, settings, log)
        if reachable and export_method(settings, config) == "resample"
        else []
    )
    return [
        *live,
        check_export(settings, config),
        *route,
        check_output(settings),
        *([last] if last is not None else []),
    ]


def preflight(chain: MasterChain, config: SweepConfig, settings: Settings) -> None:
    """The fast, read-only checks before the first export; a blocking failure stops the run (exit 20)."""
    names = chain.live.device_names(chain.track)
    checks = [
        *check_chain(chain.live, chain.track, config, names),
        check_export(settings, config),
        check_output(settings),
    ]
    for c in checks:
        if c.status == "fail":
            raise LiveReadError(f"{c.name}: {c.detail}; {c.fix} (autotune doctor checks the whole rig)")
