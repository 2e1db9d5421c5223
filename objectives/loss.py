"""The loss one export earns: distance to the loudness target plus a steep price for peak overshoot.

    loss = |lufs_i - target_lufs| + PEAK_WEIGHT * max(0, peak_dbfs - peak_limit_dbfs)

Both terms are in dB, so the loss reads as "dB away from an acceptable export". The peak term is weighted
because a peak over the limit is a hard failure while a LUFS gap is a matter of degree: with weight 2, one
dB too hot costs as much as two LU of loudness gap, so the search never buys loudness with peak overshoot.
"""

from __future__ import annotations

PEAK_WEIGHT = 2.0


def peak_violation(peak_dbfs: float, peak_limit_dbfs: float) -> float:
    """dB above the limit (0 when under): also the value of the Optuna constraint (<= 0 is feasible)."""
    return max(0.0, peak_dbfs - peak_limit_dbfs)


def loss(
    lufs_i: float,
    peak_dbfs: float,
    target_lufs: float,
    peak_limit_dbfs: float,
    peak_weight: float = PEAK_WEIGHT,
) -> float:
    return abs(lufs_i - target_lufs) + peak_weight * peak_violation(peak_dbfs, peak_limit_dbfs)
