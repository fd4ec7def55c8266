"""``/metrics``, ``/_loadgen/stats`` and the ``/_ground_truth`` endpoints.

``/_loadgen/stats`` lets a load report tell when the server itself was the
limit: its CPU time, how many events it rejected or dropped, and how deep its
reactor queues got. The ground-truth endpoints exist only with
``--ground-truth``; without it their paths return 404.
"""

from __future__ import annotations

import time

from aiohttp import web

from .app import STATE, error_response, json_response, rest_key
from .state import ServerState

__all__ = ["add_routes", "render_metrics", "stats"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def add_routes(app: web.Application, ground_truth: bool) -> None:
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/_loadgen/stats", _stats)
    if ground_truth:
        app.router.add_get("/_ground_truth/events", _ground_truth_events)
        app.router.add_get("/_ground_truth/fires", _ground_truth_fires)


def stats(state: ServerState) -> dict:
    """Build the body of ``GET /_loadgen/stats``."""
    totals = state.registry.totals()
    return {
        "cpu_seconds": time.process_time(),
        "events_total": totals["events_total"],
        "events_rejected": totals["events_rejected"] + state.text_frames_ignored,
        "events_dropped": totals["events_dropped"],
        "queue_depth_max": totals["queue_depth_max"],
        "connections": sum(state.connections.values()),
        "upgrades_abandoned": state.upgrades_abandoned,
        "frame_step": state.frame_step,
    }


async def _stats(request: web.Request) -> web.Response:
    rest_key(request, admin=True)
    return json_response(stats(request.app[STATE]))


def _int_query(request: web.Request, name: str) -> int | web.Response:
    raw = request.query.get(name)
    try:
        return int(raw) if raw is not None else -1
    except ValueError:
        return error_response(
            400, f"invalid {name} {raw!r}; use an integer", "invalid_query"
        )


async def _ground_truth_events(request: web.Request) -> web.Response:
    rest_key(request, admin=True)
    port = _int_query(request, "peer_port")
    if isinstance(port, web.Response):
        return port
    if port < 0:
        return error_response(400, "missing peer_port", "invalid_query")
    recorder = request.app[STATE].ground_truth
    return json_response({"events": recorder.events_for_port(port)})


async def _ground_truth_fires(request: web.Request) -> web.Response:
    rest_key(request, admin=True)
    state = request.app[STATE]
    graph = request.query.get("graph")
    since = _int_query(request, "since_fire")
    if isinstance(since, web.Response):
        return since
    runners = [r for (_, name), r in state.registry.graphs.items() if name == graph]
    if not runners:
        return error_response(404, f"graph '{graph}' not found", "graph_not_found")
    runner = runners[0]
    fires = state.ground_truth.fires_since(
        runner.graph.name, runner.graph.reactor, max(since, 0)
    )
    return json_response({"fires": fires})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=render_metrics(request.app[STATE]).encode(),
        headers={"Content-Type": PROMETHEUS_CONTENT_TYPE},
    )


def _labels(**labels: object) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return "{" + inner + "}"


def render_metrics(state: ServerState) -> str:
    """Render the Prometheus text exposition of the server's counters.

    Names follow the Cloacina server's metrics; the ``graph`` label carries the
    reactor name, as there. ``process_cpu_seconds_total`` and the
    ``reference_server_*`` series are this server's own.
    """
    lines: list[str] = []

    def family(name: str, kind: str, samples: list[tuple[str, object]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    registry = state.registry
    family(
        "cloacina_ws_messages_total",
        "counter",
        [
            (_labels(endpoint=endpoint, direction=direction), count)
            for (endpoint, direction), count in sorted(state.ws_messages.items())
        ],
    )
    family(
        "cloacina_ws_connections_active",
        "gauge",
        [
            (_labels(endpoint=endpoint), state.connections[endpoint])
            for endpoint in ("accumulator", "reactor")
        ],
    )
    family(
        "cloacina_ws_auth_failures_total",
        "counter",
        [
            (_labels(reason=reason), count)
            for reason, count in sorted(state.ws_auth_failures.items())
        ],
    )
    events, depths, fires, queues, queue_maxima = [], [], [], [], []
    for runner in registry.graphs.values():
        reactor = runner.graph.reactor
        for name, processor in runner.processors.items():
            labels = _labels(graph=reactor, accumulator=name, kind=processor.kind)
            events.append((labels, processor.boundaries_emitted))
            depth_labels = _labels(graph=reactor, accumulator=name)
            depths.append((depth_labels, processor.buffer_depth))
        strategy = runner.graph.reaction_mode
        fire_labels = _labels(graph=reactor, reactor=reactor, strategy=strategy)
        fires.append((fire_labels, runner.reactor.fire_count))
        queues.append((_labels(reactor=reactor), runner.queue_depth))
        queue_maxima.append((_labels(reactor=reactor), runner.queue_depth_max))
    family("cloacina_accumulator_events_total", "counter", events)
    family("cloacina_accumulator_buffer_depth", "gauge", depths)
    family("cloacina_reactor_fires_total", "counter", fires)
    family(
        "cloacina_api_requests_total",
        "counter",
        [
            (_labels(method=method, status=status), count)
            for (method, status), count in sorted(state.api_requests.items())
        ],
    )
    family("process_cpu_seconds_total", "counter", [("", time.process_time())])
    family("reference_server_queue_depth", "gauge", queues)
    family("reference_server_queue_depth_max", "gauge", queue_maxima)
    rejected, dropped = [], []
    for (tenant, name), accumulator in registry.accumulators.items():
        labels = _labels(tenant=tenant, accumulator=name)
        rejected.append((labels, accumulator.events_rejected))
        dropped.append((labels, accumulator.events_dropped))
    family("reference_server_events_rejected_total", "counter", rejected)
    family("reference_server_events_dropped_total", "counter", dropped)
    family(
        "reference_server_text_frames_ignored_total",
        "counter",
        [("", state.text_frames_ignored)],
    )
    family(
        "reference_server_http_errors_total",
        "counter",
        [
            (_labels(kind=kind), count)
            for kind, count in sorted(state.http_errors.items())
        ],
    )
    return "\n".join(lines) + "\n"
