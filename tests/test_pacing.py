import math

import pytest

from loadgen.pacing import Schedule
from loadgen.shapes import LoadShape


def constant(rate, duration=100.0):
    return LoadShape.constant(rate, duration)


def test_events_due_at_constant_rate():
    schedule = Schedule(constant(100.0), start_s=10.0)
    assert schedule.take_due(10.0) == (0, 1)
    assert schedule.take_due(10.005) == (1, 0)
    assert schedule.take_due(10.1) == (1, 10)
    assert schedule.next_index == 11


def test_stall_does_not_shrink_offered_load():
    schedule = Schedule(constant(1000.0), start_s=0.0)
    schedule.take_due(0.0)
    # A 2-second stall: every event owed is handed out at once.
    assert schedule.take_due(2.0) == (1, 2000)


def test_intended_times_follow_rate():
    schedule = Schedule(constant(4.0), start_s=1.0)
    assert schedule.intended_time_s(0) == pytest.approx(1.0)
    assert schedule.intended_time_s(3) == pytest.approx(1.75)


def test_seconds_until_next():
    schedule = Schedule(constant(4.0), start_s=0.0)
    schedule.take_due(0.0)
    assert schedule.seconds_until_next(0.1) == pytest.approx(0.15)


def test_schedule_ends_with_shape():
    schedule = Schedule(constant(10.0, duration=2.0), start_s=0.0)
    assert schedule.event_count == 20
    assert schedule.take_due(50.0) == (0, 20)
    assert schedule.finished
    assert math.isinf(schedule.seconds_until_next(50.0))


@pytest.mark.parametrize("slots", [1, 3, 7])
def test_slots_share_events_exactly(slots):
    shape = constant(1000.0, duration=1.0)
    schedules = [Schedule(shape, 0.0, slot, slots) for slot in range(slots)]
    assert sum(s.event_count for s in schedules) == 1000
    for t in (0.0, 0.0123, 0.5, 0.999):
        due = sum(s.due_count(t) for s in schedules)
        assert due == math.floor(1000 * t + 1e-9) + 1


def test_slot_intended_times_interleave():
    shape = constant(100.0)
    second = Schedule(shape, 0.0, slot=1, slots=4)
    assert second.intended_time_s(0) == pytest.approx(0.01)
    assert second.intended_time_s(1) == pytest.approx(0.05)


def test_rejects_slot_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        Schedule(constant(1.0), 0.0, slot=2, slots=2)
