import pytest

from loadgen.pacing import ConstantRateSchedule


def test_events_due_at_constant_rate():
    schedule = ConstantRateSchedule(100.0, start_s=10.0)
    assert schedule.take_due(10.0) == 1
    assert schedule.take_due(10.005) == 0
    assert schedule.take_due(10.1) == 10
    assert schedule.next_index == 11


def test_stall_does_not_shrink_offered_load():
    schedule = ConstantRateSchedule(1000.0, start_s=0.0)
    schedule.take_due(0.0)
    # A 2-second stall: every event owed is handed out at once.
    assert schedule.take_due(2.0) == 2000
    assert schedule.lag_s(2.0) == pytest.approx(0.0)


def test_lag_of_oldest_event():
    schedule = ConstantRateSchedule(10.0, start_s=0.0)
    schedule.take_due(0.0)
    assert schedule.lag_s(0.05) == pytest.approx(0.05)


def test_seconds_until_next():
    schedule = ConstantRateSchedule(4.0, start_s=0.0)
    schedule.take_due(0.0)
    assert schedule.seconds_until_next(0.1) == pytest.approx(0.15)


def test_rejects_zero_rate():
    with pytest.raises(ValueError, match="greater than 0"):
        ConstantRateSchedule(0, start_s=0.0)
