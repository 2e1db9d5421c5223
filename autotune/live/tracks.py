"""Which track carries the chain, and how this AbletonOSC build lets us address it.

Upstream AbletonOSC resolves a track argument as `song.tracks[int(t)]`: regular tracks only, so the master
cannot be reached (`-1000` errors, `-1` silently wraps to the last regular track). Builds in the wild reach
it as `-1000` (the original project's patch), as the string `"master"`, as index `len(song.tracks)`, or through
a `/live/master/...` namespace. We probe those once and remember the style that answers; `-1` is never
tried, since on a stock build it answers for the wrong track.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autotune.live.client import OscClient
from autotune.live.errors import LiveErrorReply, LiveReadError, LiveTimeout
from autotune.vocabulary.osc import OscArg

Style = Literal["index", "minus-1000", "master-string", "append", "namespace"]

MASTER_HELP = (
    "this AbletonOSC build cannot address the master track; put Glue Compressor and Limiter on a bus "
    'track (route every track to it) and set "track": "<its name>" in the config'
)


@dataclass(frozen=True)
class Track:
    """A resolved track: how to address it and how to name it in messages."""

    label: str
    arg: int | str | None  # None: the /live/master namespace takes no track argument
    style: Style

    @property
    def is_master(self) -> bool:
        return self.style != "index"

    def address(self, track_path: str, master_path: str, *rest: OscArg) -> tuple[str, tuple[OscArg, ...]]:
        if self.arg is None:
            return f"/live/master/{master_path}", rest
        return f"/live/{track_path}", (self.arg, *rest)


def track_names(osc: OscClient) -> list[str]:
    return [str(n) for n in osc.query("/live/song/get/track_names")]


def _answers(osc: OscClient, track: Track) -> bool:
    address, args = track.address("track/get/devices/name", "get/devices/name")
    try:
        osc.query(address, *args)
    except (LiveErrorReply, LiveTimeout):
        return False
    return True


def probe_master(osc: OscClient) -> Track:
    """The first master addressing style this build answers to."""
    names = track_names(osc)
    candidates = [
        Track("-1000", -1000, "minus-1000"),
        Track("master", "master", "master-string"),
        Track("master (/live/master)", None, "namespace"),
        Track(f"master (index {len(names)})", len(names), "append"),
    ]
    for cand in candidates:
        if _answers(osc, cand):
            return cand
    raise LiveReadError(MASTER_HELP)


def resolve_track(osc: OscClient, spec: int | str) -> Track:
    """`spec` is a track index, a track name, `"master"` or `-1000` (both mean the master)."""
    if spec == -1000 or (isinstance(spec, str) and spec.lower() == "master"):
        return probe_master(osc)
    names = track_names(osc)
    if isinstance(spec, int):
        if not 0 <= spec < len(names):
            listed = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names)) or "none"
            raise LiveReadError(f"track {spec} does not exist (regular tracks: {listed})")
        return Track(f"{spec} ({names[spec]!r})", spec, "index")
    matches = [i for i, n in enumerate(names) if n.lower() == spec.lower()]
    if not matches:
        listed = ", ".join(repr(n) for n in names) or "none"
        raise LiveReadError(f"no track named {spec!r} (tracks: {listed})")
    if len(matches) > 1:
        raise LiveReadError(f"{len(matches)} tracks are named {spec!r}: rename one, or give its index")
    return Track(f"{matches[0]} ({names[matches[0]]!r})", matches[0], "index")
