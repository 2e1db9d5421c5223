"""The pass rule, in one place: what an export must measure to meet a target.

An export passes when its integrated loudness is within the tolerance of the target and its peak is under
every limit given: a sample-peak limit (dBFS, the original design's `peak_limit_dbfs`), a true-peak limit
(dBTP, what streaming platforms, EBU R 128 and AES TD1008 state), or both. Every part of autotune that judges
an export (the receipt's flags, the study's "first pass", the Optuna constraint and loss, the samplers) asks
this module, so a master that passes one of them passes all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from objectives.loss import loss

#: A peak this close above a limit still passes: below 24-bit resolution at any sane limit.
PEAK_EPSILON_DB = 1e-3
#: How far a limited master's true peak is assumed to sit above its sample peak before any export has
#: shown it (Standard-mode limiting of a pop master typically measures 0.2-0.8 dB of inter-sample overs at
#: 48 kHz): the sample-peak budget a search starts from under a true-peak limit.
TRUE_PEAK_ALLOWANCE_DB = 0.5


@dataclass(frozen=True)
class Limits:
    target_lufs: float
    tolerance: float
    peak_dbfs: float | None = None
    peak_dbtp: float | None = None

    def __post_init__(self) -> None:
        if self.peak_dbfs is None and self.peak_dbtp is None:
            raise ValueError("a target needs a sample-peak limit, a true-peak limit, or both")

    def pass_lufs(self, lufs: float) -> bool:
        return abs(lufs - self.target_lufs) <= self.tolerance

    def pass_peak(self, peak_dbfs: float) -> bool:
        """Under the sample-peak limit (true when there is none)."""
        return self.peak_dbfs is None or peak_dbfs <= self.peak_dbfs + PEAK_EPSILON_DB

    def pass_true_peak(self, true_peak_dbtp: float) -> bool:
        """Under the true-peak limit (true when there is none)."""
        return self.peak_dbtp is None or true_peak_dbtp <= self.peak_dbtp + PEAK_EPSILON_DB

    def passes(self, lufs: float, peak_dbfs: float, true_peak_dbtp: float) -> bool:
        return self.pass_lufs(lufs) and self.pass_peak(peak_dbfs) and self.pass_true_peak(true_peak_dbtp)

    def peak_over_db(self, peak_dbfs: float, true_peak_dbtp: float) -> float:
        """How far the export's peak sits above the nearest limit (negative: headroom): the Optuna
        constraint (<= 0 is feasible). A true peak the file did not report counts as its sample peak."""
        tp = true_peak_dbtp if math.isfinite(true_peak_dbtp) else peak_dbfs
        over = []
        if self.peak_dbfs is not None:
            over.append(peak_dbfs - self.peak_dbfs)
        if self.peak_dbtp is not None:
            over.append(tp - self.peak_dbtp)
        return max(over)

    def loss(self, lufs: float, peak_dbfs: float, true_peak_dbtp: float) -> float:
        """dB away from an acceptable export: `objectives.loss` with the peak taken over whichever limit
        binds (so the limit it is measured against is 0 dB)."""
        return loss(lufs, self.peak_over_db(peak_dbfs, true_peak_dbtp), self.target_lufs, 0.0)

    def sample_budget_dbfs(self, true_peak_over_db: float = TRUE_PEAK_ALLOWANCE_DB) -> float:
        """The sample peak a chain may reach and still meet every limit, when its true peak sits
        `true_peak_over_db` above its sample peak. In Standard mode a Limiter's ceiling is a sample peak,
        so a ceiling at -1 dB does not give -1 dBTP: under a true-peak limit the ceiling sits lower."""
        budgets = []
        if self.peak_dbfs is not None:
            budgets.append(self.peak_dbfs)
        if self.peak_dbtp is not None:
            budgets.append(self.peak_dbtp - max(0.0, true_peak_over_db))
        return min(budgets)

    def describe_peak(self) -> str:
        """ "peak ≤ -1.00 dBFS", "true peak ≤ -1.00 dBTP" or both."""
        parts = []
        if self.peak_dbfs is not None:
            parts.append(f"peak ≤ {self.peak_dbfs:.2f} dBFS")
        if self.peak_dbtp is not None:
            parts.append(f"true peak ≤ {self.peak_dbtp:.2f} dBTP")
        return ", ".join(parts)


def measurement(values: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """(integrated LUFS, sample peak, true peak) of a receipt's results or a trial's user attributes, None
    when they hold no measurement. A true peak not recorded (receipts older than true-peak limits) counts
    as the sample peak: the lowest it can be."""
    lufs, peak = values.get("lufs_i"), values.get("peak_dbfs")
    if not isinstance(lufs, (int, float)) or not isinstance(peak, (int, float)):
        return None
    tp = values.get("true_peak_dbtp")
    return float(lufs), float(peak), float(tp) if isinstance(tp, (int, float)) else float(peak)


def results_pass(results: Mapping[str, Any]) -> bool:
    """Whether a receipt's results passed (its flags were set by `Limits` when it was measured)."""
    return bool(results.get("pass_lufs") and results.get("pass_peak") and results.get("pass_true_peak", True))
