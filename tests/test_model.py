"""Model-based search: the chain model against the real render, proposals, out-of-reach verdicts, and the
`--sampler model` / `--sampler stepwise` studies end to end on the virtual Live (real UDP).

The unit tests run on an 8 s demo (rendering it costs ~0.1 s per setting); the CLI tests use the 30 s demo
the virtual Live plays. Every CLI test gets its own reference cache: the project fixture's demo cache is
shared by the whole session, and a dry reference cached by one test would otherwise serve the next one.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from numpy.typing import NDArray

from autotune.audio import analyze_file
from autotune.cli import main
from autotune.dsp import ChainParams, DemoSpec, GlueParams, LimiterParams, demo_track, render
from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.model import ChainModel, DryFeatures
from autotune.errors import EXIT_OUT_OF_REACH, EXIT_READ
from autotune.modelsearch import (
    ModelSearch,
    Observation,
    Role,
    chain_params,
    features,
    gated_lufs,
)
from autotune.trial import REFERENCE_ID
from objectives import Dim, Range, unflatten

optuna.logging.set_verbosity(optuna.logging.ERROR)  # every proposal runs an offline study

SR = 48_000
ROLES: dict[str, Role] = {"glue": "glue", "limiter": "limiter"}
#: The search space of configs/streaming.json as the virtual Live resolves it (ceiling: 6 dB under the limit).
STREAMING_SPACE: dict[str, Dim] = {
    "glue.threshold_db": Range(-30.0, 0.0),
    "glue.makeup_db": Range(0.0, 10.0),
    "limiter.gain_db": Range(0.0, 24.0),
    "limiter.ceiling_db": Range(-7.0, -1.05),
}
STORAGE = "sqlite:///studies/autotune.db"
DRY_PARAMS = {"master_fader_db": 0.0, "glue": {"device_on": 0.0}, "limiter": {"device_on": 0.0}}


# -- helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_demo() -> tuple[NDArray[np.float64], DryFeatures]:
    """An 8 s demo and its model features: long enough for gated loudness, short enough to render often."""
    audio = demo_track(DemoSpec(seconds=8.0))
    return audio, features(audio, SR)


def measure(audio: NDArray[np.float64], flat: dict[str, float]) -> tuple[float, float]:
    """(integrated LUFS, sample peak dBFS) of the real render of config-keyed flat params."""
    y = render(audio, SR, chain_params(unflatten(flat), ROLES, ChainParams()))
    return integrated_loudness(y, SR), float(20.0 * np.log10(np.abs(y).max()))


@pytest.fixture
def model_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project fixture with a reference cache of its own (the demo song itself stays memoised in-process)."""
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(project / ".cache"))
    return project


def receipts(project: Path) -> list[dict[str, Any]]:
    path = project / "output" / "experiments.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def exports(project: Path) -> list[Path]:
    return sorted((project / "output").rglob("*.wav"))


def write_config(project: Path, source: str, name: str, **changes: Any) -> str:
    config = json.loads((project / "configs" / source).read_text())
    config.update(changes)
    (project / "configs" / name).write_text(json.dumps(config))
    return f"configs/{name}"


def on_a_bus(project: Path, monkeypatch: pytest.MonkeyPatch, name: str, **sim: str) -> str:
    """A config for the chain on a bus track, "Mix Bus", of a stock AbletonOSC build (no master
    addressing), with the virtual Live's `sim` settings (AUTOTUNE_SIM_* variables) on top."""
    monkeypatch.setenv("AUTOTUNE_SIM_ADDRESSING", "stock")
    monkeypatch.setenv("AUTOTUNE_SIM_CHAIN_ON", "bus")
    for key, value in sim.items():
        monkeypatch.setenv(key, value)
    config = write_config(project, "streaming.json", name, track="Mix Bus")
    doc = json.loads((project / config).read_text())
    doc.pop("master_track_id", None)
    (project / config).write_text(json.dumps(doc))
    return config


# -- 1. the model agrees with the real render ---------------------------------------------------------

