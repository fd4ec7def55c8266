"""Server configuration: graphs, accumulators and API keys.

The built-in default is the tutorial graph: graph ``price_signal`` with reactor
``price_signal_rx`` in tenant ``public``, fed by accumulator ``orderbook`` whose
boundary has the fields ``best_bid: f64`` and ``best_ask: f64``.

A TOML file passed with ``--config`` replaces the default completely::

    [[accumulators]]
    name = "orderbook"          # required, unique within its tenant
    tenant = "public"           # optional, default "public"
    kind = "passthrough"        # optional: "passthrough" (default), "batch", "state"
    # flush_interval = "1s"     # batch: flush timer, "500ms", "2s" or seconds
    # max_buffer_size = 100     # batch: flush when this many events are buffered
    # capacity = 10             # state: window size; < 0 unbounded, 0 emits nothing
    [accumulators.fields]       # required, at least one field
    best_bid = "f64"            # one of "f64", "i64", "str", "bool"
    best_ask = "f64"

    [[graphs]]
    name = "price_signal"       # required, unique within its tenant
    reactor = "price_signal_rx" # optional, default "<name>_rx"
    tenant = "public"           # optional, default "public"
    reaction_mode = "when_any"  # optional: "when_any" (default) or "when_all"
    accumulators = ["orderbook"]  # required, declared above, same tenant
    computation = "price_signal"  # optional: "price_signal" (default) or "passthrough"
    # or "fail" (raises on every fire), "fail:0.25" (on a quarter of the fires)
    execution_time_ms = 0       # optional simulated run time of one fire, >= 0
    # or a distribution, sampled with a seeded generator:
    # execution_time = {distribution = "lognormal", median_ms = 5, p99_ms = 40}
    # execution_time = {distribution = "uniform", min_ms = 1, max_ms = 9, seed = 1}

    [[keys]]
    key = "clk_acme_producer_key"  # required, unique
    name = "acme-producer"         # optional label shown in logs
    tenant = "acme"                # a tenant key reaches only this tenant
    # admin = true                 # or: an admin key reaches every tenant

Several graphs may declare the same accumulator, so that one event updates the
reactor of each of them. Within a tenant, graph names and reactor names share
one namespace, because the tutorial profile's reactor WebSocket accepts either.
Two tenants may use the same names; the cloacina profile then resolves a name
in the caller's tenant first, and rejects an admin's request for a name that
two tenants own.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .computations import COMPUTATIONS as COMPUTATIONS_BY_NAME

__all__ = [
    "ACCUMULATOR_KINDS",
    "DEFAULT_TENANT",
    "DISTRIBUTIONS",
    "FIELD_TYPES",
    "REACTION_MODES",
    "AccumulatorConfig",
    "ConfigError",
    "ExecutionTimeConfig",
    "GraphConfig",
    "KeyConfig",
    "ServerConfig",
    "default_config",
    "load_config",
    "parse_config",
]

DEFAULT_TENANT = "public"
FIELD_TYPES = ("f64", "i64", "str", "bool")
REACTION_MODES = ("when_any", "when_all")
ACCUMULATOR_KINDS = ("passthrough", "batch", "state")
DISTRIBUTIONS = ("fixed", "lognormal", "uniform")
DEFAULT_FLUSH_INTERVAL_S = 1.0
COMPUTATIONS = ("price_signal", "passthrough")


class ConfigError(ValueError):
    """Invalid configuration; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class AccumulatorConfig:
    name: str
    tenant: str
    fields: Mapping[str, str]
    """Boundary field name to type name, one of ``FIELD_TYPES``."""
    kind: str = "passthrough"
    """One of ``ACCUMULATOR_KINDS``."""
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    """Batch flush timer; 0 flushes only at ``max_buffer_size``."""
    max_buffer_size: int | None = None
    """Batch size that triggers a flush; None for the timer alone."""
    capacity: int = 0
    """State window size: < 0 unbounded, 0 stores without emitting."""


