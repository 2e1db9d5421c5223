"""The receipt of one export, and the JSONL audit trail it is appended to.

A `Receipt` is made once per export (`autotune.trial`), gains what the model search concluded from it
through `Receipt.annotated` only, and leaves as `to_json()`: the Optuna user attribute "receipt" and the
JSONL line hold that dict, its keys in the order of the record's fields (`KEYS`, `RESULT_KEYS`), a key left
out rather than null where earlier versions left it out. `Receipt.from_json` reads back what any version
stored, so old studies resume.

Each receipt is serialised first and written with a single `write` on an O_APPEND descriptor under an
exclusive lock, then fsync'd: a crash leaves either the whole line or nothing, and several workers can
append to one file. A torn tail left by something else (a power cut, a hand edit) is moved aside to
`<name>.torn` before the next append, so the file stays parseable line by line.
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

Status = Literal["ok", "export_failed", "measurement_failed"]
STATUSES: tuple[Status, ...] = ("ok", "export_failed", "measurement_failed")
Kind = Literal["reference"]
#: A receipt's params: the fader (`master_fader_db`) and, per device alias, the values set.
Params = Mapping[str, float | Mapping[str, float]]


class AppliedParam(TypedDict):
    """One parameter as Live reported it after the write: its name, raw value and display text."""

    param: str
    raw: float
    display: str


@dataclass(frozen=True)
class Verdict:
    pass_lufs: bool
    pass_peak: bool
    #: None when the config sets no true-peak limit (the receipt then has no `pass_true_peak`).
    pass_true_peak: bool | None = None

    @property
    def passed(self) -> bool:
        return self.pass_lufs and self.pass_peak and self.pass_true_peak is not False


_NUMBER = (int, float)


def _read(d: Mapping[str, Any], kinds: Mapping[str, tuple[type, ...]], where: str) -> dict[str, Any]:
    """Each key of `kinds` in `d`, checked and copied (None when absent or null; a bool is no number)."""
    out: dict[str, Any] = {}
    for key, allowed in kinds.items():
        v = d.get(key)
        if v is not None and (not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed)):
            raise ValueError(f"{where}: {key!r} is {v!r}, not {' or '.join(k.__name__ for k in allowed)}")
        out[key] = copy.deepcopy(v)
    return out


def _need(values: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    if gone := [k for k in keys if values.get(k) is None]:
        raise ValueError(f"{where} lacks {', '.join(gone)}")


@dataclass(frozen=True, kw_only=True)
class Results:
    """What the export measured (rounded as the receipt states it) and its verdict against the limits, in
    the order of the JSON. The loudness report's figures are None in receipts older than it."""

    lufs_i: float
    peak_dbfs: float
    pass_lufs: bool
    pass_peak: bool
    true_peak_dbtp: float | None = None
    #: Only under a true-peak limit.
    pass_true_peak: bool | None = None
    lra_lu: float | None = None
    max_momentary_lufs: float | None = None
    max_short_term_lufs: float | None = None
    plr_db: float | None = None
    #: What each platform's normalisation will do to this master (autotune.platforms), dB per preset.
    playback_db: Mapping[str, float] | None = None
    #: Keys this version does not know (a newer version's), kept so that reading back loses nothing.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.pass_lufs, self.pass_peak, self.pass_true_peak)

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def to_json(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k in RESULT_KEYS if (v := getattr(self, k)) is not None}
        return {**out, **copy.deepcopy(dict(self.extra))}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Results:
        where = "a receipt's results"
        values = _read(d, _RESULT_KINDS, where)
        _need(values, ("lufs_i", "peak_dbfs", "pass_lufs", "pass_peak"), where)
        return cls(**values, extra={k: copy.deepcopy(v) for k, v in d.items() if k not in _RESULT_KINDS})


