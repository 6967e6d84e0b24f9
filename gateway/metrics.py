"""Prometheus metrics of one gateway app, in a registry of its own (no process globals, so
several apps and tests never share counters).

Exposed at ``/metrics`` (``Metrics.render``): connections per transport, messages and bytes
sent, conflations, slow disconnects, the largest batch of each write round, the
publish-to-send lag (the oldest envelope's ``ts`` of each write round against the time it was
written), and the reporter's lag, queue and overflow (read from the reporter at each scrape,
when the node has one).
"""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

QUEUE_DEPTH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
LAG_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ReporterGauges(Protocol):
    """What the reporter gauges read (:class:`gateway.reporting.reporter.Reporter`)."""

    def lag_events(self) -> int: ...

    def pending_records(self) -> int: ...

    def dropped_records(self) -> int: ...


class TransportMetrics:
    """The metric children of one transport label, bound once per connection so the send
    path does no label lookups."""

    __slots__ = (
        "bytes_sent",
        "conflations",
        "connections",
        "lag",
        "messages_sent",
        "queue_depth",
        "round_bytes",
        "round_depth",
        "round_messages",
        "round_oldest_ts",
        "slow_disconnects",
    )

    def __init__(self, metrics: Metrics, transport: str) -> None:
        self.connections: Any = metrics.connections.labels(transport)
        self.messages_sent: Any = metrics.messages_sent.labels(transport)
        self.bytes_sent: Any = metrics.bytes_sent.labels(transport)
        self.conflations: Any = metrics.conflations.labels(transport)
        self.slow_disconnects: Any = metrics.slow_disconnects.labels(transport)
        self.queue_depth: Any = metrics.queue_depth.labels(transport)
        self.lag: Any = metrics.publish_lag.labels(transport)
        # the current write round's totals, added up by the write path with no metric calls
        # and committed once per round (commit)
        self.round_messages = 0
        self.round_bytes = 0
        self.round_depth = 0
        self.round_oldest_ts = 0

    def sent(self, messages: int, nbytes: int, lag_s: float | None, depth: int) -> None:
        """One write round (a loop tick): messages and bytes written, the lag of its oldest
        envelope, its largest batch."""
        self.messages_sent.inc(messages)
        self.bytes_sent.inc(nbytes)
        self.queue_depth.observe(depth)
        if lag_s is not None:
            self.lag.observe(max(lag_s, 0.0))

    def commit(self, now_s: float) -> None:
        """Record the round's totals (``round_*``) and start a new round."""
        if self.round_messages:
            oldest = self.round_oldest_ts
            lag = now_s - oldest / 1e6 if oldest else None
            self.sent(self.round_messages, self.round_bytes, lag, self.round_depth)
            self.round_messages = self.round_bytes = self.round_depth = self.round_oldest_ts = 0


class Metrics:
    """The gateway's metrics. ``registry`` defaults to a fresh one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "quotegate_connections", "Open client connections", ["transport"], registry=r
        )
        self.messages_sent = Counter(
            "quotegate_messages_sent", "Messages written to clients", ["transport"], registry=r
        )
        self.bytes_sent = Counter(
            "quotegate_bytes_sent", "Bytes written to clients", ["transport"], registry=r
        )
        self.conflations = Counter(
            "quotegate_conflations",
            "Channels of a slow client skipped to a fresh snapshot",
            ["transport"],
            registry=r,
        )
        self.slow_disconnects = Counter(
            "quotegate_slow_disconnects",
            "Connections closed 4008 (slow) because their orders queue overflowed",
            ["transport"],
            registry=r,
        )
        self.queue_depth = Histogram(
            "quotegate_queue_depth_messages",
            "Largest batch (messages handed to one connection in one write) of each write round",
            ["transport"],
            buckets=QUEUE_DEPTH_BUCKETS,
            registry=r,
        )
        self.publish_lag = Histogram(
            "quotegate_publish_to_send_seconds",
            "Envelope ts (publisher) to its write, the oldest envelope of each write round",
            ["transport"],
            buckets=LAG_BUCKETS_S,
            registry=r,
        )
        self.envelopes_received = Counter(
            "quotegate_envelopes_received", "Envelopes the hub got from the bus", registry=r
        )
        self.reporter_lag = Gauge(
            "quotegate_reporter_lag_events",
            "Engine events not yet written to the reporting database (engine seq - written seq)",
            registry=r,
        )
        self.reporter_pending = Gauge(
            "quotegate_reporter_pending_records",
            "Records waiting in the reporter's queue",
            registry=r,
        )
        self.reporter_dropped = Gauge(
            "quotegate_reporter_dropped_records",
            "Records the reporter's queue refused after it overflowed (this run)",
            registry=r,
        )
        self._bound: dict[str, TransportMetrics] = {}

    def watch_reporter(self, reporter: ReporterGauges) -> None:
        """Read the reporter gauges from ``reporter`` at every scrape."""
        self.reporter_lag.set_function(lambda: float(reporter.lag_events()))
        self.reporter_pending.set_function(lambda: float(reporter.pending_records()))
        self.reporter_dropped.set_function(lambda: float(reporter.dropped_records()))

    def transport(self, name: str) -> TransportMetrics:
        """The bound children for one transport label."""
        bound = self._bound.get(name)
        if bound is None:
            bound = self._bound[name] = TransportMetrics(self, name)
        return bound

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample's current value (tests, /healthz): ``name`` as exposed, e.g.
        ``quotegate_messages_sent_total``."""
        result = self.registry.get_sample_value(name, labels or {})
        return None if result is None else float(result)
