"""A corpus of malformed configs and invocations through the CLI: each is one line naming the problem,
exit 20, no traceback, and nothing written to the receipts or the storage."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from autotune.cli import main

Edit = Callable[[dict[str, Any]], None]


def base() -> dict[str, Any]:
    return json.loads((Path(__file__).parents[1] / "configs" / "master_sweep.json").read_text())


def edit(fn: Edit) -> str:
    config = base()
    fn(config)
    return json.dumps(config)


def run0(**kv: Any) -> Edit:
    return lambda c: c["runs"][0].update(kv)


CONFIGS: dict[str, tuple[str, str]] = {
    "not json": ("{", "not valid JSON"),
    "empty file": ("", "file is empty"),
    "whitespace": ("   \n", "file is empty"),
    "top-level array": ("[]", "must be a JSON object"),
    "null": ("null", "must be a JSON object"),
    "missing target": (edit(lambda c: c.pop("target_lufs")), "target_lufs: required field is missing"),
    "missing peak limit": (edit(lambda c: c.pop("peak_limit_dbfs")), "peak_limit_dbfs: required"),
    "missing runs": (edit(lambda c: c.pop("runs")), "runs: required"),
    "empty runs": (edit(lambda c: c.update(runs=[])), "runs"),
    "missing device_names": (edit(lambda c: c.pop("device_names")), "device_names: required"),
    "empty device_names": (edit(lambda c: c.update(device_names={})), "device_names"),
    "run without id": (edit(lambda c: c["runs"][0].pop("id")), "runs[0].id: required"),
    "run without export_file": (
        edit(lambda c: c["runs"][0].pop("export_file")),
        "runs[0].export_file: required",
    ),
    "extra field": (edit(lambda c: c.update(targett_lufs=-9)), "targett_lufs: unknown field"),
    "target as string": (edit(lambda c: c.update(target_lufs="-10.5")), "target_lufs = '-10.5'"),
    "target as bool": (edit(lambda c: c.update(target_lufs=True)), "target_lufs = True"),
    "dB as string": (
        edit(lambda c: c["runs"][0]["glue"].update(threshold_db="-30")),
        "runs[0].glue.threshold_db = '-30'",
    ),
    "dB as bool": (
        edit(lambda c: c["runs"][0]["glue"].update(makeup_db=False)),
        "runs[0].glue.makeup_db = False",
    ),
    "device block as list": (edit(run0(glue=[1, 2])), "runs[0].glue"),
    "NaN": (edit(lambda c: None).replace("-10.5", "NaN"), "NaN is not a number JSON allows"),
    "Infinity": (edit(lambda c: None).replace("-6.0", "Infinity"), "Infinity is not a number"),
    "-Infinity": (edit(lambda c: None).replace("-30.0", "-Infinity"), "-Infinity is not a number"),
    "overflow 1e999": (edit(lambda c: None).replace("-10.5", "-1e999"), "target_lufs"),
    "target above 0": (edit(lambda c: c.update(target_lufs=3.0)), "target_lufs = 3.0"),
    "peak limit above 0": (edit(lambda c: c.update(peak_limit_dbfs=1.0)), "peak_limit_dbfs = 1.0"),
    "tolerance 0": (edit(lambda c: c.update(lufs_tolerance=0)), "lufs_tolerance = 0"),
    "negative tolerance": (edit(lambda c: c.update(lufs_tolerance=-1)), "lufs_tolerance = -1"),
    "unknown device key": (edit(run0(eq={"gain_db": 1.0})), "runs[0].eq: unknown device key"),
    "duplicate run id": (
        edit(lambda c: c["runs"][1].update(id="iter7")),
        "runs[1].id = 'iter7': duplicate run id",
    ),
    "absolute export path": (edit(run0(export_file="/tmp/x.wav")), "not absolute"),
    "dotdot export path": (edit(run0(export_file="output/../x.wav")), "must not contain '..'"),
    "non-wav export": (edit(run0(export_file="output/x.mp3")), "must name a .wav file"),
    "export outside output": (edit(run0(export_file="configs/x.wav")), "must be inside the output folder"),
    "export is the folder": (edit(run0(export_file="output/.wav/..")), "export_file"),
    "timeout 0": (
        edit(lambda c: c.update(auto_export={"enabled": False, "timeout_s": 0})),
        "auto_export.timeout_s = 0",
    ),
    "auto_export extra": (
        edit(lambda c: c.update(auto_export={"enable": True})),
        "auto_export.enable: unknown field",
    ),
    "alias id": (edit(lambda c: c["device_names"].update(id="Utility")), "alias 'id'"),
    "empty parameter key": (edit(run0(glue={"": 1.0})), "parameter key ''"),
    "key with spaces": (edit(run0(glue={"threshold db": 1.0})), "parameter key 'threshold db'"),
    "run key devices": (edit(run0(devices={})), "'devices' is not a run key"),
    "track -1": (edit(lambda c: c.update(track=-1)), "negative indices are ambiguous"),
    "empty track name": (edit(lambda c: c.update(track=" ")), "an empty track name"),
    "search unknown alias": (
        edit(lambda c: c.update(search={"eq": {"gain_db": None}})),
        "search.eq: unknown device key",
    ),
    "search reversed bound": (
        edit(lambda c: c.update(search={"glue": {"threshold_db": [0, -10]}})),
        "needs [low, high]",
    ),
    "search three numbers": (
        edit(lambda c: c.update(search={"glue": {"threshold_db": [1, 2, 3]}})),
        "search.glue.threshold_db",
    ),
    "value beyond the device": (
        edit(lambda c: c["runs"][2]["glue"].update(threshold_db=-80.0)),
        "outside Glue Compressor Threshold range -40 dB .. 0 dB",
    ),
    "unknown parameter": (
        edit(lambda c: c["runs"][0]["limiter"].update(knee_db=3.0)),
        "no parameter matches 'knee_db'",
    ),
    "stepped value between steps": (
        edit(lambda c: c["runs"][1]["glue"].update(ratio=3.0)),
        "can only be 2, 4, 10",
    ),
    "search bound beyond the device": (
        edit(lambda c: c.update(search={"limiter": {"gain_db": [0, 48]}})),
        "search.limiter.gain_db = 48 is outside",
    ),
}

INVOCATIONS: dict[str, tuple[list[str], str]] = {
    "unknown sampler": (
        ["optimize", "configs/master_sweep.json", "--sampler", "bayes"],
        "invalid choice: 'bayes'",
    ),
    "trials 0": (["optimize", "configs/master_sweep.json", "--trials", "0"], "0 must be at least 1"),
    "trials not a number": (
        ["optimize", "configs/master_sweep.json", "--trials", "many"],
        "'many' is not a whole number",
    ),
    "port 0": (["sweep", "configs/master_sweep.json", "--port", "0"], "setting port"),
    "port 70000": (["sweep", "configs/master_sweep.json", "--port", "70000"], "setting port"),
    "port not a number": (
        ["sweep", "configs/master_sweep.json", "--port", "eleven"],
        "invalid int value: 'eleven'",
    ),
    "reply port 70000": (
        ["sweep", "configs/master_sweep.json", "--reply-port", "70000"],
        "setting reply_port",
    ),
    "negative timeout": (["sweep", "configs/master_sweep.json", "--timeout", "-1"], "setting timeout"),
    "unknown storage scheme": (
        ["sweep", "configs/master_sweep.json", "--storage", "nosuchdb://x"],
        "storage 'nosuchdb://x'",
    ),
    "storage without scheme": (
        ["sweep", "configs/master_sweep.json", "--storage", "studies/x.txt"],
        "not a storage URL",
    ),
    "sqlite without a file": (
        ["sweep", "configs/master_sweep.json", "--storage", "sqlite:///"],
        "names no database file",
    ),
    "journal that is a folder": (
        ["sweep", "configs/master_sweep.json", "--storage", "configs.journal"],
        "is a directory",
    ),
    "missing config": (["sweep", "configs/nope.json"], "file not found"),
    "config is a folder": (["sweep", "configs"], "is a directory"),
    "unknown backend": (
        ["sweep", "configs/master_sweep.json", "--backend", "cloud"],
        "invalid choice: 'cloud'",
    ),
    "unknown command": (["tune"], "invalid choice: 'tune'"),
    "sweep without config": (["sweep"], "the following arguments are required: config"),
    "unknown export": (
        ["sweep", "configs/master_sweep.json", "--export", "email"],
        "invalid choice: 'email'",
    ),
    "command export without a command": (
        ["sweep", "configs/master_sweep.json", "--export", "command"],
        "needs --export-command",
    ),
    "export command without {path}": (
        ["sweep", "configs/master_sweep.json", "--export-command", "render out.wav"],
        "must name the file as {path}",
    ),
    "unresolvable Live host": (
        ["sweep", "configs/master_sweep.json", "--backend", "live", "--host", "no.such.host.invalid"],
        "cannot resolve Live's host",
    ),
    "gp without torch": (["optimize", "configs/master_sweep.json", "--sampler", "gp"], "needs torch"),
}


def assert_refused(project: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str) -> None:
    assert main(args) == 20
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in captured.out + err, err
    assert words in err, err
    assert not (project / "output" / "experiments.jsonl").exists()
    assert not (project / "studies").exists()  # no storage, no lock file, no artifacts


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_malformed_config(project: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    text, words = CONFIGS[name]
    (project / "output" / ".wav").mkdir(exist_ok=True)
    Path("configs/bad.json").write_text(text)
    command = "optimize" if "search" in name else "sweep"
    assert_refused(project, capsys, [command, "configs/bad.json"], words)


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_malformed_invocation(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from autotune import samplers

    monkeypatch.setattr(samplers, "torch_available", lambda: False)
    Path("configs.journal").mkdir()
    args, words = INVOCATIONS[name]
    assert_refused(project, capsys, args, words)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path("configs/locked.json")
    path.write_text("{}")
    path.chmod(0)
    assert_refused(project, capsys, ["sweep", str(path)], "cannot read")


def test_restart_with_a_bad_config_keeps_the_study(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "configs/master_sweep.json"]) == 0
    Path("configs/bad.json").write_text(edit(lambda c: c["runs"][0]["glue"].update(threshold_db=-300.0)))
    capsys.readouterr()
    assert main(["sweep", "configs/bad.json", "--study", "master_sweep", "--restart"]) == 20
    assert "outside Glue Compressor Threshold range" in capsys.readouterr().err
    study = optuna.load_study(study_name="master_sweep", storage="sqlite:///studies/autotune.db")
    assert len(study.get_trials()) == 3  # --restart deletes only once the new config is known to be good


def test_corpus_size() -> None:
    assert len(CONFIGS) + len(INVOCATIONS) >= 40
