"""Incidents. Their timeline writer is registered for the folders below them that add events
(the outbox queue's "queued"): see welfare/hooks.py `incident_event`."""

from welfare import hooks
from welfare.incidents import timeline

hooks.on_incident_event(timeline.record)
