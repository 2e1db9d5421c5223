"""The two backends behind one small interface: an OSC client plus an exporter.

`sim` starts the virtual Live in-process on free loopback ports (and is the only place runtime code imports
`autotune.sim`); `live` talks AbletonOSC to a real Live, or to `autotune sim serve` with `--export sim`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autotune.config import SweepConfig
from autotune.errors import ConfigError
from autotune.live.client import OscClient
from autotune.live.export import AppleScriptExporter, CommandExporter, Exporter, ManualExporter
from autotune.settings import Settings

if TYPE_CHECKING:
    from autotune.sim import SimOptions

Log = Callable[[str], None]


@dataclass
class Backend:
    osc: OscClient
    exporter: Exporter
    description: str


@contextmanager
def open_backend(settings: Settings, config: SweepConfig, log: Log) -> Iterator[Backend]:
    """The virtual Live in-process on free ports (`sim`), or a real Live over AbletonOSC (`live`)."""
    if settings.backend == "sim":
        from autotune.sim import VirtualLive

        live = VirtualLive(
            "127.0.0.1",
            0,
            reply_port=0,
            export_root=settings.output_dir,
            options=sim_options(settings),
        )
        osc = OscClient(
            "127.0.0.1",
            live.port,
            reply_host="127.0.0.1",
            reply_port=0,
            timeout=settings.timeout,
            retries=settings.retries,
        )
        live.reply_port = osc.reply_port
        live.start()
        try:
            yield Backend(
                osc, make_exporter(settings, config, osc, log), f"virtual Live on 127.0.0.1:{live.port}"
            )
        finally:
            osc.close()
            live.close()
        return
    osc = OscClient(
        settings.host,
        settings.port,
        reply_host=settings.reply_host,
        reply_port=settings.reply_port,
        timeout=settings.timeout,
        retries=settings.retries,
    )
    try:
        yield Backend(
            osc, make_exporter(settings, config, osc, log), f"Live at {settings.host}:{settings.port}"
        )
    finally:
        osc.close()


def sim_options(settings: Settings) -> SimOptions:
    """The virtual Live's flavour, physics and song as the AUTOTUNE_SIM_* settings (or flags) say."""
    from autotune.dsp import PHYSICS, SONGS
    from autotune.sim import SimOptions

    return SimOptions(
        names=settings.sim_names,
        addressing=settings.sim_addressing,
        chain_on=settings.sim_chain_on,
        cache_dir=settings.cache_dir,
        physics=PHYSICS[settings.sim_physics],
        demo=SONGS[settings.sim_song],
    )


def make_exporter(settings: Settings, config: SweepConfig, osc: OscClient, log: Log) -> Exporter:
    """`--export` (or AUTOTUNE_EXPORT); `auto` follows the config's `auto_export` (on by default on macOS),
    and `--export-command` alone means `command`."""
    choice = settings.export
    if choice == "auto":
        if settings.export_command:
            choice = "command"
        elif settings.backend == "sim":
            choice = "sim"
        else:
            choice = "applescript" if config.auto_export.is_enabled() else "manual"
    try:
        if choice == "sim":
            from autotune.sim import SimExporter

            return SimExporter(osc, log)
        if choice == "command":
            if not settings.export_command:
                raise ValueError("--export command needs --export-command 'PROGRAM ... {path}'")
            return CommandExporter(settings.export_command, log)
        if choice == "applescript":
            return AppleScriptExporter(settings.live_app, log)
    except ValueError as e:
        raise ConfigError(f"export: {e}") from None
    return ManualExporter(log)