@dataclass(frozen=True)
class ExecutionTimeConfig:
    """Simulated run time of one fire, fixed or drawn from a distribution."""

    distribution: str = "fixed"
    """One of ``DISTRIBUTIONS``."""
    fixed_ms: float = 0.0
    median_ms: float = 0.0
    p99_ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class GraphConfig:
    name: str
    reactor: str
    tenant: str
    reaction_mode: str
    accumulators: tuple[str, ...]
    computation: str
    execution_time_ms: float
    """Simulated run time of one fire; 0 runs the fire inline."""
    execution_time: ExecutionTimeConfig | None = None
    """Distribution of the run time; None means ``execution_time_ms`` fixed."""


@dataclass(frozen=True)
class KeyConfig:
    key: str
    name: str
    tenant: str | None
    """Tenant the key belongs to; None for an admin key."""
    admin: bool


@dataclass(frozen=True)
class ServerConfig:
    accumulators: tuple[AccumulatorConfig, ...]
    graphs: tuple[GraphConfig, ...]
    keys: tuple[KeyConfig, ...] = field(default=())
    source: str = "built-in default"
    """File the configuration was read from, for messages."""


def default_config() -> ServerConfig:
    """Return the tutorial graph: ``price_signal`` fed by ``orderbook``."""
    orderbook = AccumulatorConfig(
        name="orderbook",
        tenant=DEFAULT_TENANT,
        fields={"best_bid": "f64", "best_ask": "f64"},
    )
    graph = GraphConfig(
        name="price_signal",
        reactor="price_signal_rx",
        tenant=DEFAULT_TENANT,
        reaction_mode="when_any",
        accumulators=("orderbook",),
        computation="price_signal",
        execution_time_ms=0,
    )
    return ServerConfig(accumulators=(orderbook,), graphs=(graph,))


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate a TOML configuration file.

    Raises:
        ConfigError: the file is missing, is not UTF-8, is not valid TOML or
            fails validation.
    """
    source = str(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: file not found; pass an existing TOML file to --config"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read the file ({exc.strerror}); check its permissions"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start}); fix the file's encoding, TOML must be UTF-8"
        ) from None
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str) -> ServerConfig:
    """Validate a decoded TOML document and build the configuration.

    Raises:
        ConfigError: a key is missing, has the wrong type or an invalid value.
    """
    unknown = sorted(set(data) - {"accumulators", "graphs", "keys"})
    if unknown:
        raise ConfigError(
            f"{source}: {unknown[0]}: unknown table; "
            "use [[accumulators]], [[graphs]] or [[keys]]"
        )
    accumulators = tuple(
        _parse_accumulator(table, f"accumulators[{index}]", source)
        for index, table in enumerate(_tables(data, "accumulators", source))
    )
    graphs = tuple(
        _parse_graph(table, f"graphs[{index}]", source)
        for index, table in enumerate(_tables(data, "graphs", source))
    )
    keys = tuple(
        _parse_key(table, f"keys[{index}]", source)
        for index, table in enumerate(_tables(data, "keys", source, required=False))
    )
    config = ServerConfig(accumulators, graphs, keys, source)
    _check_references(config)
    return config


def _tables(
    data: Mapping[str, Any], name: str, source: str, required: bool = True
) -> list[Mapping[str, Any]]:
    tables = data.get(name)
    if tables is None:
        if required:
            raise ConfigError(
                f"{source}: {name}: missing; add at least one [[{name}]] table"
            )
        return []
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(
            f"{source}: {name}: must be an array of tables; write [[{name}]]"
        )
    if required and not tables:
        raise ConfigError(f"{source}: {name}: empty; add at least one [[{name}]] table")
    return tables


def _parse_accumulator(
    table: Mapping[str, Any], where: str, source: str
) -> AccumulatorConfig:
    allowed = {
        "name",
        "tenant",
        "fields",
        "kind",
        "flush_interval",
        "max_buffer_size",
        "capacity",
    }
    _reject_unknown_keys(table, allowed, where, source)
    name = _string(table, "name", where, source)
    tenant = _string(table, "tenant", where, source, default=DEFAULT_TENANT)
    kind = _choice(table, "kind", ACCUMULATOR_KINDS, where, source)
    fields = table.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ConfigError(
            f"{source}: {where}.fields: missing or empty; add a table such as "
            f'[accumulators.fields] with best_bid = "f64"'
        )
    for field_name, type_name in fields.items():
        if type_name not in FIELD_TYPES:
            raise ConfigError(
                f"{source}: {where}.fields.{field_name}: invalid type "
                f"{type_name!r}; use one of {', '.join(FIELD_TYPES)}"
            )

    only_for = {"flush_interval": "batch", "max_buffer_size": "batch"}
    only_for["capacity"] = "state"
    for key, owner in only_for.items():
        if key in table and kind != owner:
            raise ConfigError(
                f'{source}: {where}.{key}: applies only to kind = "{owner}"; '
                "remove it or change the kind"
            )
    flush_interval_s = _duration_s(
        table.get("flush_interval", DEFAULT_FLUSH_INTERVAL_S),
        f"{where}.flush_interval",
        source,
    )
    max_buffer_size = table.get("max_buffer_size")
    if max_buffer_size is not None and (
        not _is_int(max_buffer_size) or max_buffer_size < 1
    ):
        raise ConfigError(
            f"{source}: {where}.max_buffer_size: invalid value "
            f"{max_buffer_size!r}; use an integer >= 1"
        )
    if kind == "batch" and flush_interval_s == 0 and max_buffer_size is None:
        raise ConfigError(
            f"{source}: {where}: a batch accumulator with flush_interval = 0 "
            "never flushes; set max_buffer_size or a flush_interval > 0"
        )
    capacity = table.get("capacity", 0)
    if not _is_int(capacity):
        raise ConfigError(
            f"{source}: {where}.capacity: invalid value {capacity!r}; use an "
            "integer (< 0 unbounded, 0 emits nothing)"
        )
    return AccumulatorConfig(
        name=name,
        tenant=tenant,
        fields=dict(fields),
        kind=kind,
        flush_interval_s=flush_interval_s,
        max_buffer_size=max_buffer_size,
        capacity=capacity,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration_s(value: Any, where: str, source: str) -> float:
    """Parse ``"500ms"``, ``"2s"`` or a number of seconds into seconds >= 0."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("ms"):
                seconds = float(text[:-2]) / 1000
            elif text.endswith("s"):
                seconds = float(text[:-1])
        except ValueError:
            seconds = None
    if seconds is None or seconds < 0 or seconds != seconds:
        raise ConfigError(
            f"{source}: {where}: invalid duration {value!r}; "
            'use "500ms", "2s" or a number of seconds >= 0'
        )
    return seconds


