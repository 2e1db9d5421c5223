"""Machine settings (where Live is, where things are stored): AUTOTUNE_* env vars, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autotune.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOTUNE_", extra="forbid")

    backend: Literal["sim", "live"] = "sim"
    host: str = "127.0.0.1"
    port: int = Field(default=11000, ge=1, le=65535)
    reply_host: str = "127.0.0.1"
    reply_port: int = Field(default=11001, ge=0, le=65535)
    timeout: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    storage: str | None = None
    output_dir: Path = Path("output")
    studies_dir: Path = Path("studies")
    cache_dir: Path = Path(".cache")
    export: Literal["auto", "sim", "manual", "applescript", "command", "resample"] = "auto"
    export_command: str | None = None
    live_app: str = "Live"
    config: Path = Path("configs/master_sweep.json")
    artifacts_dir: Path = Path("studies/artifacts")
    sim_names: Literal["live12", "live11"] = "live12"
    sim_addressing: Literal["minus-1000", "master-string", "append", "namespace", "stock"] = "minus-1000"
    sim_chain_on: Literal["master", "bus"] = "master"
    sim_physics: str = "model"
    sim_song: str = "demo"
    #: Where the recordings' loops are (Debian's sonic-pi-samples installs them here).
    sim_samples_dir: Path = Path("/usr/share/sonic-pi/samples")
    #: Stress for benchmarks (autotune.sim.plants.Stress): the devices' input calibration offset (dB), the
    #: factor by which Makeup and the Limiter's Gain act relative to what they show, and a gain after the
    #: chain that OSC cannot see (dB).
    sim_input_offset_db: float = Field(default=0.0, ge=-24.0, le=24.0)
    sim_drive_slope: float = Field(default=1.0, gt=0.0, le=10.0)
    sim_post_gain_db: float = Field(default=0.0, ge=-24.0, le=24.0)
    #: The virtual Live's transport runs this many times faster than real time (1: real time, as Live).
    #: Only tests and demos of `--export resample` want anything else.
    sim_clock: float = Field(default=1.0, gt=0.0, le=1000.0)
    #: `--export resample`: keep the files of the takes it recorded (None: the config's auto_export.keep_takes).
    keep_takes: bool | None = None
    data_dir: Path = Path("data")
    heartbeat_s: int = Field(default=5, ge=1, le=600)
    grace_s: int = Field(default=20, ge=2, le=3600)

    @field_validator("sim_physics", "sim_song")
    @classmethod
    def _known_preset(cls, v: str, info: ValidationInfo) -> str:
        # The names only (a module that imports neither pedalboard nor the server), and only when given.
        from autotune.sim.presets import PHYSICS_NAMES, SONG_NAMES

        what, known = ("physics", PHYSICS_NAMES) if info.field_name == "sim_physics" else ("song", SONG_NAMES)
        if v not in known:
            raise ValueError(f"unknown {what} (choose from {', '.join(known)})")
        return v

    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{self.studies_dir / 'autotune.db'}"

    def receipts_path(self) -> Path:
        return self.output_dir / "experiments.jsonl"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with the given (CLI) values on top; one-line errors."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "settings"
        flag = f" or --{field.replace('_', '-')}" if field in overrides else ""
        raise ConfigError(
            f"setting {field} (AUTOTUNE_{field.upper()}{flag}) = {err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}"
        ) from None