CASES: dict[str, tuple[ChainParams, bool]] = {
    # name: (chain, whether the limiter is limiting, so the output peak sits at its ceiling)
    "bypassed": (ChainParams(GlueParams(on=False), LimiterParams(on=False)), False),
    "gentle": (
        ChainParams(
            GlueParams(threshold_db=-20, ratio=4, makeup_db=4), LimiterParams(gain_db=6, ceiling_db=-1)
        ),
        True,
    ),
    "heavy-glue-fast": (
        ChainParams(
            GlueParams(threshold_db=-30, ratio=10, makeup_db=12, attack_ms=1, release_s=0.1),
            LimiterParams(gain_db=10, ceiling_db=-6, release_ms=50),
        ),
        True,
    ),
    "auto-release-1ms-limiter": (
        ChainParams(
            GlueParams(threshold_db=-10, release_s=None),
            LimiterParams(gain_db=18, ceiling_db=-0.3, release_ms=1),
        ),
        True,
    ),
    "limiter-only-slow": (
        ChainParams(GlueParams(on=False), LimiterParams(gain_db=24, ceiling_db=-3, release_ms=1000)),
        True,
    ),
    "glue-only-slow": (
        ChainParams(
            GlueParams(threshold_db=-25, ratio=4, makeup_db=8, attack_ms=30, release_s=1.2),
            LimiterParams(on=False),
        ),
        False,
    ),
    "parallel-glue": (
        ChainParams(GlueParams(threshold_db=-20, ratio=4, makeup_db=4, dry_wet=0.5), LimiterParams(on=False)),
        False,
    ),
    "fader-after-limiter": (
        ChainParams(
            GlueParams(threshold_db=-20, ratio=4, makeup_db=4),
            LimiterParams(gain_db=8, ceiling_db=-1),
            fader_db=-2.0,
        ),
        True,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_model_predicts_what_the_render_measures(
    short_demo: tuple[NDArray[np.float64], DryFeatures], name: str
) -> None:
    """The search trusts the model instead of rendering: its loudness must be the meter's, within far less
    than a tolerance, and when the limiter limits, its peak must be the export's (the peak-limit check)."""
    audio, feats = short_demo
    params, limiting = CASES[name]
    y = render(audio, SR, params)
    predicted = ChainModel(feats).predict(params)
    lufs = gated_lufs(predicted.energy, feats)
    assert abs(lufs - integrated_loudness(y, SR)) < 0.4
    if limiting:
        ceiling = params.limiter.ceiling_db + params.fader_db
        peak_db = 20.0 * np.log10(np.abs(y).max())
        assert peak_db == pytest.approx(ceiling, abs=0.01)  # the case really limits
        assert predicted.limiter_gr_db > 0.0
        assert 20.0 * np.log10(predicted.peak) == pytest.approx(peak_db, abs=0.1)


# -- 2. proposals, and their correction by an export -------------------------------------------------


def test_a_first_proposal_hits_the_target_and_an_observed_offset_moves_the_next_one(
    short_demo: tuple[NDArray[np.float64], DryFeatures],
) -> None:
    """Without any export the proposal must already pass when rendered (the model is the default physics);
    after an export that reads 0.6 LU quieter than predicted, the next proposal must aim 0.6 LU louder."""
    audio, feats = short_demo
    target, limit, tol = -14.0, -1.0, 0.5
    search = ModelSearch(feats, STREAMING_SPACE, ROLES, ChainParams(), target, limit, tol)
    first = search.propose([])
    assert first.reachable and first.exports_used == 0
    assert set(first.params) == set(STREAMING_SPACE)
    assert all(dim.contains(first.params[k]) for k, dim in STREAMING_SPACE.items())
    lufs, peak = measure(audio, first.params)
    assert abs(lufs - target) <= tol
    assert peak <= limit
    assert first.lufs == pytest.approx(lufs, abs=0.2)  # the proposal says what the render gives

    offset = 0.6
    plant = Observation(first.params, lufs - offset, peak)  # a plant that reads 0.6 LU quieter
    second = search.propose([plant])
    assert second.exports_used == 1 and second.reachable
    # One export: the correction is that export's residual, everywhere.
    assert second.correction_lu == pytest.approx(plant.lufs - search.predict(first.params).lufs, abs=0.02)
    assert abs(second.lufs - target) <= tol
    assert second.model.lufs - first.model.lufs == pytest.approx(offset, abs=0.15)
    lufs2, peak2 = measure(audio, second.params)
    assert abs(lufs2 - offset - target) <= tol  # on the plant, the second proposal passes
    assert peak2 <= limit


def unprocessed(chain: ChainParams) -> ChainParams:
    """`chain` with its gains and nothing else, in the model's own terms: a Glue whose Range is 0 dB does not
    compress (Live's manual), and a ceiling far above any signal leaves the Limiter idle."""
    return replace(
        chain,
        glue=replace(chain.glue, range_db=0.0),
        limiter=replace(chain.limiter, ceiling_db=200.0, mode="standard"),
    )


def test_the_unprocessed_chain_is_the_dry_reference_plus_its_gains(
    short_demo: tuple[NDArray[np.float64], DryFeatures],
) -> None:
    """What the drive line's step scales is the loudness the processing costs: the same gains with the
    Glue and the Limiter doing nothing. With the Glue fully wet that must be the dry reference plus the
    gains, whatever the threshold, ratio, ceiling or Limiter mode, or the share learnt from an export is
    wrong."""
    _, feats = short_demo
    search = ModelSearch(feats, STREAMING_SPACE, ROLES, ChainParams(), -14.0, -1.0, 0.5)
    dry = search.loudness(ChainParams(glue=GlueParams(on=False), limiter=LimiterParams(on=False)))
    chain = ChainParams(
        glue=GlueParams(threshold_db=-30.0, ratio=10.0, makeup_db=4.0),
        limiter=LimiterParams(gain_db=9.0, ceiling_db=-6.0, mode="soft_clip"),
        fader_db=-2.0,
    )
    assert search.loudness(chain) < dry + 11.0 - 3.0  # the chain itself works hard here
    assert search.loudness(unprocessed(chain)) == pytest.approx(dry + 4.0 + 9.0 - 2.0, abs=0.01)
    # The shortcut the drive line uses gives the same, on rebased levels and at part Wet too.
    half_wet = replace(chain, glue=replace(chain.glue, dry_wet=0.5))
    for c in (chain, half_wet):
        for into, after in ((0.0, 0.0), (-2.5, 0.0), (1.5, 3.0)):
            assert search.unprocessed_loudness(c, into, after) == pytest.approx(
                search.loudness(unprocessed(c), into, after), abs=1e-6
            )


# -- 3. out of reach ---------------------------------------------------------------------------------


def test_an_impossible_target_is_out_of_reach_at_the_loudest_setting(
    short_demo: tuple[NDArray[np.float64], DryFeatures],
) -> None:
    """-3 LUFS under a -6 dBFS peak limit cannot be reached: the search must say so, and the setting it
    offers as the closest must be the loudest the chain can do (the one export that confirms the verdict)."""
    audio, feats = short_demo
    target, limit = -3.0, -6.0
    space: dict[str, Dim] = {**STREAMING_SPACE, "limiter.ceiling_db": Range(-12.0, -6.05)}
    search = ModelSearch(feats, space, ROLES, ChainParams(), target, limit, 0.5)
    closest = search.propose([])
    assert not closest.reachable
    assert closest.peak_db <= limit
    p = closest.params
    assert p["limiter.gain_db"] >= 24.0 - 1.0
    assert p["glue.makeup_db"] >= 10.0 - 0.5
    assert p["limiter.ceiling_db"] >= -6.05 - 0.2
    # Nothing on a coarse grid under the limit is louder than the offered setting.
    loudest = max(
        pred.lufs
        for th, mk, g in itertools.product((-30.0, -20.0, -10.0, 0.0), (0.0, 5.0, 10.0), (12.0, 18.0, 24.0))
        if (
            pred := search.predict(
                {
                    "glue.threshold_db": th,
                    "glue.makeup_db": mk,
                    "limiter.gain_db": g,
                    "limiter.ceiling_db": -6.1,
                }
            )
        ).peak_db
        <= limit
    )
    assert closest.lufs >= loudest - 0.1
    lufs, peak = measure(audio, p)
    assert peak <= limit
    assert lufs == pytest.approx(closest.lufs, abs=0.4)
    assert target - lufs > 5.0  # really far from the target, not a near miss


# -- 4. --sampler model end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_model_sampler_passes_on_a_plant_it_does_not_know_and_reuses_its_reference(
    model_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On "vintage" physics the model is wrong by about a LU; one dry export plus a couple of corrected
    trials must still pass. The dry reference is the expensive part a later study of the set must not
    pay again, unless asked to with --fresh-reference."""
    project = model_project
    monkeypatch.setenv("AUTOTUNE_SIM_PHYSICS", "vintage")
    assert main(["optimize", "configs/streaming.json", "--sampler", "model", "--trials", "6"]) == 0
    out = capsys.readouterr().out
    assert "TARGET HIT" in out
    rows = receipts(project)
    assert 2 <= len(rows) <= 4  # the dry reference counts
    assert len(exports(project)) == len(rows)

    dry, trials = rows[0], rows[1:]
    assert dry["id"] == REFERENCE_ID and dry["kind"] == "reference" and dry["trial"] is None
    assert dry["params"] == DRY_PARAMS
    assert dry["status"] == "ok" and dry["study"] == "streaming-optimize"
    m = analyze_file(project / dry["export_file"])
    assert dry["sha256"] == m.sha256
    assert dry["results"]["lufs_i"] == pytest.approx(m.lufs_i, abs=1e-3)
    assert dry["results"]["peak_dbfs"] == pytest.approx(-3.8, abs=0.05)  # the demo's dry peak: devices off

    study = optuna.load_study(study_name="streaming-optimize", storage=STORAGE)
    finished = [t for t in study.get_trials() if "receipt" in t.user_attrs]
    assert [r["trial"] for r in trials] == [t.number for t in finished]  # one receipt per trial
    assert all(r.get("kind") != "reference" for r in trials)
    assert study.user_attrs["reference_sha256"] == dry["sha256"]
    for t in finished:
        assert {"predicted_lufs", "predicted_peak_dbfs", "predicted_reachable"} <= set(t.user_attrs)
        assert t.user_attrs["predicted_reachable"] is True
    last = trials[-1]["results"]
    assert last["pass_lufs"] and last["pass_peak"]
    assert finished[-1].user_attrs["predicted_lufs"] == pytest.approx(last["lufs_i"], abs=0.5)

    # Another study of the same set (on the model's physics, which the reference does not depend on: one
    # proposal less per run): the cached reference, no new dry export.
    monkeypatch.delenv("AUTOTUNE_SIM_PHYSICS")
    assert (
        main(
            ["optimize", "configs/streaming.json", "--sampler", "model", "--trials", "1", "--study", "other"]
        )
        == 0
    )
    assert "Dry reference: cached" in capsys.readouterr().out
    again = receipts(project)[len(rows) :]
    assert [r["id"] for r in again] == ["trial-0"]
    assert (
        optuna.load_study(study_name="other", storage=STORAGE).user_attrs["reference_sha256"] == dry["sha256"]
    )

    # --fresh-reference exports it again (the same song: the same audio).
    n = len(receipts(project))
    assert (
        main(
            [
                "optimize",
                "configs/streaming.json",
                "--sampler",
                "model",
                "--trials",
                "1",
                "--study",
                "third",
                "--fresh-reference",
            ]
        )
        == 0
    )
    assert "Dry reference: cached" not in capsys.readouterr().out
    fresh = receipts(project)[n:]
    assert [r["id"] for r in fresh] == [REFERENCE_ID, "trial-0"]
    assert fresh[0]["study"] == "third" and fresh[0]["sha256"] == dry["sha256"]


@pytest.mark.slow
def test_a_set_playing_another_song_gets_its_own_reference(
    model_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set's fingerprint cannot see an edited arrangement (the virtual Live's songs share tracks, tempo
    and length), so the cached reference of another song is used first; the first export shows the model
    is off by more than a plant could explain, a fresh reference is exported, and the next trial lands
    where it was predicted (the model's own physics here)."""
    project = model_project
    assert (
        main(["optimize", "configs/streaming.json", "--sampler", "model", "--trials", "1", "--study", "a"])
        == 0
    )
    monkeypatch.setenv("AUTOTUNE_SIM_SONG", "dynamic")
    n = len(receipts(project))
    assert (
        main(["optimize", "configs/streaming.json", "--sampler", "model", "--trials", "3", "--study", "b"])
        == 0
    )
    out = capsys.readouterr().out
    assert "does not fit this song" in out
    rows = receipts(project)[n:]
    assert [r["id"] for r in rows[:2]] == ["trial-0", REFERENCE_ID]
    trials = optuna.load_study(study_name="b", storage=STORAGE).trials
    assert len(trials) >= 2
    after = next(r for r in rows if r["id"] == "trial-1")
    assert abs(trials[1].user_attrs["predicted_lufs"] - after["results"]["lufs_i"]) < 0.3
    assert after["results"]["pass_lufs"]


# -- 5. out of reach end to end ------------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_target_stops_with_exit_40_and_stays_stopped(
    model_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's -10.5 LUFS under -6 dBFS is reachable on the "dynamic" song (about -10.9 with a 1 ms
    limiter release), but -9 is not: the study must say so after one confirming export, with exit 40, and
    a second run must not spend another export to learn it again."""
    project = model_project
    monkeypatch.setenv("AUTOTUNE_SIM_SONG", "dynamic")
    config = write_config(project, "master_sweep.json", "hard.json", target_lufs=-9.0)
    argv = ["optimize", config, "--sampler", "model", "--trials", "6"]
    assert main(argv) == EXIT_OUT_OF_REACH
    out = capsys.readouterr().out
    rows = receipts(project)
    assert rows[0]["id"] == REFERENCE_ID
    assert 2 <= len(rows) <= 3  # dry + at most 2 trials
    assert len(exports(project)) == len(rows)
    verdict = rows[-1]["feasibility"]
    assert verdict["reachable"] is False
    closest = rows[-1]["results"]["lufs_i"]
    assert verdict["closest_lufs"] == closest and closest < -9.5
    assert rows[-1]["results"]["pass_peak"] is True
    lines = [line for line in out.splitlines() if "OUT OF REACH" in line]
    assert len(lines) == 1
    assert f"{closest:.2f} LUFS" in lines[0]
    study = optuna.load_study(study_name="hard-optimize", storage=STORAGE)
    assert study.user_attrs["out_of_reach"]["closest_lufs"] == closest

    assert main(argv) == EXIT_OUT_OF_REACH
    out = capsys.readouterr().out
    assert "out of reach" in out
    assert receipts(project) == rows
    assert len(exports(project)) == len(rows)


# -- 6. --sampler stepwise -----------------------------------------------------------------------------


@pytest.mark.slow
def test_stepwise_moves_by_one_db_steps(model_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The original loop is the baseline the model is measured against: it must start at the config's
    run and move the limiter gain (and threshold/makeup) by 1 dB towards the target after each export."""
    project = model_project
    assert main(["optimize", "configs/streaming.json", "--sampler", "stepwise", "--trials", "4"]) == 0
    capsys.readouterr()
    rows = receipts(project)
    assert len(rows) >= 3 and all(r["id"] != REFERENCE_ID for r in rows)
    first = rows[0]["params"]
    assert first["glue"] == {"threshold_db": -12.0, "makeup_db": 2.0}
    assert first["limiter"] == {"gain_db": 3.0, "ceiling_db": -1.5}
    for prev, cur in itertools.pairwise(rows):
        lufs = prev["results"]["lufs_i"]
        assert prev["results"]["pass_peak"]
        step = 1.0 if lufs < -14.5 else -1.0 if lufs > -13.5 else 0.0
        assert step != 0.0  # a pass would have stopped the study
        d_gain = cur["params"]["limiter"]["gain_db"] - prev["params"]["limiter"]["gain_db"]
        assert d_gain == pytest.approx(step, abs=1e-9)
        assert cur["params"]["glue"]["makeup_db"] - prev["params"]["glue"]["makeup_db"] == pytest.approx(step)
        assert cur["params"]["glue"]["threshold_db"] - prev["params"]["glue"][
            "threshold_db"
        ] == pytest.approx(-step)
        assert cur["params"]["limiter"]["ceiling_db"] == prev["params"]["limiter"]["ceiling_db"]


# -- 7. a chain the model does not know ----------------------------------------------------------------


@pytest.mark.parametrize("alias", ["eq", "limiter"])
def test_model_sampler_refuses_a_device_it_does_not_model(
    model_project: Path, capsys: pytest.CaptureFixture[str], alias: str
) -> None:
    """Predicting a chain with an EQ in it from a Glue/Limiter model would be silently wrong: refuse it
    before touching Live, storage or receipts, and say what to use instead."""
    project = model_project
    config = json.loads((project / "configs" / "streaming.json").read_text())
    config["device_names"][alias] = "EQ Eight"
    (project / "configs" / "eq.json").write_text(json.dumps(config))
    assert main(["optimize", "configs/eq.json", "--sampler", "model", "--trials", "2"]) == EXIT_READ
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "EQ Eight" in err and "--sampler tpe" in err
    assert not (project / "studies").exists()
    assert receipts(project) == [] and exports(project) == []
    assert not (project / ".cache" / "references").exists()


# -- 8. bench/efficiency.py in miniature ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("physics", "song", "target", "limit"),
    [
        ("punchy", "dense", -12.0, -1.0),
        ("vintage", "bright", -10.5, -1.0),
        ("punchy", "dynamic", -14.0, -6.0),
    ],
)
def test_model_strategy_hits_targets_on_plants_within_four_exports(
    model_project: Path, monkeypatch: pytest.MonkeyPatch, physics: str, song: str, target: float, limit: float
) -> None:
    """The benchmark's promise on a few of its cases: plants the model does not know, songs of other crest
    factors; a cold reference cache, so the dry export counts."""
    monkeypatch.setenv("AUTOTUNE_SIM_PHYSICS", physics)
    monkeypatch.setenv("AUTOTUNE_SIM_SONG", song)
    config = write_config(
        model_project, "streaming.json", "plant.json", target_lufs=target, peak_limit_dbfs=limit
    )
    assert main(["optimize", config, "--sampler", "model", "--trials", "20"]) == 0
    rows = receipts(model_project)
    assert rows[0]["id"] == REFERENCE_ID
    assert len(rows) <= 4
    last = rows[-1]["results"]
    assert last["pass_lufs"] and last["pass_peak"] and abs(last["lufs_i"] - target) <= 0.5


