"""One trial: fader to 0 dB, devices set and read back, export, wait for a complete file, verify, receipt."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.audio import Measurement, analyze_file
from autotune.config import SweepConfig
from autotune.errors import AnalysisError, ExportFailed, TrialFailed
from autotune.live.devices import Applied, MasterChain
from autotune.live.export import stamp, wait_for_export
from autotune.platforms import playback_gains
from autotune.receipts import AppliedParam, Kind, Params, Receipt, Results, Status, Verdict, utc_now
from autotune.vocabulary.export import Exporter

#: What a receipt's results hold of the measurement (the dashboard shows them as user attributes).
MEASURED_KEYS = (
    "lufs_i",
    "peak_dbfs",
    "true_peak_dbtp",
    "lra_lu",
    "max_momentary_lufs",
    "max_short_term_lufs",
    "plr_db",
)


def verdict(m: Measurement, config: SweepConfig) -> Verdict:
    limits = config.limits()
    return Verdict(
        pass_lufs=limits.pass_lufs(m.lufs_i),
        pass_peak=limits.pass_peak(m.peak_dbfs),
        pass_true_peak=None if limits.peak_dbtp is None else limits.pass_true_peak(m.true_peak_dbtp),
    )


@dataclass
class Rig:
    """What every trial of one invocation shares: the resolved chain, the exporter, targets, output."""

    chain: MasterChain
    exporter: Exporter
    config: SweepConfig
    project_root: Path
    timeout_s: float
    log: Callable[[str], None]


def _r(x: float) -> float:
    return round(x, 4)


@dataclass(frozen=True)
class Exported:
    """What one export came to: the file's measurement, or the failure that stopped it and when."""

    measurement: Measurement | None
    #: The span a resample captured (`--export resample`): the target applies to it.
    capture: Mapping[str, Any] | None = None
    status: Status = "ok"
    error: str | None = None
    #: `time.monotonic()` at the failure: the receipt's duration ends there.
    failed_at: float | None = None


def export_and_measure(rig: Rig, export_file: str) -> Exported:
    """Export the chain as it is set now, wait for the complete file and measure it. A failed export or
    measurement is an outcome, not an exception: its receipt says why."""
    log = rig.log
    path = (rig.project_root / export_file).absolute()  # export programs get a path that survives a chdir
    path.parent.mkdir(parents=True, exist_ok=True)
    before = stamp(path)
    try:
        rig.exporter.trigger(path, export_file)
        wait_for_export(path, timeout_s=rig.timeout_s, before=before, log=log, abort=rig.exporter.problem)
    except ExportFailed as e:
        log(f"  ✗ Export failed: {e}")
        return Exported(None, status="export_failed", error=str(e), failed_at=time.monotonic())
    finally:
        rig.exporter.close()
    capture = getattr(rig.exporter, "capture_info", None)
    log("")
    log(f"Verifying {path.name}...")
    try:
        return Exported(analyze_file(path), capture)
    except AnalysisError as e:
        log(f"  ✗ Measurement failed: {e}")
        return Exported(None, capture, status="measurement_failed", error=str(e), failed_at=time.monotonic())


def results_of(m: Measurement, v: Verdict) -> Results:
    """A measurement as a receipt states it: rounded to 4 decimals, with the verdict and playback gains."""
    return Results(
        lufs_i=_r(m.lufs_i),
        peak_dbfs=_r(m.peak_dbfs),
        pass_lufs=v.pass_lufs,
        pass_peak=v.pass_peak,
        true_peak_dbtp=_r(m.true_peak_dbtp),
        pass_true_peak=v.pass_true_peak,
        lra_lu=_r(m.lra_lu),
        max_momentary_lufs=_r(m.max_momentary_lufs),
        max_short_term_lufs=_r(m.max_short_term_lufs),
        plr_db=_r(m.plr_db),
        playback_db=playback_gains(m.lufs_i, m.true_peak_dbtp),
    )


def _receipt(
    done: Exported,
    config: SweepConfig,
    started: float,
    *,
    ts: str,
    run_id: str,
    export_file: str,
    params: Params,
    study: str,
    trial: int | None,
    trial_started: str | None = None,
    kind: Kind | None = None,
    applied: Mapping[str, AppliedParam] | None = None,
) -> Receipt:
    """The one place a receipt is made: what the trial set and Live applied, and what its export came to
    (raised as `TrialFailed` by the caller when it failed)."""
    m = done.measurement
    return Receipt(
        ts=ts,
        id=run_id,
        export_file=export_file,
        sha256=None if m is None else m.sha256,
        params=params,
        study=study,
        trial=trial,
        trial_started=trial_started,
        kind=kind,
        applied=applied,
        capture=done.capture,
        results=None if m is None else results_of(m, verdict(m, config)),
        status=done.status,
        error=done.error,
        duration_s=_r((time.monotonic() if done.failed_at is None else done.failed_at) - started),
    )