_RESULT_KINDS: dict[str, tuple[type, ...]] = {
    "lufs_i": _NUMBER,
    "peak_dbfs": _NUMBER,
    "pass_lufs": (bool,),
    "pass_peak": (bool,),
    "true_peak_dbtp": _NUMBER,
    "pass_true_peak": (bool,),
    "lra_lu": _NUMBER,
    "max_momentary_lufs": _NUMBER,
    "max_short_term_lufs": _NUMBER,
    "plr_db": _NUMBER,
    "playback_db": (dict,),
}


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """One export as the audit trail states it: what was set, what Live applied, what the file measured
    and how it was judged, or why there is no measurement. The fields are in the order of the JSON; one
    that is None (or an empty diagnosis) is a key the JSON leaves out, except `sha256` and `trial`, which
    every receipt has and which may be null."""

    ts: str
    id: str
    export_file: str
    #: None when the export was not measured.
    sha256: str | None
    params: Params
    study: str
    #: The Optuna trial's number; None for the dry reference, which is no trial.
    trial: int | None
    #: Tells a restarted study's trial #n from the earlier study's (see `trial_key`); a trial's only.
    trial_started: str | None = None
    kind: Kind | None = None
    #: "alias.key" -> what Live reported after the write (a trial's only).
    applied: Mapping[str, AppliedParam] | None = None
    #: The span a resample captured (autotune.live.takes.Capture): the target applies to it.
    capture: Mapping[str, Any] | None = None
    results: Results | None = None
    status: Status
    error: str | None = None
    duration_s: float | None = None
    #: What the export told about the rig (autotune.diagnosis), sentence by sentence.
    diagnosis: tuple[str, ...] = ()
    #: The verdict of an export that proved the target out of reach (autotune.session.judge_reach).
    feasibility: Mapping[str, Any] | None = None
    #: Keys this version does not know, kept (after the known ones) so that reading back loses nothing.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the export met the limits it was measured against (False without a measurement)."""
        return self.results is not None and self.results.passed

    def measured(self) -> Results:
        """The results of an export that was measured: asking a failed one's is the caller's bug."""
        if self.results is None:
            raise ValueError(f"receipt {self.id!r} has no results (status {self.status})")
        return self.results

    @property
    def device_params(self) -> dict[str, Mapping[str, float]]:
        """The values set per device alias: the params without the fader."""
        return {a: v for a, v in self.params.items() if isinstance(v, Mapping)}

    def annotated(
        self, *, diagnosis: Sequence[str] = (), feasibility: Mapping[str, Any] | None = None
    ) -> Receipt:
        """The receipt with what the model search concluded from its export: the one way a receipt
        changes once made, so that every addition is visible here."""
        return dataclasses.replace(
            self,
            diagnosis=(*self.diagnosis, *diagnosis),
            feasibility=self.feasibility if feasibility is None else feasibility,
        )

    def to_json(self) -> dict[str, Any]:
        """The dict the user attribute and the JSONL line hold; a copy, so changing it changes no receipt."""
        out: dict[str, Any] = {}
        for k in KEYS:
            v = getattr(self, k)
            if isinstance(v, Results):
                v = v.to_json()
            elif isinstance(v, tuple):
                v = list(v) or None
            if v is not None or k in ("sha256", "trial"):
                out[k] = copy.deepcopy(v)
        return {**out, **copy.deepcopy(dict(self.extra))}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Receipt:
        """A receipt as any version stored it (keys it did not write yet are absent); ValueError for a
        dict that is no receipt."""
        where = f"receipt {d.get('id')!r}"
        if gone := [k for k in REQUIRED if k not in d]:
            raise ValueError(f"{where} lacks {', '.join(gone)}")
        values = _read(d, _KINDS, where)
        _need(values, ("ts", "id", "export_file", "params", "study", "status"), where)
        if values["status"] not in STATUSES:
            raise ValueError(f"{where}: status {values['status']!r} is none of {', '.join(STATUSES)}")
        if values["kind"] not in (None, "reference"):
            raise ValueError(f"{where}: kind {values['kind']!r} is not 'reference'")
        results = values.pop("results")
        return cls(
            **(values | {"diagnosis": tuple(str(s) for s in values["diagnosis"] or ())}),
            results=None if results is None else Results.from_json(results),
            extra={k: copy.deepcopy(v) for k, v in d.items() if k not in _KINDS},
        )


