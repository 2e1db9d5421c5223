"""The dry reference: what the model keeps of the song (block peaks and K-weighted energies), and the
cache that lets later studies of the same Live set start from it and from the exports made on it."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from autotune.dsp.bs1770 import gated_loudness_of_segments, k_weighted_block_sums, segment_samples
from autotune.dsp.chain import ChainParams, GlueParams, LimiterParams
from autotune.dsp.model import DryFeatures, block_peaks, model_block


def features(audio: NDArray[np.floating], sample_rate: int) -> DryFeatures:
    """Block peaks and K-weighted block energies of the dry song (channels weighted as BS.1770 does), on
    the analysis's own meter (`autotune.dsp.bs1770`), filtered in float64."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    block = model_block(segment_samples(sample_rate))
    return DryFeatures(
        sample_rate, block, block_peaks(x, block), k_weighted_block_sums(x, sample_rate, block)
    )


def features_of_file(path: Path) -> DryFeatures:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return features(audio, int(sr))


def gated_lufs(block_energy: NDArray[np.float64], f: DryFeatures) -> float:
    """Integrated loudness from per-block output energies, gated as the analysis gates an export."""
    per = f.blocks_per_step
    n_steps = len(block_energy) // per
    seg = block_energy[: n_steps * per].reshape(n_steps, per).sum(axis=1)
    return gated_loudness_of_segments(seg, per * f.block)


@dataclass(frozen=True)
class Prior:
    """An export of an earlier study of the same set (same dry reference): the chain it was made with and
    what it measured. The rig is the same, so it calibrates the model before this study spends an export."""

    chain: ChainParams
    lufs: float
    peak_db: float
    study: str


def _chain_from(d: Mapping[str, Any]) -> ChainParams:
    """A ChainParams from its asdict() form, ignoring fields this version does not know."""

    def known(cls: type, values: Any) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in dict(values).items() if k in names}

    return ChainParams(
        glue=GlueParams(**known(GlueParams, d["glue"])),
        limiter=LimiterParams(**known(LimiterParams, d["limiter"])),
        fader_db=float(d.get("fader_db", 0.0)),
    )


class ReferenceCache:
    """Dry references by sha256 (`<sha>.npz`), which Live set fingerprint last gave which sha, and the
    exports made on each reference (`<sha>.exports.jsonl`), which later studies of the set start from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _index(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / "index.json").read_text())
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def lookup(self, fingerprint: str) -> tuple[str, DryFeatures] | None:
        sha = self._index().get(fingerprint)
        if sha is None:
            return None
        f = self.load(sha)
        return None if f is None else (sha, f)

    def load(self, sha: str) -> DryFeatures | None:
        try:
            with np.load(self.root / f"{sha}.npz") as z:
                return DryFeatures(int(z["sample_rate"]), int(z["block"]), z["peak"], z["energy"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # missing, truncated or foreign: a miss, so the reference is exported again

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Index updates are read-modify-write: one process and one thread at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.root / ".index.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def forget(self, fingerprint: str) -> None:
        with self._locked():
            index = self._index()
            if index.pop(fingerprint, None) is not None:
                self._write_index(index)

    def _write_index(self, index: dict[str, str]) -> None:
        tmp_index = self.root / f".index.{os.getpid()}.tmp"
        tmp_index.write_text(json.dumps(index, indent=1, sort_keys=True))
        tmp_index.replace(self.root / "index.json")

    def remember(self, sha: str, prior: Prior) -> None:
        """Appends one export, one whole line in one write: a crash never leaves half a line read as data."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {
                "chain": dataclasses.asdict(prior.chain),
                "lufs": prior.lufs,
                "peak_db": prior.peak_db,
                "study": prior.study,
            }
        )
        fd = os.open(self.root / f"{sha}.exports.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def priors(self, sha: str, *, exclude_study: str | None = None, last: int = 50) -> list[Prior]:
        """The latest exports made on this reference (malformed lines are skipped)."""
        try:
            lines = (self.root / f"{sha}.exports.jsonl").read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines[-4 * last :]:
            try:
                d = json.loads(line)
                p = Prior(_chain_from(d["chain"]), float(d["lufs"]), float(d["peak_db"]), str(d["study"]))
            except (ValueError, KeyError, TypeError):
                continue
            if p.study != exclude_study and math.isfinite(p.lufs) and math.isfinite(p.peak_db):
                out.append(p)
        return out[-last:]

    def store(self, fingerprint: str, sha: str, f: DryFeatures) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{sha}.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, sample_rate=f.sample_rate, block=f.block, peak=f.peak, energy=f.energy)
        tmp.replace(self.root / f"{sha}.npz")
        with self._locked():
            index = self._index()
            index[fingerprint] = sha
            self._write_index(index)


def fingerprint(parts: Mapping[str, Any]) -> str:
    """What identifies "the same song" before exporting it: what Live reports about the set."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
