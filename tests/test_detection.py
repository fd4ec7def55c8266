"""Fire detection against a real reference server, polled the probe's way."""

from __future__ import annotations

import json
import socketserver
import threading
import time

import numpy as np
import pytest

from loadgen.detection import CountDetector, FireLogDetector, choose_detector
from loadgen.health import HealthClient
from loadgen.producer import Producer
from loadgen.tags import apply_tags

WAIT_S = 5.0
POLL_S = 0.002


def tagged_event(tag: int) -> bytes:
    quotes = apply_tags(np.array([[100.1, 100.15]]), tag)
    return json.dumps({"best_bid": quotes[0, 0], "best_ask": quotes[0, 1]}).encode()


def poll_until(check, limit_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL_S)
    return False


@pytest.fixture(params=["tutorial", "cloacina"])
def server_parts(request, reference_server_factory):
    server = reference_server_factory(args=["--profile", request.param])
    producer = Producer(server.url, "orderbook", server.token)
    producer.connect()
    health = HealthClient(server.url, server.token)
    yield producer, health
    producer.close()
    health.close()


def test_fire_log_detector_matches_tags(server_parts):
    producer, health = server_parts
    detector = choose_detector(health, "price_signal", "orderbook")
    assert isinstance(detector, FireLogDetector)
    assert not detector.fired(500)
    assert not detector.fired(500)

    producer.send(tagged_event(499))
    assert poll_until(lambda: detector.fired(499))
    # The log now contains tag 499, and repeated polls for 500 get the same body.
    assert not detector.fired(500)
    assert not detector.fired(500)
    # The same body gives a different result for an earlier tag.
    assert detector.fired(499)
    assert not detector.last_fire_failed

    producer.send(tagged_event(500))
    assert poll_until(lambda: detector.fired(500))
    assert not detector.fired(501)


def test_count_detector_follows_fire_count(server_parts):
    producer, health = server_parts
    detector = CountDetector(health, "price_signal")
    target = detector.before_send(0)
    assert target == 1
    assert not detector.fired(target)
    assert not detector.fired(target)

    producer.send(tagged_event(1))
    assert poll_until(lambda: detector.fired(target))
    assert not detector.fired(target + 1)
    assert detector.fired(target)

    producer.send(tagged_event(2))
    assert poll_until(lambda: detector.fired(target + 1))


def test_fire_log_ignores_earlier_runs(server_parts):
    producer, health = server_parts
    # An earlier process's sequence was ahead: its fire shows tag 1000.
    earlier = choose_detector(health, "price_signal", "orderbook")
    producer.send(tagged_event(1000))
    assert poll_until(lambda: earlier.fired(1000))

    detector = choose_detector(health, "price_signal", "orderbook")
    assert not detector.fired(5)

    producer.send(tagged_event(5))
    assert poll_until(lambda: detector.fired(5))


@pytest.mark.parametrize(
    "fires",
    [
        {"items": "fired"},
        {"items": ["fired", 3]},
        {"items": [{"inputs": ["orderbook"]}, {"inputs": "x"}]},
    ],
)
def test_fire_log_of_other_shape_is_no_fire(fires):
    body = json.dumps(fires).encode()
    server = socketserver.TCPServer(("127.0.0.1", 0), _one_response(body))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        health = HealthClient(url, "clk_detection_test_key")
        detector = FireLogDetector(health, "price_signal_rx", "orderbook")
        assert detector.fired(1) is False
        health.close()
    finally:
        server.shutdown()
        server.server_close()


def _one_response(body: bytes) -> type[socketserver.BaseRequestHandler]:
    """Return a handler that responds to each request on a connection with ``body``."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
            while self.request.recv(65536):
                self.request.sendall(head.encode() + body)

    return Handler
