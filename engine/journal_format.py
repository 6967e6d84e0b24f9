"""The journal's record format: encoding and decoding one record line (see :mod:`engine.journal`
for the file, its format marker and the writer).

Format 2 (written now): ``<crc32, 8 hex digits> [inSeq,ts,opCode,<the command's fields>]\\n``;
format 1 (still read): ``<crc32> {"inSeq":..,"ts":..,"cmd":{<command_to_json>}}\\n``. The first
byte of the JSON tells them apart; any other first byte under a good checksum raises
:class:`JournalError`.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

from engine.commands import (
    GTC,
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)

_HEX = frozenset(b"0123456789abcdef")
_dumps = orjson.dumps
_loads = orjson.loads
_crc32 = zlib.crc32


class JournalError(Exception):
    """The journal cannot be used: an ``inSeq`` out of order, or a record that does not decode."""


# --------------------------------------------------------------------------- records

# the op code of each command type in a format-2 record, and the type of each op code
OP_CODES: dict[type, int] = {
    DefineInstrument: 0,
    Deposit: 1,
    NewOrder: 2,
    CancelOrder: 3,
    ReplaceOrder: 4,
    Malformed: 5,
}
_STDLIB = 16  # added to the op code of a record written by the stdlib encoder
_TYPES: dict[int, Any] = {code: kind for kind, code in OP_CODES.items()}
_TYPES.update({code + _STDLIB: kind for kind, code in OP_CODES.items()})
_new_tuple = tuple.__new__

Record = tuple[int, int, Command]  # (in_seq, ts, cmd)


def _body(in_seq: int, ts: int, cmd: Command) -> bytes:
    """A record's JSON. What orjson cannot write (a string with a lone surrogate, which
    Python's ``json`` module accepts in input; an integer beyond 64 bits) is written by the
    stdlib encoder, its op code plus 16, so that it is read back by the stdlib decoder
    (orjson would read a big integer as a float)."""
    code = OP_CODES[type(cmd)]
    try:
        return _dumps((in_seq, ts, code) + cmd)  # noqa: RUF005 (faster than unpacking)
    except orjson.JSONEncodeError:
        return json.dumps((in_seq, ts, code + _STDLIB, *cmd), separators=(",", ":")).encode()


def encode_record(in_seq: int, ts: int, cmd: Command) -> bytes:
    """One journal record, with its trailing newline."""
    body = _body(in_seq, ts, cmd)
    return b"%08x %b\n" % (_crc32(body), body)


def command_from_record(o: dict[str, Any]) -> Command:
    """The command of a format-1 record's ``cmd`` object, field for field (the inverse of
    :func:`engine.codec.command_to_json`, also for ``malformed``)."""
    op = o["op"]
    ts = o.get("ts")
    if op == "new":
        return NewOrder(
            o["account"],
            o["clientOrderId"],
            o["symbol"],
            o["side"],
            o["type"],
            o.get("price"),
            o["qty"],
            o.get("tif", GTC),
            ts,
        )
    if op == "cancel":
        return CancelOrder(o["account"], o["clientOrderId"], ts)
    if op == "replace":
        return ReplaceOrder(o["account"], o["clientOrderId"], o.get("price"), o.get("qty"), ts)
    if op == "deposit":
        return Deposit(o["account"], o["asset"], o["amount"], ts)
    if op == "instrument":
        return DefineInstrument(
            o["symbol"],
            o["tick"],
            o["lot"],
            o.get("currency", "USD"),
            o.get("maxQty"),
            o.get("maxNotional"),
            o.get("band"),
            ts,
        )
    if op == "malformed":
        return Malformed(
            o["message"], o.get("account"), o.get("clientOrderId"), ts, o.get("reason", "malformed")
        )
    raise KeyError(f"unknown op {op!r}")


def record_body(line: bytes) -> bytes | None:
    """The JSON body of a record line if its framing and checksum are good, else ``None``
    (the only place a record's checksum is computed). Raises :class:`JournalError` for a good
    record of an unknown format."""
    if len(line) < 11 or line[-1] != 10 or line[8] != 32 or not _HEX.issuperset(line[:8]):
        return None
    body = line[9:-1]
    if _crc32(body) != int(line[:8], 16):
        return None
    if body[0] not in _FORMATS:
        raise JournalError(
            f"a journal record of an unknown format ({body[:16]!r}): written by a newer version?"
        )
    return body


_LIST = 0x5B  # "[": format 2
_FORMATS = frozenset(b"[{")


def _parse(body: bytes) -> Any:
    """orjson, or the stdlib for what orjson refuses (lone surrogates); ValueError if bad."""
    try:
        return _loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _decode_v2(body: bytes) -> Record | None:
    try:
        obj = _parse(body)
        code = obj[2]
        if code >= _STDLIB:
            obj = json.loads(body)  # big integers
        kind = _TYPES[code]
        in_seq = obj[0]
        ts = obj[1]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    fields = obj[3:]
    if type(in_seq) is not int or type(ts) is not int or len(fields) != len(kind._fields):
        return None
    return in_seq, ts, _new_tuple(kind, fields)


def _decode_v1(body: bytes) -> Record | None:
    try:
        obj = _parse(body)
        if type(obj) is dict and obj.get("enc") == "json":
            obj = json.loads(body)  # big integers
        in_seq = obj["inSeq"]
        ts = obj["ts"]
        cmd = command_from_record(obj["cmd"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    if type(in_seq) is not int or type(ts) is not int:
        return None
    return in_seq, ts, cmd


def decode_body(body: bytes) -> Record | None:
    """``(in_seq, ts, cmd)`` of a checked body (from :func:`record_body`, either format), or
    ``None`` if it does not decode to a record."""
    if body[0] == _LIST:
        return _decode_v2(body)
    return _decode_v1(body)


def decode_record(line: bytes) -> Record | None:
    """``(in_seq, ts, cmd)`` of one record line (either format), or ``None`` if it is torn or
    corrupt; :class:`JournalError` if it is of an unknown format."""
    body = record_body(line)
    return None if body is None else decode_body(body)


_PREFIX = b'{"inSeq":'


def in_seq_of_body(body: bytes) -> int | None:
    """The ``inSeq`` of a checked body (from :func:`record_body`), read from its prefix (a body
    of another layout is decoded in full); ``None`` if it does not decode."""
    if body[0] == _LIST:
        digits = body[1 : body.find(b",")]
        if digits.isdigit():
            return int(digits)
    elif body.startswith(_PREFIX):
        digits = body[9 : body.find(b",", 9)]
        if digits.isdigit():
            return int(digits)
    rec = decode_body(body)
    return None if rec is None else rec[0]
