"""The folders are the layers, and a lower layer never imports a higher one.

Every import statement of every product module (including imports inside functions and under
``TYPE_CHECKING``) is read with :mod:`ast` and mapped to its layer; each layer may import only
the layers listed for it below. A new folder must be given a place here before it can import
anything of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> the project layers it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "engine": frozenset(),
    "runtime": frozenset(),
    "feeds": frozenset({"engine", "runtime"}),
    "gateway": frozenset({"gateway.wire"}),  # config.py, metrics.py: cross-cutting
    "gateway.wire": frozenset({"gateway"}),
    "gateway.marketdata": frozenset({"engine", "gateway.wire"}),
    "gateway.seams": frozenset({"gateway", "gateway.wire", "runtime", "engine"}),
    "gateway.fanout": frozenset({"gateway", "gateway.wire", "gateway.seams", "runtime"}),
    "gateway.trading": frozenset(
        {"gateway", "gateway.wire", "gateway.seams", "gateway.marketdata", "engine", "runtime"}
    ),
    "gateway.reporting": frozenset(
        {"gateway", "gateway.wire", "gateway.seams", "engine", "runtime"}
    ),
    "gateway.edge": frozenset(
        {"gateway", "gateway.wire", "gateway.seams", "gateway.fanout", "runtime"}
    ),
    "gateway.roots": frozenset(
        {
            "gateway", "gateway.wire", "gateway.seams", "gateway.fanout", "gateway.edge",
            "gateway.trading", "gateway.marketdata", "gateway.reporting", "engine", "feeds",
            "runtime", "loadtest",
        }
    ),
    "loadtest": frozenset(
        {
            "gateway", "gateway.wire", "gateway.seams", "gateway.fanout", "gateway.edge",
            "gateway.trading", "gateway.marketdata", "gateway.reporting", "gateway.roots",
            "engine", "feeds", "runtime",
        }
    ),
}
PROJECT = {"engine", "runtime", "feeds", "gateway", "loadtest"}


def layer_of(module: str) -> str:
    """``gateway.X...`` is layer ``gateway.X`` when X is a folder, else ``gateway`` (config,
    metrics); every other top-level package is one layer."""
    parts = module.split(".")
    if parts[0] == "gateway" and len(parts) > 1 and (ROOT / "gateway" / parts[1]).is_dir():
        return f"gateway.{parts[1]}"
    return parts[0]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # "from gateway import wire" imports the subpackage gateway.wire
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return [(n, m) for n, m in found if m.split(".")[0] in PROJECT]


def product_modules() -> list[Path]:
    return sorted(p for top in PROJECT for p in (ROOT / top).rglob("*.py"))


def test_every_module_is_in_a_known_layer() -> None:
    modules = product_modules()
    assert len(modules) > 50
    unknown = {
        str(p.relative_to(ROOT))
        for p in modules
        if layer_of(".".join(p.relative_to(ROOT).with_suffix("").parts)) not in ALLOWED
    }
    assert not unknown, f"modules outside every layer: {sorted(unknown)}"


@pytest.mark.parametrize("path", product_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path: Path) -> None:
    here = layer_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
    bad = []
    for line, module in imports_of(path):
        target = layer_of(module)
        if target != here and target not in ALLOWED[here]:
            bad.append(f"line {line}: {module} ({target})")
    assert not bad, f"{path.relative_to(ROOT)} ({here}) imports a higher layer: {bad}"


def test_feeds_never_import_gateway() -> None:
    """The rule the issue named, checked on its own: it fails if ALLOWED is ever loosened."""
    offenders = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in (ROOT / "feeds").rglob("*.py")
        for line, module in imports_of(p)
        if module.split(".")[0] == "gateway"
    ]
    assert offenders == []
