import json

import numpy as np

from loadgen.encoding import encode_quotes
from loadgen.feeds import RandomWalkFeed


def test_encoding_round_trips_exact_values():
    quotes = RandomWalkFeed(seed=5).next_batch(1000)
    decoded = [json.loads(payload) for payload in encode_quotes(quotes)]
    values = np.array([[event["best_bid"], event["best_ask"]] for event in decoded])
    np.testing.assert_array_equal(values, quotes)


def test_encoding_uses_boundary_field_names():
    payload = encode_quotes(np.array([[1.5, 2.0]]), fields=("bid", "ask"))[0]
    assert json.loads(payload) == {"bid": 1.5, "ask": 2.0}


def test_encoding_matches_tutorial_size():
    # The tutorial's send_event.py reports 37 bytes for its event with
    # json.dumps separators; our compact form drops the two spaces.
    payload = encode_quotes(np.array([[100.10, 100.15]]))[0]
    assert payload == b'{"best_bid":100.1,"best_ask":100.15}'
