"""Failures of the Live side, each mapped by the CLI to the spec's exit codes (20 read, 30 write)."""

from __future__ import annotations


class LiveError(Exception):
    """Base class: something about Live (or the virtual Live) stopped the run."""

    exit_code = 20


class LiveReadError(LiveError):
    """Live could not be reached, did not answer, or lacks what the config names (exit 20)."""

    exit_code = 20


class LiveTimeout(LiveReadError):
    pass


class LiveErrorReply(LiveReadError):
    """Live answered a query with `/live/error`: the text says why."""


class LiveWriteError(LiveError):
    """Live refused a write, or the read-back disagrees with what was written (exit 30)."""

    exit_code = 30


class ExportFailed(Exception):
    """One export did not produce a complete file: logged as an `export_failed` receipt, the run goes on."""
