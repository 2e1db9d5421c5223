"""The doctor's checks of `--export resample`'s capture route, tried for real: the Resampling input, the
capture arm, and a 1 s test recording that must appear and not be silent.
"""

from __future__ import annotations

from collections.abc import Callable

from autotune.audio import AnalysisError, analyze_file
from autotune.backends import resample_session
from autotune.config import SweepConfig
from autotune.doctor.check import Check
from autotune.live.client import OscClient
from autotune.live.errors import ExportFailed, LiveError
from autotune.live.resample import CAPTURE_TRACK, RESAMPLING, SILENCE_DBFS, CaptureSetupError, Span
from autotune.settings import Settings

#: Seconds the doctor's test recording lasts.
TEST_CAPTURE_S = 1.0


def check_resample(
    osc: OscClient, config: SweepConfig, settings: Settings, log: Callable[[str], None]
) -> list[Check]:
    """The capture route of `--export resample`, tried for real: the Resampling input type exists, the
    capture track arms, and a 1 s test recording appears and is not silent. The Set is put back afterwards
    exactly as the runs do it (the test's clip and take deleted, a track made for the test removed)."""
    session = resample_session(settings, config, osc, lambda _: None)
    session.keep_takes = False
    out: list[Check] = []
    try:
        try:
            session.prepare()
        except CaptureSetupError as e:
            if e.check == "capture arm":  # the routing came before the arm and was confirmed
                out.append(
                    Check("capture routing", "ok", f"{CAPTURE_TRACK!r} takes {RESAMPLING!r} as its input")
                )
            return [*out, Check(e.check, "fail", e.detail, e.fix)]
        out.append(
            Check(
                "capture routing",
                "ok",
                f"{CAPTURE_TRACK!r} takes {RESAMPLING!r} as its input, monitoring Off",
            )
        )
        out.append(
            Check(
                "capture arm", "ok", f"{CAPTURE_TRACK!r} is armed (other armed tracks are disarmed for a run)"
            )
        )
        assert session.span is not None
        tempo = float(osc.query("/live/song/get/tempo")[0])
        test = Span(session.span.start_beats, TEST_CAPTURE_S * tempo / 60.0, "the doctor's test")
        target = settings.output_dir / ".doctor-capture.wav"
        try:
            session.capture(target, test)
            m = analyze_file(target)
        except ExportFailed as e:
            return [
                *out,
                Check(
                    "capture test", "fail", f"the {TEST_CAPTURE_S:g} s test recording failed: {e}", _TEST_FIX
                ),
            ]
        except AnalysisError as e:
            silent = "silent" in str(e)
            return [
                *out,
                Check(
                    "capture test",
                    "fail",
                    f"the {TEST_CAPTURE_S:g} s test recording from beat {test.start_beats:g} "
                    + ("is silent" if silent else f"cannot be measured: {e}"),
                    "play the Set from that beat: the main output must sound there (Resampling records it post "
                    "master fader); or capture another span"
                    if silent
                    else _TEST_FIX,
                ),
            ]
        finally:
            target.unlink(missing_ok=True)
        if m.peak_dbfs <= SILENCE_DBFS:
            return [
                *out,
                Check(
                    "capture test",
                    "fail",
                    f"the test recording peaks at {m.peak_dbfs:.1f} dBFS: silence",
                    _TEST_FIX,
                ),
            ]
        return [
            *out,
            Check(
                "capture test",
                "ok",
                f"a {TEST_CAPTURE_S:g} s test recording from beat {test.start_beats:g} appeared: "
                f"{m.lufs_i:.1f} LUFS, peak {m.peak_dbfs:.1f} dBFS, {m.sample_rate} Hz",
            ),
        ]
    except LiveError as e:
        return [*out, Check("capture test", "fail", str(e), _TEST_FIX)]
    finally:
        session.restore()


_TEST_FIX = "check the capture track in Live (armed, Audio From Resampling, an empty clip slot) and the Set's Samples/Recorded folder"
