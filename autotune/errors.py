"""autotune's one error hierarchy, and the exit codes the CLI maps it to (the spec's 20 for read failures,
30 for writes; 40 when an export proves the target out of reach).

Every error autotune raises on purpose is an `AutotuneError` carrying its `exit_code`, so the CLI turns any of
them into one line and the documented code, and a library caller can catch them all with one class (as
optuna's `OptunaError`). The Live side's errors live here too (re-exported by `autotune.live.errors`), so
their exit codes come from this one place.
"""

from __future__ import annotations

from autotune.receipts import Receipt

EXIT_OK = 0
EXIT_READ = 20
EXIT_WRITE = 30
#: `optimize`: the target is beyond what the chain can reach under the peak limit (confirmed by an export).
EXIT_OUT_OF_REACH = 40
EXIT_INTERRUPTED = 130


class AutotuneError(Exception):
    """The root: something autotune checked stopped the run."""

    exit_code = EXIT_READ


class ConfigError(AutotuneError):
    """The config file or a setting is invalid: nothing has been written."""


class LiveError(AutotuneError):
    """Something about Live (or the virtual Live) stopped the run."""


class LiveReadError(LiveError):
    """Live could not be reached, did not answer, or lacks what the config names (exit 20)."""


class LiveTimeout(LiveReadError):
    """Live stopped answering."""


class LiveErrorReply(LiveReadError):
    """Live answered a query with `/live/error`: the text says why."""


class LiveWriteError(LiveError):
    """Live refused a write, or the read-back disagrees with what was written (exit 30)."""

    exit_code = EXIT_WRITE


class UnsettableValue(AutotuneError):
    """A requested value the parameter cannot take (outside its range, or between its steps)."""


class ExportFailed(AutotuneError):
    """One export did not produce a complete file: logged as an `export_failed` receipt, the run goes on."""


class AnalysisError(AutotuneError):
    """The file cannot give a meaningful measurement (unreadable, empty, silent or too short)."""


class TrialFailed(AutotuneError):
    """The export or its measurement failed; the receipt says why and the study goes on."""

    def __init__(self, receipt: Receipt) -> None:
        super().__init__(receipt.error or "trial failed")
        self.receipt = receipt
