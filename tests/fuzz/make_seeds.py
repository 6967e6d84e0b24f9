"""Seed corpora for the fuzz harnesses (a starting point; the fuzzers grow their own).

    .venv/bin/python tests/fuzz/make_seeds.py /tmp/fuzz      # writes /tmp/fuzz/{engine,journal}

``engine``: random byte strings of a few lengths (the generator turns any bytes into commands).
``journal``: journal files written by the engine from generated command lines (format 2),
the same records in format 1, and the bare JSON bodies (mode byte 1: the harness frames them).
"""

from __future__ import annotations

import random
import sys
import tempfile
import zlib
from pathlib import Path

import fuzz_checks  # noqa: F401  (puts the repo root on sys.path)
import fuzz_gen
import orjson

from engine import Engine
from engine.codec import command_to_json
from engine.journal import Journal, JournalConfig
from engine.journal_format import decode_body


def engine_seeds(out: Path, n: int = 64) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    for i in range(n):
        size = rng.choice((16, 64, 256, 1024))
        (out / f"seed{i}").write_bytes(rng.randbytes(size))


def journal_seeds(out: Path, n: int = 32) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            path = Path(tmp) / f"j{i}"
            lines = fuzz_gen.command_lines(rng.randbytes(rng.choice((64, 256))))
            with Journal(JournalConfig(path=path, fsync="never")) as journal:
                engine = Engine(clock=lambda: 1_700_000_000_000_000, journal=journal)
                for line in lines[:12]:
                    engine.submit_line(line)
            data = path.read_bytes()
            (out / f"v2_{i}").write_bytes(b"\x00" + data)
            bodies = b"".join(line[9:] for line in data.splitlines(keepends=True))
            (out / f"body_{i}").write_bytes(b"\x01" + bodies)
            v1 = []
            for line in data.splitlines():
                body = line[9:]
                obj = orjson.loads(body)
                rec = decode_body(body)
                assert rec is not None and obj[0] == rec[0]
                v1body = orjson.dumps(
                    {"inSeq": rec[0], "ts": rec[1], "cmd": command_to_json(rec[2])}
                )
                v1.append(b"%08x %b\n" % (zlib.crc32(v1body), v1body))
            (out / f"v1_{i}").write_bytes(b"\x00" + b"".join(v1))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fuzz")
    engine_seeds(root / "engine")
    journal_seeds(root / "journal")
    print(f"seeds in {root}/engine and {root}/journal")


if __name__ == "__main__":
    main()
