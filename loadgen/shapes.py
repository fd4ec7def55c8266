"""Load shapes: the target rate over time as a list of linear stages.

A stage lasts ``duration_s`` and moves the rate linearly from ``start_rate`` to
``end_rate`` events per second; a constant stage has both equal. Constant,
step, ramp and spike loads are all lists of stages, written on the command line
as ``DURATION@RATE`` or ``DURATION@FROM..TO`` separated by commas::

    30s@1000                      constant
    10s@100,10s@200,10s@400       steps
    30s@100..2000                 ramp
    10s@200,2s@5000,10s@200       spike

or in a JSON or TOML file with a ``stages`` list of
``{duration_s, rate}`` or ``{duration_s, start_rate, end_rate}`` tables.

The cumulative event count ``N(t)`` is the integral of the rate, and event ``k``
is due when ``N(t)`` reaches ``k``, so the schedule is exact for any shape.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import UsageProblem

__all__ = ["Stage", "LoadShape", "parse_shape", "load_shape_file"]

MAX_RATE_PER_S = 100_000_000
MAX_STAGE_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Stage:
    """A span of ``duration_s`` seconds whose rate moves linearly between two values."""

    duration_s: float
    start_rate: float
    end_rate: float

    def events(self, elapsed_s: float) -> float:
        """Return the events due ``elapsed_s`` seconds into the stage."""
        t = min(max(elapsed_s, 0.0), self.duration_s)
        slope = (self.end_rate - self.start_rate) / self.duration_s
        return self.start_rate * t + slope * t * t / 2

    def time_of(self, events: float) -> float:
        """Return the seconds into the stage when ``events`` fall due."""
        slope = (self.end_rate - self.start_rate) / self.duration_s
        if abs(slope) < 1e-12:
            return events / self.start_rate if self.start_rate else math.inf
        # Solve slope/2 t^2 + start_rate t - events = 0 for the root in range.
        discriminant = self.start_rate**2 + 2 * slope * events
        if discriminant < 0:
            return math.inf
        return (math.sqrt(discriminant) - self.start_rate) / slope


class LoadShape:
    """Target rate over time, built from stages that run one after another."""

    def __init__(self, stages: list[Stage]) -> None:
        if not stages:
            raise UsageProblem("a load shape needs at least one stage")
        self.stages = stages
        self._starts_s = []
        self._events_before = []
        elapsed, events = 0.0, 0.0
        for stage in stages:
            self._starts_s.append(elapsed)
            self._events_before.append(events)
            elapsed += stage.duration_s
            events += stage.events(stage.duration_s)
        self.duration_s = elapsed
        self.total_events = events

    @classmethod
    def constant(cls, rate_per_s: float, duration_s: float) -> LoadShape:
        return cls([Stage(duration_s, rate_per_s, rate_per_s)])

    def scaled(self, factor: float) -> LoadShape:
        """Return the same shape with every rate multiplied by ``factor``."""
        return LoadShape(
            [
                Stage(s.duration_s, s.start_rate * factor, s.end_rate * factor)
                for s in self.stages
            ]
        )

    def rate_at(self, t_s: float) -> float:
        index = self._stage_index(t_s)
        stage = self.stages[index]
        fraction = (t_s - self._starts_s[index]) / stage.duration_s
        fraction = min(max(fraction, 0.0), 1.0)
        return stage.start_rate + (stage.end_rate - stage.start_rate) * fraction

    def events_by(self, t_s: float) -> float:
        """Return the events due from the start up to ``t_s`` seconds."""
        if t_s >= self.duration_s:
            return self.total_events
        index = self._stage_index(t_s)
        stage = self.stages[index]
        return self._events_before[index] + stage.events(t_s - self._starts_s[index])

    def time_of(self, event_index: int) -> float:
        """Return the intended send time of event ``event_index`` (0 is the first).

        Event k is due when ``events_by`` reaches k, so event 0 is due at time 0.
        Returns ``inf`` for events beyond the end of the shape.
        """
        if event_index >= self.total_events:
            return math.inf
        for index in range(len(self.stages) - 1, -1, -1):
            if self._events_before[index] <= event_index:
                stage = self.stages[index]
                remainder = event_index - self._events_before[index]
                return self._starts_s[index] + stage.time_of(remainder)
        return 0.0

    def spec(self) -> str:
        """Return the shape in the ``DURATION@FROM..TO`` form that parses back."""
        return ",".join(
            f"{s.duration_s!r}s@{s.start_rate!r}..{s.end_rate!r}" for s in self.stages
        )

    def describe(self) -> list[dict]:
        return [
            {
                "duration_s": s.duration_s,
                "start_rate": s.start_rate,
                "end_rate": s.end_rate,
            }
            for s in self.stages
        ]

    def _stage_index(self, t_s: float) -> int:
        for index in range(len(self.stages) - 1, -1, -1):
            if t_s >= self._starts_s[index]:
                return index
        return 0


_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
_STAGE = re.compile(
    rf"^\s*(?P<duration>{_NUMBER})\s*(?P<unit>ms|s|m|h)?\s*@\s*"
    rf"(?P<start>{_NUMBER})(\s*\.\.\s*(?P<end>{_NUMBER}))?\s*$"
)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_shape(spec: str) -> LoadShape:
    """Parse ``DURATION@RATE[..RATE],...`` into a load shape.

    Raises:
        UsageProblem: a stage is malformed, or a duration or rate is out of range.
    """
    stages = []
    for text in spec.split(","):
        match = _STAGE.match(text)
        if not match:
            raise UsageProblem(
                f"invalid stage {text.strip()!r} in load shape {spec!r}: write "
                "DURATION@RATE or DURATION@FROM..TO, e.g. 30s@1000 or 10s@100..2000"
            )
        duration_s = _number(match["duration"], text) * _UNIT_S[match["unit"]]
        start = _number(match["start"], text)
        end = start if match["end"] is None else _number(match["end"], text)
        stages.append(_checked_stage(duration_s, start, end, text.strip()))
    return LoadShape(stages)


def load_shape_file(path: str | Path) -> LoadShape:
    """Read a load shape from a JSON or TOML file with a ``stages`` list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageProblem(
            f"cannot read load shape file {path}: {error.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise UsageProblem(
            f"load shape file {path} is not UTF-8 text: use a JSON or TOML file"
        ) from None
    try:
        document = (
            tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        )
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise UsageProblem(f"invalid load shape file {path}: {error}") from None
    stages = document.get("stages") if isinstance(document, dict) else None
    if not isinstance(stages, list) or not stages:
        raise UsageProblem(
            f"load shape file {path} needs a non-empty 'stages' list of "
            "{duration_s, rate} or {duration_s, start_rate, end_rate}"
        )
    return LoadShape([_stage_from_table(path, n, t) for n, t in enumerate(stages, 1)])