def _parse_graph(table: Mapping[str, Any], where: str, source: str) -> GraphConfig:
    allowed = {
        "name",
        "reactor",
        "tenant",
        "reaction_mode",
        "accumulators",
        "computation",
        "execution_time_ms",
        "execution_time",
        "input_strategy",
    }
    _reject_unknown_keys(table, allowed, where, source)
    # Packaged Cloacina reactors always run with the latest-value strategy.
    _choice(table, "input_strategy", ("latest",), where, source)
    name = _string(table, "name", where, source)
    reactor = _string(table, "reactor", where, source, default=f"{name}_rx")
    tenant = _string(table, "tenant", where, source, default=DEFAULT_TENANT)
    mode = _choice(table, "reaction_mode", REACTION_MODES, where, source)
    computation = table.get("computation", COMPUTATIONS[0])
    if not isinstance(computation, str) or computation not in COMPUTATIONS_BY_NAME:
        raise ConfigError(
            f"{source}: {where}.computation: invalid value {computation!r}; use "
            '"price_signal", "passthrough", "fail" or "fail:F" with F from 0 to 1'
        )

    accumulators = table.get("accumulators")
    if (
        not isinstance(accumulators, list)
        or not accumulators
        or not all(isinstance(a, str) and a for a in accumulators)
    ):
        raise ConfigError(
            f"{source}: {where}.accumulators: must be a non-empty list of "
            'accumulator names, such as ["orderbook"]'
        )
    if len(set(accumulators)) != len(accumulators):
        raise ConfigError(
            f"{source}: {where}.accumulators: lists a name twice; list each once"
        )

    execution_time_ms = table.get("execution_time_ms", 0)
    if (
        isinstance(execution_time_ms, bool)
        or not isinstance(execution_time_ms, int | float)
        or execution_time_ms < 0
    ):
        raise ConfigError(
            f"{source}: {where}.execution_time_ms: invalid value "
            f"{execution_time_ms!r}; use a number of milliseconds >= 0"
        )

    execution_time = None
    if "execution_time" in table:
        if "execution_time_ms" in table:
            raise ConfigError(
                f"{source}: {where}: sets both execution_time_ms and "
                "execution_time; keep one of them"
            )
        execution_time = _parse_execution_time(
            table["execution_time"], f"{where}.execution_time", source
        )

    return GraphConfig(
        name=name,
        reactor=reactor,
        tenant=tenant,
        reaction_mode=mode,
        accumulators=tuple(accumulators),
        computation=computation,
        execution_time_ms=float(execution_time_ms),
        execution_time=execution_time,
    )


