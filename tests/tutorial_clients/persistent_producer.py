#!/usr/bin/env python3
# ruff: noqa
# Copied from the WebSocket event injection tutorial, re-indented only.
"""Persistent WebSocket producer — sends events at a configurable rate."""

import base64
import json
import math
import os
import socket
import struct
import time


class AccumulatorClient:
    """Persistent WebSocket client for a single accumulator."""

    def __init__(self, host, port, accumulator_name, token, timeout=10):
        path = f"/v1/ws/accumulator/{accumulator_name}"
        ws_key = base64.b64encode(os.urandom(16)).decode()
        self.sock = socket.create_connection((host, port), timeout=timeout)

        request = (
            f"GET {path}?token={token} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Upgrade: websocket\r\n"
            f"Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {ws_key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n"
            f"\r\n"
        )
        self.sock.sendall(request.encode())

        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("Server closed connection during upgrade")
            response += chunk

        if b"101" not in response.split(b"\r\n")[0]:
            self.sock.close()
            raise ConnectionError("WebSocket upgrade rejected")

    def send(self, event: dict) -> bool:
        """Send a single masked binary frame. Returns True on success."""
        try:
            payload = json.dumps(event).encode("utf-8")
            mask_key = os.urandom(4)
            frame = bytearray()
            frame.append(0x82)  # FIN + binary
            length = len(payload)
            if length < 126:
                frame.append(0x80 | length)
            elif length < 65536:
                frame.append(0x80 | 126)
                frame.extend(struct.pack(">H", length))
            else:
                frame.append(0x80 | 127)
                frame.extend(struct.pack(">Q", length))
            frame.extend(mask_key)
            masked = bytearray(length)
            for i in range(length):
                masked[i] = payload[i] ^ mask_key[i % 4]
            frame.extend(masked)
            self.sock.sendall(frame)
            return True
        except OSError:
            return False

    def close(self):
        try:
            close_frame = bytearray([0x88, 0x80]) + os.urandom(4)
            self.sock.sendall(close_frame)
        except OSError:
            pass
        self.sock.close()


if __name__ == "__main__":
    import sys

    token = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TOKEN", "")
    events_per_second = 10
    duration_seconds = 30

    client = AccumulatorClient("localhost", 8080, "orderbook", token)
    print(f"Sending {events_per_second} events/sec for {duration_seconds}s...")

    sent = 0
    interval = 1.0 / events_per_second
    start = time.monotonic()
    seq = 0

    while time.monotonic() - start < duration_seconds:
        # Simulate a slowly varying mid-price
        mid = 100.0 + math.sin(seq * 0.05) * 0.5
        spread = 0.05 + abs(math.cos(seq * 0.1)) * 0.10
        event = {
            "best_bid": round(mid - spread / 2, 4),
            "best_ask": round(mid + spread / 2, 4),
        }
        if client.send(event):
            sent += 1
        seq += 1
        time.sleep(interval)

    client.close()
    print(f"Done. Sent {sent} events.")
