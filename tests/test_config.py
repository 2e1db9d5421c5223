"""The sweep config: the shipped example loads, and every malformed file fails in one line naming field and value."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.config import SweepConfig, load_config
from autotune.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "master_sweep.json"
SHIPPED_TEXT = SHIPPED.read_text(encoding="utf-8")
BASE: dict[str, Any] = json.loads(SHIPPED_TEXT)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """export_file is relative to the project folder (the working directory): make that tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, data: dict[str, Any] | str) -> Path:
    p = folder / "sweep.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return p


def edited(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def config_error(path: Path, output_dir: Path | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        if output_dir is None:
            load_config(path)
        else:
            load_config(path, output_dir)
    msg = str(e.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(f"config {path}: "), msg
    return msg


# --------------------------------------------------------------------------------------------------
# The shipped example


def test_shipped_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    c = load_config(SHIPPED)
    assert isinstance(c, SweepConfig)
    assert c.render_track == "Master"
    assert c.loop == "selection"
    assert c.normalize is False
    assert c.target_lufs == -10.5
    assert c.peak_limit_dbfs == -6.0
    assert c.lufs_tolerance == 0.5  # default
    assert c.master_track_id == -1000
    assert c.chain_track() == -1000
    assert c.device_names == {"glue": "Glue Compressor", "limiter": "Limiter"}
    assert [r.id for r in c.runs] == ["iter7", "iter8", "iter9"]
    assert [r.export_file for r in c.runs] == [
        "output/master_iter7.wav",
        "output/master_iter8.wav",
        "output/master_iter9.wav",
    ]
    assert c.runs[0].params() == {
        "glue": {"threshold_db": -30.0, "makeup_db": 15.0},
        "limiter": {"ceiling_db": -6.5, "gain_db": 28.0},
    }
    assert c.runs[1].params()["glue"] == {"threshold_db": -24.0, "makeup_db": 10.0, "ratio": 4.0}
    assert c.runs[2].params() == {
        "glue": {"threshold_db": -20.0, "makeup_db": 8.0, "ratio": 10.0},
        "limiter": {"ceiling_db": -6.2, "gain_db": 20.0, "release": 0.1},
    }
    assert c.physical_keys() == {
        "glue": ["threshold_db", "makeup_db", "ratio"],
        "limiter": ["ceiling_db", "gain_db", "release"],
    }


def test_shipped_config_loads_from_any_project_folder(in_tmp: Path) -> None:
    c = load_config(SHIPPED)  # export files resolve under in_tmp/output, as does the default output dir
    assert len(c.runs) == 3


def test_auto_export_is_optional(in_tmp: Path) -> None:
    c = load_config(write(in_tmp, BASE))
    assert "auto_export" not in BASE
    assert c.auto_export.enabled is None
    assert c.auto_export.timeout_s == 600.0
    c = load_config(write(in_tmp, edited(lambda d: d.update(auto_export={"enabled": True, "timeout_s": 90}))))
    assert c.auto_export.is_enabled() is True
    assert c.auto_export.timeout_s == 90.0
    c = load_config(write(in_tmp, edited(lambda d: d.update(auto_export={"enabled": False}))))
    assert c.auto_export.is_enabled() is False


def test_ratio_and_release_are_optional(in_tmp: Path) -> None:
    c = load_config(write(in_tmp, BASE))
    assert "ratio" not in c.runs[0].params()["glue"]
    assert "release" not in c.runs[0].params()["limiter"]
    assert c.runs[1].params()["glue"]["ratio"] == 4.0
    assert c.runs[2].params()["limiter"]["release"] == 0.1

    def add(d: dict[str, Any]) -> None:
        d["runs"][0]["glue"]["release"] = 0.4
        d["runs"][0]["glue"]["attack_ms"] = 10
        d["runs"][0]["limiter"]["release_ms"] = 30

    c = load_config(write(in_tmp, edited(add)))
    assert c.runs[0].params()["glue"] == {
        "threshold_db": -30.0,
        "makeup_db": 15.0,
        "release": 0.4,
        "attack_ms": 10,
    }


def test_a_run_may_leave_a_device_alone(in_tmp: Path) -> None:
    c = load_config(write(in_tmp, edited(lambda d: d["runs"][0].pop("limiter"))))
    assert c.runs[0].params() == {"glue": {"threshold_db": -30.0, "makeup_db": 15.0}}
    assert c.physical_keys()["limiter"] == ["ceiling_db", "gain_db", "release"]


def test_extra_devices_are_accepted(in_tmp: Path) -> None:
    def add(d: dict[str, Any]) -> None:
        d["device_names"]["utility"] = "Utility"
        d["device_names"]["eq"] = "EQ Eight"
        d["runs"][0]["utility"] = {"gain_db": -3.0}
        d["runs"][1]["eq"] = {"1_gain_a_db": 1.5, "1_frequency_a_hz": 120}

    c = load_config(write(in_tmp, edited(add)))
    assert c.device_names["utility"] == "Utility"
    assert c.runs[0].params()["utility"] == {"gain_db": -3.0}
    assert c.runs[1].params()["eq"] == {"1_gain_a_db": 1.5, "1_frequency_a_hz": 120.0}
    assert c.physical_keys()["utility"] == ["gain_db"]
    assert list(c.physical_keys()) == ["glue", "limiter", "utility", "eq"]


def test_custom_output_dir(in_tmp: Path) -> None:
    renders = edited(
        lambda d: [r.update(export_file=r["export_file"].replace("output/", "renders/")) for r in d["runs"]]
    )
    path = write(in_tmp, renders)
    c = load_config(path, Path("renders"))
    assert c.runs[0].export_file == "renders/master_iter7.wav"
    assert c.runs[2].export_file == "renders/master_iter9.wav"
    # deeper folders inside it are fine
    nested = edited(lambda d: d["runs"][0].update(export_file="renders/a/b/x.wav"))
    nested["runs"][1]["export_file"] = "renders/y.wav"
    nested["runs"][2]["export_file"] = "renders/z.wav"
    load_config(write(in_tmp, nested), Path("renders"))
    # an absolute output_dir is the same folder
    load_config(path, in_tmp / "renders")
    # with renders/ as the output folder, the shipped output/ paths are outside it
    msg = config_error(write(in_tmp, BASE), Path("renders"))
    assert "runs[0].export_file = 'output/master_iter7.wav'" in msg
    assert "must be inside the output folder renders/" in msg
    # and the default still wants output/
    msg = config_error(write(in_tmp, renders))
    assert "runs[0].export_file = 'renders/master_iter7.wav'" in msg and "output/" in msg


def test_export_file_equal_to_the_output_folder(in_tmp: Path) -> None:
    """A folder can be named like a .wav file; the export must be inside it, not the folder itself."""
    path = write(in_tmp, edited(lambda d: d["runs"][1].update(export_file="out.wav")))
    msg = config_error(path, Path("out.wav"))
    assert "runs[0].export_file = 'output/master_iter7.wav'" in msg  # the first run is checked first
    data = edited(lambda d: d.update(runs=[{"id": "a", "export_file": "out.wav"}]))
    msg = config_error(write(in_tmp, data), Path("out.wav"))
    assert "runs[0].export_file = 'out.wav'" in msg
    assert "must be inside the output folder out.wav/" in msg


# --------------------------------------------------------------------------------------------------
# The malformed corpus: (id, file text, substrings the one-line message must contain)


def _json(change: Callable[[dict[str, Any]], object]) -> str:
    return json.dumps(edited(change))


def _set_run(i: int, **kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["runs"][i].update(kw)


def _set_param(i: int, alias: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["runs"][i][alias].update({key: value})


CORPUS: list[tuple[str, str, tuple[str, ...]]] = [
    ("not-json", "{not json", ("not valid JSON", "line 1")),
    ("truncated-json", SHIPPED_TEXT[:200], ("not valid JSON",)),
    ("trailing-comma", SHIPPED_TEXT.replace('"Limiter"\n', '"Limiter",\n'), ("not valid JSON",)),
    ("empty-file", "", ("file is empty",)),
    ("whitespace-only", "  \n\t \n", ("file is empty",)),
    ("top-level-array", "[1, 2]", ("top level must be a JSON object", "list")),
    ("top-level-string", '"hello"', ("top level must be a JSON object", "str")),
    ("top-level-null", "null", ("top level must be a JSON object", "NoneType")),
    (
        "missing-target_lufs",
        _json(lambda d: d.pop("target_lufs")),
        ("target_lufs", "required field is missing"),
    ),
    ("missing-peak", _json(lambda d: d.pop("peak_limit_dbfs")), ("peak_limit_dbfs", "missing")),
    ("missing-runs", _json(lambda d: d.pop("runs")), ("runs", "required field is missing")),
    ("empty-runs", _json(lambda d: d.update(runs=[])), ("runs", "at least 1")),
    ("runs-not-list", _json(lambda d: d.update(runs={})), ("runs", "valid list")),
    ("run-not-object", _json(lambda d: d.update(runs=["iter7"])), ("runs[0]", "'iter7'")),
    (
        "missing-device_names",
        _json(lambda d: d.pop("device_names")),
        ("device_names", "required field is missing"),
    ),
    ("empty-device_names", _json(lambda d: d.update(device_names={})), ("device_names", "at least 1")),
    ("empty-device-name", _json(lambda d: d["device_names"].update(glue="")), ("device_names.glue", "''")),
    ("run-missing-id", _json(lambda d: d["runs"][1].pop("id")), ("runs[1].id", "required field is missing")),
    ("run-empty-id", _json(_set_run(0, id="")), ("runs[0].id", "''")),
    ("run-int-id", _json(_set_run(0, id=7)), ("runs[0].id", "= 7", "string")),
    (
        "run-missing-export_file",
        _json(lambda d: d["runs"][2].pop("export_file")),
        ("runs[2].export_file", "required field is missing"),
    ),
    (
        "string-target_lufs",
        _json(lambda d: d.update(target_lufs="-10.5")),
        ("target_lufs", "'-10.5'", "number"),
    ),
    ("bool-target_lufs", _json(lambda d: d.update(target_lufs=True)), ("target_lufs", "True", "number")),
    ("null-target_lufs", _json(lambda d: d.update(target_lufs=None)), ("target_lufs", "None")),
    (
        "bool-db",
        _json(_set_param(0, "glue", "threshold_db", True)),
        ("runs[0].glue.threshold_db", "True", "number"),
    ),
    (
        "string-db",
        _json(_set_param(1, "limiter", "ceiling_db", "-6.3")),
        ("runs[1].limiter.ceiling_db", "'-6.3'", "number"),
    ),
    ("null-db", _json(_set_param(0, "glue", "makeup_db", None)), ("runs[0].glue.makeup_db", "None")),
    ("object-db", _json(_set_param(0, "glue", "makeup_db", {"v": 1})), ("runs[0].glue.makeup_db",)),
    ("list-device-block", _json(_set_run(0, glue=[-30.0, 15.0])), ("runs[0].glue", "dictionary")),
    ("string-device-block", _json(_set_run(0, glue="loud")), ("runs[0].glue", "'loud'", "dictionary")),
    ("null-device-block", _json(_set_run(0, glue=None)), ("runs[0].glue", "None", "dictionary")),
    ("string-normalize", _json(lambda d: d.update(normalize="no")), ("normalize", "'no'", "boolean")),
    ("NaN-literal", SHIPPED_TEXT.replace("-10.5", "NaN"), ("NaN", "not a number JSON allows")),
    ("Infinity-literal", SHIPPED_TEXT.replace("-30.0", "Infinity"), ("Infinity", "not a number JSON allows")),
    (
        "-Infinity-literal",
        SHIPPED_TEXT.replace("-6.5", "-Infinity"),
        ("-Infinity", "not a number JSON allows"),
    ),
    (
        "overflow-1e400",
        SHIPPED_TEXT.replace("-30.0", "1e400"),
        ("runs[0].glue.threshold_db", "inf", "finite"),
    ),
    ("overflow-lufs", SHIPPED_TEXT.replace("-10.5", "-1e999"), ("target_lufs", "-inf", "finite")),
    ("unknown-top-level", _json(lambda d: d.update(colour="red")), ("colour", "unknown field")),
    (
        "unknown-device-key",
        _json(_set_run(0, eq={"gain_db": 1.0})),
        ("runs[0].eq", "unknown device key", "glue, limiter"),
    ),
    (
        "typo-device-key",
        _json(lambda d: d["runs"][2].update(limitter=d["runs"][2].pop("limiter"))),
        ("runs[2].limitter",),
    ),
    ("duplicate-run-ids", _json(_set_run(2, id="iter7")), ("runs[2].id", "'iter7'", "duplicate", "runs[0]")),
    (
        "absolute-export",
        _json(_set_run(0, export_file="/tmp/x.wav")),
        ("runs[0].export_file", "'/tmp/x.wav'", "absolute"),
    ),
    (
        "windows-absolute-export",
        _json(_set_run(0, export_file="C:\\renders\\x.wav")),
        ("runs[0].export_file", "absolute"),
    ),
    (
        "dotdot-export",
        _json(_set_run(1, export_file="output/../x.wav")),
        ("runs[1].export_file", "'output/../x.wav'", "'..'"),
    ),
    (
        "dotdot-backslash",
        _json(_set_run(1, export_file="output\\..\\x.wav")),
        ("runs[1].export_file", "'..'"),
    ),
    (
        "non-wav-export",
        _json(_set_run(0, export_file="output/x.mp3")),
        ("runs[0].export_file", "'output/x.mp3'", ".wav"),
    ),
    (
        "no-extension-export",
        _json(_set_run(0, export_file="output/x")),
        ("runs[0].export_file", "'output/x'", ".wav"),
    ),
    ("empty-export", _json(_set_run(0, export_file="")), ("runs[0].export_file", "''")),
    (
        "outside-output",
        _json(_set_run(1, export_file="configs/x.wav")),
        ("runs[1].export_file", "'configs/x.wav'", "output/"),
    ),
    (
        "beside-output",
        _json(_set_run(0, export_file="output.wav")),
        ("runs[0].export_file", "'output.wav'", "output/"),
    ),
    (
        "export-is-output-folder",
        _json(_set_run(0, export_file="output")),
        ("runs[0].export_file", "'output'"),
    ),
    (
        "target_lufs-plus-3",
        _json(lambda d: d.update(target_lufs=3)),
        ("target_lufs", "= 3", "less than or equal to 0"),
    ),
    ("target_lufs-too-low", _json(lambda d: d.update(target_lufs=-99)), ("target_lufs", "= -99")),
    (
        "peak-above-0",
        _json(lambda d: d.update(peak_limit_dbfs=0.5)),
        ("peak_limit_dbfs", "= 0.5", "less than or equal to 0"),
    ),
    ("tolerance-0", _json(lambda d: d.update(lufs_tolerance=0)), ("lufs_tolerance", "= 0", "greater than 0")),
    (
        "tolerance-negative",
        _json(lambda d: d.update(lufs_tolerance=-0.5)),
        ("lufs_tolerance", "= -0.5", "greater than 0"),
    ),
    (
        "timeout-0",
        _json(lambda d: d.update(auto_export={"timeout_s": 0})),
        ("auto_export.timeout_s", "= 0", "greater than 0"),
    ),
    (
        "auto_export-unknown",
        _json(lambda d: d.update(auto_export={"enable": True})),
        ("auto_export.enable", "unknown field"),
    ),
    (
        "auto_export-string",
        _json(lambda d: d.update(auto_export={"enabled": "yes"})),
        ("auto_export.enabled", "'yes'"),
    ),
    ("auto_export-null", _json(lambda d: d.update(auto_export=None)), ("auto_export", "None")),
    ("alias-id", _json(lambda d: d["device_names"].update(id="Utility")), ("device_names", "'id'")),
    (
        "alias-export_file",
        _json(lambda d: d["device_names"].update(export_file="Utility")),
        ("device_names", "'export_file'"),
    ),
    (
        "alias-with-space",
        _json(lambda d: d["device_names"].update({"my eq": "EQ Eight"})),
        ("device_names", "'my eq'"),
    ),
    ("empty-parameter-key", _json(_set_param(0, "glue", "", 1.0)), ("runs[0]", "glue", "parameter key ''")),
    (
        "parameter-key-with-space",
        _json(_set_param(0, "glue", "dry wet", 50)),
        ("runs[0]", "glue", "'dry wet'"),
    ),
    (
        "parameter-key-with-dash",
        _json(_set_param(0, "limiter", "ceiling-db", -6)),
        ("runs[0]", "limiter", "'ceiling-db'"),
    ),
    (
        "run-key-devices",
        _json(_set_run(0, devices={"glue": {"threshold_db": -30.0}})),
        ("runs[0]", "'devices'"),
    ),
    ("negative-track", _json(lambda d: d.update(track=-1)), ("track", "= -1", "ambiguous")),
    ("blank-track", _json(lambda d: d.update(track="  ")), ("track", "'  '", "empty track name")),
    (
        "search-unknown-device",
        _json(lambda d: d.update(search={"eq": {"gain_db": None}})),
        ("search.eq", "unknown device key"),
    ),
    (
        "search-low-above-high",
        _json(lambda d: d.update(search={"glue": {"threshold_db": [0, -10]}})),
        ("search.glue.threshold_db", "low < high"),
    ),
    ("utf8-bom", "\ufeff" + SHIPPED_TEXT, ("not valid JSON", "BOM")),
]


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [c[0] for c in CORPUS]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("text", "needles"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_malformed_config_is_one_line_naming_field_and_value(
    in_tmp: Path, text: str, needles: tuple[str, ...]
) -> None:
    msg = config_error(write(in_tmp, text))
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_malformed_bytes_are_one_line(in_tmp: Path) -> None:
    p = in_tmp / "latin1.json"
    p.write_bytes(b'{"render_track": "Ma\xefster"}')
    msg = config_error(p)
    assert "cannot read" in msg


def test_nonexistent_path(in_tmp: Path) -> None:
    msg = config_error(in_tmp / "nope.json")
    assert "nope.json" in msg and "file not found" in msg


def test_directory_path(in_tmp: Path) -> None:
    msg = config_error(in_tmp)
    assert "is a directory" in msg


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(in_tmp: Path) -> None:
    p = write(in_tmp, BASE)
    p.chmod(0)
    try:
        msg = config_error(p)
    finally:
        p.chmod(0o644)
    assert "cannot read" in msg


def test_unreadable_file_simulated(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path as chmod 000, reachable as root: read_text raising PermissionError."""
    p = write(in_tmp, BASE)

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    msg = config_error(p)
    assert msg.endswith("cannot read: Permission denied")


def test_alias_devices_is_refused_in_device_names(in_tmp: Path) -> None:
    msg = config_error(write(in_tmp, edited(lambda d: d["device_names"].update(devices="Utility"))))
    assert "device_names" in msg and "'devices'" in msg
