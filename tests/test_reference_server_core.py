"""Unit tests of the transport-free cores: boundary, reactor, auth, commands."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from reference_server.auth import (
    ApiKey,
    AuthError,
    KeyStore,
    extract_token,
    generate_key,
    is_authorized,
    mask_key,
    resolve_admin_key,
    write_key_file,
)
from reference_server.boundary import BoundaryError, decode_event
from reference_server.commands import handle_command
from reference_server.config import GraphConfig, KeyConfig, default_config
from reference_server.health import format_timestamp, graph_status
from reference_server.reactor import Reactor
from reference_server.registry import REJECTED, Registry
from reference_server.runner import GraphRunner

ORDERBOOK = {"best_bid": "f64", "best_ask": "f64"}
NOW = datetime(2026, 4, 6, 12, 34, 56, 789123, tzinfo=UTC)
ADMIN = ApiKey("admin", None, True)


# Boundary decoding.


def test_boundary_accepts_exact_fields():
    boundary = decode_event(b'{"best_bid": 100.1, "best_ask": 100.15}', ORDERBOOK)

    assert boundary == {"best_bid": 100.1, "best_ask": 100.15}


def test_boundary_converts_int_to_f64():
    boundary = decode_event('{"best_bid": 100, "best_ask": 101}', ORDERBOOK)

    assert boundary == {"best_bid": 100.0, "best_ask": 101.0}
    assert isinstance(boundary["best_bid"], float)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"best_bid": 1.0}', "missing field 'best_ask'"),
        (b'{"best_bid": 1.0, "best_ask": 2.0, "x": 1}', "unexpected field 'x'"),
        (b'{"best_bid": "1.0", "best_ask": 2.0}', "must be f64"),
        (b'{"best_bid": true, "best_ask": 2.0}', "must be f64"),
        (b'{"best_bid": null, "best_ask": 2.0}', "must be f64"),
        (b'{"BEST_BID": 1.0, "best_ask": 2.0}', "missing field 'best_bid'"),
    ],
)
def test_boundary_rejects_mismatch(payload, message):
    with pytest.raises(BoundaryError, match=message):
        decode_event(payload, ORDERBOOK)


@pytest.mark.parametrize(
    ("type_name", "good", "bad"),
    [
        ("i64", [0, -5, 2**63 - 1], [1.5, True, "1", 2**63]),
        ("str", ["", "x"], [1, None, True]),
        ("bool", [True, False], [0, 1, "true"]),
        ("f64", [0, 1.5, -2], [True, "1", [1]]),
    ],
)
def test_boundary_field_types(type_name, good, bad):
    fields = {"value": type_name}
    for value in good:
        assert decode_event(_json({"value": value}), fields)["value"] == value
    for value in bad:
        with pytest.raises(BoundaryError):
            decode_event(_json({"value": value}), fields)


def _json(value) -> bytes:
    return json.dumps(value).encode()


# Reactor state machine.


def test_reactor_when_any_fires_per_event():
    reactor = Reactor(["a", "b"], "when_any")

    snapshot = reactor.update("a", {"v": 1})

    assert snapshot is not None
    assert snapshot.inputs == {"a": {"v": 1}}
    assert snapshot.manual is False
    assert reactor.dirty == {"a": False, "b": False}
    assert reactor.complete_fire("out", NOW) is None
    assert reactor.fire_count == 1
    assert reactor.last_fired_at == NOW
    assert reactor.last_output == "out"


def test_reactor_when_all_waits_for_every_source():
    reactor = Reactor(["a", "b"], "when_all")

    assert reactor.update("a", {"v": 1}) is None
    assert reactor.update("a", {"v": 2}) is None
    snapshot = reactor.update("b", {"v": 3})

    assert snapshot is not None
    assert snapshot.inputs == {"a": {"v": 2}, "b": {"v": 3}}
    reactor.complete_fire(None, NOW)

    # Flags were cleared by the fire, so one source alone does not fire again.
    assert reactor.update("b", {"v": 4}) is None
    assert reactor.update("a", {"v": 5}) is not None


def test_reactor_coalesces_events_during_fire():
    reactor = Reactor(["a"], "when_any")
    first = reactor.update("a", {"v": 0})
    assert first is not None

    for value in range(1, 10):
        assert reactor.update("a", {"v": value}) is None

    second = reactor.complete_fire(None, NOW)
    assert second is not None
    assert second.inputs == {"a": {"v": 9}}
    assert reactor.complete_fire(None, NOW) is None
    assert reactor.fire_count == 2


def test_reactor_one_fire_at_a_time():
    reactor = Reactor(["a"], "when_any")
    reactor.update("a", {"v": 0})

    assert reactor.firing is True
    assert reactor.force_fire() is None
    assert reactor.update("a", {"v": 1}) is None

    # The queued ForceFire and the new event give one fire, not two.
    snapshot = reactor.complete_fire(None, NOW)
    assert snapshot is not None
    assert snapshot.manual is True
    assert reactor.complete_fire(None, NOW) is None


def test_reactor_pause_keeps_cache_without_fire():
    reactor = Reactor(["a"], "when_any")
    reactor.pause()

    assert reactor.update("a", {"v": 1}) is None
    assert reactor.force_fire() is None
    assert reactor.cache == {"a": {"v": 1}}
    assert reactor.dirty == {"a": True}
    assert reactor.fire_count == 0


def test_reactor_resume_waits_for_next_event():
    reactor = Reactor(["a"], "when_any")
    reactor.pause()
    reactor.update("a", {"v": 1})

    reactor.resume()

    assert reactor.firing is False
    snapshot = reactor.update("a", {"v": 2})
    assert snapshot is not None
    assert snapshot.inputs == {"a": {"v": 2}}


def test_reactor_force_fire_ignores_condition():
    reactor = Reactor(["a", "b"], "when_all")

    snapshot = reactor.force_fire()

    assert snapshot is not None
    assert snapshot.inputs == {}
    assert snapshot.manual is True


def test_reactor_fire_with_replaces_cache():
    reactor = Reactor(["a", "b"], "when_any")
    reactor.pause()
    reactor.update("a", {"v": 1})
    reactor.resume()

    snapshot = reactor.fire_with({"b": {"v": 2}})

    assert snapshot is not None
    assert snapshot.inputs == {"b": {"v": 2}}
    assert reactor.cache == {"b": {"v": 2}}


def test_reactor_rejects_undeclared_source():
    reactor = Reactor(["a"], "when_any")

    with pytest.raises(KeyError):
        reactor.update("b", {})
    with pytest.raises(KeyError):
        reactor.fire_with({"b": {}})
    with pytest.raises(RuntimeError):
        reactor.complete_fire(None, NOW)


# Graph runner on an event loop.


def _graph(execution_time_ms: float, mode: str = "when_any") -> GraphConfig:
    return GraphConfig(
        name="g",
        reactor="g_rx",
        tenant="public",
        reaction_mode=mode,
        accumulators=("orderbook",),
        computation="price_signal",
        execution_time_ms=execution_time_ms,
    )


def test_runner_inline_fire_is_synchronous():
    runner = GraphRunner(_graph(0))

    runner.on_boundary("orderbook", {"best_bid": 1.0, "best_ask": 3.0})

    assert runner.reactor.fire_count == 1
    assert runner.reactor.last_output == {"mid_price": 2.0, "spread": 2.0}


def test_runner_slow_fire_coalesces():
    async def scenario() -> GraphRunner:
        runner = GraphRunner(_graph(50))
        for i in range(10):
            runner.on_boundary("orderbook", {"best_bid": float(i), "best_ask": i + 2.0})
        assert runner.reactor.fire_count == 0
        for _ in range(100):
            await asyncio.sleep(0.01)
            if runner.reactor.fire_count == 2 and not runner.reactor.firing:
                break
        await asyncio.sleep(0.1)
        await runner.stop()
        return runner

    runner = asyncio.run(scenario())

    assert runner.reactor.fire_count == 2
    assert runner.reactor.last_output == {"mid_price": 10.0, "spread": 2.0}


# Health bodies.


def test_timestamp_format_has_millis_and_z():
    assert format_timestamp(NOW) == "2026-04-06T12:34:56.789Z"
    assert format_timestamp(NOW.replace(microsecond=0)) == "2026-04-06T12:34:56.000Z"
    assert format_timestamp(None) is None


def test_graph_status_tutorial_fields():
    body = graph_status(GraphRunner(default_config().graphs[0]))

    assert body["name"] == "price_signal"
    assert body["health"] == {
        "state": "running",
        "last_fired_at": None,
        "fire_count": 0,
    }
    assert body["accumulators"] == ["orderbook"]
    assert body["paused"] is False


# Auth decisions.


def _store() -> KeyStore:
    return KeyStore(
        [
            KeyConfig("clk_admin", "admin", None, True),
            KeyConfig("clk_acme", "acme", "acme", False),
        ]
    )


def test_auth_prefers_bearer_over_query():
    assert extract_token("Bearer clk_header", "clk_query") == "clk_header"
    assert extract_token("bearer clk_header", None) == "clk_header"
    assert extract_token("Basic abc", "clk_query") == "clk_query"
    assert extract_token(None, None) is None
    assert extract_token("Bearer ", "") is None


def test_auth_missing_and_unknown_keys():
    store = _store()

    with pytest.raises(AuthError, match="missing"):
        store.authenticate(None, None)
    with pytest.raises(AuthError, match="invalid"):
        store.authenticate("Bearer clk_other", None)
    assert store.authenticate(None, "clk_acme").tenant == "acme"


def test_auth_tenant_decisions():
    store = _store()
    admin = store.lookup("clk_admin")
    acme = store.lookup("clk_acme")

    assert is_authorized(admin, "public")
    assert is_authorized(admin, "acme")
    assert is_authorized(acme, "acme")
    assert not is_authorized(acme, "public")


def test_admin_key_sources():
    assert resolve_admin_key("clk_opt", {"TOKEN": "clk_env"}) == (
        "clk_opt",
        "from --token",
    )
    assert resolve_admin_key(None, {"TOKEN": "clk_env"}) == ("clk_env", "from $TOKEN")
    key, origin = resolve_admin_key(None, {})
    assert origin == "generated"
    assert key.startswith("clk_")


def test_generated_key_shape():
    key = generate_key()

    assert key.startswith("clk_")
    assert len(key) == 4 + 43
    assert generate_key() != key
    assert mask_key(key) == "****" + key[-4:]


def test_key_file_mode_0600(tmp_path):
    path = tmp_path / "key"
    path.write_text("old")
    path.chmod(0o644)

    write_key_file(path, "clk_secret")

    assert path.read_text() == "clk_secret\n"
    assert path.stat().st_mode & 0o777 == 0o600


# Reactor commands.


def _registry_and_runner() -> tuple[Registry, GraphRunner]:
    registry = Registry(default_config())
    return registry, registry.graphs[("public", "price_signal")]


def test_command_fire_with_validates_before_replacing():
    registry, runner = _registry_and_runner()
    runner.on_boundary("orderbook", {"best_bid": 1.0, "best_ask": 2.0})

    response = handle_command(
        registry,
        runner,
        b'{"type": "FireWith", "cache": {"orderbook": {"best_bid": 5}}}',
    )

    assert response["type"] == "Error"
    assert "best_ask" in response["message"]
    assert runner.reactor.cache == {"orderbook": {"best_bid": 1.0, "best_ask": 2.0}}
    assert runner.reactor.fire_count == 1


@pytest.mark.parametrize(
    "payload", [b"", b"[]", b'"ForceFire"', b'{"type": "forcefire"}', b"{}"]
)
def test_command_errors(payload):
    registry, runner = _registry_and_runner()

    response = handle_command(registry, runner, payload)

    assert response["type"] == "Error"
    assert runner.reactor.fire_count == 0


def test_command_state_and_pause():
    registry, runner = _registry_and_runner()

    assert handle_command(registry, runner, '{"type":"Pause"}') == {"type": "Paused"}
    state = handle_command(registry, runner, '{"type":"GetState"}')
    assert state == {"type": "State", "cache": {}, "paused": True}


# Registry delivery counts.


def test_registry_counts_accepted_and_rejected():
    registry = Registry(default_config())
    state = registry.accumulators[("public", "orderbook")]

    assert registry.deliver(state, b'{"best_bid": 1, "best_ask": 2}') == 1
    assert registry.deliver(state, b'{"best_bid": 1}') == REJECTED
    assert registry.deliver(state, b"junk") == REJECTED
    assert registry.deliver(state, b'{"best_bid": 3, "best_ask": 4}') == 2

    assert state.events_total == 2
    assert state.events_rejected == 2
    assert registry.graphs[("public", "price_signal")].reactor.fire_count == 2


def test_registry_finds_reactor_by_both_names():
    registry = Registry(default_config())
    graph = registry.graphs[("public", "price_signal")]

    assert registry.resolve_reactor(ADMIN, "price_signal") is graph
    assert registry.resolve_reactor(ADMIN, "price_signal_rx") is graph
    assert registry.resolve_reactor(ADMIN, "orderbook") is None