def _parse_execution_time(value: Any, where: str, source: str) -> ExecutionTimeConfig:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = {"distribution": "fixed", "fixed_ms": value}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}: {where}: must be a number of milliseconds or a table "
            'such as {distribution = "lognormal", median_ms = 5, p99_ms = 40}'
        )
    distribution = _choice(value, "distribution", DISTRIBUTIONS, where, source)
    needed = {
        "fixed": ("fixed_ms",),
        "lognormal": ("median_ms", "p99_ms"),
        "uniform": ("min_ms", "max_ms"),
    }[distribution]
    _reject_unknown_keys(value, {"distribution", "seed", *needed}, where, source)
    numbers = {}
    for key in needed:
        number = value.get(key)
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or number < 0
        ):
            raise ConfigError(
                f"{source}: {where}.{key}: missing or invalid value {number!r}; "
                "use a number of milliseconds >= 0"
            )
        numbers[key] = float(number)
    if distribution == "lognormal" and not (
        0 < numbers["median_ms"] <= numbers["p99_ms"]
    ):
        raise ConfigError(f"{source}: {where}: lognormal needs 0 < median_ms <= p99_ms")
    if distribution == "uniform" and numbers["min_ms"] > numbers["max_ms"]:
        raise ConfigError(f"{source}: {where}: uniform needs min_ms <= max_ms")
    seed = value.get("seed", 0)
    if not _is_int(seed):
        raise ConfigError(f"{source}: {where}.seed: must be an integer")
    return ExecutionTimeConfig(distribution=distribution, seed=seed, **numbers)


def _parse_key(table: Mapping[str, Any], where: str, source: str) -> KeyConfig:
    _reject_unknown_keys(table, {"key", "name", "tenant", "admin"}, where, source)
    key = _string(table, "key", where, source)
    name = _string(table, "name", where, source, default=where)
    admin = table.get("admin", False)
    if not isinstance(admin, bool):
        raise ConfigError(f"{source}: {where}.admin: must be true or false")
    tenant = table.get("tenant")
    if admin and tenant is not None:
        raise ConfigError(
            f"{source}: {where}: sets both admin and tenant; "
            "an admin key reaches every tenant, so remove one of them"
        )
    if not admin:
        tenant = _string(table, "tenant", where, source)
    return KeyConfig(key=key, name=name, tenant=tenant, admin=admin)


