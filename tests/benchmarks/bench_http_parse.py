"""What parsing one health response costs: httptools against the earlier parser.

Run with ``python tests/benchmarks/bench_http_parse.py`` from a git checkout
with history. It starts the reference server on 127.0.0.1 and runs the
latency probe for a moment, so that the fire log has rows. Then it records the
bytes of the responses that the probe polls: the graph status and the fire
log at the detector's limit of 5 rows. A fire log read with a limit of 50
rows, which returns every fire of the probe run, adds a larger body. Each
response is kept as the server sent it, with Content-Length and keep-alive,
and again with its body in the chunked transfer coding.

Without any I/O it then times, per response, what ``HealthClient._exchange``
does with a memoryview of one read, in the same run:

- own: the hand-written parser that ``loadgen/http_response.py`` had until it
  moved to httptools, read from git at ``OWN_PARSER_COMMIT``: a copy of the
  read for ``parse_plain_response``, then ``ResponseParser`` for a response
  that it declines;
- reused: today's ``ResponseParser`` on httptools, one per connection, reset
  before each response, as ``HealthClient`` uses it;
- new: the same parser, but a new one per response;
- bare: one reused ``httptools.HttpResponseParser`` with only the body and
  message-complete callbacks and no checks, the least that any parser on
  httptools can cost.

It prints the minimum over several rounds of the cost per response in
nanoseconds, and the ratio of each httptools variant to the own parser. The
machine's other load shifts all the numbers, so compare ratios within a run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import timeit
import types
from functools import partial
from pathlib import Path

import httptools

from loadgen.detection import FIRE_LOG_LIMIT
from loadgen.health import READ_BUFFER_BYTES
from loadgen.http_response import IncompleteResponse, ResponseParser

sys.path.insert(0, str(Path(__file__).parent))
from bench_probe import GRAPH, TOKEN, polling_probe, start_server  # noqa: E402

OWN_PARSER_COMMIT = "74cd3136035a6f9c1c1a0472307dcb9f3106c54e"
"""The last commit whose ``loadgen/http_response.py`` is the hand-written parser."""

PROBE_RUN_S = 1.5
"""Length of the probe run before the recording, which leaves about 15 fires."""
CHUNK_BYTES = 512
ROUNDS = 7
TARGET_ROUND_S = 0.2


def load_own_parser() -> types.ModuleType:
    """Return the hand-written parser's module, read from git history."""
    source = subprocess.run(
        ["git", "show", f"{OWN_PARSER_COMMIT}:loadgen/http_response.py"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("own_http_response")
    exec(compile(source, "own_http_response.py", "exec"), module.__dict__)
    return module


class OwnParse:
    """What ``HealthClient._exchange`` did with one read before httptools."""

    def __init__(self, own: types.ModuleType) -> None:
        self._parse_plain_response = own.parse_plain_response
        self._response_parser = own.ResponseParser

    def parse(self, view: memoryview) -> tuple[int, bytes]:
        data = view.tobytes()
        response = self._parse_plain_response(data)
        if response is not None:
            return response
        parser = self._response_parser()
        parser.feed(data)
        return parser.status, parser.body


class ReusedParse:
    """One ``ResponseParser`` per connection, as ``HealthClient`` keeps it."""

    def __init__(self) -> None:
        self._parser = ResponseParser()

    def parse(self, view: memoryview) -> tuple[int, bytes]:
        parser = self._parser
        parser.reset()
        parser.feed(view)
        return parser.status, parser.body


def parse_with_new_parser(view: memoryview) -> tuple[int, bytes]:
    parser = ResponseParser()
    parser.feed(view)
    return parser.status, parser.body


class BareHttptools:
    """One httptools parser for a connection, with two callbacks and no checks."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._parts: list[bytes] = []
        self.complete = False

    def parse(self, view: memoryview) -> tuple[int, bytes]:
        self._parts = []
        self.complete = False
        self._parser.feed_data(view)
        if not self.complete:
            raise IncompleteResponse("the response did not end")
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        return self._parser.get_status_code(), body

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def record_responses(url: str) -> dict[str, bytes]:
    """Run the probe briefly, then return the raw responses to its polls."""
    probe, producer, health = polling_probe(url)
    stopper = threading.Timer(PROBE_RUN_S, probe.stop)
    stopper.start()
    probe.run()
    producer.close()
    reactor = health.get_json("/v1/health/graphs/price_signal")["reactor"]
    health.close()

    paths = {
        "graph status": "/v1/health/graphs/price_signal",
        f"fire log, {FIRE_LOG_LIMIT} rows": (
            f"/v1/health/reactors/{reactor}/fires?limit={FIRE_LOG_LIMIT}"
        ),
        "fire log, limit of 50": f"/v1/health/reactors/{reactor}/fires?limit=50",
    }
    host, port = url.removeprefix("http://").rsplit(":", 1)
    responses = {}
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        for name, path in paths.items():
            connection.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {TOKEN}\r\nAccept: application/json\r\n"
                "Accept-Encoding: identity\r\n\r\n".encode()
            )
            responses[name] = read_response(connection)
    return responses


def read_response(connection: socket.socket) -> bytes:
    parser = ResponseParser()
    received = b""
    while not parser.complete:
        data = connection.recv(65536)
        if not data:
            parser.feed_eof()
            break
        parser.feed(data)
        received += data
    return received


def as_chunked(response: bytes) -> bytes:
    """Return ``response`` with its body in chunks of ``CHUNK_BYTES``."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = [
        line
        for line in head.split(b"\r\n")
        if not line.lower().startswith(b"content-length:")
    ]
    lines.append(b"Transfer-Encoding: chunked")
    pieces = [
        body[start : start + CHUNK_BYTES] for start in range(0, len(body), CHUNK_BYTES)
    ]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return b"\r\n".join(lines) + b"\r\n\r\n" + chunks + b"0\r\n\r\n"


def as_read(data: bytes) -> memoryview:
    """Return ``data`` as ``HealthClient`` receives it: a view of its read buffer."""
    buffer = bytearray(max(READ_BUFFER_BYTES, len(data)))
    buffer[: len(data)] = data
    return memoryview(buffer)[: len(data)]


def calls_per_round(parse, view: memoryview) -> int:
    """Return how many calls of ``parse`` take about ``TARGET_ROUND_S``."""
    number = 1
    while timeit.timeit(partial(parse, view), number=number) < TARGET_ROUND_S / 10:
        number *= 2
    return number * 10


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="loadgen-http-parse-bench-"))
    config = folder / "graph.toml"
    config.write_text(GRAPH.format(execution_time_ms=0))
    server, url = start_server(config)
    try:
        recorded = record_responses(url)
    finally:
        server.terminate()
        server.wait(timeout=10)

    cases = {}
    for name, response in recorded.items():
        cases[f"{name}, Content-Length"] = response
        cases[f"{name}, chunked"] = as_chunked(response)

    own = load_own_parser()
    print(f"httptools {httptools.__version__}, Python {sys.version.split()[0]}")
    print(f"{'response':<38} {'bytes':>5} {'own ns':>7}   httptools ns (per own)")
    print(f"{'':<38} {'':>5} {'':>7}   {'reused':>12} {'new':>12} {'bare':>12}")
    for name, data in cases.items():
        view = as_read(data)
        parsers = {
            "own": OwnParse(own).parse,
            "reused": ReusedParse().parse,
            "new": parse_with_new_parser,
            "bare": BareHttptools().parse,
        }
        expected = parsers["own"](view)
        for parser_name, parse in parsers.items():
            if parse(view) != expected:
                raise AssertionError(f"{parser_name} parsed {name} differently")
        best = time_parsers(parsers, view)
        columns = " ".join(
            f"{best[key]:>5.0f} ({best[key] / best['own']:.2f})"
            for key in ("reused", "new", "bare")
        )
        print(f"{name:<38} {len(data):>5} {best['own']:>7.0f}   {columns}")


def time_parsers(parsers: dict, view: memoryview) -> dict[str, float]:
    """Return each parser's minimum nanoseconds per response over ``ROUNDS``."""
    numbers = {key: calls_per_round(parse, view) for key, parse in parsers.items()}
    best = dict.fromkeys(parsers, float("inf"))
    # Alternate the parsers round by round, so that they share the noise.
    for _ in range(ROUNDS):
        for key, parse in parsers.items():
            seconds = timeit.timeit(partial(parse, view), number=numbers[key])
            best[key] = min(best[key], seconds / numbers[key] * 1e9)
    return best


if __name__ == "__main__":
    main()
