"""The README's layer table is the truth about imports: every module of autotune/ and objectives/ sits in
exactly one layer, and imports only its own layer and those below it, bar the exceptions listed here with
their reasons. A new sideways import fails this test until the table (or the code) says otherwise."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (importer, imported) pairs that break the layering today, and why. Fold them, then delete the line.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    out = {}
    for base in ("autotune", "objectives"):
        for p in (ROOT / base).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = p
    return out


#: The layers' names as the table gives them (filled by `layers`), for messages.
NAMES: list[str] = []


def layers() -> list[list[str]]:
    """The README's Development table, highest layer first: each row's module patterns."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Development") :]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    table = []
    NAMES.clear()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        NAMES.append(cells[0])
        table.append(re.findall(r"`([\w.*]+)`", cells[1]))
    return table


def layer_of(name: str, table: list[list[str]]) -> int:
    """Index of the most specific pattern matching `name` (0 = the highest layer)."""
    best: tuple[int, int] | None = None
    for i, patterns in enumerate(table):
        for pat in patterns:
            if pat.endswith(".*"):
                base = pat[:-2]
                hit = name == base or name.startswith(base + ".")
                weight = len(base)
            else:
                hit, weight = name == pat, len(pat) + 1
            if hit and (best is None or weight > best[1]):
                best = (i, weight)
    assert best is not None, f"{name} is in no layer of the README's table"
    return best[0]


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, anywhere in it (lazy imports count: they run too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in known}


def test_the_readme_table_places_every_module() -> None:
    table = layers()
    assert [len(row) > 0 for row in table] == [True] * 6, "six layers, each naming its modules"
    for name in modules():
        layer_of(name, table)


def test_every_import_goes_to_the_same_layer_or_below() -> None:
    table = layers()
    known = modules()
    wrong = []
    used = set()
    for name, path in sorted(known.items()):
        here = layer_of(name, table)
        for dep in sorted(imports(path, set(known))):
            if dep == name or dep.startswith(name + "."):
                continue
            if layer_of(dep, table) < here:  # a higher layer (0 is the top)
                if (name, dep) in EXCEPTIONS:
                    used.add((name, dep))
                    continue
                wrong.append(f"{name} ({NAMES[here]}) imports {dep} ({NAMES[layer_of(dep, table)]})")
    assert not wrong, "imports against the README's layer table:\n" + "\n".join(wrong)
    assert used == set(EXCEPTIONS), f"exceptions no longer needed: {set(EXCEPTIONS) - used}"


def test_live_and_the_virtual_live_never_import_each_other() -> None:
    """The two backends sit side by side in one layer, so the layer test alone would let them import each
    other: what both need (the OSC codec, the fader law, the Exporter protocol) is `autotune.vocabulary`'s."""
    known = modules()
    across = []
    for name, path in known.items():
        for own, other in (("autotune.live", "autotune.sim"), ("autotune.sim", "autotune.live")):
            if name == own or name.startswith(own + "."):
                across += [f"{name} imports {d}" for d in imports(path, set(known)) if d.startswith(other)]
    assert not across, "\n".join(across)


def test_dsp_imports_nothing_of_the_project_outside_dsp() -> None:
    known = modules()
    for name, path in known.items():
        if name.startswith("autotune.dsp"):
            deps = imports(path, set(known))
            assert all(d.startswith("autotune.dsp") for d in deps), (name, deps)


def test_one_error_root_with_its_exit_codes() -> None:
    """optuna's way: every error autotune raises on purpose derives from one class, whose subclasses carry
    the exit code the CLI returns; no module defines an exception class of its own outside that tree."""
    from autotune import errors

    roots = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }
    assert all(issubclass(cls, errors.AutotuneError) for cls in roots.values()), roots
    assert errors.LiveWriteError.exit_code == errors.EXIT_WRITE
    assert errors.ConfigError.exit_code == errors.LiveTimeout.exit_code == errors.EXIT_READ
    outside = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id in ("Exception", "ValueError") for b in node.bases
            ):
                outside.append(f"{name}.{node.name}")
    # Private helpers that never leave their module: pydantic's validator error, argparse's, and the pure
    # dsp layer's (which may not import autotune.errors; audio.py turns it into AnalysisError).
    assert sorted(outside) == [
        "autotune.cliargs.ArgumentError",
        "autotune.config._FieldError",
        "autotune.dsp.bs1770.AudioTooShort",
        "autotune.errors.AutotuneError",
    ]
