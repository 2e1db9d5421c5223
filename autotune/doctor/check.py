"""The doctor's one result type: a named check, its status, what it found and the fix for a failure.

Every check module of the doctor returns these; the CLI prints them and `DoctorReport` carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
