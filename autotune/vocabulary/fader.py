"""Live's fader law: raw track volume 0.85 is 0 dB, 1.0 is +6 dB, 0 is silence.

AbletonOSC reads and writes a track's volume raw and has no display string for it, so nothing on the wire
says what a raw volume means: the client that sets the fader to 0 dB, the doctor that reports a fader left
elsewhere, and the virtual Live that renders through it must all assume the same law, and take it from
here. The DSP never needs it: it is handed the fader's gain in dB.
"""

from __future__ import annotations

import math

#: The raw volume that is 0 dB: what a trial sets before every export.
FADER_0DB = 0.85


def fader_db(volume: float) -> float:
    """The gain of a fader at raw `volume`: linear in dB (40 dB per unit) down to raw 0.4 (-18 dB), then
    logarithmic to silence at 0, as the virtual Live models Live's curve."""
    if volume <= 0:
        return -math.inf
    if volume >= 0.4:
        return (volume - FADER_0DB) * 40.0
    return -18.0 + 40.0 * math.log10(volume / 0.4)
