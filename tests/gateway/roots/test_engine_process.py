"""The engine process's offsets file: which commands-topic record got which inSeq, and where a
restart resumes each partition."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.roots.embedded_config import EmbeddedConfig
from gateway.roots.engine_process import EngineProcess, OffsetLog
from gateway.seams.kafka_config import KafkaConfig


def test_a_restart_resumes_after_what_the_journal_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.log.offsets")
    log = OffsetLog(path)
    log.note([(1, 0, 10), (2, 1, 5), (2, 0, 11)])  # (inSeq, partition, offset); 11: a query
    log.note([(3, 0, 12), (4, 1, 6)])
    log.close()
    with open(path, "ab") as f:
        f.write(b"5 0 1")  # a torn last line
    assert OffsetLog.next_offsets(path, 4) == {0: 13, 1: 7}
    # the journal lost inSeq 4: that record is read again
    assert OffsetLog.next_offsets(path, 3) == {0: 13, 1: 6}
    assert OffsetLog.next_offsets(path, 0) == {}
    assert OffsetLog.next_offsets(str(tmp_path / "missing"), 9) == {}


def test_the_engine_process_needs_redis_and_failover_needs_a_journal() -> None:
    with pytest.raises(ValueError, match="Redis"):
        EngineProcess(EmbeddedConfig(feed="none"), KafkaConfig())
    from gateway.roots.engine_process import FailoverConfig

    with pytest.raises(ValueError, match="journal"):
        EngineProcess(
            EmbeddedConfig(feed="none", redis_url="redis://127.0.0.1:1/0"),
            KafkaConfig(),
            failover=FailoverConfig(node_id="e1"),
        )
