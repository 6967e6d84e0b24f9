"""``engine/`` is pure: no asyncio, network, storage, web or threading library.

Checked twice: by importing every engine module in a fresh interpreter and looking at
``sys.modules``, and by scanning every ``engine/*.py`` for import statements (which also
catches imports inside functions). One exception: the durability layer, :mod:`engine.journal`
(the command journal, not part of the matching core) and :mod:`engine.snapshot` (which uses
it), may load ``threading`` for the journal's background fsync timer.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
FORBIDDEN = frozenset(
    {
        "asyncio",
        "socket",
        "ssl",
        "select",
        "selectors",
        "http",
        "urllib.request",
        "urllib.response",
        "sqlite3",
        "dbm",
        "shelve",
        "redis",
        "aiokafka",
        "kafka",
        "websockets",
        "starlette",
        "sse_starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "httpx",
        "threading",
        "multiprocessing",
        "concurrent",
        "subprocess",
        "logging",
    }
)
ALLOWED = {"journal": frozenset({"threading"}), "snapshot": frozenset({"threading"})}
# (``urllib.parse`` is pure string handling and ``pathlib`` imports it; fetching is not.)


def _bad(names: set[str], forbidden: frozenset[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


def _modules() -> list[str]:
    return sorted(p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__")


def _loaded_by(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module('engine.' + m)\n"
        "names = sorted(sys.modules)\n"
        "sys.stdout.write(json.dumps(names))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ENGINE.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(done.stdout))


def test_engine_modules_exist() -> None:
    assert {"book", "core", "orders", "wallet", "risk", "sequencer", "codec"} <= set(_modules())


def test_importing_the_core_loads_no_io_library() -> None:
    core = [m for m in _modules() if m not in ALLOWED]
    loaded = _loaded_by(core)
    assert not _bad(loaded, FORBIDDEN)


def test_importing_each_exempt_module_loads_only_what_it_may() -> None:
    assert set(ALLOWED) <= set(_modules()), "an exempt module was renamed: update ALLOWED"
    for name, allowed in ALLOWED.items():
        loaded = _loaded_by([name])
        assert not _bad(loaded, FORBIDDEN - allowed), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
        ):
            found.add("<dynamic import>")
    return found


def test_engine_sources_import_no_io_library() -> None:
    for path in sorted(ENGINE.glob("*.py")):
        bad = _bad(_imports(path), FORBIDDEN - ALLOWED.get(path.stem, frozenset()))
        assert not bad, f"{path.name} imports {sorted(bad)}"
        assert "<dynamic import>" not in _imports(path), f"{path.name} imports dynamically"


def test_the_scanner_catches_forbidden_imports(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text(
        "def f():\n    import asyncio.tasks\n    from redis import asyncio as r\n"
        "    from urllib import request\n    import urllib.parse\n"
    )
    assert _bad(_imports(src), FORBIDDEN) == [
        "asyncio.tasks",
        "redis",
        "redis.asyncio",
        "urllib.request",
    ]
