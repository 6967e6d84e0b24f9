"""``quotegate replay``: run a command file through a fresh engine and write its events.

``quotegate replay --input cmds.jsonl --output events.jsonl [--marketdata md.jsonl]``
(``-`` is standard input / output). Every input line is one command in the spec's JSON form
(docs/engine.md, "Commands"); a line that is not a valid command becomes a ``rejected``
event (``malformed``) and the stream goes on. Every event is written as one JSON line
(:func:`engine.codec.encode_event`).

Time is deterministic: a command's own ``ts`` is its time; a command without ``ts`` gets the
time of the input before it (the last seen ``ts``), or 0 if no input had one yet. So the same
input always gives byte-identical output, including ``--marketdata``, which writes every
envelope the market-data publisher emits, with the publisher's clock driven by the same
command times (and a final flush at the end of the input).

I/O is binary and batched: lines are read from a large buffered file and written in joined
blocks of about a megabyte. The loop is the hot path of ``quotegate bench engine``'s replay
phase: a line is parsed by ``orjson.loads`` and built by :func:`engine.codec.command_from_obj`
(its fast path for well-typed commands), an event is built by its kind's builder
(:data:`engine.codec.EVENT_BUILDERS`) and ``orjson.dumps``-ed, byte for byte what
:func:`engine.codec.encode_event` gives.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import orjson

from engine.codec import EVENT_BUILDERS, command_from_obj, decode_command
from gateway.wire.envelope import Envelope

if TYPE_CHECKING:
    from engine import Engine

_BATCH_LINES = 8192  # about a megabyte of event lines a write
_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayConfig:
    """Paths of one replay run; ``-`` means standard input / output."""

    input_path: str
    output_path: str
    marketdata_path: str | None = None
    epoch: str = "replay"


class LastTime:
    """The replay clock: the last ``ts`` an input carried, else 0."""

    __slots__ = ("ts",)

    def __init__(self) -> None:
        self.ts = 0

    def clock(self) -> int:
        return self.ts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="command JSON lines ('-': stdin)")
    parser.add_argument("--output", required=True, help="event JSON lines ('-': stdout)")
    parser.add_argument(
        "--marketdata", default=None, help="also write the publisher's envelopes ('-': stdout)"
    )
    parser.add_argument(
        "--epoch", default="replay", help="the market-data streams' epoch (default: replay)"
    )


def run(args: argparse.Namespace) -> int:
    config = ReplayConfig(
        input_path=args.input,
        output_path=args.output,
        marketdata_path=args.marketdata,
        epoch=args.epoch,
    )
    try:
        lines = replay_files(config)
    except OSError as exc:
        print(f"quotegate replay: {exc}", file=sys.stderr)
        return 1
    print(f"quotegate replay: {lines} lines", file=sys.stderr)
    return 0


def _open_in(path: str, stack: ExitStack) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    return stack.enter_context(open(path, "rb", buffering=_BUFFER_BYTES))


def _open_out(path: str, stack: ExitStack, opened: dict[str, IO[bytes]]) -> IO[bytes]:
    if path in opened:  # --output and --marketdata both '-' (or the same file)
        return opened[path]
    if path == "-":
        out: IO[bytes] = sys.stdout.buffer
    else:
        out = stack.enter_context(open(path, "wb", buffering=_BUFFER_BYTES))  # noqa: SIM115
    opened[path] = out
    return out


def replay_files(config: ReplayConfig) -> int:
    """Run ``config.input_path`` and write the outputs; returns the number of input lines."""
    with ExitStack() as stack:
        source = _open_in(config.input_path, stack)
        opened: dict[str, IO[bytes]] = {}
        out = _open_out(config.output_path, stack, opened)
        md = (
            _open_out(config.marketdata_path, stack, opened)
            if config.marketdata_path is not None
            else None
        )
        n = replay_stream(
            source, out.write, md.write if md is not None else None, epoch=config.epoch
        )
        out.flush()
        if md is not None:
            md.flush()
        return n


def _write_block(write: Callable[[bytes], object], lines: list[bytes]) -> None:
    lines.append(b"")
    write(b"\n".join(lines))
    lines.clear()


def replay_stream(
    lines: Iterable[bytes],
    write: Callable[[bytes], object],
    write_marketdata: Callable[[bytes], object] | None = None,
    *,
    epoch: str = "replay",
) -> int:
    """Run JSON command lines through a fresh engine; ``write`` gets blocks of event lines,
    ``write_marketdata`` blocks of envelope lines. Returns the number of input lines."""
    from engine import Engine, EngineConfig

    times = LastTime()
    engine = Engine(EngineConfig(), clock=times.clock)
    if write_marketdata is not None:
        return _replay_with_marketdata(lines, write, write_marketdata, engine, times, epoch)
    submit = engine.submit
    instruments = engine.instruments
    builders = EVENT_BUILDERS
    loads = orjson.loads
    dumps = orjson.dumps
    out: list[bytes] = []
    push = out.append
    n = 0
    for line in lines:
        n += 1
        try:
            cmd = command_from_obj(loads(line))
        except orjson.JSONDecodeError:
            cmd = decode_command(line)  # the Malformed with the parser's message
        ts = cmd.ts
        if ts is not None:
            times.ts = ts
        for event in submit(cmd):
            push(dumps(builders[type(event)](event, instruments)))
        if len(out) >= _BATCH_LINES:
            _write_block(write, out)
    if out:
        _write_block(write, out)
    return n


def _replay_with_marketdata(
    lines: Iterable[bytes],
    write: Callable[[bytes], object],
    write_marketdata: Callable[[bytes], object],
    engine: Engine,
    times: LastTime,
    epoch: str,
) -> int:
    from gateway.marketdata.publisher import Publisher, PublisherConfig

    md: list[bytes] = []

    def sink(envelope: Envelope) -> None:
        md.append(envelope.payload)

    instruments = engine.instruments
    publisher = Publisher(
        PublisherConfig(epoch=epoch),
        sink=sink,
        clock=times.clock,
        instrument_lookup=instruments.get,
    )
    submit = engine.submit
    on_events = publisher.on_events
    flush_due = publisher.flush_due
    out: list[bytes] = []
    n = 0
    builders = EVENT_BUILDERS
    loads = orjson.loads
    dumps = orjson.dumps
    for line in lines:
        n += 1
        try:
            cmd = command_from_obj(loads(line))
        except orjson.JSONDecodeError:
            cmd = decode_command(line)
        ts = cmd.ts
        if ts is not None:
            times.ts = ts
        events = submit(cmd)
        if events:
            for event in events:
                out.append(dumps(builders[type(event)](event, instruments)))
            on_events(events)
        flush_due(times.ts)
        if len(out) >= _BATCH_LINES:
            _write_block(write, out)
        if len(md) >= _BATCH_LINES:
            _write_block(write_marketdata, md)
    publisher.flush_all()
    if out:
        _write_block(write, out)
    if md:
        _write_block(write_marketdata, md)
    return n
