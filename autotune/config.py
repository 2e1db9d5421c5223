"""The sweep config: the spec's JSON, accepted exactly, with one-line errors that name field and value.

Devices are not hard-coded: `device_names` maps aliases to device names, and every other key of a run is
one of those aliases holding physical parameter values (dB, seconds, ratio), so EQ Eight or Utility can sit
beside Glue Compressor and Limiter in the same file.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autotune.errors import ConfigError
from autotune.platforms import Platform, get_platform, true_peak_limit_for
from objectives.limits import Limits

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
RUN_KEYS = ("id", "export_file")
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class CaptureSpan(BaseModel):
    """A span of the arrangement in beats, for `--export resample` (Live's song time is in beats)."""

    model_config = _STRICT

    start_beats: FiniteFloat = Field(ge=0.0)
    length_beats: FiniteFloat = Field(gt=0.0, le=100_000.0)


class AutoExport(BaseModel):
    model_config = _STRICT

    enabled: bool | None = None
    timeout_s: FiniteFloat = Field(default=600.0, gt=0, le=24 * 3600)
    #: How exports are made when --export / AUTOTUNE_EXPORT say "auto" (None: the spec's rule, `enabled`).
    method: Literal["applescript", "manual", "command", "resample"] | None = None
    #: What `resample` records: the Set's loop, the whole song, or an explicit span in beats.
    capture: Literal["loop", "song"] | CaptureSpan = "loop"
    #: `resample` deletes the clips it recorded; with this on it keeps their files (the clips still go).
    keep_takes: bool = False

    def is_enabled(self) -> bool:
        """The spec's default: automatic on macOS, by hand elsewhere."""
        return self.enabled if self.enabled is not None else platform.system() == "Darwin"


class Run(BaseModel):
    model_config = _STRICT

    id: str = Field(min_length=1, max_length=120)
    export_file: str = Field(min_length=1)
    devices: dict[str, dict[str, FiniteFloat]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_devices(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "devices" in data:
            raise ValueError("'devices' is not a run key: put each device alias at the top of the run")
        out = {k: v for k, v in data.items() if k in RUN_KEYS}
        out["devices"] = {k: v for k, v in data.items() if k not in RUN_KEYS}
        return out

    @field_validator("export_file")
    @classmethod
    def _relative_wav(cls, v: str) -> str:
        if PurePosixPath(v).is_absolute() or PureWindowsPath(v).is_absolute():
            raise ValueError("must be a path relative to the project folder, not absolute")
        if ".." in PurePosixPath(v.replace("\\", "/")).parts:
            raise ValueError("must not contain '..'")
        if not v.lower().endswith(".wav"):
            raise ValueError("must name a .wav file")
        return v

    @field_validator("devices")
    @classmethod
    def _keys_are_words(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for alias, values in v.items():
            for key in values:
                if not key or not key.replace("_", "").isalnum():
                    raise ValueError(f"{alias}: parameter key {key!r} must be a word such as threshold_db")
        return v

    def params(self) -> dict[str, dict[str, float]]:
        return {alias: dict(values) for alias, values in self.devices.items()}


class Choices(BaseModel):
    """A stepped parameter's allowed values, e.g. {"choices": [2, 4, 10]} for Glue's ratio."""

    model_config = _STRICT

    choices: list[FiniteFloat] = Field(min_length=1)


#: [low, high] in the key's unit, {"choices": [...]}, or null for "the device's range".
Bound = Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)] | Choices | None


class SweepConfig(BaseModel):
    model_config = _STRICT

    render_track: str = "Master"
    loop: str = "selection"
    normalize: bool = False
    target_lufs: FiniteFloat = Field(ge=-70.0, le=0.0)
    #: Sample-peak limit (the original design's); a true-peak limit beside or instead of it.
    peak_limit_dbfs: FiniteFloat | None = Field(default=None, ge=-60.0, le=0.0)
    peak_limit_dbtp: FiniteFloat | None = Field(default=None, ge=-60.0, le=0.0)
    lufs_tolerance: FiniteFloat = Field(default=0.5, gt=0.0, le=12.0)
    #: The platforms (autotune.platforms) the target came from: what the console says playback will do.
    preset: list[str] = Field(default_factory=list)
    master_track_id: int = -1000
    track: int | str | None = None
    device_names: dict[str, Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    auto_export: AutoExport = Field(default_factory=AutoExport)
    runs: list[Run] = Field(min_length=1)
    search: dict[str, dict[str, Bound]] | None = None

    @field_validator("device_names")
    @classmethod
    def _aliases(cls, v: dict[str, str]) -> dict[str, str]:
        for alias in v:
            if alias in (*RUN_KEYS, "devices") or not alias.replace("_", "").isalnum():
                raise ValueError(
                    f"alias {alias!r} must be a word (letters, digits, _) other than id, export_file and devices"
                )
        return v

    @model_validator(mode="after")
    def _a_peak_limit(self) -> SweepConfig:
        if self.peak_limit_dbfs is None and self.peak_limit_dbtp is None:
            raise _FieldError(
                "peak_limit_dbfs", None, "required field is missing (or give peak_limit_dbtp, or a preset)"
            )
        return self

    def limits(self) -> Limits:
        """The pass rule for this config (objectives.limits)."""
        return Limits(self.target_lufs, self.lufs_tolerance, self.peak_limit_dbfs, self.peak_limit_dbtp)

    def platforms(self) -> list[Platform]:
        return [get_platform(name) for name in self.preset]

    @model_validator(mode="after")
    def _runs_use_known_devices(self) -> SweepConfig:
        seen: dict[str, int] = {}
        for i, run in enumerate(self.runs):
            if run.id in seen:
                raise _FieldError(f"runs[{i}].id", run.id, f"duplicate run id (also runs[{seen[run.id]}])")
            seen[run.id] = i
            for alias in run.devices:
                if alias not in self.device_names:
                    known = ", ".join(self.device_names)
                    raise _FieldError(
                        f"runs[{i}].{alias}", None, f"unknown device key (device_names has: {known})"
                    )
        return self

    @model_validator(mode="after")
    def _search_uses_known_devices(self) -> SweepConfig:
        for alias, keys in (self.search or {}).items():
            if alias not in self.device_names:
                known = ", ".join(self.device_names)
                raise _FieldError(f"search.{alias}", None, f"unknown device key (device_names has: {known})")
            if not keys:
                raise _FieldError(f"search.{alias}", None, "names no parameter to search")
            for key, bound in keys.items():
                if not key or not key.replace("_", "").isalnum():
                    raise _FieldError(f"search.{alias}", key, "parameter key must be a word such as gain_db")
                if isinstance(bound, list) and not bound[0] < bound[1]:
                    raise _FieldError(f"search.{alias}.{key}", bound, "needs [low, high] with low < high")
        return self

    @field_validator("track")
    @classmethod
    def _track(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v < 0 and v != -1000:
            raise ValueError(
                "negative indices are ambiguous (stock AbletonOSC wraps -1 to the last regular track): "
                'use "master", -1000, a track name or an index from 0'
            )
        if isinstance(v, str) and not v.strip():
            raise ValueError("an empty track name")
        return v

    def chain_track(self) -> int | str:
        """The track carrying the chain: `track` when given, else the spec's `master_track_id`."""
        return self.track if self.track is not None else self.master_track_id

    def search_keys(self) -> dict[str, dict[str, Bound]]:
        """The parameters `optimize` tunes: the `search` section, or every key the runs set."""
        if self.search:
            return {alias: dict(keys) for alias, keys in self.search.items()}
        return {alias: dict.fromkeys(keys) for alias, keys in self.physical_keys().items() if keys}

    def physical_keys(self) -> dict[str, list[str]]:
        """alias -> the parameter keys any run sets, in first-seen order."""
        keys: dict[str, list[str]] = {alias: [] for alias in self.device_names}
        for run in self.runs:
            for alias, values in run.devices.items():
                for k in values:
                    if k not in keys[alias]:
                        keys[alias].append(k)
        return keys


class _FieldError(ValueError):
    def __init__(self, where: str, value: object, why: str) -> None:
        super().__init__(why)
        self.where, self.value, self.why = where, value, why


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if part == "devices":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def preset_target(names: list[str]) -> dict[str, float]:
    """The one target that meets every named platform: the overlap of their loudness windows (its middle,
    with half its width as the tolerance) under the strictest of their true-peak limits.

    One master for every platform is what a producer ships (a distributor sends the same file to all of
    them), so several presets are combined rather than run as separate studies; when their windows do not
    overlap, no single master can meet them, and the error names the pair that binds."""
    platforms = [get_platform(n) for n in names]
    low = max(platforms, key=lambda p: p.target_lufs - p.tolerance_lu)
    high = min(platforms, key=lambda p: p.target_lufs + p.tolerance_lu)
    lo, hi = low.target_lufs - low.tolerance_lu, high.target_lufs + high.tolerance_lu
    if lo > hi + 1e-9:
        tolerances = " and ".join(dict.fromkeys(f"±{p.tolerance_lu:g}" for p in (low, high)))
        raise ConfigError(
            f"{low.label}'s {low.target_lufs:g} LUFS and {high.label}'s {high.target_lufs:g} LUFS cannot both "
            f"be within {tolerances} LU: one master cannot meet both; "
            "run one study per platform (--preset "
            f"{low.name} --study {low.name}, then --preset {high.name} --study {high.name})"
        )
    # A platform whose limit depends on the loudness (Spotify: -2 dBTP above -14 LUFS) gets the limit
    # for the loudest master the window allows, so every master that passes meets it.
    tp = min(true_peak_limit_for(p, hi) for p in platforms)
    return {
        "target_lufs": round((lo + hi) / 2, 6),
        "lufs_tolerance": round((hi - lo) / 2, 6),
        "peak_limit_dbtp": tp,
    }


def _apply_presets(data: dict[str, Any], cli_presets: list[str]) -> dict[str, Any]:
    """A preset from the command line replaces the file's target and limits (the command line is the most
    explicit thing a user says); one in the file fills only what the file leaves out (explicit values in
    the file override its preset)."""
    if cli_presets:
        return {**data, **preset_target(cli_presets), "peak_limit_dbfs": None, "preset": list(cli_presets)}
    named = data.get("preset")
    if named is None:
        return data
    names = [named] if isinstance(named, str) else named
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("preset: must be a platform name or a non-empty list of names")
    return {**preset_target(names), **data, "preset": names}


def load_config(
    path: str | Path, output_dir: Path = Path("output"), presets: list[str] | None = None
) -> SweepConfig:
    """Read and validate; every failure is a `ConfigError` with one line naming the field and the value."""
    p = Path(path)
    where = f"config {p}"
    if not p.exists():
        raise ConfigError(f"{where}: file not found")
    if p.is_dir():
        raise ConfigError(f"{where}: is a directory, not a JSON file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if not text.strip():
        raise ConfigError(f"{where}: file is empty")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a JSON object, got {type(data).__name__}")
    try:
        data = _apply_presets(data, list(presets or []))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    try:
        config = SweepConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            shown = f" = {ctx_err.value!r}" if ctx_err.value is not None else ""
            raise ConfigError(f"{where}: {ctx_err.where}{shown}: {ctx_err.why}") from None
        field = _where(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            raise ConfigError(f"{where}: {field}: required field is missing") from None
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: {field}: unknown field") from None
        value = err.get("input")
        shown = f" = {value!r}" if not isinstance(value, (dict, list)) else ""
        raise ConfigError(f"{where}: {field}{shown}: {msg}") from None
    out_root = output_dir.resolve()
    for i, run in enumerate(config.runs):
        target = Path(run.export_file).resolve()
        if not target.is_relative_to(out_root) or target == out_root:
            raise ConfigError(
                f"{where}: runs[{i}].export_file = {run.export_file!r}: must be inside the output folder "
                f"{output_dir}/"
            )
    return config
