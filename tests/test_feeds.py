import json

import numpy as np
import pytest

from loadgen.feeds import FeedError, RandomWalkFeed, ReplayFeed, SineFeed, make_feed


def tutorial_quote(seq: int) -> tuple[float, float]:
    """The persistent producer's formula from the tutorial, one event at a time."""
    import math

    mid = 100.0 + math.sin(seq * 0.05) * 0.5
    spread = 0.05 + abs(math.cos(seq * 0.1)) * 0.10
    return round(mid - spread / 2, 4), round(mid + spread / 2, 4)


def test_sine_matches_tutorial_formula():
    quotes = SineFeed().next_batch(200)
    expected = np.array([tutorial_quote(seq) for seq in range(200)])
    np.testing.assert_allclose(quotes, expected, rtol=0, atol=1e-9)


def test_sine_continues_across_batches():
    feed = SineFeed()
    joined = np.vstack([feed.next_batch(7), feed.next_batch(13)])
    np.testing.assert_array_equal(joined, SineFeed().next_batch(20))


def test_random_walk_same_seed_same_stream():
    first = RandomWalkFeed(seed=42)
    second = RandomWalkFeed(seed=42)
    in_pieces = np.vstack([first.next_batch(5), first.next_batch(95)])
    np.testing.assert_array_equal(in_pieces, second.next_batch(100))


def test_random_walk_seeds_differ():
    assert not np.array_equal(
        RandomWalkFeed(seed=1).next_batch(10), RandomWalkFeed(seed=2).next_batch(10)
    )


def test_random_walk_ask_above_bid():
    quotes = RandomWalkFeed(seed=7, volatility=0.5).next_batch(10_000)
    assert np.all(quotes[:, 1] > quotes[:, 0])


def test_random_walk_drift_moves_mid():
    quotes = RandomWalkFeed(seed=3, drift=0.01, volatility=0.0).next_batch(1000)
    mid = quotes.mean(axis=1)
    assert mid[-1] == pytest.approx(100.0 + 0.01 * 1000, abs=0.01)


def test_random_walk_rejects_bad_spread():
    with pytest.raises(FeedError, match="spread"):
        RandomWalkFeed(spread=0)


def test_replay_csv_with_header_loops(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text("best_bid,best_ask\n1.0,1.5\n2.0,2.5\n")
    quotes = ReplayFeed(path).next_batch(5)
    np.testing.assert_array_equal(quotes[:, 0], [1.0, 2.0, 1.0, 2.0, 1.0])


def test_replay_json_lines(tmp_path):
    path = tmp_path / "quotes.jsonl"
    lines = [json.dumps({"best_bid": b, "best_ask": b + 0.1}) for b in (1.0, 2.0)]
    path.write_text("\n".join(lines) + "\n")
    np.testing.assert_allclose(ReplayFeed(path).next_batch(2)[:, 1], [1.1, 2.1])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", "1.0\n", "expected 2 columns"),
        ("bad.csv", "1.0,abc\n", "invalid price"),
        ("bad.csv", "1.0,nan\n", "finite"),
        ("empty.csv", "", "no quotes"),
        ("bad.jsonl", "{not json}\n", "invalid JSON"),
        ("bad.jsonl", '{"bid": 1}\n', "best_bid and best_ask"),
        ("bad.jsonl", '{"best_bid": true, "best_ask": 1}\n', "not true or false"),
        ("swapped.csv", "best_ask,best_bid\n1,2\n", "must be best_bid,best_ask"),
    ],
)
def test_replay_rejects_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(FeedError, match=message) as error:
        ReplayFeed(path)
    assert str(path) in str(error.value)


def test_replay_rejects_binary_file(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(FeedError, match="not UTF-8"):
        ReplayFeed(path)


def test_replay_needs_a_path():
    with pytest.raises(FeedError, match="missing path"):
        make_feed("replay:")


def test_replay_missing_file(tmp_path):
    with pytest.raises(FeedError, match="cannot read feed file"):
        make_feed(f"replay:{tmp_path / 'missing.csv'}")


def test_make_feed_unknown_name():
    with pytest.raises(FeedError, match="unknown feed 'zigzag'"):
        make_feed("zigzag")
