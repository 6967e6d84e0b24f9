"""The JavaScript unit tests (``tests/js``, Node's built-in runner) as part of the pytest run,
so that the one test command covers them. Without Node they are skipped on a developer machine
and FAIL under ``CI=true``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.services import missing_service

ROOT = Path(__file__).resolve().parents[1]


def test_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        missing_service("node is not installed (Node 20+ runs tests/js)")
    proc = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    summary = dict(
        line[2:].split(" ", 1) for line in out.splitlines() if line.startswith(("# pass", "# fail"))
    )
    assert int(summary["fail"]) == 0 and int(summary["pass"]) >= 25, out[-2000:]
