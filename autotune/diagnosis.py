"""What an export says about the rig, in words a producer can act on.

The model predicts the chain's output; anything after the chain (a fader, a device on the master after a
bus, a limiter that overshoots) only shows in the measured export. A peak above the Limiter's ceiling can
only come from there, and a first prediction far off names its most likely cause, so the user learns why
a search needs more exports than promised instead of watching it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A sample peak this far above the Limiter's ceiling cannot be the Limiter's own overshoot.
ABOVE_CEILING_DB = 0.3
#: A first prediction that misses by more than this is worth a word.
FIRST_MISS_LU = 2.0


def above_ceiling(peak_dbfs: float, ceiling_db: float | None) -> str | None:
    if ceiling_db is None or peak_dbfs - ceiling_db <= ABOVE_CEILING_DB:
        return None
    return (
        f"the export peaks {peak_dbfs - ceiling_db:.1f} dB above the Limiter's ceiling ({ceiling_db:.2f} dB): "
        "something after the chain adds gain (the master fader?)"
    )


def diagnose(
    *,
    peak_dbfs: float,
    ceiling_db: float | None,
    measured_lufs: float,
    predicted_lufs: float | None,
    first: bool,
    findings: Sequence[str],
    from_cache: bool,
    processing_share: float | None = None,
) -> list[str]:
    """Sentences for the console and the receipt: empty when the export is what the model expected.

    `processing_share` is the share of the loudness the model's processing takes off at this setting that
    the export shows the devices took off (None where the model hardly processes)."""
    out: list[str] = []
    after = above_ceiling(peak_dbfs, ceiling_db)
    if after is not None:
        out.append(after)
    if first and predicted_lufs is not None and abs(measured_lufs - predicted_lufs) > FIRST_MISS_LU:
        miss = measured_lufs - predicted_lufs
        if after is not None:
            cause = "the gain after the chain (above)"
        elif findings:
            cause = f"a reading the model did not understand ({findings[0]})"
        elif from_cache:
            cause = "a cached dry reference that is another arrangement's"
        elif processing_share is not None and abs(processing_share - 1.0) > 0.1:
            cause = (
                f"devices that take off {processing_share:.0%} of the loudness the model's Glue and Limiter "
                "take off at this setting (another compressor or limiter design: no look-ahead, another "
                "release or knee); the search scales the model's processing by it from here"
            )
        else:
            cause = (
                "devices that drive harder or softer than the model's (another compressor or limiter design); "
                "the search measures along the drive line from here"
            )
        out.append(f"the model's first prediction missed by {miss:+.2f} LU: most likely {cause}")
    return out
