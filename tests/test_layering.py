"""The module layers: only the CLI, the demo and bench use the facade (pipeline.py); no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FACADE_USERS = {"pauserec.cli", "pauserec.demo"}  # and pauserec.bench.*


def modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "pauserec").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of pauserec that ``name`` imports anywhere (top level or inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            candidates = [base, *(f"{base}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_only_the_cli_the_demo_and_bench_import_the_facade():
    users = {m for m, deps in graph().items() if "pauserec.pipeline" in deps}
    assert users <= FACADE_USERS | {m for m in users if m.startswith("pauserec.bench")}, sorted(users)


def test_no_import_cycle_between_subpackages():
    """Collapse modules to their first level (``pauserec.eval``, ``pauserec.pipeline``...) and look for a cycle."""

    def unit(m: str) -> str:
        return ".".join(m.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for m, deps in graph().items():
        edges.setdefault(unit(m), set()).update(unit(d) for d in deps if unit(d) != unit(m))
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