def _check_references(config: ServerConfig) -> None:
    source = config.source
    accumulators: dict[tuple[str, str], AccumulatorConfig] = {}
    by_name: dict[str, AccumulatorConfig] = {}
    for index, accumulator in enumerate(config.accumulators):
        scoped = (accumulator.tenant, accumulator.name)
        if scoped in accumulators:
            raise ConfigError(
                f"{source}: accumulators[{index}].name: duplicate name "
                f"{accumulator.name!r} in tenant {accumulator.tenant!r}; give "
                "each accumulator of a tenant a unique name"
            )
        accumulators[scoped] = accumulator
        by_name.setdefault(accumulator.name, accumulator)

    endpoint_names: set[tuple[str, str]] = set()
    for index, graph in enumerate(config.graphs):
        where = f"graphs[{index}]"
        for key, name in (("name", graph.name), ("reactor", graph.reactor)):
            if (graph.tenant, name) in endpoint_names:
                raise ConfigError(
                    f"{source}: {where}.{key}: name {name!r} is already used by "
                    f"another graph or reactor of tenant {graph.tenant!r}; "
                    "choose a unique name"
                )
        endpoint_names.update(
            ((graph.tenant, graph.name), (graph.tenant, graph.reactor))
        )
        own = {
            name: accumulators[(graph.tenant, name)]
            for name in graph.accumulators
            if (graph.tenant, name) in accumulators
        }
        for name in graph.accumulators:
            _check_graph_accumulator(
                graph, own.get(name) or by_name.get(name), name, where, source
            )
        if graph.computation == "price_signal":
            _check_price_signal_inputs(graph, own, where, source)

    seen_keys: set[str] = set()
    for index, key in enumerate(config.keys):
        if key.key in seen_keys:
            raise ConfigError(
                f"{source}: keys[{index}].key: duplicate key; give each key a "
                "unique value"
            )
        seen_keys.add(key.key)


def _check_graph_accumulator(
    graph: GraphConfig,
    accumulator: AccumulatorConfig | None,
    name: str,
    where: str,
    source: str,
) -> None:
    if accumulator is None:
        raise ConfigError(
            f"{source}: {where}.accumulators: accumulator {name!r} is not declared; "
            f'add an [[accumulators]] table with name = "{name}"'
        )
    if accumulator.tenant != graph.tenant:
        raise ConfigError(
            f"{source}: {where}.accumulators: accumulator {name!r} belongs to "
            f"tenant {accumulator.tenant!r} but the graph to {graph.tenant!r}; "
            "put both in the same tenant"
        )


def _check_price_signal_inputs(
    graph: GraphConfig,
    accumulators: Mapping[str, AccumulatorConfig],
    where: str,
    source: str,
) -> None:
    for name in graph.accumulators:
        fields = accumulators[name].fields
        if fields.get("best_bid") == "f64" and fields.get("best_ask") == "f64":
            return
    raise ConfigError(
        f"{source}: {where}.computation: price_signal needs an accumulator with "
        'f64 fields best_bid and best_ask; add them or set computation = "passthrough"'
    )


def _reject_unknown_keys(
    table: Mapping[str, Any], allowed: set[str], where: str, source: str
) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: {where}.{unknown[0]}: unknown key; "
            f"use one of {', '.join(sorted(allowed))}"
        )


def _string(
    table: Mapping[str, Any],
    key: str,
    where: str,
    source: str,
    default: str | None = None,
) -> str:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f'{source}: {where}.{key}: missing; add {key} = "..."')
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{source}: {where}.{key}: must be a non-empty string, got {value!r}"
        )
    return value


def _choice(
    table: Mapping[str, Any],
    key: str,
    choices: tuple[str, ...],
    where: str,
    source: str,
) -> str:
    value = table.get(key, choices[0])
    if value not in choices:
        options = " or ".join(f'"{choice}"' for choice in choices)
        raise ConfigError(
            f"{source}: {where}.{key}: invalid value {value!r}; use {options}"
        )
    return value
