"""Error renderings: stream messages and REST bodies."""

from __future__ import annotations

import orjson

from gateway.wire import errors
from gateway.wire.errors import GatewayError, error_body, error_message, error_response


def test_stream_error_message_carries_code_message_and_id() -> None:
    assert orjson.loads(error_message(errors.UNKNOWN_CHANNEL, "no such channel", 7)) == {
        "type": "error",
        "code": "unknown_channel",
        "message": "no such channel",
        "id": 7,
    }
    assert "id" not in orjson.loads(error_message(errors.BAD_REQUEST, "malformed JSON"))


def test_rest_error_response() -> None:
    response = error_response(None, errors.RATE_LIMITED, "slow down")
    assert response.status_code == 429
    assert response.media_type == "application/json"
    assert orjson.loads(response.body) == {
        "error": {"code": "rate_limited", "message": "slow down"}
    }
    assert error_response(503, errors.UNAVAILABLE, "x").status_code == 503
    assert orjson.loads(error_body("a", "b")) == {"error": {"code": "a", "message": "b"}}


def test_every_stream_code_has_a_status() -> None:
    assert set(errors.STREAM_CODES) <= set(errors.HTTP_STATUS)
    assert GatewayError(errors.UNAUTHORIZED, "who?").status == 401
    assert errors.TooManyConnections().status == 503


def test_quoted_values_are_json_strings_cut_to_their_limit() -> None:
    assert errors.quoted("nope.X") == '"nope.X"'
    assert errors.quoted("it's") == '"it\'s"'
    assert errors.quoted('a"b') == '"a\\"b"'
    assert errors.quoted(7) == '"7"'
    assert errors.quoted("x" * 100, 32) == '"' + "x" * 32 + '"'
