"""The Live side's errors, defined with their exit codes in `autotune.errors` (one hierarchy, one place for
exit codes) and named here for the modules of `autotune.live`."""

from __future__ import annotations

from autotune.errors import (
    ExportFailed,
    LiveError,
    LiveErrorReply,
    LiveReadError,
    LiveTimeout,
    LiveWriteError,
)

__all__ = ["ExportFailed", "LiveError", "LiveErrorReply", "LiveReadError", "LiveTimeout", "LiveWriteError"]
