"""autotune: tune an Ableton Live master chain (Glue Compressor -> Limiter) to a loudness target.

The library's entry points (`autotune.api`) are imported on first use, so `import autotune` (and every
CLI start-up) stays cheap:

    from autotune import optimize
    outcome = optimize("configs/spotify.json", trials=20)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from autotune.api import Analysis, DoctorReport, StudyOutcome, analyze, doctor, optimize, sweep

__all__ = [
    "Analysis",
    "DoctorReport",
    "StudyOutcome",
    "__version__",
    "analyze",
    "doctor",
    "optimize",
    "sweep",
]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from autotune import api

        return getattr(api, name)
    raise AttributeError(f"module 'autotune' has no attribute {name!r}")
