"""REST endpoints under ``/v1``: health lists, fire log, fire, inject, tickets."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson
from aiohttp import web

from . import health
from .app import STATE, error_response, json_response, rest_key
from .profiles import validate_fields
from .registry import DROPPED, REJECTED
from .runner import FIRE_LOG_CAPACITY, GraphRunner

__all__ = ["add_routes"]

logger = logging.getLogger(__name__)

DEFAULT_FIRES_LIMIT = 50


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/health", _server_health)
    router.add_get("/ready", _ready)
    router.add_post("/v1/auth/ws-ticket", _ws_ticket)
    router.add_get("/v1/health/accumulators", _list_accumulators)
    router.add_get("/v1/health/accumulators/{name}/interface", _accumulator_interface)
    router.add_post("/v1/health/accumulators/{name}/inject", _inject)
    router.add_get("/v1/health/graphs", _list_graphs)
    router.add_get("/v1/health/graphs/{name}", _get_graph)
    router.add_get("/v1/health/reactors", _list_reactors)
    router.add_get("/v1/health/reactors/{name}/fires", _fires)
    router.add_get("/v1/health/reactors/{name}/fires/timeseries", _timeseries)
    router.add_post("/v1/health/reactors/{name}/fire", _fire)
    router.add_get("/v1/health/reactors/{name}/interface", _reactor_interface)


def _items(items: list) -> dict:
    return {"items": items, "total": len(items)}


async def _server_health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    return json_response({"status": "ready"})


async def _ws_ticket(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    ticket = state.tickets.issue(key)
    return json_response(
        {"ticket": ticket, "expires_in_seconds": int(state.tickets.ttl_s)}
    )


async def _list_accumulators(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    states = list(state.registry.visible_accumulators(key))
    if state.profile.name == "tutorial":
        return json_response(
            {"accumulators": [health.accumulator_status(item) for item in states]}
        )
    rows = [row for item in states for row in health.accumulator_items(item)]
    return json_response(_items(rows))


async def _list_graphs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    runners = list(state.registry.visible_graphs(key))
    if state.profile.name == "tutorial":
        return json_response({"graphs": [health.graph_status(r) for r in runners]})
    return json_response(
        _items([health.graph_status_cloacina(r, detail=False) for r in runners])
    )


async def _get_graph(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    name = request.match_info["name"]
    runner = state.registry.find_graph(key, name)

    # Another tenant's graph reads as missing, so names do not leak.
    if runner is None:
        return error_response(404, f"graph '{name}' not found", "graph_not_found")
    if state.profile.name == "tutorial":
        return json_response(health.graph_status(runner))
    return json_response(health.graph_status_cloacina(runner, detail=True))


async def _list_reactors(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    rows = [
        health.reactor_status(runner, state.profile)
        for runner in state.registry.visible_graphs(key)
    ]
    return json_response(_items(rows))


def _visible_reactor(request: web.Request) -> GraphRunner | web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    name = request.match_info["name"]
    runner = state.registry.resolve_reactor(key, name)
    if runner is None:
        return error_response(404, f"reactor '{name}' not found", "reactor_not_found")
    return runner


async def _fires(request: web.Request) -> web.Response:
    state = request.app[STATE]
    runner = _visible_reactor(request)
    if isinstance(runner, web.Response):
        return runner
    raw_limit = request.query.get("limit", str(DEFAULT_FIRES_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        return web.Response(
            status=400,
            text=f"Failed to deserialize query string: limit: invalid digit "
            f"found in string {raw_limit!r}",
        )
    limit = max(0, min(limit, FIRE_LOG_CAPACITY))
    records = list(runner.fire_log)[::-1][:limit]
    return json_response(
        _items([health.fire_item(runner, r, state.profile) for r in records])
    )


async def _timeseries(request: web.Request) -> web.Response:
    runner = _visible_reactor(request)
    if isinstance(runner, web.Response):
        return runner
    return json_response({"buckets": runner.fires_per_minute(time.time_ns())})


async def _read_json(request: web.Request) -> object | web.Response:
    body = await request.read()
    if not body:
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return web.Response(
            status=400, text=f"Failed to parse the request body as JSON: {exc}"
        )


async def _fire(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    name = request.match_info["name"]
    body = await _read_json(request)
    if isinstance(body, web.Response):
        return body
    if not isinstance(body, dict):
        return web.Response(status=422, text="expected a JSON object")
    mode = body.get("mode", "force_fire")
    inputs = body.get("inputs", {})
    if mode not in ("force_fire", "fire_with") or not isinstance(inputs, dict):
        return web.Response(
            status=422,
            text="mode must be force_fire or fire_with and inputs an object",
        )

    operation = "ForceFire" if mode == "force_fire" else "FireWith"
    runner = state.registry.resolve_reactor(key, name)
    if runner is None:
        return error_response(
            403,
            f"operation {operation} not permitted on reactor '{name}'",
            "reactor_op_denied",
        )
    if mode == "force_fire":
        runner.force_fire()
        return json_response({"reactor": name, "mode": mode, "sources_injected": []})

    for source, value in inputs.items():
        problem = _input_problem(state, runner, source, value)
        if problem is not None:
            return error_response(400, problem, "reactor_input_invalid")
    if not inputs:
        return error_response(400, "fire_with needs at least one input", "empty_inputs")
    encode = state.profile.encode_input
    runner.fire_with({source: encode(value) for source, value in inputs.items()})
    logger.info("reactor %s: fire_with over REST, sources %s", name, sorted(inputs))
    return json_response(
        {"reactor": name, "mode": mode, "sources_injected": sorted(inputs)}
    )


def _input_problem(state, runner: GraphRunner, source: str, value: object):
    if source not in runner.graph.accumulators:
        declared = ", ".join(runner.graph.accumulators)
        return f"input '{source}' is not a source of this reactor; use {declared}"
    accumulator = state.registry.accumulators[(runner.graph.tenant, source)]
    if accumulator.config.kind != "passthrough":
        return None
    problem = validate_fields(value, accumulator.config.fields)
    return None if problem is None else f"input '{source}': {problem}"


async def _inject(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = rest_key(request)
    name = request.match_info["name"]
    body = await _read_json(request)
    if isinstance(body, web.Response):
        return body
    if not isinstance(body, dict) or "event" not in body:
        return web.Response(
            status=422,
            text="Failed to deserialize the JSON body into the target type: "
            "missing field `event`",
        )

    accumulator = state.registry.resolve_accumulator(key, name)
    if accumulator is None:
        return error_response(
            403, f"not authorized for accumulator '{name}'", "accumulator_access_denied"
        )
    problem = validate_fields(body["event"], accumulator.config.fields)
    if problem is not None and accumulator.config.kind == "passthrough":
        return error_response(400, problem, "accumulator_input_invalid")

    payload = state.profile.inject_payload(body["event"], accumulator.config.fields)
    event_index = state.registry.deliver(accumulator, payload)
    if event_index in (REJECTED, DROPPED):
        return error_response(
            404,
            f"accumulator '{name}' not available: no recipient accepted the event",
            "accumulator_not_found",
        )
    accumulator.operator_injects += 1
    accumulator.last_operator_inject_at = datetime.now(UTC)
    return json_response({"accumulator": name, "delivered": len(accumulator.runners)})


async def _accumulator_interface(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    # Always 200 without authorization, as in Cloacina; unknown names get no slots.
    matches = [s for (_, n), s in state.registry.accumulators.items() if n == name]
    slots = [(name, dict(matches[0].config.fields))] if matches else []
    return json_response(health.interface("accumulator", name, slots))


async def _reactor_interface(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    matches = [r for (_, n), r in state.registry.reactors.items() if n == name]
    slots = []
    if matches:
        runner = matches[0]
        for source in runner.graph.accumulators:
            config = state.registry.accumulators[(runner.graph.tenant, source)].config
            slots.append((source, dict(config.fields)))
    return json_response(health.interface("reactor", name, slots))
