"""Tiny hooks. After-commit ones for code outside the domain (metrics), so welfare imports
neither prometheus nor the API: a listener must be quick and must not raise; one that does is
logged and skipped. In-transaction ones between the folders under welfare/ (see below).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from sqlmodel import Session

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


# In-transaction hooks: a folder announces that a record changed, and the folders that follow
# it (the lookup index follows residents and households) do their part in the same transaction,
# so the announcer need not import them. Unlike the after-commit listeners above, a listener
# that raises fails the change. The lookup registers its listeners when `welfare.lookup` is
# imported: the app's routes, welfare/erasure.py (so the consent flows and the demo),
# welfare/seed.py and welfare/models.py (so the tests and Alembic) import it. A change with no
# listener raises: a program that forgot the import would leave the index silently stale.
RecordChanged = Callable[[Session, uuid.UUID], None]
_resident_changed: list[RecordChanged] = []
_household_changed: list[RecordChanged] = []


def on_resident_changed(listener: RecordChanged) -> None:
    if listener not in _resident_changed:
        _resident_changed.append(listener)


def resident_changed(session: Session, resident_id: uuid.UUID) -> None:
    """A resident's record or consents changed (a write, not yet committed)."""
    if not _resident_changed:
        raise RuntimeError("nothing follows residents' changes (import welfare.lookup)")
    for listener in list(_resident_changed):
        listener(session, resident_id)


def on_household_changed(listener: RecordChanged) -> None:
    if listener not in _household_changed:
        _household_changed.append(listener)


def household_changed(session: Session, household_id: uuid.UUID) -> None:
    """A household's building or unit changed (a write, not yet committed)."""
    if not _household_changed:
        raise RuntimeError("nothing follows households' changes (import welfare.lookup)")
    for listener in list(_household_changed):
        listener(session, household_id)


class _Incident(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


class IncidentEventWriter(Protocol):
    def __call__(self, session: Session, incident: Any, type_: str, /, **detail: Any) -> object: ...


_incident_event: list[IncidentEventWriter] = []


def on_incident_event(writer: IncidentEventWriter) -> None:
    """The incidents register their one timeline writer (welfare/incidents/__init__.py)."""
    if writer not in _incident_event:
        _incident_event.append(writer)


def incident_event(session: Session, incident: _Incident, type_: str, **detail: Any) -> None:
    """An event on an incident's timeline, from a folder below the incidents (the outbox queue).
    Registered when `welfare.incidents` is imported, which any incident object implies."""
    if not _incident_event:
        raise RuntimeError("no incident timeline writer registered (import welfare.incidents)")
    for writer in list(_incident_event):
        writer(session, incident, type_, **detail)
