"""Tiny after-commit hooks for code outside the domain (metrics), so welfare imports neither
prometheus nor the API. A listener must be quick and must not raise; one that does is logged
and skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("welfare.hooks")

# (incident kind, seconds from opening to confirmation)
ConfirmedListener = Callable[[str, float], None]
_confirmed: list[ConfirmedListener] = []


def on_incident_confirmed(listener: ConfirmedListener) -> None:
    if listener not in _confirmed:
        _confirmed.append(listener)


def incident_confirmed(kind: str, seconds: float) -> None:
    for listener in list(_confirmed):
        try:
            listener(kind, seconds)
        except Exception:
            log.exception("incident-confirmed listener failed")
