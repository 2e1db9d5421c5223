"""The two backends behind one small interface: an OSC client plus an exporter.

`sim` starts the virtual Live in-process on free loopback ports (and is the only place runtime code imports
`autotune.sim`); `live` talks AbletonOSC to a real Live, or to `autotune sim serve` with `--export sim`.

Reading Live (device-map, doctor) needs no exporter, so the exporter is built only when asked for:
`open_backend(..., exporter=True)`, what sweep and optimize use, builds it before Live is contacted and
refuses a bad export setting with one line; `exporter=False` builds it the first time `Backend.exporter` is
read, if ever.

`--export resample` changes the Set (a capture track, arm states, quantization), so with `exporter=True` its
route is set up here, before the chain's track is resolved: a track appended to the Set moves the master's
index on builds that address the master as index `len(tracks)`, and the chain must be found in the Set as
it will stay. The Set is put back when the backend closes, whatever ended the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from autotune.config import SweepConfig
from autotune.errors import ConfigError
from autotune.live.client import OscClient
from autotune.live.errors import LiveReadError, LiveTimeout
from autotune.live.export import AppleScriptExporter, CommandExporter, ManualExporter
from autotune.live.resample import ResampleExporter, ResampleSession
from autotune.settings import Settings
from autotune.vocabulary.export import Exporter

if TYPE_CHECKING:
    from autotune.sim import SimOptions

Log = Callable[[str], None]

#: How an export is made once `--export auto` is resolved (`export_method`).
ExportMethod = Literal["sim", "manual", "applescript", "command", "resample"]


class Backend:
    """An OSC client to Live, and the exporter, built the first time it is asked for."""

    def __init__(
        self,
        osc: OscClient,
        description: str,
        build: Callable[[], Exporter],
        exporter: Exporter | None = None,
    ) -> None:
        self.osc = osc
        self.description = description
        self._build = build
        self._exporter = exporter

    @property
    def exporter(self) -> Exporter:
        """The exporter; building it raises ConfigError (one line, exit 20) when the export setting is bad."""
        if self._exporter is None:
            self._exporter = self._build()
        return self._exporter


@contextmanager
def open_backend(
    settings: Settings, config: SweepConfig, log: Log, *, exporter: bool = True
) -> Iterator[Backend]:
    """The virtual Live in-process on free ports (`sim`), or a real Live over AbletonOSC (`live`).

    `exporter=True` (sweep, optimize): the exporter is built now, a bad export setting refused before any
    socket is opened. `exporter=False` (device-map, doctor): only reading, the exporter is built lazily."""
    method = export_method(settings, config)
    # The virtual Live's exporter and resampling talk over the client: built once it exists.
    ready = (
        make_exporter(settings, config, None, log) if exporter and method not in ("sim", "resample") else None
    )
    if settings.backend == "sim":
        from autotune.sim import VirtualLive

        live = VirtualLive(
            "127.0.0.1",
            0,
            reply_port=0,
            export_root=settings.output_dir,
            options=sim_options(settings),
        )
        try:
            osc = OscClient(
                "127.0.0.1",
                live.port,
                reply_host="127.0.0.1",
                reply_port=0,
                timeout=settings.timeout,
                retries=settings.retries,
            )
        except BaseException:
            live.close()
            raise
        live.reply_port = osc.reply_port
        live.start()
        description = f"virtual Live on 127.0.0.1:{live.port}"
    else:
        live = None
        osc = OscClient(
            settings.host,
            settings.port,
            reply_host=settings.reply_host,
            reply_port=settings.reply_port,
            timeout=settings.timeout,
            retries=settings.retries,
        )
        description = f"Live at {settings.host}:{settings.port}"
    backend = Backend(osc, description, lambda: make_exporter(settings, config, osc, log), ready)
    try:
        if exporter:
            built = backend.exporter  # the virtual Live's exporter needs the client: built now
            if isinstance(built, ResampleExporter):
                reach_live(osc)
                built.prepare()
        yield backend
    finally:
        try:
            if isinstance(backend._exporter, ResampleExporter):
                backend._exporter.finish()
        finally:
            osc.close()
            if live is not None:
                live.close()


def resample_session(settings: Settings, config: SweepConfig, osc: OscClient, log: Log) -> ResampleSession:
    """The capture route as the config says (span, keep_takes, timeout), its crash marker in the cache."""
    auto = config.auto_export
    return ResampleSession(
        osc,
        capture=auto.capture,
        keep_takes=auto.keep_takes if settings.keep_takes is None else settings.keep_takes,
        timeout_s=auto.timeout_s,
        marker_dir=settings.cache_dir / "resample",
        log=log,
    )


def reach_live(osc: OscClient) -> None:
    """Ping Live once; no answer is one line saying what to do (exit 20), not a reply timeout."""
    try:
        osc.ping()
    except LiveTimeout:
        raise LiveReadError(
            f"Live is not answering at {osc.host}:{osc.port} (replies expected on port {osc.reply_port}): "
            "start Live with the AbletonOSC control surface (autotune doctor checks the rig), or use --backend sim"
        ) from None


def sim_options(settings: Settings) -> SimOptions:
    """The virtual Live's flavour, physics, song and stress as the AUTOTUNE_SIM_* settings (or flags) say."""
    from autotune.sim.presets import sim_options as from_settings

    return from_settings(settings)


def export_method(settings: Settings, config: SweepConfig) -> ExportMethod:
    """The one place `--export auto` (AUTOTUNE_EXPORT) is resolved: `--export-command` alone means
    `command`; then the config's `auto_export.method` when it names one; the virtual Live (`--backend
    sim`) exports itself; a real Live follows the config's `auto_export.enabled` (on by default on macOS
    only): AppleScript when on, by hand when off."""
    choice = settings.export
    if choice != "auto":
        return choice
    if settings.export_command:
        return "command"
    if config.auto_export.method is not None:
        return config.auto_export.method
    if settings.backend == "sim":
        return "sim"
    return "applescript" if config.auto_export.is_enabled() else "manual"


def make_exporter(settings: Settings, config: SweepConfig, osc: OscClient | None, log: Log) -> Exporter:
    """The exporter `export_method` names; a setting it cannot work with is a ConfigError (exit 20).
    The virtual Live's exporter talks over `osc`, so it needs one; the others do not."""
    method = export_method(settings, config)
    try:
        if method == "sim":
            from autotune.sim import SimExporter

            if osc is None:
                raise AssertionError("the virtual Live's exporter needs the OSC client")
            return SimExporter(osc, log)
        if method == "command":
            if not settings.export_command:
                raise ValueError("--export command needs --export-command 'PROGRAM ... {path}'")
            return CommandExporter(settings.export_command, log)
        if method == "applescript":
            return AppleScriptExporter(settings.live_app, log)
        if method == "resample":
            if osc is None:
                raise AssertionError("resampling needs the OSC client")
            return ResampleExporter(resample_session(settings, config, osc, log), log)
    except ValueError as e:
        raise ConfigError(f"export: {e}") from None
    return ManualExporter(log)
