"""A typical Locust WebSocket user, as a baseline for bench_generator.py.

It is written the way most Locust WebSocket tests are: websocket-client, one
``json.dumps`` and one ``ws.send`` per task, and one Locust request event per
send. It is deliberately not the project's ``OrderbookUser``.
"""

from __future__ import annotations

import json
import time

import websocket
from locust import User, constant, task


class TypicalWebSocketUser(User):
    """Sends one orderbook event per task, as fast as Locust schedules tasks."""

    wait_time = constant(0)

    def on_start(self) -> None:
        url = self.host.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(f"{url}/v1/ws/accumulator/orderbook")
        self.sequence = 0

    def on_stop(self) -> None:
        self.ws.shutdown()

    @task
    def send_event(self) -> None:
        self.sequence += 1
        payload = json.dumps(
            {"best_bid": 100.0 + self.sequence % 100 / 100, "best_ask": 100.15}
        )
        started = time.perf_counter()
        self.ws.send(payload)
        self.environment.events.request.fire(
            request_type="WS",
            name="send",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(payload),
            exception=None,
            context={},
        )
