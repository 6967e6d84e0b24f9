from __future__ import annotations

import time

import pytest

from engine.sequencer import Sequencer, wall_clock_us


def test_stamp_numbers_inputs_and_prefers_the_commands_ts() -> None:
    seq = Sequencer(clock=lambda: 42)
    assert seq.stamp(None) == (1, 42)
    assert seq.stamp(7) == (2, 7)
    assert seq.in_seq == 2


def test_outputs_are_gap_free() -> None:
    seq = Sequencer(clock=lambda: 0)
    assert [seq.next_out() for _ in range(3)] == [1, 2, 3] and seq.out_seq == 3


def test_resume_never_goes_back() -> None:
    seq = Sequencer(clock=lambda: 0)
    seq.resume(5)
    assert seq.stamp(None) == (6, 0)
    with pytest.raises(ValueError):
        seq.resume(6)


def test_wall_clock_is_microseconds() -> None:
    assert abs(wall_clock_us() - time.time() * 1e6) < 5e6
