"""Unit tests of TOML configuration loading and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_server.config import ConfigError, default_config, load_config

EXAMPLES = Path(__file__).parent.parent / "reference_server" / "examples"

ORDERBOOK = """
[[accumulators]]
name = "orderbook"
[accumulators.fields]
best_bid = "f64"
best_ask = "f64"
"""

GRAPH = """
[[graphs]]
name = "price_signal"
accumulators = ["orderbook"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_default_is_tutorial_graph():
    config = default_config()

    assert [a.name for a in config.accumulators] == ["orderbook"]
    graph = config.graphs[0]
    assert graph.name == "price_signal"
    assert graph.reactor == "price_signal_rx"
    assert graph.tenant == "public"
    assert graph.reaction_mode == "when_any"
    assert graph.computation == "price_signal"
    assert graph.execution_time_ms == 0
    assert config.accumulators[0].fields == {"best_bid": "f64", "best_ask": "f64"}


def test_minimal_file_defaults(tmp_path):
    config = load_config(write(tmp_path, ORDERBOOK + GRAPH))

    graph = config.graphs[0]
    assert graph.reactor == "price_signal_rx"
    assert graph.tenant == "public"
    assert graph.reaction_mode == "when_any"
    assert graph.execution_time_ms == 0.0
    assert config.keys == ()


def test_example_two_tenants_loads():
    config = load_config(EXAMPLES / "two_tenants.toml")

    assert {g.tenant for g in config.graphs} == {"public", "acme"}
    assert {k.tenant for k in config.keys} == {"public", "acme"}
    assert [g.name for g in config.graphs if "quotes" in g.accumulators] == [
        "trade_signal",
        "quote_log",
    ]


def test_admin_key_entry(tmp_path):
    text = ORDERBOOK + GRAPH + '[[keys]]\nkey = "clk_a"\nadmin = true\n'

    key = load_config(write(tmp_path, text)).keys[0]

    assert key.admin is True
    assert key.tenant is None


@pytest.mark.parametrize(
    ("text", "where", "fix"),
    [
        (GRAPH, "accumulators: missing", "add at least one [[accumulators]]"),
        (ORDERBOOK, "graphs: missing", "add at least one [[graphs]]"),
        (
            ORDERBOOK + GRAPH + "[[graph]]\n",
            "graph: unknown table",
            "use [[accumulators]]",
        ),
        (
            ORDERBOOK + GRAPH.replace("]\n", ']\nreaction_mode = "sometimes"\n', 1),
            "graphs[0].reaction_mode: invalid value 'sometimes'",
            'use "when_any" or "when_all"',
        ),
        (
            ORDERBOOK.replace('"f64"', '"float"', 1) + GRAPH,
            "accumulators[0].fields.best_bid: invalid type 'float'",
            "use one of f64, i64, str, bool",
        ),
        (
            ORDERBOOK + GRAPH.replace('"orderbook"', '"trades"'),
            "graphs[0].accumulators: accumulator 'trades' is not declared",
            'add an [[accumulators]] table with name = "trades"',
        ),
        (
            ORDERBOOK + GRAPH + "execution_time_ms = -1\n",
            "graphs[0].execution_time_ms: invalid value -1",
            "use a number of milliseconds >= 0",
        ),
        (
            ORDERBOOK + GRAPH + GRAPH,
            "graphs[1].name: name 'price_signal' is already used",
            "choose a unique name",
        ),
        (
            ORDERBOOK + GRAPH + '[[keys]]\nkey = "clk_a"\n',
            "keys[0].tenant: missing",
            'add tenant = "..."',
        ),
        (
            ORDERBOOK + GRAPH + '[[keys]]\nkey = "clk_a"\nadmin = true\ntenant = "x"\n',
            "keys[0]: sets both admin and tenant",
            "remove one of them",
        ),
        (
            ORDERBOOK.replace("best_bid", "bid") + GRAPH,
            "graphs[0].computation: price_signal needs",
            'set computation = "passthrough"',
        ),
        (
            ORDERBOOK + GRAPH + 'tenant = "acme"\n',
            "accumulator 'orderbook' belongs to tenant 'public'",
            "put both in the same tenant",
        ),
        (
            ORDERBOOK + GRAPH + "colour = 1\n",
            "graphs[0].colour: unknown key",
            "use one of accumulators",
        ),
        ("[[accumulators\n", "invalid TOML", "fix the syntax"),
    ],
    ids=[
        "no-accumulators",
        "no-graphs",
        "unknown-table",
        "bad-mode",
        "bad-field-type",
        "undeclared-accumulator",
        "negative-time",
        "duplicate-graph",
        "key-without-tenant",
        "admin-with-tenant",
        "price-signal-fields",
        "tenant-mismatch",
        "unknown-key",
        "bad-syntax",
    ],
)
def test_config_error_names_file_key_fix(tmp_path, text, where, fix):
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert where in message
    assert fix in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")