# -- 9. what a review found ----------------------------------------------------------------------------


def _store_many(root: str, tag: str) -> None:
    from autotune.modelsearch import ReferenceCache

    f = DryFeatures(48_000, 32, np.ones(4), np.ones(4))
    cache = ReferenceCache(Path(root))
    for i in range(25):
        cache.store(f"{tag}-{i}", f"{tag}{i:04d}", f)


def test_reference_cache_survives_corruption_and_concurrent_writers(tmp_path: Path) -> None:
    """A truncated entry is a miss (the reference is exported again), never a crash; two processes storing
    at once keep every index entry."""
    import multiprocessing

    from autotune.modelsearch import ReferenceCache

    cache = ReferenceCache(tmp_path)
    f = DryFeatures(48_000, 32, np.linspace(0, 1, 8), np.linspace(1, 2, 8))
    cache.store("set", "abc", f)
    hit = cache.lookup("set")
    assert hit is not None and np.array_equal(hit[1].energy, f.energy)
    data = (tmp_path / "abc.npz").read_bytes()
    (tmp_path / "abc.npz").write_bytes(data[:100])
    assert cache.lookup("set") is None and cache.load("abc") is None
    (tmp_path / "index.json").write_text("{not json")
    assert cache.lookup("set") is None

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_store_many, args=(str(tmp_path / "race"), t)) for t in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    index = json.loads((tmp_path / "race" / "index.json").read_text())
    assert len(index) == 50


