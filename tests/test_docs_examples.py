"""Every Python example in docs/ runs, as written, after the README's install, against a live
``quotegate run``.

A fenced block opened with ```` ```python ```` is an example: it is extracted, checked to
import only the standard library and the project's own dependencies (what ``pip install -e .``
brings, so never ``httpx``, a test dependency), and run as a script with ``QG`` and ``KEY`` set
as docs/protocol.md tells the reader to. A block opened with ```` ```python sketch ```` shows
an API's shape (signatures, fragments) and is only listed, not run.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import quotegate_run

ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```python( sketch)?\n(.*?)^```$", re.DOTALL | re.MULTILINE)
KEY = "docs-example-key-0123456789"
# the import names of pyproject.toml's [project] dependencies (plus the project's own packages)
INSTALLED = {
    "orjson", "starlette", "sse_starlette", "websockets", "uvicorn", "uvloop", "httptools",
    "redis", "aiokafka", "hdrh", "prometheus_client", "tqdm", "asyncpg",
    "engine", "feeds", "runtime", "gateway", "loadtest",
}  # fmt: skip


def blocks(*, sketches: bool) -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if bool(match.group(1)) == sketches:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.relative_to(ROOT)}:{line}", line, match.group(2)))
    return found


EXAMPLES = blocks(sketches=False)


def test_the_docs_have_runnable_examples() -> None:
    assert len(EXAMPLES) >= 4, [name for name, _, _ in EXAMPLES]


@pytest.mark.parametrize(("name", "line", "code"), EXAMPLES, ids=[n for n, _, _ in EXAMPLES])
def test_examples_import_only_what_the_install_brings(name: str, line: int, code: str) -> None:
    tree = ast.parse(code, filename=name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        for module in names:
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or top in INSTALLED, f"{name} imports {module}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``quotegate run`` as the README starts it (synthetic market), on a free port."""
    log = tmp_path_factory.mktemp("docs") / "run.log"
    with quotegate_run(log, "--rate", "500", key=KEY) as base:
        yield base


@pytest.mark.slow
@pytest.mark.parametrize(("name", "line", "code"), EXAMPLES, ids=[n for n, _, _ in EXAMPLES])
def test_example_runs_against_a_live_server(
    live: str, tmp_path: Path, name: str, line: int, code: str
) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "QG": live, "KEY": KEY}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
