"""Errors the CLI turns into one line and the spec's exit codes: 20 for read failures, 30 for writes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_READ = 20
EXIT_WRITE = 30
#: `optimize`: the target is beyond what the chain can reach under the peak limit (confirmed by an export).
EXIT_OUT_OF_REACH = 40
EXIT_INTERRUPTED = 130


class AutotuneError(Exception):
    exit_code = EXIT_READ


class ConfigError(AutotuneError):
    """The config file or a setting is invalid: nothing has been written."""

    exit_code = EXIT_READ