def export_trial(
    rig: Rig,
    run_id: str,
    export_file: str,
    params: Mapping[str, Mapping[str, float]],
    *,
    study: str,
    trial: int,
    trial_started: str,
) -> Receipt:
    """Run one trial and return its receipt; raise `TrialFailed` (with the receipt) if export or analysis fails."""
    log = rig.log
    chain = rig.chain
    started = time.monotonic()
    if not chain.fader_by_hand:  # confirmed by the producer once at start-up: not asked again per trial
        chain.set_fader_0db()
    applied: list[Applied] = []
    # Parameters other runs set but this one does not go back to where they were at start-up, so a run's
    # result never depends on which runs came before it (a resume retries runs out of order).
    for alias, key in chain.baseline:
        if key not in params.get(alias, {}):
            applied.append(chain.restore(alias, key))
    for alias in rig.config.device_names:
        values = params.get(alias)
        if not values:
            continue
        log("")
        log(f"Setting {rig.config.device_names[alias]}...")
        for key, value in values.items():
            slot = chain.slot(alias, key)
            log(f"  Setting {slot.param.name} = {value:g}")
            a = chain.write(alias, key, value)
            applied.append(a)
            log(f"    ✓ {a.param} set ({a.display})")
    log("")
    ts = utc_now()
    done = export_and_measure(rig, export_file)
    receipt = _receipt(
        done,
        rig.config,
        started,
        ts=ts,
        run_id=run_id,
        export_file=export_file,
        params={"master_fader_db": 0.0, **{a: dict(v) for a, v in params.items()}},
        study=study,
        trial=trial,
        trial_started=trial_started,
        applied={
            f"{a.device}.{a.key}": {"param": a.param, "raw": a.raw, "display": a.display} for a in applied
        },
    )
    m = done.measurement
    if m is None:
        raise TrialFailed(receipt)
    v = receipt.measured().verdict
    cfg = rig.config
    log(f"  LUFS: {m.lufs_i:.2f} (target {cfg.target_lufs:.2f}) pass={v.pass_lufs}")
    if cfg.peak_limit_dbfs is not None:
        log(f"  PEAK: {m.peak_dbfs:.2f} (limit {cfg.peak_limit_dbfs:.2f}) pass={v.pass_peak}")
    else:
        log(f"  PEAK: {m.peak_dbfs:.2f} dBFS")
    if cfg.peak_limit_dbtp is not None:
        log(
            f"  TRUE PEAK: {m.true_peak_dbtp:.2f} dBTP (limit {cfg.peak_limit_dbtp:.2f}) pass={v.pass_true_peak}"
        )
    else:
        log(f"  TRUE PEAK: {m.true_peak_dbtp:.2f} dBTP")
    return receipt


REFERENCE_ID = "dry-reference"


def export_reference(
    rig: Rig, export_file: str, *, study: str, marker: Path | None = None
) -> tuple[Receipt, Measurement]:
    """Export with every configured device switched off: the chain's input, which model-based search
    predicts from. The devices are switched on again whatever happens; should the process be killed
    meanwhile, `marker` (written first, removed once they are on) lets the next run switch them on."""
    log, chain = rig.log, rig.chain
    started = time.monotonic()
    if not chain.fader_by_hand:
        chain.set_fader_0db()
    log("")
    log("Switching the chain's devices off for a dry reference export...")
    ts = utc_now()
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"track": chain.track.label, "devices": dict(rig.config.device_names)}))
    try:
        for alias in rig.config.device_names:
            chain.switch(alias, False)
        done = export_and_measure(rig, export_file)
    finally:
        for alias in rig.config.device_names:
            chain.switch(alias, True)
        if marker is not None:
            marker.unlink(missing_ok=True)
    receipt = _receipt(
        done,
        rig.config,
        started,
        ts=ts,
        run_id=REFERENCE_ID,
        export_file=export_file,
        params={"master_fader_db": 0.0, **{a: {"device_on": 0.0} for a in rig.config.device_names}},
        study=study,
        trial=None,
        kind="reference",
    )
    m = done.measurement
    if m is None:
        raise TrialFailed(receipt)
    log(f"  DRY: {m.lufs_i:.2f} LUFS, peak {m.peak_dbfs:.2f} dBFS (devices switched on again)")
    return receipt, m