def _stage_from_table(path: Path, number: int, table) -> Stage:
    where = f"stage {number} of {path}"
    if not isinstance(table, dict) or "duration_s" not in table:
        raise UsageProblem(f"{where} needs duration_s and rate")
    if any(isinstance(value, bool) for value in table.values()):
        raise UsageProblem(f"{where} needs numbers, not true or false")
    try:
        duration_s = float(table["duration_s"])
        if "rate" in table:
            start = end = float(table["rate"])
        else:
            start, end = float(table["start_rate"]), float(table["end_rate"])
    except (KeyError, TypeError, ValueError):
        raise UsageProblem(
            f"{where} needs numbers for duration_s and rate (or start_rate and "
            "end_rate)"
        ) from None
    return _checked_stage(duration_s, start, end, where)


def _checked_stage(duration_s: float, start: float, end: float, where: str) -> Stage:
    if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_STAGE_S):
        raise UsageProblem(
            f"invalid duration in {where}: use seconds above 0 and at most "
            f"{MAX_STAGE_S:,} (7 days)"
        )
    for rate in (start, end):
        if not (math.isfinite(rate) and 0 <= rate <= MAX_RATE_PER_S):
            raise UsageProblem(
                f"invalid rate {rate:g} in {where}: use 0 to {MAX_RATE_PER_S:,} "
                "events per second"
            )
    if start == 0 and end == 0:
        return Stage(duration_s, 0.0, 0.0)
    return Stage(duration_s, start, end)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageProblem(
            f"invalid number {text!r} in stage {where.strip()!r}"
        ) from None
