"""Stream cursors: where a client stands in every channel of its stream, as one opaque string.

A cursor is what SSE sends as each event's ``id:`` (so ``Last-Event-ID`` resumes the whole
stream) and what ``/v1/poll`` returns and accepts. It maps each wire channel name (``book.AAPL``,
``orders``) to the ``(epoch, seq)`` of the last message the client got on it.

Format, version 1: ``"v1." + base64url(JSON)`` without padding, the JSON being the compact
object ``{"book.AAPL":["k3f9",124],...}`` with keys sorted. It is URL-safe (``[A-Za-z0-9_.-]``),
self-describing (the version prefix lets a later format coexist) and needs no server state, so
any gateway node resumes any cursor. :func:`decode` never raises: anything that is not a valid
cursor (wrong version, bad base64, bad JSON, wrong shapes, too long) gives ``None``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import orjson

from gateway.wire.channels import parse_channel

VERSION_PREFIX = "v1."
MAX_CURSOR_CHARS = 32 * 1024
"""Longest cursor accepted; longer input decodes to ``None``. Room for what the gateway itself
writes for 100 channels (``WsConfig.max_subscriptions``) of the longest names and epochs
(64 characters each) at 64-bit seqs: about 21,000 characters."""
MAX_EPOCH_CHARS = 64

Position = tuple[str, int]
"""``(epoch, seq)`` of the last message a client received on a channel."""


def encode(positions: Mapping[str, Position]) -> str:
    """The cursor of ``positions`` (wire channel name -> ``(epoch, seq)``)."""
    obj = {ch: [epoch, seq] for ch, (epoch, seq) in positions.items()}
    raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return VERSION_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: object) -> dict[str, Position] | None:
    """The positions of a cursor, or ``None`` if ``cursor`` is not a valid one. Never raises."""
    if type(cursor) is not str or len(cursor) > MAX_CURSOR_CHARS:
        return None
    if not cursor.startswith(VERSION_PREFIX):
        return None
    body = cursor[len(VERSION_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        obj = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if type(obj) is not dict:
        return None
    positions: dict[str, Position] = {}
    for ch, value in obj.items():
        if parse_channel(ch) is None or type(value) is not list or len(value) != 2:
            return None
        epoch, seq = value
        if type(epoch) is not str or not 0 < len(epoch) <= MAX_EPOCH_CHARS:
            return None
        if type(seq) is not int or seq < 0:
            return None
        positions[ch] = (epoch, seq)
    return positions
