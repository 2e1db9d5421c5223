"""Devices and parameters on a Live track, resolved by name at run time and written in physical units."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from autotune.errors import UnsettableValue
from autotune.live.client import OscClient
from autotune.live.errors import LiveErrorReply, LiveReadError, LiveWriteError
from autotune.live.tracks import Track
from autotune.vocabulary.display import Display, DisplayLaw, parse_display
from autotune.vocabulary.fader import FADER_0DB
from autotune.vocabulary.keys import PARAM_ALIASES, UnitSpec, split_key
from autotune.vocabulary.osc import OscArg


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class ParameterNotFound(LiveReadError):
    pass


class ValueOutOfRange(LiveReadError):
    """A requested physical value the parameter cannot take: an input error, found before any export."""


@dataclass(frozen=True)
class ParamInfo:
    index: int
    name: str
    min: float
    max: float
    is_quantized: bool
    value: float


@dataclass(frozen=True)
class Applied:
    device: str
    key: str
    param: str
    target: float
    raw: float
    display: str


def _floats(args: Iterable[OscArg]) -> list[float]:
    return [float(a) for a in args]


class LiveSet:
    """Thin, typed wrappers over the AbletonOSC getters and setters this project uses, on a resolved track."""

    def __init__(self, osc: OscClient) -> None:
        self.osc = osc

    def _get(self, track: Track, path: str, *rest: OscArg, after_send: bool = False) -> tuple[OscArg, ...]:
        """Query and strip the echoed ids from the reply."""
        address, args = track.address(path, path.removeprefix("track/"), *rest)
        return self.osc.query(address, *args, after_send=after_send)[len(args) :]

    def device_names(self, track: Track) -> list[str]:
        return [str(a) for a in self._get(track, "track/get/devices/name")]

    def parameters(self, track: Track, device: int) -> list[ParamInfo]:
        def column(what: str) -> list[OscArg]:
            return list(self._get(track, f"device/get/parameters/{what}", device))

        names = [str(n) for n in column("name")]
        mins, maxs = _floats(column("min")), _floats(column("max"))
        quantized = [bool(int(q)) for q in column("is_quantized")]
        values = _floats(column("value"))
        if not (len(names) == len(mins) == len(maxs) == len(quantized) == len(values)):
            raise LiveReadError(f"inconsistent parameter lists for track {track.label} device {device}")
        return [ParamInfo(i, names[i], mins[i], maxs[i], quantized[i], values[i]) for i in range(len(names))]

    def value(self, t: Track, d: int, p: int, *, after_send: bool = False) -> float:
        return float(self._get(t, "device/get/parameter/value", d, p, after_send=after_send)[0])

    def value_string(self, t: Track, d: int, p: int, *, after_send: bool = False) -> str:
        return str(self._get(t, "device/get/parameter/value_string", d, p, after_send=after_send)[0])

    def set_value(self, t: Track, d: int, p: int, raw: float) -> tuple[str, tuple[OscArg, ...]]:
        address, args = t.address(
            "device/set/parameter/value", "device/set/parameter/value", d, p, float(raw)
        )
        self.osc.send(address, *args)
        return address, args

    def volume(self, t: Track, *, after_send: bool = False) -> float:
        return float(self._get(t, "track/get/volume", after_send=after_send)[0])

    def set_volume(self, t: Track, raw: float) -> tuple[str, tuple[OscArg, ...]]:
        address, args = t.address("track/set/volume", "set/volume", float(raw))
        self.osc.send(address, *args)
        return address, args


def resolve_parameter(key: str, params: list[ParamInfo], device: str) -> tuple[ParamInfo, UnitSpec]:
    base, unit = split_key(key)
    candidates = [*PARAM_ALIASES.get(base, ()), base]
    by_name = {_norm(p.name): p for p in params}
    for c in candidates:
        if (p := by_name.get(_norm(c))) is not None:
            return p, unit
    names = ", ".join(p.name for p in params)
    raise ParameterNotFound(f"{device}: no parameter matches {key!r} (parameters: {names})")


@dataclass
class _Slot:
    device_alias: str
    device_index: int
    device_name: str
    param: ParamInfo
    unit: UnitSpec
    law: DisplayLaw


@dataclass
class MasterChain:
    """The configured devices on one track, with every parameter the config touches resolved and learnt."""

    live: LiveSet
    track: Track
    device_names: Mapping[str, str]
    log: Callable[[str], None] = print
    devices: dict[str, tuple[int, list[ParamInfo]]] = field(default_factory=dict)
    slots: dict[tuple[str, str], _Slot] = field(default_factory=dict)
    fader_by_hand: bool = False
    baseline: dict[tuple[str, str], float] = field(default_factory=dict)

    def resolve(self) -> None:
        self.log(f"Resolving devices on track {self.track.label}...")
        names = self.live.device_names(self.track)
        for alias, name in self.device_names.items():
            idx = next((i for i, n in enumerate(names) if n.lower() == name.lower()), None)
            if idx is None:
                found = ", ".join(repr(n) for n in names) or "no devices"
                raise LiveReadError(
                    f"Device {name!r} ({alias}) not found on track {self.track.label} (found: {found})"
                )
            self.log(f"  {names[idx]}: device {idx}")
            self.devices[alias] = (idx, [])
        for alias, (idx, _) in self.devices.items():
            self.log(f"Resolving {self.device_names[alias]} parameters...")
            params = self.live.parameters(self.track, idx)
            self.devices[alias] = (idx, params)
            self.log(f"  Found {len(params)} params")

    def _probe(self, d: int, p: int) -> Callable[[float], Display]:
        def probe(raw: float) -> Display:
            address, args = self.live.set_value(self.track, d, p, raw)
            try:
                text = self.live.value_string(self.track, d, p, after_send=True)
            except LiveErrorReply as e:
                raise LiveWriteError(f"Live refused {address} {list(args)}: {e}") from None
            return parse_display(text)

        return probe

    def slot(self, alias: str, key: str) -> _Slot:
        if (alias, key) in self.slots:
            return self.slots[(alias, key)]
        if alias not in self.devices:
            raise LiveReadError(f"device alias {alias!r} is not in device_names")
        d, params = self.devices[alias]
        name = self.device_names[alias]
        info, unit = resolve_parameter(key, params, name)
        law = DisplayLaw(f"{name} {info.name}", info.min, info.max, info.is_quantized)
        s = _Slot(alias, d, name, info, unit, law)
        self.slots[(alias, key)] = s
        return s

    def learn(self, alias: str, key: str) -> tuple[float, float, str]:
        """Physical range of a config key's parameter, in the key's units (learnt from the display)."""
        s = self.slot(alias, key)
        s.law.learn(self._probe(s.device_index, s.param.index))
        unit = s.law.unit()
        if s.unit.unit is not None and unit != s.unit.unit:
            sample = next(iter(s.law.samples.values())).text
            raise ValueOutOfRange(
                f"{alias}.{key}: {s.device_name} {s.param.name} shows {sample!r}, not {s.unit.describe()}"
            )
        try:
            lo, hi = s.law.physical_range()
        except UnsettableValue as e:
            raise ValueOutOfRange(f"{alias}.{key}: {e}") from None
        return lo / s.unit.factor, hi / s.unit.factor, s.law.describe_range()

    def choices(self, alias: str, key: str) -> list[float] | None:
        """The values a stepped parameter can take, in the key's units (None when continuous)."""
        s = self.slot(alias, key)
        steps = s.law.steps(self._probe(s.device_index, s.param.index))
        return None if steps is None else [v / s.unit.factor for v in steps]

    def check(self, alias: str, key: str, value: float, where: str) -> None:
        lo, hi, shown = self.learn(alias, key)
        s = self.slots[(alias, key)]
        lo_slack, hi_slack = (x / s.unit.factor for x in s.law.range_slack())
        slack = max(lo_slack, hi_slack)
        if not (lo - lo_slack - 1e-12 <= value <= hi + hi_slack + 1e-12):
            raise ValueOutOfRange(
                f"{where}.{alias}.{key} = {value:g} is outside {s.device_name} {s.param.name} range {shown}"
            )
        steps = self.choices(alias, key)
        if steps is not None and not any(abs(v - value) <= slack + 1e-9 for v in steps):
            allowed = ", ".join(f"{v:g}" for v in steps)
            raise ValueOutOfRange(
                f"{where}.{alias}.{key} = {value:g}: {s.device_name} {s.param.name} can only be {allowed}"
            )

    def snapshot(self, keys: list[tuple[str, str]]) -> None:
        """Remember the raw value each parameter has now: the baseline a run's unlisted parameters return to."""
        for alias, key in keys:
            s = self.slot(alias, key)
            self.baseline[(alias, key)] = self.live.value(self.track, s.device_index, s.param.index)

    def _confirm_raw(self, s: _Slot, raw: float) -> None:
        """The raw value Live holds now must be the one written (float32 on the wire)."""
        back = self.live.value(self.track, s.device_index, s.param.index)
        if abs(back - raw) > 1e-5 * max(1.0, abs(s.param.max - s.param.min)):
            raise LiveWriteError(
                f"{s.device_name} {s.param.name}: wrote raw {raw:g} but Live reads back {back:g}"
            )

    def restore(self, alias: str, key: str) -> Applied:
        """Put a parameter back to its baseline raw value, read back."""
        s = self.slot(alias, key)
        raw = self.baseline[(alias, key)]
        shown = self._probe(s.device_index, s.param.index)(raw)
        self._confirm_raw(s, raw)
        return Applied(alias, key, s.param.name, float("nan"), raw, shown.text)

    def restore_all(self) -> None:
        for alias, key in self.baseline:
            self.restore(alias, key)

    def write(self, alias: str, key: str, value: float) -> Applied:
        s = self.slot(alias, key)
        target = value * s.unit.factor
        try:
            raw, shown = s.law.solve(target, self._probe(s.device_index, s.param.index))
        except UnsettableValue as e:
            raise ValueOutOfRange(f"{alias}.{key}: {e}") from None
        self._confirm_raw(s, raw)
        return Applied(alias, key, s.param.name, value, raw, shown.text)

    def read(self, alias: str, key: str) -> float | None:
        """The physical value a parameter shows now, in the key's units (None for words such as "Auto")."""
        s = self.slot(alias, key)
        shown = parse_display(self.live.value_string(self.track, s.device_index, s.param.index))
        return None if shown.value is None else shown.value / s.unit.factor

    def read_text(self, alias: str, key: str) -> str:
        s = self.slot(alias, key)
        return self.live.value_string(self.track, s.device_index, s.param.index)

    def switch(self, alias: str, on: bool) -> None:
        """Switch a device on or off by its "Device On" parameter (raw max / min), read back."""
        s = self.slot(alias, "device_on")
        raw = s.param.max if on else s.param.min
        self._probe(s.device_index, s.param.index)(raw)
        self._confirm_raw(s, raw)

    def set_fader_0db(self, confirm_by_hand: Callable[[str], None] | None = None) -> str:
        """Set the chain's fader to 0 dB (raw 0.85) and read it back. Where this build cannot, ask the
        producer (`confirm_by_hand`, interactive runs only) or stop: never export with an unknown fader."""
        try:
            address, args = self.live.set_volume(self.track, FADER_0DB)
            back = self.live.volume(self.track, after_send=True)
        except LiveErrorReply as e:  # this build has no such address; silence is a timeout, not this
            why = f"cannot set the fader of track {self.track.label} over OSC ({e})"
            if confirm_by_hand is None:
                raise LiveReadError(
                    f"{why}; run in a terminal to set it to 0 dB by hand and confirm"
                ) from None
            confirm_by_hand(f"{why}: set it to 0.0 dB in Live, then press Enter")
            self.fader_by_hand = True
            return "by hand"
        if abs(back - FADER_0DB) > 1e-4:
            raise LiveWriteError(
                f"fader of track {self.track.label}: wrote {address} {list(args)} (0 dB) but Live reads back "
                f"{back:g}; set it to 0 dB by hand"
            )
        return "over OSC"
