"""Display strings -> physical values, config-key units, DisplayLaw's search for a raw value, and the
fader law."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from autotune.errors import UnsettableValue
from autotune.sim.liveset import SimDevice, SimParameter, glue_compressor, limiter
from autotune.vocabulary.display import Display, DisplayLaw, parse_display
from autotune.vocabulary.fader import FADER_0DB, fader_db
from autotune.vocabulary.keys import UnitSpec, split_key

# --------------------------------------------------------------------------------------------------
# parse_display


@pytest.mark.parametrize(
    ("text", "value", "unit", "resolution"),
    [
        ("-30.0 dB", -30.0, "dB", 0.1),
        ("15.00 dB", 15.0, "dB", 0.01),
        ("0 dB", 0.0, "dB", 1.0),
        ("+3 dB", 3.0, "dB", 1.0),
        ("-0.3 dB", -0.3, "dB", 0.1),
        (".5 dB", 0.5, "dB", 0.1),
        ("100 ms", 0.1, "s", 1e-3),
        ("12.3 ms", 0.0123, "s", 1e-4),
        ("0.01 ms", 1e-5, "s", 1e-5),
        ("1.20 s", 1.2, "s", 0.01),
        ("0.4 s", 0.4, "s", 0.1),
        ("4.00 : 1", 4.0, "ratio", 0.01),
        ("4:1", 4.0, "ratio", 1.0),
        ("10.0: 1", 10.0, "ratio", 0.1),
        ("100 %", 100.0, "%", 1.0),
        ("37.5 %", 37.5, "%", 0.1),
        ("440 Hz", 440.0, "Hz", 1.0),
        ("2.5 kHz", 2500.0, "Hz", 100.0),
        ("1.25 kHz", 1250.0, "Hz", 10.0),
        ("12", 12.0, "", 1.0),
        ("  -6.50 dB  ", -6.5, "dB", 0.01),
        ("-6.5dB", -6.5, "dB", 0.1),
        ("3 MS", 0.003, "s", 1e-3),
    ],
)
def test_parse_display_numbers_in_canonical_units(
    text: str, value: float, unit: str, resolution: float
) -> None:
    d = parse_display(text)
    assert d.text == text
    assert d.value == pytest.approx(value)
    assert d.unit == unit
    assert d.resolution == pytest.approx(resolution)
    assert d.numeric


@pytest.mark.parametrize(
    "text", ["Auto", "On", "Off", "Standard", "Soft Clip", "", "dB", "1.2.3 dB", "4 : 2"]
)
def test_parse_display_words_are_not_numeric(text: str) -> None:
    d = parse_display(text)
    assert d.value is None
    assert not d.numeric
    assert d.text == text
    assert d.resolution == 0.0


def test_parse_display_minus_inf_db() -> None:
    d = parse_display("-inf dB")
    assert d.value == -math.inf
    assert d.unit == "dB"
    assert not d.numeric  # a number, but not one a search can aim at
    assert d.resolution == 0.0
    assert parse_display("inf dB").value == math.inf
    assert parse_display("-INF dB").value == -math.inf


def test_resolution_follows_the_number_of_decimals() -> None:
    assert [parse_display(t).resolution for t in ("1 dB", "1.0 dB", "1.00 dB", "1.000 dB")] == pytest.approx(
        [1.0, 0.1, 0.01, 0.001]
    )
    # ms displays carry their resolution over into seconds
    assert parse_display("300 ms").resolution == pytest.approx(1e-3)
    assert parse_display("1.0 ms").resolution == pytest.approx(1e-4)


# --------------------------------------------------------------------------------------------------
# split_key


@pytest.mark.parametrize(
    ("key", "base", "unit", "factor"),
    [
        ("threshold_db", "threshold", "dB", 1.0),
        ("Threshold_dB", "threshold", "dB", 1.0),
        ("makeup_db", "makeup", "dB", 1.0),
        ("attack_ms", "attack", "s", 1e-3),
        ("release_ms", "release", "s", 1e-3),
        ("release_s", "release", "s", 1.0),
        ("release", "release", "s", 1.0),
        ("attack", "attack", "s", 1.0),
        ("release_time", "release_time", "s", 1.0),
        ("ratio", "ratio", "ratio", 1.0),
        ("dry_wet", "dry_wet", None, 1.0),
        ("dry_wet_pct", "dry_wet", "%", 1.0),
        ("mix_percent", "mix", "%", 1.0),
        ("freq_hz", "freq", "Hz", 1.0),
        ("freq_khz", "freq", "Hz", 1e3),
        ("gain", "gain", None, 1.0),
        ("_db", "_db", None, 1.0),  # a bare suffix is not a key with a unit
    ],
)
def test_split_key(key: str, base: str, unit: str | None, factor: float) -> None:
    b, spec = split_key(key)
    assert b == base
    assert spec.unit == unit
    assert spec.factor == pytest.approx(factor)


def test_unit_spec_describe() -> None:
    assert split_key("threshold_db")[1].describe() == "dB"
    assert split_key("attack_ms")[1].describe() == "seconds"
    assert split_key("ratio")[1].describe() == "a ratio"
    assert split_key("dry_wet")[1].describe() == "the display's unit"
    assert UnitSpec("%").describe() == "percent"


# --------------------------------------------------------------------------------------------------
# DisplayLaw.solve against fake parameters


@dataclass
class FakeParam:
    """A parameter as Live shows it: a raw value in lo..hi and a display computed from it."""

    lo: float
    hi: float
    text: Callable[[float], str]
    quantized: bool = False
    raw: float = math.nan
    probes: int = 0

    def __post_init__(self) -> None:
        if math.isnan(self.raw):
            self.raw = self.lo

    def probe(self, raw: float) -> Display:
        assert self.lo - 1e-9 <= raw <= self.hi + 1e-9, f"probed {raw} outside {self.lo}..{self.hi}"
        self.raw = float(round(raw)) if self.quantized else raw
        self.probes += 1
        return parse_display(self.text(self.raw))

    def law(self, name: str = "P") -> DisplayLaw:
        return DisplayLaw(name, self.lo, self.hi, self.quantized)

    def shown(self) -> Display:
        return parse_display(self.text(self.raw))


def _ms_text(ms: float) -> str:  # the virtual Live's ms display
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def _stepped(
    values: list[float | None], fmt: Callable[[float], str], word: str = "Auto"
) -> Callable[[float], str]:
    def text(r: float) -> str:
        v = values[min(len(values) - 1, int(r * len(values)))]
        return word if v is None else fmt(v)

    return text


def identity_db() -> FakeParam:
    return FakeParam(-40.0, 0.0, lambda r: f"{r:.1f} dB")


def makeup_db() -> FakeParam:
    return FakeParam(0.0, 1.0, lambda r: f"{20.0 * r:.2f} dB")


def log_release() -> FakeParam:
    return FakeParam(0.0, 1.0, lambda r: _ms_text(1000.0**r))


def glue_ratio() -> FakeParam:
    return FakeParam(0.0, 1.0, _stepped([2.0, 4.0, 10.0], lambda v: f"{v:.2f} : 1"))


def glue_release() -> FakeParam:
    return FakeParam(0.0, 1.0, _stepped([0.1, 0.2, 0.4, 0.6, 0.8, 1.2, None], lambda v: f"{v:.1f} s"))


def assert_landed(p: FakeParam, result: tuple[float, Display], target: float) -> None:
    """The returned raw is where the parameter sits, and its display shows target within half a digit."""
    raw, shown = result
    assert p.raw == raw
    assert p.shown() == shown
    assert shown.numeric and shown.value is not None
    assert abs(shown.value - target) <= shown.resolution / 2 + 1e-9


def test_identity_law_hits_exactly_with_few_probes() -> None:
    p = identity_db()
    law = p.law("Threshold")
    result = law.solve(-30.0, p.probe)
    assert_landed(p, result, -30.0)
    assert result[0] == pytest.approx(-30.0)
    assert result[1].text == "-30.0 dB"
    assert p.probes <= 12  # the 9-point learning grid plus a read-back


@pytest.mark.parametrize("target", [-24.3, -30.0, -7.7, 0.0, -40.0])
def test_second_solve_reuses_samples(target: float) -> None:
    p = identity_db()
    law = p.law("Threshold")
    law.solve(-12.0, p.probe)
    p.probes = 0
    result = law.solve(target, p.probe)
    assert_landed(p, result, target)
    assert p.probes <= 2


@pytest.mark.parametrize(
    ("target", "raw"), [(15.0, 0.75), (8.0, 0.4), (12.34, 0.617), (0.0, 0.0), (20.0, 1.0)]
)
def test_scaled_law_raw_0_1_to_0_20_db(target: float, raw: float) -> None:
    p = makeup_db()
    law = p.law("Makeup")
    result = law.solve(target, p.probe)
    assert_landed(p, result, target)
    assert result[0] == pytest.approx(raw, abs=5e-4)


@pytest.mark.parametrize("target", [0.1, 0.0123, 0.5, 0.0015, 0.001, 1.0, 0.03])
def test_log_law_in_ms(target: float) -> None:
    p = log_release()
    law = p.law("Release")
    result = law.solve(target, p.probe)
    assert_landed(p, result, target)
    true_s = 1000.0 ** result[0] / 1000.0  # the law's exact value, before display rounding
    assert abs(true_s - target) <= result[1].resolution / 2 + 1e-9
    assert p.probes <= 9 + law.max_probes


def test_log_law_two_targets_in_a_row() -> None:
    p = log_release()
    law = p.law("Release")
    assert_landed(p, law.solve(0.1, p.probe), 0.1)
    assert p.shown().text == "100 ms"
    assert_landed(p, law.solve(0.0123, p.probe), 0.0123)
    assert p.shown().text == "12.3 ms"


def test_stepped_ratio_finds_4() -> None:
    p = glue_ratio()
    law = p.law("Ratio")
    result = law.solve(4.0, p.probe)
    assert_landed(p, result, 4.0)
    assert result[1].text == "4.00 : 1"
    assert 1 / 3 <= result[0] < 2 / 3


def test_stepped_ratio_between_steps_names_the_nearest_settings() -> None:
    p = glue_ratio()
    law = p.law("Ratio")
    with pytest.raises(UnsettableValue, match=r"cannot show 3:1") as e:
        law.solve(3.0, p.probe)
    assert "2.00 : 1" in str(e.value) and "4.00 : 1" in str(e.value)
    assert p.probes <= 9 + law.max_probes + 1
    # the law is still usable afterwards
    assert_landed(p, law.solve(10.0, p.probe), 10.0)
    assert_landed(p, law.solve(2.0, p.probe), 2.0)


def test_stepped_steps_are_listed() -> None:
    p = glue_ratio()
    assert p.law().steps(p.probe) == [2.0, 4.0, 10.0]
    p = glue_release()
    assert p.law().steps(p.probe) == pytest.approx([0.1, 0.2, 0.4, 0.6, 0.8, 1.2])
    p = makeup_db()
    assert p.law().steps(p.probe) is None  # continuous


def test_quantized_numeric_law() -> None:
    # Limiter Lookahead: raw 0, 1, 2 -> 1.5, 3.0, 6.0 ms
    p = FakeParam(0.0, 2.0, lambda r: f"{(1.5, 3.0, 6.0)[round(r)]:.1f} ms", quantized=True)
    law = p.law("Lookahead")
    result = law.solve(0.003, p.probe)
    assert_landed(p, result, 0.003)
    assert result[0] == 1.0
    assert p.probes <= 4  # the three integers plus a read-back
    assert_landed(p, law.solve(0.006, p.probe), 0.006)
    assert_landed(p, law.solve(0.0015, p.probe), 0.0015)
    with pytest.raises(UnsettableValue, match=r"3\.0 ms, 6\.0 ms"):
        law.solve(0.004, p.probe)


def test_quantized_integer_law_shown_as_numbers() -> None:
    p = FakeParam(0.0, 2.0, lambda r: f"{round(r)}", quantized=True)
    law = p.law("Steps")
    for target in (2.0, 0.0, 1.0):
        result = law.solve(target, p.probe)
        assert_landed(p, result, target)
        assert result[0] == target


def test_quantized_law_shown_as_words_has_no_numbers() -> None:
    p = FakeParam(0.0, 2.0, lambda r: ("Standard", "Soft Clip", "True Peak")[round(r)], quantized=True)
    with pytest.raises(UnsettableValue, match=r"Mode shows no numbers.*'Standard'"):
        p.law("Mode").solve(1.0, p.probe)


def test_stepped_law_with_auto_on_top() -> None:
    p = glue_release()
    law = p.law("Release")
    result = law.solve(0.4, p.probe)
    assert_landed(p, result, 0.4)
    assert result[1].text == "0.4 s"
    result = law.solve(1.2, p.probe)
    assert_landed(p, result, 1.2)
    assert result[1].text == "1.2 s"
    assert law.physical_range() == (0.1, 1.2)  # "Auto" is not a number
    with pytest.raises(UnsettableValue, match=r"cannot show 300 ms.*0\.2 s, 0\.4 s"):
        law.solve(0.3, p.probe)


@pytest.mark.parametrize(
    ("make", "target", "shown_range"),
    [
        (identity_db, -45.0, "-40 dB .. 0 dB"),
        (identity_db, 5.0, "-40 dB .. 0 dB"),
        (identity_db, 0.06, "-40 dB .. 0 dB"),
        (makeup_db, 25.0, "0 dB .. 20 dB"),
        (makeup_db, -1.0, "0 dB .. 20 dB"),
        (glue_ratio, 12.0, "2:1 .. 10:1"),
        (log_release, 2.0, "1 ms .. 1 s"),
        (glue_release, 1.5, "100 ms .. 1.2 s"),
    ],
)
def test_out_of_range_names_the_range(make: Callable[[], FakeParam], target: float, shown_range: str) -> None:
    p = make()
    with pytest.raises(UnsettableValue, match="outside") as e:
        p.law("X").solve(target, p.probe)
    assert shown_range in str(e.value)
    assert "X's range" in str(e.value)


def test_within_half_a_digit_of_the_end_is_accepted() -> None:
    p = identity_db()
    law = p.law("Threshold")
    assert_landed(p, law.solve(0.04, p.probe), 0.04)
    assert p.shown().text == "0.0 dB"
    assert_landed(p, law.solve(-40.05, p.probe), -40.05)


@pytest.mark.parametrize("target", [0.0005, 0.0, -0.003])
def test_log_law_below_its_minimum_is_out_of_range(target: float) -> None:
    p = log_release()
    with pytest.raises(UnsettableValue, match=r"outside Release's range 1 ms \.\. 1 s"):
        p.law("Release").solve(target, p.probe)


@pytest.mark.parametrize(
    ("make", "targets"),
    [
        (lambda: FakeParam(0.0, 1.0, lambda r: f"{-60.0 * r:.1f} dB"), [-30.0, -12.3, -60.0, -59.9, 0.0]),
        (lambda: FakeParam(0.0, 1.0, lambda r: _ms_text(1000.0 ** (1.0 - r))), [0.1, 0.0123, 0.5, 1.0]),
        (lambda: FakeParam(0.0, 1.0, _stepped([10.0, 4.0, 2.0], lambda v: f"{v:.2f} : 1")), [4.0, 10.0, 2.0]),
        (lambda: FakeParam(-1.0, 1.0, lambda r: f"{10.0 - 5.0 * r:.2f} dB"), [7.77, 12.5, 5.0, 15.0]),
    ],
)
def test_decreasing_laws_solve(make: Callable[[], FakeParam], targets: list[float]) -> None:
    p = make()
    law = p.law("Down")
    for target in targets:
        assert_landed(p, law.solve(target, p.probe), target)


def test_decreasing_stepped_law_between_steps() -> None:
    p = FakeParam(0.0, 1.0, _stepped([10.0, 4.0, 2.0], lambda v: f"{v:.2f} : 1"))
    with pytest.raises(UnsettableValue, match=r"cannot show 3:1.*4\.00 : 1, 2\.00 : 1"):
        p.law("Ratio").solve(3.0, p.probe)


def test_wide_quantized_law_returns_the_raw_the_parameter_holds() -> None:
    p = FakeParam(0.0, 127.0, lambda r: f"{round(r)}", quantized=True)
    result = p.law("Note").solve(16.0, p.probe)
    assert_landed(p, result, 16.0)


def test_wide_quantized_law_between_grid_points() -> None:
    p = FakeParam(0.0, 127.0, lambda r: f"{round(r)}", quantized=True)
    law = p.law("Note")
    for target in (37.0, 63.0, 100.0):
        result = law.solve(target, p.probe)
        assert_landed(p, result, target)
        assert result[0] == target


# --------------------------------------------------------------------------------------------------
# The virtual Live's own parameters


def _sim_probe(param: SimParameter) -> Callable[[float], Display]:
    def probe(raw: float) -> Display:
        param.set(raw)
        return parse_display(param.display)

    return probe


def _sim_solve(device: SimDevice, name: str, target: float) -> tuple[SimParameter, float, Display]:
    param = device.param(name)
    law = DisplayLaw(f"{device.name} {name}", param.min, param.max, param.is_quantized)
    raw, shown = law.solve(target, _sim_probe(param))
    return param, raw, shown


@pytest.mark.parametrize(
    ("device", "name", "target", "text"),
    [
        ("glue", "Threshold", -30.0, "-30.0 dB"),
        ("glue", "Threshold", -24.0, "-24.0 dB"),
        ("glue", "Makeup", 15.0, "15.00 dB"),
        ("glue", "Makeup", 8.0, "8.00 dB"),
        ("glue", "Ratio", 4.0, "4.00 : 1"),
        ("glue", "Ratio", 10.0, "10.00 : 1"),
        ("glue", "Attack", 0.01, "10 ms"),
        ("glue", "Attack", 0.0003, "0.3 ms"),
        ("glue", "Release", 0.4, "0.4 s"),
        ("glue", "Release", 1.2, "1.2 s"),
        ("glue", "Range", -12.5, "-12.5 dB"),
        ("glue", "Dry/Wet", 50.0, "50 %"),
        ("glue", "Dry/Wet", 100.0, "100 %"),
        ("limiter", "Ceiling", -6.5, "-6.50 dB"),
        ("limiter", "Ceiling", -6.3, "-6.30 dB"),
        ("limiter", "Input Gain", 28.0, "28.00 dB"),
        ("limiter", "Input Gain", -3.25, "-3.25 dB"),
        ("limiter", "Release", 0.1, "100 ms"),
        ("limiter", "Release", 0.0123, "12.3 ms"),
        ("limiter", "Release", 0.3, "300 ms"),
        ("limiter", "Lookahead", 0.006, "6.0 ms"),
    ],
)
def test_virtual_live_parameters(device: str, name: str, target: float, text: str) -> None:
    dev = glue_compressor() if device == "glue" else limiter()
    param, raw, shown = _sim_solve(dev, name, target)
    assert param.display == text
    assert shown.text == text
    assert shown.value is not None and abs(shown.value - target) <= shown.resolution / 2 + 1e-9
    assert param.value == pytest.approx(raw, abs=1e-6)  # Live keeps 32-bit floats
    assert param.min <= raw <= param.max


def test_virtual_live_11_names() -> None:
    dev = limiter("live11")
    param, _, _ = _sim_solve(dev, "Gain", 18.0)
    assert param.display == "18.00 dB"
    param, _, _ = _sim_solve(dev, "Release time", 0.1)
    assert param.display == "100 ms"


def test_virtual_live_out_of_range_and_between_steps() -> None:
    with pytest.raises(UnsettableValue, match=r"range -40 dB \.\. 0 dB"):
        _sim_solve(glue_compressor(), "Threshold", -80.0)
    with pytest.raises(UnsettableValue, match=r"cannot show 3:1.*2\.00 : 1, 4\.00 : 1"):
        _sim_solve(glue_compressor(), "Ratio", 3.0)
    with pytest.raises(UnsettableValue, match=r"range 0 dB \.\. 20 dB"):
        _sim_solve(glue_compressor(), "Makeup", 25.0)


def test_blind_normalisation_is_wrong_for_makeup() -> None:
    """The original spec wrote (value - min) / (max - min): with Makeup's raw range 0..1 that is 15, not 0.75."""
    makeup = glue_compressor().param("Makeup")
    blind = (15.0 - makeup.min) / (makeup.max - makeup.min)
    assert blind == 15.0
    assert not makeup.min <= blind <= makeup.max
    with pytest.raises(ValueError, match="Invalid value 15"):
        makeup.set(blind)

    raw, shown = DisplayLaw("Makeup", makeup.min, makeup.max, makeup.is_quantized).solve(
        15.0, _sim_probe(makeup)
    )
    assert raw == pytest.approx(0.75)
    assert shown.text == "15.00 dB"
    assert makeup.display == "15.00 dB"
    assert makeup.physical == pytest.approx(15.0)


# --------------------------------------------------------------------------------------------------
# the fader law


def test_live_fader_law() -> None:
    assert fader_db(FADER_0DB) == pytest.approx(0.0)
    assert fader_db(0.85) == pytest.approx(0.0)
    assert fader_db(1.0) == pytest.approx(6.0)
    assert fader_db(0.0) == -math.inf
    assert fader_db(0.4) == pytest.approx(-18.0)
    assert fader_db(0.4 - 1e-9) == pytest.approx(-18.0, abs=1e-6)  # continuous at the join
    gains = [fader_db(0.01 + 0.99 * i / 199) for i in range(200)]
    assert all(b > a for a, b in itertools.pairwise(gains))
