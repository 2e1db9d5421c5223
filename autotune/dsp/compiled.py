"""numba-compiled kernels for the sequential loops of `autotune.dsp`, with a way back to plain code.

The sequential parts of the physics and the meter (the Glue's attack/release ballistics, the chain model's
limiter envelope, the K-weighting biquads) are loops no numpy expression computes exactly. When numba is
installed they are compiled on first use (and cached on disk beside their source, so a later process only
loads them); without it, or with AUTOTUNE_NUMBA=0, every caller runs its numpy, scipy or pure-Python code
instead, which gives the same numbers within rounding (tests/test_model_speed.py and tests/test_bs1770.py
hold both to the straightforward code).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from typing import Any

_NUMBA: Any = None  # the numba module once imported; False when it is unavailable or switched off
_COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}
_COMPILE_LOCK = threading.Lock()


def jit(fn: Callable[..., Any], *, contract: bool = False) -> Callable[..., Any] | None:
    """`fn` compiled by numba (nopython, cached on disk), or None when numba is not there to compile it.
    `contract` lets LLVM fuse a multiply and an add into one FMA (one rounding instead of two).

    Importing numba costs a few hundred milliseconds, so nothing imports it before a kernel is needed:
    starting the CLI, or a process that never measures, predicts or renders, does not pay for it."""
    global _NUMBA
    kernel = _COMPILED.get(fn)
    if kernel is not None:
        return kernel
    with _COMPILE_LOCK:
        if _NUMBA is None:
            if os.environ.get("AUTOTUNE_NUMBA", "1").strip().lower() in ("0", "false", "no", "off"):
                _NUMBA = False
            else:
                try:
                    _NUMBA = importlib.import_module("numba")
                except ImportError:  # not installed, or built for another numpy: the numpy code runs
                    _NUMBA = False
        if _NUMBA is False:
            return None
        kernel = _COMPILED.get(fn)
        if kernel is None:
            options: dict[str, Any] = {"fastmath": {"contract"}} if contract else {}
            try:
                kernel = _NUMBA.njit(cache=True, nogil=True, **options)(fn)
            except RuntimeError:  # no writable folder for numba's cache: compiled in every process instead
                kernel = _NUMBA.njit(nogil=True, **options)(fn)
            _COMPILED[fn] = kernel
        return kernel
