"""``quotegate replay``: files and stdio, malformed lines, determinism, market data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.roots.cli import main
from gateway.roots.replay import LastTime, ReplayConfig, replay_files, replay_stream
from loadtest.cmdgen import CmdGenConfig, generate, to_lines

ROOT = Path(__file__).resolve().parents[3]

HAND = [
    b'{"op":"instrument","symbol":"ACME","tick":"0.01","lot":1,"ts":100}',
    b'{"op":"deposit","account":"alice","asset":"USD","amount":"10000"}',
    b'{"op":"deposit","account":"bob","asset":"ACME","amount":50}',
    b'{"op":"new","account":"bob","clientOrderId":"s1","symbol":"ACME","side":"sell",'
    b'"type":"limit","price":"10.00","qty":10,"ts":200}',
    b"this is not json",
    b'{"op":"new","account":"alice","clientOrderId":"b1","symbol":"ACME","side":"buy",'
    b'"type":"limit","price":"10.00","qty":4}',
    b'{"op":"teleport","account":"alice"}',
    b'{"op":"new","account":"alice","clientOrderId":"b2","symbol":"ACME","side":"buy",'
    b'"type":"limit","price":"10.001","qty":1,"ts":300}',
    b'{"op":"cancel","account":"bob","clientOrderId":"s1"}',
]


def _events(lines: list[bytes]) -> list[dict[str, Any]]:
    chunks: list[bytes] = []
    replay_stream(iter(lines), chunks.append)
    return [orjson.loads(x) for x in b"".join(chunks).splitlines()]


def test_events_in_the_spec_form_and_the_stream_goes_on() -> None:
    events = _events(HAND)
    kinds = [(e["event"], e["inSeq"]) for e in events]
    assert kinds == [
        ("accepted", 4),
        ("rejected", 5),
        ("accepted", 6),
        ("trade", 6),
        ("done", 6),
        ("rejected", 7),
        ("rejected", 8),
        ("cancelled", 9),
    ]
    assert [e["seq"] for e in events] == list(range(1, 9))
    assert events[1]["reason"] == "malformed" and events[5]["reason"] == "malformed"
    assert events[6]["reason"] == "bad_price"
    assert events[3]["price"] == "10.00" and events[3]["qty"] == 4
    assert events[7]["remaining"] == 6


def test_time_is_the_last_seen_ts_or_zero() -> None:
    events = _events(HAND)
    # inSeq 5 and 6 carry no ts: they get the ts of inSeq 4 (200); inSeq 9 that of inSeq 8
    assert [e["ts"] for e in events] == [200, 200, 200, 200, 200, 200, 300, 300]
    first = _events([b'{"op":"cancel","account":"a","clientOrderId":"x"}'])
    assert first[0]["ts"] == 0
    assert LastTime().clock() == 0


def test_strings_that_look_like_json_structure_stay_in_their_line() -> None:
    weird = [b'{"op":"teleport","account":"},\\n{","clientOrderId":"x"}', *HAND]
    events = _events(weird)
    assert events[0]["account"] == "},\n{"
    assert events[1:] == [
        {**e, "seq": e["seq"] + 1, "inSeq": e["inSeq"] + 1} for e in _events(HAND)
    ]


HERE = Path(__file__).resolve().parent


def test_a_small_input_gives_exactly_the_pinned_output() -> None:
    """``HAND``'s events and market data, byte for byte, as checked by hand once and kept in
    ``replay_hand.*.jsonl``: the output format, the messages, the numbering (``seq``,
    ``inSeq``, ids), the times and the channels' order are what ``quotegate replay``
    promises, so a change to any of them shows here (and the files are updated on purpose)."""
    events, md = _marketdata(HAND)
    assert events == (HERE / "replay_hand.events.jsonl").read_bytes()
    assert md == (HERE / "replay_hand.marketdata.jsonl").read_bytes()
    first = orjson.loads(events.splitlines()[3])
    assert (first["event"], first["price"], first["qty"], first["buyAccount"]) == (
        "trade",
        "10.00",
        4,
        "alice",
    )


def test_a_generated_stream_replays_deterministically() -> None:
    lines = list(to_lines(generate(CmdGenConfig(symbols=4, accounts=3), 4_000)))
    first: list[bytes] = []
    second: list[bytes] = []
    assert replay_stream(iter(lines), first.append) == 4_000
    replay_stream(iter(lines), second.append)
    assert b"".join(first) == b"".join(second)
    assert b"".join(first).count(b"\n") > 4_000 // 2


def test_files(tmp_path: Path) -> None:
    src = tmp_path / "cmds.jsonl"
    src.write_bytes(b"\n".join(HAND) + b"\n")
    out = tmp_path / "events.jsonl"
    assert main(["replay", "--input", str(src), "--output", str(out)]) == 0
    assert [orjson.loads(x) for x in out.read_bytes().splitlines()] == _events(HAND)
    assert replay_files(ReplayConfig(input_path=str(src), output_path=str(out))) == len(HAND)


def test_missing_input_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    args = ["replay", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]
    assert main(args) == 1


def test_stdin_and_stdout() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.roots.cli", "replay", "--input", "-", "--output", "-"],
        input=b"\n".join(HAND) + b"\n",
        capture_output=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    assert [orjson.loads(x) for x in proc.stdout.splitlines()] == _events(HAND)
    assert b"9 lines" in proc.stderr


def _marketdata(lines: list[bytes]) -> tuple[bytes, bytes]:
    out: list[bytes] = []
    md: list[bytes] = []
    replay_stream(iter(lines), out.append, md.append)
    return b"".join(out), b"".join(md)


def test_marketdata_is_deterministic(tmp_path: Path) -> None:
    lines = list(to_lines(generate(CmdGenConfig(symbols=3, accounts=3), 3_000)))
    events, md = _marketdata(lines)
    assert (events, md) == _marketdata(lines)
    plain: list[bytes] = []
    replay_stream(iter(lines), plain.append)
    assert events == b"".join(plain)  # market data does not change the events
    envelopes = [orjson.loads(x) for x in md.splitlines()]
    channels = {e["ch"] for e in envelopes}
    assert {"book.S000", "trades.S000", "ticker.S000"} <= channels
    assert all(e["epoch"] == "replay" for e in envelopes)
    seqs: dict[str, list[int]] = {}
    for e in envelopes:
        if e["ch"] != "orders":
            seqs.setdefault(e["ch"], []).append(e["seq"])
    for ch, numbers in seqs.items():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), ch
    src = tmp_path / "cmds.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    runs = []
    for i in range(2):
        out, mdp = tmp_path / f"e{i}.jsonl", tmp_path / f"m{i}.jsonl"
        args = ["replay", "--input", str(src), "--output", str(out), "--marketdata", str(mdp)]
        assert main(args) == 0
        runs.append((out.read_bytes(), mdp.read_bytes()))
    assert runs[0] == runs[1] == (events, md)


@pytest.mark.parametrize("line", [b"", b"   ", b"[]", b'{"op":"new"}', b"\xff\xfe"])
def test_any_bad_line_is_one_rejected_event(line: bytes) -> None:
    events = _events([line])
    assert len(events) == 1
    assert events[0]["event"] == "rejected" and events[0]["reason"] == "malformed"
