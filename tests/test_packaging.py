"""The wheel carries the page: every file of web/ that the page loads matches the package data
of ``gateway.static`` in pyproject.toml, including the chart library's one browser file."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"


def _package_data() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns: list[str] = config["tool"]["setuptools"]["package-data"]["gateway.static"]
    return patterns


def test_every_page_file_ships_in_the_wheel() -> None:
    patterns = _package_data()
    files = [
        p.relative_to(WEB).as_posix()
        for p in WEB.rglob("*")
        if p.is_file() and "node_modules" not in p.parts and p.suffix in (".html", ".js", ".css")
    ]
    assert "lib/client.js" in files and "index.html" in files
    for name in files:
        assert any(fnmatch.fnmatchcase(name, pat) for pat in patterns), name


def test_the_chart_library_the_page_imports_is_package_data() -> None:
    app = (WEB / "app.js").read_text()
    found = re.search(r'const CHART_LIB = "\./([^"]+)"', app)
    assert found is not None
    assert found.group(1) in _package_data()
    lock = (WEB / "package-lock.json").read_text()
    assert '"node_modules/lightweight-charts"' in lock  # pinned by the lock file
    if (WEB / "node_modules").is_dir():  # after `npm ci --prefix web`
        assert (WEB / found.group(1)).is_file()
