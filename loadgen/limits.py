"""The open-file limit, which caps how many connections one process can hold."""

from __future__ import annotations

import logging
import resource

__all__ = ["ensure_open_files"]

logger = logging.getLogger(__name__)

SPARE_FILES = 256
"""Descriptors kept for the probe, HTTP clients, logs and Python itself."""


def ensure_open_files(connections: int) -> int:
    """Raise the soft open-file limit to fit ``connections``; return the limit.

    The soft limit is raised up to the hard limit, which needs no privilege.
    When even the hard limit is too low, a warning says how to raise it.
    """
    needed = connections + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            logger.warning("could not raise the open-file limit: %s", error)
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning(
            "the open-file limit is %d, below the %d that %d connections need: "
            "raise it with ulimit -n %d (or the hard limit in "
            "/etc/security/limits.conf) before starting",
            soft,
            needed,
            connections,
            needed,
        )
    return soft
