"""The journal's record format (``engine/journal_format.py``): positional records of format
2, their checksum framing, and round trips of every command."""

from __future__ import annotations

import zlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.commands import (
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)
from engine.journal_format import decode_record, encode_record
from tests.engine.test_journal import COMMANDS


def test_record_round_trip_keeps_every_field() -> None:
    for i, cmd in enumerate(COMMANDS, start=1):
        line = encode_record(i, 42 + i, cmd)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode_record(line) == (i, 42 + i, cmd)


def test_records_are_positional_arrays_of_format_2() -> None:
    line = encode_record(17, 99, NewOrder("alice", "a1", "ACME", "buy", "limit", "10.01", 5))
    body = line[9:-1]
    assert body[:1] == b"["  # the format marker
    assert orjson.loads(body) == [17, 99, 2, "alice", "a1", "ACME", "buy", "limit", "10.01", 5,
                                  "GTC", None]  # fmt: skip
    big = encode_record(1, 2, Deposit("a", "USD", 10**30))[9:-1]
    assert big == b'[1,2,17,"a","USD",1000000000000000000000000000000,null]'  # stdlib: code+16


def test_a_good_checksum_over_a_bad_array_is_a_bad_record() -> None:
    for body in [b"[1,2,99]", b"[1,2,3]", b'["1",2,3,"a","b",null]', b"[1,2,3,4,5,6,7,8]", b"[]"]:
        assert decode_record(b"%08x " % zlib.crc32(body) + body + b"\n") is None


_text = st.text(max_size=12)
_opt_text = st.none() | _text
_ts = st.none() | st.integers(min_value=0, max_value=2**62)
_COMMAND = st.one_of(
    st.builds(NewOrder, _text, _text, _text, _text, _text, _opt_text, st.integers(), _text, _ts),
    st.builds(CancelOrder, _text, _text, _ts),
    st.builds(ReplaceOrder, _text, _text, _opt_text, st.none() | st.integers(), _ts),
    st.builds(Deposit, _text, _text, _text | st.integers(), _ts),
    st.builds(
        DefineInstrument,
        _text,
        _text,
        st.integers(),
        _text,
        st.none() | st.integers(),
        _opt_text,
        _opt_text,
        _ts,
    ),
    st.builds(Malformed, _text, _opt_text, _opt_text, _ts, _text),
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=2**62), st.integers(min_value=0, max_value=2**62), _COMMAND
)
def test_any_command_round_trips(in_seq: int, ts: int, cmd: Command) -> None:
    line = encode_record(in_seq, ts, cmd)
    assert line.count(b"\n") == 1
    assert decode_record(line) == (in_seq, ts, cmd)
