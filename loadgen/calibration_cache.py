"""The last ``loadgen calibrate`` result, kept for later runs on this machine."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["save_calibration", "load_generator_max"]


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "loadgen" / "calibration.json"


def save_calibration(result: dict) -> Path:
    """Store the generator's and the server's rates with the machine's name."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
        "generator_rate_per_s": result["generator"]["rate_per_s"],
        "server_rate_per_s": result["server"]["rate_per_s"],
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def load_generator_max() -> float | None:
    """Return the calibrated generator maximum of this machine, or None."""
    try:
        record = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("machine") != platform.node():
        return None
    rate = record.get("generator_rate_per_s")
    return float(rate) if isinstance(rate, int | float) and rate > 0 else None
