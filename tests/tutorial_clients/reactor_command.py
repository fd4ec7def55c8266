# ruff: noqa
# Copied from the WebSocket event injection tutorial, re-indented only.
# The tutorial runs the example call at module level, with `token` defined
# elsewhere. Here the call sits under a __main__ guard that reads $TOKEN,
# so tests can import reactor_command() without connecting anywhere.
import socket, base64, os, json


def reactor_command(host, port, reactor_name, token, command):
    path = f"/v1/ws/reactor/{reactor_name}"
    ws_key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection((host, port), timeout=10)

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

    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            break
        response += chunk

    # Send command as a text frame (opcode 0x81)
    payload = json.dumps(command).encode()
    mask_key = os.urandom(4)
    frame = bytearray([0x81, 0x80 | len(payload)])
    frame.extend(mask_key)
    masked = bytearray(b ^ mask_key[i % 4] for i, b in enumerate(payload))
    frame.extend(masked)
    sock.sendall(frame)

    # Read one response frame (simplified — skips frame header parsing)
    resp = sock.recv(4096)
    sock.close()

    # The JSON starts after the 2-byte frame header
    print(json.loads(resp[2:]))


if __name__ == "__main__":
    token = os.environ.get("TOKEN", "")
    reactor_command("localhost", 8080, "price_signal", token, {"type": "ForceFire"})