_KINDS: dict[str, tuple[type, ...]] = {
    "ts": (str,),
    "id": (str,),
    "export_file": (str,),
    "sha256": (str,),
    "params": (dict,),
    "study": (str,),
    "trial": (int,),
    "trial_started": (str,),
    "kind": (str,),
    "applied": (dict,),
    "capture": (dict,),
    "results": (dict,),
    "status": (str,),
    "error": (str,),
    "duration_s": _NUMBER,
    "diagnosis": (list,),
    "feasibility": (dict,),
}
#: A receipt's keys in the order of its JSON (readers and diffs of the JSONL rely on it): `Receipt`'s fields.
KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Receipt) if f.name != "extra")
#: What every version wrote from the first: a stored dict without one of them is not a receipt.
REQUIRED = ("ts", "id", "export_file", "sha256", "params", "study", "trial", "status")
#: A receipt's results in the order of their JSON: `Results`' fields.
RESULT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Results) if f.name != "extra")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _repair_tail(fd: int, path: Path) -> None:
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, max(0, size - 65536), os.SEEK_SET)
    tail = os.read(fd, 65536)
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    keep = size - len(tail) + cut + 1 if cut >= 0 else 0
    os.lseek(fd, keep, os.SEEK_SET)
    torn = os.read(fd, size - keep)
    with open(path.with_name(path.name + ".torn"), "ab") as f:
        f.write(torn + b"\n")
    os.ftruncate(fd, keep)


def _key(receipt: Mapping[str, Any]) -> tuple[str, int, str] | None:
    if not isinstance(receipt.get("trial"), int):
        return None
    started = receipt.get("trial_started")  # "" in a receipt older than start times
    return trial_key(
        str(receipt.get("study")), int(receipt["trial"]), "" if started is None else str(started)
    )


def _already_there(fd: int, key: tuple[str, int, str]) -> bool:
    """Whether a receipt of the same trial is in the file (checked under the lock, so workers agree)."""
    os.lseek(fd, 0, os.SEEK_SET)
    # Lines without the start time (or, for a receipt older than start times, the study) are not parsed.
    needle = json.dumps(key[2] or key[0], ensure_ascii=False).encode()
    with os.fdopen(os.dup(fd), "rb") as f:
        for raw in f:
            if needle in raw:
                try:
                    if _key(json.loads(raw)) == key:
                        return True
                except ValueError:
                    continue
    return False


def append(path: Path, receipt: dict[str, Any]) -> bool:
    """Append one receipt as one line; a trial's receipt is written once only. True when written."""
    line = (json.dumps(receipt, ensure_ascii=False, allow_nan=False, separators=(", ", ": ")) + "\n").encode()
    key = _key(receipt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_tail(fd, path)
        if key is not None and _already_there(fd, key):
            return False
        written = os.write(fd, line)
        if written != len(line):  # a short write on a full disk: undo it rather than leave half a line
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(f"short write to {path}")
        os.fsync(fd)
        return True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write(path: Path, receipt: Receipt | Mapping[str, Any]) -> bool:
    """The one way a receipt reaches the JSONL (the live mirror, the recovery at start, the dry
    reference): its `to_json()` as one line, or, for the receipt a trial stored, that dict as stored, so
    a receipt of another version (a newer worker's on shared storage, an older one's key order) is logged
    as that version wrote it rather than refused or reordered. True when written, False when the
    trial's is there already."""
    return append(path, receipt.to_json() if isinstance(receipt, Receipt) else dict(receipt))


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Every parseable receipt; a line that is not JSON (a torn tail) is skipped, never fatal."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj


def trial_key(study: str, number: int, started: str) -> tuple[str, int, str]:
    """What identifies a trial across restarts: a restarted study numbers its trials from 0 again."""
    return (study, number, started)
