import json

import pytest

from loadgen.errors import UsageProblem
from loadgen.shapes import load_shape_file, parse_shape


def test_constant_total_and_times():
    shape = parse_shape("10s@100")
    assert shape.duration_s == 10
    assert shape.total_events == pytest.approx(1000)
    assert shape.time_of(0) == 0
    assert shape.time_of(250) == pytest.approx(2.5)
    assert shape.time_of(1000) == float("inf")


def test_steps_accumulate():
    shape = parse_shape("1s@100,1s@200,500ms@400")
    assert shape.duration_s == pytest.approx(2.5)
    assert shape.total_events == pytest.approx(500)
    assert shape.rate_at(1.5) == 200
    assert shape.time_of(150) == pytest.approx(1.25)


def test_ramp_integral_and_inverse():
    shape = parse_shape("10s@0..1000")
    assert shape.total_events == pytest.approx(5000)
    assert shape.events_by(5) == pytest.approx(1250)
    assert shape.time_of(1250) == pytest.approx(5)
    assert shape.rate_at(2.5) == pytest.approx(250)


def test_falling_ramp_inverse():
    shape = parse_shape("10s@1000..0")
    assert shape.time_of(3750) == pytest.approx(5)


def test_spike_shape():
    shape = parse_shape("10s@200,2s@5000,10s@200")
    assert shape.rate_at(11) == 5000
    assert shape.total_events == pytest.approx(2000 + 10000 + 2000)


def test_time_of_is_inverse_of_events_by():
    shape = parse_shape("3s@10..500,2s@50,1m@0.5")
    for k in (0, 1, 17, 400, 860, 880):
        assert shape.events_by(shape.time_of(k)) == pytest.approx(k, abs=1e-6)


def test_minutes_and_milliseconds():
    assert parse_shape("1m@1").duration_s == 60
    assert parse_shape("250ms@1").duration_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("10s", "invalid stage '10s'"),
        ("0s@10", "invalid duration"),
        ("10s@-5", "invalid stage"),
        ("10s@1e12", "invalid rate"),
        ("10s@nan", "invalid stage"),
        ("10x@10", "invalid stage"),
    ],
)
def test_bad_specs_name_the_stage(spec, message):
    with pytest.raises(UsageProblem, match=message):
        parse_shape(spec)


def test_shape_file_json(tmp_path):
    path = tmp_path / "shape.json"
    path.write_text(
        json.dumps(
            {
                "stages": [
                    {"duration_s": 5, "rate": 100},
                    {"duration_s": 5, "start_rate": 100, "end_rate": 300},
                ]
            }
        )
    )
    shape = load_shape_file(path)
    assert shape.total_events == pytest.approx(500 + 1000)


def test_shape_file_toml(tmp_path):
    path = tmp_path / "shape.toml"
    path.write_text("[[stages]]\nduration_s = 2\nrate = 50\n")
    assert load_shape_file(path).total_events == pytest.approx(100)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{}", "non-empty 'stages'"),
        ('{"stages": [{"rate": 5}]}', "needs duration_s"),
        ('{"stages": [{"duration_s": 1, "rate": "fast"}]}', "needs numbers"),
        ("{not json", "invalid load shape file"),
    ],
)
def test_bad_shape_files(tmp_path, content, message):
    path = tmp_path / "shape.json"
    path.write_text(content)
    with pytest.raises(UsageProblem, match=message):
        load_shape_file(path)


def test_scaled_shape():
    assert parse_shape("2s@100..300").scaled(0.5).total_events == pytest.approx(200)


def test_spec_parses_back_to_same_shape():
    shape = parse_shape("10s@100,2s@0.00001..300.5,1m@7")
    again = parse_shape(shape.spec())
    assert again.describe() == shape.describe()


def test_stage_longer_than_a_week_rejected():
    with pytest.raises(UsageProblem, match="7 days"):
        parse_shape("8000000s@10")


def test_binary_shape_file_rejected(tmp_path):
    path = tmp_path / "shape.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UsageProblem, match="not UTF-8"):
        load_shape_file(path)


def test_boolean_duration_rejected(tmp_path):
    path = tmp_path / "shape.toml"
    path.write_text("[[stages]]\nduration_s = true\nrate = 5\n")
    with pytest.raises(UsageProblem, match="not true or false"):
        load_shape_file(path)
