"""`autotune report`: a table of a study's trials and a self-contained HTML page of plots.

The plots are inline SVG written here rather than through plotly or matplotlib: three small charts do not
justify a plotting stack in the install, and the page opens anywhere without a network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial
from rich.table import Table

from autotune.platforms import playback_lines
from autotune.storage import measured

W, H, PAD = 560, 260, 44


def main_parameter(trials: Sequence[FrozenTrial]) -> str | None:
    """The parameter LUFS depends on most (largest |correlation|); ties go to the first named."""
    done = [t for t in trials if measured(t) and "lufs_i" in t.user_attrs]
    names = sorted({n for t in done for n, v in t.params.items() if isinstance(v, (int, float))})
    best, best_r = None, -1.0
    for n in names:
        pts = [(float(t.params[n]), float(t.user_attrs["lufs_i"])) for t in done if n in t.params]
        r = abs(_corr(pts)) if len(pts) >= 2 else 0.0
        if r > best_r:
            best, best_r = n, r
    return best


def _corr(pts: list[tuple[float, float]]) -> float:
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    syy = sum((y - my) ** 2 for _, y in pts)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def table(study: optuna.Study) -> Table:
    trials = study.get_trials()
    names = sorted({n for t in trials for n in t.params})
    tab = Table(title=f"study {study.study_name}: {len(trials)} trial{'s' if len(trials) != 1 else ''}")
    for col in ["#", "state", *names, "LUFS", "peak dBFS", "TP dBTP", "LRA LU", "PLR dB", "pass", "loss"]:
        tab.add_column(col, justify="right" if col not in ("state", "pass") else "left")
    for t in trials:
        u = t.user_attrs
        passed = "✓" if u.get("passed") else ("✗" if "lufs_i" in u else "")
        tab.add_row(
            str(t.number),
            t.state.name if u.get("status") in (None, "ok") else f"{t.state.name} ({u['status']})",
            *[f"{t.params[n]:.2f}" if n in t.params else "" for n in names],
            *[
                f"{u[k]:.2f}" if isinstance(u.get(k), (int, float)) else ""
                for k in ("lufs_i", "peak_dbfs", "true_peak_dbtp")
            ],
            *[f"{u[k]:.1f}" if isinstance(u.get(k), (int, float)) else "" for k in ("lra_lu", "plr_db")],
            passed,
            f"{t.value:.3f}" if t.value is not None else "",
        )
    return tab


def _chart(
    title: str, xlabel: str, series: list[tuple[str, str, list[tuple[float, float]]]], hline: float | None
) -> str:
    pts = [p for _, _, s in series for p in s]
    if not pts:
        return f"<h3>{html.escape(title)}</h3><p>no finished trials yet</p>"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts] + ([hline] if hline is not None else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 + 1 if x1 == x0 else x1), (y1 + 1 if y1 == y0 else y1)

    def sx(x: float) -> float:
        return PAD + (x - x0) / (x1 - x0) * (W - 2 * PAD)

    def sy(y: float) -> float:
        return H - PAD - (y - y0) / (y1 - y0) * (H - 2 * PAD)

    parts = [
        f'<svg width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg" font-size="11">',
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>',
    ]
    for v, y in ((y0, sy(y0)), (y1, sy(y1))):
        parts.append(f'<text x="4" y="{y + 4:.1f}">{v:.2f}</text>')
    parts.append(
        f'<text x="{PAD}" y="{H - 8}">{x0:g}</text><text x="{W - PAD - 30}" y="{H - 8}">{x1:g}</text>'
    )
    parts.append(f'<text x="{W / 2 - 40:.0f}" y="{H - 8}">{html.escape(xlabel)}</text>')
    if hline is not None:
        parts.append(
            f'<line x1="{PAD}" x2="{W - PAD}" y1="{sy(hline):.1f}" y2="{sy(hline):.1f}" stroke="#2a2" stroke-dasharray="4"/>'
        )
    for name, color, s in series:
        ordered = sorted(s)
        if len(ordered) > 1 and name != "points":
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ordered)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{color}"/>')
        parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in ordered)
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def _limits_text(study: optuna.Study) -> str:
    u = study.user_attrs
    parts = [f"peak limit {u['peak_limit_dbfs']} dBFS" if u.get("peak_limit_dbfs") is not None else ""]
    parts.append(
        f"true-peak limit {u['peak_limit_dbtp']} dBTP" if u.get("peak_limit_dbtp") is not None else ""
    )
    return ", ".join(p for p in parts if p) or "no peak limit recorded"


def _loudness_html(done: list[FrozenTrial]) -> str:
    """The loudness report of the first passing export (else the one with the lowest loss): its dynamics
    and how every platform will play it back."""
    passed = [t for t in done if t.user_attrs.get("passed")]
    pool = passed or [t for t in done if t.value is not None]
    if not pool:
        return ""
    t = passed[0] if passed else min(pool, key=lambda t: t.value if t.value is not None else math.inf)
    u = t.user_attrs
    lufs, tp = u.get("lufs_i"), u.get("true_peak_dbtp")
    if not isinstance(lufs, (int, float)) or not isinstance(tp, (int, float)):
        return ""
    dyn = ", ".join(
        f"{label} {u[k]:.1f} {unit}"
        for k, label, unit in (
            ("lra_lu", "LRA", "LU"),
            ("max_momentary_lufs", "max momentary", "LUFS"),
            ("max_short_term_lufs", "max short-term", "LUFS"),
            ("plr_db", "PLR", "dB"),
        )
        if isinstance(u.get(k), (int, float))
    )
    which = "first passing" if passed else "closest"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in playback_lines(float(lufs), float(tp)))
    return (
        f"<h3>Trial #{t.number} ({which}): {float(lufs):.2f} LUFS, true peak {float(tp):.2f} dBTP"
        f"{'; ' + html.escape(dyn) if dyn else ''}</h3><p>Playback on each platform:</p><ul>{items}</ul>"
    )


def write_html(study: optuna.Study, path: Path) -> Path:
    trials = study.get_trials()
    done = [t for t in trials if measured(t) and "lufs_i" in t.user_attrs]
    target = study.user_attrs.get("target_lufs")
    loss_pts = [(float(t.number), float(t.value)) for t in done if t.value is not None]
    lufs_pts = [(float(t.number), float(t.user_attrs["lufs_i"])) for t in done]
    main = main_parameter(trials)
    vs = [(float(t.params[main]), float(t.user_attrs["lufs_i"])) for t in done if main and main in t.params]
    body = [
        f"<h1>autotune study {html.escape(study.study_name)}</h1>",
        f"<p>{len(trials)} trials, {len(done)} measured; target {target} LUFS, {_limits_text(study)}</p>",
        _loudness_html(done),
        _chart("Loss per trial", "trial", [("loss", "#c33", loss_pts)], 0.0),
        _chart(
            "Integrated loudness per trial (dashed: target)", "trial", [("lufs", "#36c", lufs_pts)], target
        ),
        _chart(f"LUFS against {main}", main or "", [("points", "#936", vs)], target) if main else "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><meta charset='utf-8'><title>autotune report</title>" + "\n".join(body))
    return path