def test_queued_runs_are_not_judged_as_the_models_settings(
    model_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--with-runs exports the config's own runs first: they are not the model's proposals, so they carry no
    prediction and cannot stand as proof that a target is out of reach."""
    config = write_config(model_project, "master_sweep.json", "loud.json", target_lufs=-6.0)
    code = main(["optimize", config, "--sampler", "model", "--trials", "8", "--with-runs"])
    out = capsys.readouterr().out
    assert code == EXIT_OUT_OF_REACH
    study = optuna.load_study(study_name="loud-optimize", storage=STORAGE)
    runs = [t for t in study.trials if "run_id" in t.user_attrs]
    assert [t.user_attrs["run_id"] for t in runs] == ["iter7", "iter8", "iter9"]
    assert all("predicted_lufs" not in t.user_attrs for t in runs)
    verdict = study.user_attrs["out_of_reach"]
    assert verdict["trial"] not in {t.number for t in runs}
    assert "cannot get louder" in out


def test_a_verdict_holds_only_for_the_target_it_was_judged_for(
    model_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Too quiet is out of reach the other way round; a new target in the same study is searched afresh,
    and a pass recorded for an old target does not count for a new one."""
    quiet = write_config(model_project, "streaming.json", "q.json", target_lufs=-30.0)
    assert main(["optimize", quiet, "--sampler", "model", "--trials", "6"]) == EXIT_OUT_OF_REACH
    out = capsys.readouterr().out
    assert "cannot get quieter" in out and "Raise the target" in out
    write_config(model_project, "streaming.json", "q.json", target_lufs=-20.0)
    assert main(["optimize", quiet, "--sampler", "model", "--trials", "6"]) == 0
    assert "TARGET HIT" in capsys.readouterr().out
    n = len(receipts(model_project))
    write_config(model_project, "streaming.json", "q.json", target_lufs=-30.0)
    assert main(["optimize", quiet, "--sampler", "model", "--trials", "6"]) == EXIT_OUT_OF_REACH
    out = capsys.readouterr().out
    assert "already passed" not in out and "OUT OF REACH" in out
    assert len(receipts(model_project)) == n  # the stored verdict for -30 still holds: no export


def test_devices_left_off_by_a_killed_reference_export_are_switched_on_by_the_next_run(
    model_project: Path, capsys: pytest.CaptureFixture[str], demo_cache: Path
) -> None:
    """SIGKILL while the dry reference renders leaves Live's devices off (no `finally` runs). The next run
    finds the marker the export left, switches them on and goes on, instead of stopping at the preflight."""
    import os
    import signal
    import subprocess
    import sys

    from autotune.sim import SimOptions, VirtualLive
    from tests.conftest import free_udp_port

    reply_port = free_udp_port()
    options = SimOptions(cache_dir=demo_cache, export_chunk_delay_s=0.5)  # a slow export: time to kill it
    with VirtualLive(
        "127.0.0.1", 0, reply_port=reply_port, export_root=model_project / "output", options=options
    ) as sim:
        flags = [
            "--backend",
            "live",
            "--port",
            str(sim.port),
            "--reply-port",
            str(reply_port),
            "--export",
            "sim",
        ]
        argv = ["optimize", "configs/streaming.json", "--sampler", "model", "--trials", "3", *flags]
        env = {**os.environ, "AUTOTUNE_CACHE_DIR": str(model_project / ".cache")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "autotune", *argv],
            cwd=model_project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if "AUTO-EXPORTING: dry-reference.wav" in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.communicate(timeout=30)
        devices = {d.name: d for d in sim.song.chain_track().devices}
        assert not devices["Glue Compressor"].on and not devices["Limiter"].on
        assert (model_project / ".cache" / "references" / "devices-off.json").exists()

        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "left the devices off: switched on again" in out and "TARGET HIT" in out
        assert devices["Glue Compressor"].on and devices["Limiter"].on
        assert not (model_project / ".cache" / "references" / "devices-off.json").exists()


# -- 10. a Live the model was not built against -------------------------------------------------------


@pytest.mark.slow
def test_a_later_study_of_the_set_starts_from_its_earlier_exports(
    model_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second study of a set has its dry reference cached and the exports of the first study: on a
    plant the model does not know, they calibrate the first prediction."""
    monkeypatch.setenv("AUTOTUNE_SIM_PHYSICS", "vintage")
    monkeypatch.setenv("AUTOTUNE_SIM_SONG", "dense")
    first = write_config(model_project, "streaming.json", "one.json", target_lufs=-12.0)
    assert main(["optimize", first, "--sampler", "model", "--trials", "8"]) == 0
    n = len(receipts(model_project))
    second = write_config(model_project, "streaming.json", "two.json", target_lufs=-11.0)
    assert main(["optimize", second, "--sampler", "model", "--trials", "8"]) == 0
    out = capsys.readouterr().out
    assert "Dry reference: cached" in out and "Calibrated by" in out
    rows = receipts(model_project)[n:]
    # No reference export; the calibrated first trial passes, or one secant step after it does (a single
    # earlier export fixes the offset, not yet the slope, and the targets are 1 LU apart).
    assert [r["id"] for r in rows] in (["trial-0"], ["trial-0", "trial-1"])
    assert rows[-1]["results"]["pass_lufs"] and rows[-1]["results"]["pass_peak"]


@pytest.mark.slow
def test_a_dry_mix_that_already_meets_the_target_stops_after_the_reference(
    model_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's dry mix measures about -18.3 LUFS with its peak at -3.8 dBFS: a -18 LUFS target under
    -1 dBFS needs no processing, and the user is told so after the one export that shows it."""
    config = write_config(model_project, "streaming.json", "dry.json", target_lufs=-18.0)
    assert main(["optimize", config, "--sampler", "model", "--trials", "8"]) == 0
    out = capsys.readouterr().out
    assert "dry mix already meets the target" in out
    assert "TARGET HIT by the dry mix" in out and "No trial hit" not in out
    rows = receipts(model_project)
    assert [r["id"] for r in rows] == [REFERENCE_ID]
    study = optuna.load_study(study_name="dry-optimize", storage=STORAGE)
    assert study.trials == []
    assert main(["optimize", config, "--sampler", "model", "--trials", "8"]) == 0  # a rerun says it again
    assert "dry mix already meets the target" in capsys.readouterr().out
    assert len(receipts(model_project)) == 1


@pytest.mark.slow
def test_a_later_study_whose_cached_dry_mix_meets_the_target_exports_only_the_dry_mix(
    model_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier study cached the set's dry reference; a new study with a target the dry mix already
    meets (-18 LUFS for the demo's -18.3) exports the mix once with the chain off and stops there, rather
    than searching the chain for what no processing gives."""
    first = write_config(model_project, "streaming.json", "first.json")
    assert main(["optimize", first, "--sampler", "model", "--trials", "8"]) == 0
    n = len(receipts(model_project))
    config = write_config(model_project, "streaming.json", "dry.json", target_lufs=-18.0)
    assert main(["optimize", config, "--sampler", "model", "--trials", "8"]) == 0
    out = capsys.readouterr().out
    assert "cached dry reference already meets the target" in out and "TARGET HIT by the dry mix" in out
    rows = receipts(model_project)[n:]
    assert [r["id"] for r in rows] == [REFERENCE_ID]
    assert rows[0]["results"]["pass_lufs"] and rows[0]["results"]["pass_peak"]
    # The same study again with a target its own reference meets: one confirming export, then a rerun
    # reports the pass without exporting again.
    again = write_config(model_project, "streaming.json", "again.json", target_lufs=-18.2)
    n = len(receipts(model_project))
    for _ in range(2):
        assert (
            main(["optimize", again, "--study", "first-optimize", "--sampler", "model", "--trials", "8"]) == 0
        )
        out = capsys.readouterr().out
        assert "Dry reference: this study's" in out and "TARGET HIT by the dry mix" in out
    assert [r["id"] for r in receipts(model_project)[n:]] == [REFERENCE_ID]


@pytest.mark.slow
def test_gain_after_the_chain_is_learnt_said_and_shown_by_doctor(
    model_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stock AbletonOSC set with the chain on a bus and +3 dB after it that OSC cannot see (a master
    fader): the first export peaks 3 dB above the ceiling; the search says so, lowers its ceiling by what
    it measured and still passes, and doctor shows it afterwards."""
    config = on_a_bus(model_project, monkeypatch, "bus.json", AUTOTUNE_SIM_POST_GAIN_DB="3")
    assert main(["optimize", config, "--sampler", "model", "--trials", "8"]) == 0
    out = capsys.readouterr().out
    assert "3.0 dB above the Limiter's ceiling" in out and "master fader" in out
    rows = receipts(model_project)
    assert len(rows) <= 4  # dry reference included
    assert "above the Limiter's ceiling" in rows[1]["diagnosis"][0]
    last = rows[-1]["results"]
    assert last["pass_lufs"] and last["pass_peak"]
    assert main(["doctor", config]) == 0
    out = capsys.readouterr().out
    assert "last export" in out and "fader after the chain" in out
    assert "model readings" in out and "Live's conventions" in out


@pytest.mark.slow
def test_devices_that_see_the_song_quieter_than_its_reference_are_read_from_the_peak(
    model_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain's input 6 dB quieter than the dry reference says (a trim or a send level OSC does not
    show): the model expects its first setting to limit, but the export peaks well under the ceiling, so
    the Limiter was idle and its peak is its input's. The search takes the input level from that peak
    rather than an offset on the loudness, and the next export passes (an offset alone took 5 exports)."""
    config = on_a_bus(model_project, monkeypatch, "quiet.json", AUTOTUNE_SIM_INPUT_OFFSET_DB="-6")
    assert main(["optimize", config, "--sampler", "model", "--trials", "8"]) == 0
    rows = receipts(model_project)
    first = rows[1]["results"]
    assert first["peak_dbfs"] < rows[1]["params"]["limiter"]["ceiling_db"] - 1.0  # the Limiter was idle
    assert len(rows) == 3, [r["results"]["lufs_i"] for r in rows]  # dry reference, first, pass
    assert rows[-1]["results"]["pass_lufs"] and rows[-1]["results"]["pass_peak"]


@pytest.mark.slow
def test_a_fader_pulled_down_after_the_chain_is_not_taken_for_a_quieter_input(
    model_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-6 dB after the chain (a master fader pulled down, which stock AbletonOSC cannot read): the first
    export peaks 6 dB under the ceiling though the Limiter limited. Read as an idle Limiter on a quieter
    input, the next step would overshoot; the model's loudness of each reading decides, and the next
    export passes (an offset alone, or the idle reading alone, took 4-5 exports)."""
    config = on_a_bus(model_project, monkeypatch, "fader.json", AUTOTUNE_SIM_POST_GAIN_DB="-6")
    assert main(["optimize", config, "--sampler", "model", "--trials", "8"]) == 0
    rows = receipts(model_project)
    assert len(rows) == 3, [r["results"]["lufs_i"] for r in rows]  # dry reference, first, pass
    assert rows[-1]["results"]["pass_lufs"] and rows[-1]["results"]["pass_peak"]


# -- 11. the benchmark's third-party suite in miniature -----------------------------------------------

THIRD_PARTY_SPACE = {
    "glue": {"threshold_db": [-40.0, 0.0], "makeup_db": [0.0, 20.0]},
    "limiter": {"gain_db": [0.0, 24.0], "ceiling_db": None},
}


def _third_party(monkeypatch: pytest.MonkeyPatch, song: str = "amen") -> None:
    pytest.importorskip("pedalboard")
    if not Path(f"/usr/share/sonic-pi/samples/loop_{song}.flac").is_file():
        pytest.skip("needs Debian's sonic-pi-samples (the CC0 loops); .ci/run installs it")
    monkeypatch.setenv("AUTOTUNE_SIM_PHYSICS", "pedalboard")
    monkeypatch.setenv("AUTOTUNE_SIM_SONG", f"rec-{song}")


@pytest.mark.slow
@pytest.mark.parametrize(("song", "target", "limit"), [("amen", -12.0, -6.0), ("tabla", -12.0, -1.0)])
def test_a_plant_we_did_not_write_on_a_real_recording_passes(
    model_project: Path, monkeypatch: pytest.MonkeyPatch, song: str, target: float, limit: float
) -> None:
    """JUCE's Compressor (pedalboard) as Live's Glue and Limiter, on Sonic Pi's loops: a model built on
    other DSP (a Limiter with look-ahead) is off by 3 LU at first; the drive line must still get there,
    and never call it out of reach. -12 under -6 dBFS lies 0.9 LU under the most this chain can give. On
    the tabla the model's first pick is 3.1 LU too loud and the plant saturates above it: an offset there
    stepped past the target (5 exports), the scaled processing cost does not."""
    _third_party(monkeypatch, song)
    config = write_config(
        model_project,
        "streaming.json",
        "juce.json",
        target_lufs=target,
        peak_limit_dbfs=limit,
        search=THIRD_PARTY_SPACE,
    )
    assert main(["optimize", config, "--sampler", "model", "--trials", "12"]) == 0
    rows = receipts(model_project)
    # The dry reference included; measured 2 and 4 (5 before the scaled step), the benchmark's worst case
    # on this plant. Its amen at -12/-1 takes 3, left to the benchmark to keep the suite short.
    assert len(rows) <= 4, [r["results"]["lufs_i"] for r in rows]
    last = rows[-1]["results"]
    assert last["pass_lufs"] and last["pass_peak"]
    if song == "tabla":  # 3.1 LU off at first: the receipt says how much of the processing JUCE's showed
        said = " ".join(rows[1].get("diagnosis") or [])
        assert "take off" in said and "of the loudness the model's Glue and Limiter" in said, said


@pytest.mark.slow
def test_a_target_a_plant_we_did_not_write_cannot_reach_is_called_within_three_exports(
    model_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under -6 dBFS the JUCE chain gets the amen break to about -11.1 LUFS at most: -10.5 is out of reach
    by more than the tolerance, and the export that says so is the loudest safe setting (every gain at the
    top)."""
    _third_party(monkeypatch)
    config = write_config(
        model_project,
        "streaming.json",
        "juce-loud.json",
        target_lufs=-10.5,
        peak_limit_dbfs=-6.0,
        search=THIRD_PARTY_SPACE,
    )
    assert main(["optimize", config, "--sampler", "model", "--trials", "12"]) == EXIT_OUT_OF_REACH
    out = capsys.readouterr().out
    rows = receipts(model_project)
    assert len(rows) <= 3
    verdict = rows[-1]["feasibility"]
    assert verdict["direction"] == "louder" and "loudest safe setting" in verdict["message"]
    assert verdict["params"]["limiter.gain_db"] == 24.0 and verdict["params"]["glue.makeup_db"] == 20.0
    assert "OUT OF REACH" in out
