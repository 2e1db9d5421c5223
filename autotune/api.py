"""The library: every command of the CLI is one call here, returning a typed result.

    from autotune import optimize
    outcome = optimize("configs/spotify.json", trials=20)
    if outcome.passed:
        print(outcome.passed.export_file, outcome.passed.lufs_i, outcome.passed.true_peak_dbtp)

`sweep` and `optimize` take a config (a path or a loaded `SweepConfig`) and optional `Settings` (by default
the AUTOTUNE_* environment), run the study and return a `StudyOutcome`: how it ended, the passing trial (or
the closest), the verdict about reach, and the summary lines the console prints. `analyze` measures files;
`doctor` runs the checks. The CLI prints these results and maps them to exit codes; it reads nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from optuna.trial import FrozenTrial

from autotune.audio import Measurement, analyze_file
from autotune.config import SweepConfig, load_config
from autotune.errors import EXIT_OK, EXIT_OUT_OF_REACH, EXIT_READ
from autotune.loop import StudyResult
from autotune.platforms import describe_playback, playback_gains, playback_lines
from autotune.samplers import SamplerName
from autotune.settings import Settings, load_settings
from autotune.trials import stored

Log = Callable[[str], None]
Ending = Literal["passed", "dry-mix-passed", "out-of-reach", "no-pass", "budget-used"]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrialSummary:
    """One measured export of the study."""

    number: int
    export_file: str
    lufs_i: float
    peak_dbfs: float
    true_peak_dbtp: float | None
    settings: str


@dataclass(frozen=True)
class StudyOutcome:
    """How a `sweep` or `optimize` ended, and what the console says about it."""

    study: str
    storage: str
    ending: Ending
    #: The first export that met the target (None when none did; see `dry_pass` for a dry mix that did).
    passed: TrialSummary | None
    #: The export closest to the target (by loss) when none passed.
    closest: TrialSummary | None
    #: The verdict when an export at the end of the drive line proved the target out of reach.
    out_of_reach: dict[str, Any] | None
    #: The dry reference's receipt when the mix already met the target with the devices off.
    dry_pass: dict[str, Any] | None
    reference_exports: int
    trials: int
    failed: int
    summary: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The documented exit code: 40 for a target proved out of reach, else 0."""
        return EXIT_OUT_OF_REACH if self.ending == "out-of-reach" else EXIT_OK


def _config(config: str | Path | SweepConfig, settings: Settings, presets: Sequence[str]) -> SweepConfig:
    if isinstance(config, SweepConfig):
        return config
    return load_config(config, settings.output_dir, presets=list(presets) or None)


def sweep(
    config: str | Path | SweepConfig,
    *,
    settings: Settings | None = None,
    study: str | None = None,
    restart: bool = False,
    presets: Sequence[str] = (),
    log: Log = _quiet,
) -> StudyOutcome:
    """Run the config's runs in order, one export each, and stop at the first that passes."""
    from autotune.study import run_study

    settings = settings or load_settings()
    cfg = _config(config, settings, presets)
    name = study or (Path(config).stem if not isinstance(config, SweepConfig) else "sweep")
    started = time.monotonic()
    result = run_study(cfg, settings, study_name=name, restart=restart, log=log)
    return outcome(result, cfg, settings, started)


def optimize(
    config: str | Path | SweepConfig,
    *,
    trials: int = 20,
    sampler: SamplerName = "auto",
    seed: int | None = None,
    with_runs: bool = False,
    refine: bool = False,
    fresh_reference: bool = False,
    settings: Settings | None = None,
    study: str | None = None,
    restart: bool = False,
    presets: Sequence[str] = (),
    log: Log = _quiet,
) -> StudyOutcome:
    """Search the settings adaptively until an export passes (or `trials` exports are spent)."""
    from autotune.study import run_study

    settings = settings or load_settings()
    cfg = _config(config, settings, presets)
    stem = Path(config).stem if not isinstance(config, SweepConfig) else "config"
    started = time.monotonic()
    result = run_study(
        cfg,
        settings,
        study_name=study or f"{stem}-optimize",
        mode="optimize",
        restart=restart,
        trials=trials,
        sampler=sampler,
        seed=seed,
        with_runs=with_runs,
        refine=refine,
        fresh_reference=fresh_reference,
        log=log,
    )
    return outcome(result, cfg, settings, started)


@dataclass(frozen=True)
class Analysis:
    """One file's measurement and how every platform will play it back."""

    path: str
    measurement: Measurement
    playback_db: dict[str, float]
    playback: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, **self.measurement.as_dict(), "playback_db": self.playback_db}


def analyze(path: str | Path) -> Analysis:
    """Measure one WAV file (integrated loudness, peaks, loudness range, PLR, playback gains)."""
    m = analyze_file(path)
    return Analysis(
        str(path), m, playback_gains(m.lufs_i, m.true_peak_dbtp), playback_lines(m.lufs_i, m.true_peak_dbtp)
    )


@dataclass(frozen=True)
class DoctorReport:
    """The checks of a rig before exporting, and whether any of them blocks."""

    backend: str
    checks: list[Any]

    @property
    def failed(self) -> list[Any]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warned(self) -> list[Any]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def exit_code(self) -> int:
        return EXIT_READ if self.failed else EXIT_OK


