#!/usr/bin/env python3
# ruff: noqa
# Copied from the WebSocket event injection tutorial, re-indented only.
"""Send a single JSON event to a Cloacina accumulator over WebSocket."""

import base64
import json
import os
import socket
import struct
import sys


def send_accumulator_event(host, port, accumulator_name, token, event):
    """Open a WebSocket connection, send one binary frame, and close."""
    path = f"/v1/ws/accumulator/{accumulator_name}"
    ws_key = base64.b64encode(os.urandom(16)).decode()

    sock = socket.create_connection((host, port), timeout=10)

    # HTTP/1.1 upgrade request — token in query string
    request = (
        f"GET {path}?token={token} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Upgrade: websocket\r\n"
        f"Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {ws_key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n"
        f"\r\n"
    )
    sock.sendall(request.encode())

    # Read until we have the full HTTP response header
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("Server closed connection during upgrade")
        response += chunk

    status_line = response.split(b"\r\n")[0].decode()
    if "101" not in status_line:
        raise ConnectionError(f"WebSocket upgrade rejected: {status_line}")

    print(f" WebSocket connected ({status_line.strip()})")

    # Serialize the event to JSON bytes
    payload = json.dumps(event).encode("utf-8")
    mask_key = os.urandom(4)

    # Build the frame header
    frame = bytearray()
    frame.append(0x82)  # FIN + binary opcode

    length = len(payload)
    if length < 126:
        frame.append(0x80 | length)  # mask bit set
    elif length < 65536:
        frame.append(0x80 | 126)
        frame.extend(struct.pack(">H", length))
    else:
        frame.append(0x80 | 127)
        frame.extend(struct.pack(">Q", length))

    frame.extend(mask_key)

    # Mask the payload
    masked = bytearray(length)
    for i in range(length):
        masked[i] = payload[i] ^ mask_key[i % 4]
    frame.extend(masked)

    sock.sendall(frame)
    print(f" Sent {length} bytes: {json.dumps(event)}")

    # Send a clean close frame (opcode 0x8, masked, no body)
    close_frame = bytearray([0x88, 0x80]) + os.urandom(4)
    sock.sendall(close_frame)
    sock.close()
    print(" Connection closed.")


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
    token = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("TOKEN", "")

    if not token:
        print("Usage: python3 send_event.py <host> <port> <token>", file=sys.stderr)
        sys.exit(1)

    event = {
        "best_bid": 100.10,
        "best_ask": 100.15,
    }

    print(f"Sending event to orderbook accumulator on {host}:{port}...")
    send_accumulator_event(host, port, "orderbook", token, event)