def doctor(
    config: str | Path | SweepConfig, *, settings: Settings | None = None, log: Log = _quiet
) -> DoctorReport:
    """Check Live, the chain, the fader, read-back, the model's readings and the export route."""
    from autotune.backends import open_backend
    from autotune.doctor import run_doctor

    settings = settings or load_settings()
    cfg = _config(config, settings, ())
    # Reading only: the export method is one of the checks, not a reason to refuse to check the rest.
    with open_backend(settings, cfg, log, exporter=False) as backend:
        return DoctorReport(backend.description, list(run_doctor(backend.osc, cfg, settings, log)))


# -- what a study's ending says ----------------------------------------------------------------------


def _summary_of(t: FrozenTrial) -> TrialSummary:
    u = t.user_attrs
    receipt = stored(t)
    params = receipt.device_params if receipt is not None else {}
    parts = [f"{a}.{k}={v:g}" for a, vals in params.items() for k, v in vals.items()]
    tp = u.get("true_peak_dbtp")
    return TrialSummary(
        t.number,
        str(u.get("export_file")),
        float(u["lufs_i"]),
        float(u["peak_dbfs"]),
        float(tp) if isinstance(tp, (int, float)) else None,
        ", ".join(parts) or "(none)",
    )


def _tp_text(tp: object) -> str:
    return f", true peak {tp:.2f} dBTP" if isinstance(tp, (int, float)) else ""


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _playback(config: SweepConfig, results: Mapping[str, Any]) -> list[str]:
    lufs, tp = results.get("lufs_i"), results.get("true_peak_dbtp")
    if not isinstance(lufs, (int, float)) or not isinstance(tp, (int, float)):
        return []
    return [f"  Playback on {describe_playback(p, float(lufs), float(tp))}" for p in config.platforms()]


def outcome(result: StudyResult, config: SweepConfig, settings: Settings, started: float) -> StudyOutcome:
    """The typed ending of a study and the summary lines the console prints after it."""
    finished = [t for t in result.trials if t.user_attrs.get("status") == "ok"]
    failed = [t for t in result.trials if t.user_attrs.get("status") not in (None, "ok")]
    lines = ["", "=" * 70]
    passed = _summary_of(result.passed) if result.passed is not None else None
    closest = None
    ending: Ending
    if passed is not None:
        u = result.passed.user_attrs if result.passed is not None else {}
        ending = "passed"
        lines.append(
            f"✅ TARGET HIT in trial #{passed.number} ({passed.export_file}): LUFS {passed.lufs_i:.2f}, peak "
            f"{passed.peak_dbfs:.2f} dBFS{_tp_text(passed.true_peak_dbtp)}"
        )
        lines.append(f"  Settings: {passed.settings}")
        lines += _playback(config, u)
    elif result.dry_pass is not None:
        ending = "dry-mix-passed"
        res = result.dry_pass["results"]
        lines.append(
            f"✅ TARGET HIT by the dry mix ({result.dry_pass['export_file']}): LUFS {res['lufs_i']:.2f}, "
            f"peak {res['peak_dbfs']:.2f} dBFS{_tp_text(res.get('true_peak_dbtp'))} with the chain switched "
            "off: no processing is needed"
        )
        lines += _playback(config, res)
    else:
        ending = "out-of-reach" if result.out_of_reach is not None else "no-pass"
        if result.budget_used:
            ending = "budget-used"
        lines.append(
            f"No trial hit the target ({config.target_lufs:.2f} LUFS ±{config.lufs_tolerance:g}, "
            f"{config.limits().describe_peak()})."
        )
        if finished:
            best = min(finished, key=lambda t: t.value if t.value is not None else math.inf)
            closest = _summary_of(best)
            lines.append(
                f"  Closest: {closest.export_file} (trial #{closest.number}): LUFS {closest.lufs_i:.2f} "
                f"({closest.lufs_i - config.target_lufs:+.2f} LU), peak {closest.peak_dbfs:.2f} dBFS"
            )
            lines.append(f"  Settings: {closest.settings}")
    if result.out_of_reach is not None and result.passed is None:
        lines.append(f"⛔ TARGET OUT OF REACH: {result.out_of_reach['message']}")
        if result.out_of_reach.get("direction") == "quieter":
            lines.append("  Raise the target, or widen the search ranges downwards (exit code 40).")
        else:
            lines.append(
                "  Lower the target, raise the peak limit, or widen the search ranges (exit code 40)."
            )
    if result.reference_exports:
        lines.append(
            f"  (plus {result.reference_exports} dry reference export for the model; cached for later studies)"
        )
    if failed:
        lines.append(f"  {len(failed)} trial(s) failed: see status and error in {settings.receipts_path()}")
    lines.append(
        f"Study {result.study!r} in {result.storage} ({_count(len(result.trials), 'trial')}); "
        f"{time.monotonic() - started:.1f} s"
    )
    return StudyOutcome(
        study=result.study,
        storage=result.storage,
        ending=ending,
        passed=passed,
        closest=closest,
        out_of_reach=result.out_of_reach,
        dry_pass=result.dry_pass,
        reference_exports=result.reference_exports,
        trials=len(result.trials),
        failed=len(failed),
        summary=lines,
    )
