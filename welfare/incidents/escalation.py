"""The escalation engine's pure core: what is due now, from the snapshot, the events and the time.

A policy is a few numbers (the brief's default: SMS and call contact 1 at once, the next contact
every 2 minutes without confirmation, the duty manager after the list or at 10 minutes, then the
list once more). When an incident opens, the policy is expanded against the resident's contacts
into a concrete list of timed steps and stored on the incident: later edits to the policy or the
contact order never change a running response.

A step that could not reach anyone (every send failed for good, or was skipped: quiet hours, opted
out, no consent to be contacted) pulls the next step forward to the moment it failed, so the
response never waits two minutes on a dead number. So does a contact's call that ended without a
key (voicemail, no answer, busy, hung up) when the policy's `advance_on_miss` is on (the default):
the webhook records a `call_missed` event that moves on, and the engine reads it as the step's
failure. An SMS delivered on the same step is no answer, so it does not hold the next step back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class StepKind(StrEnum):
    contact = "contact"
    duty_manager = "duty_manager"


@dataclass(frozen=True)
class Policy:
    contact_interval_seconds: int = 120
    manager_after_seconds: int = 600
    channels: tuple[str, ...] = ("sms", "voice")
    repeat_list: int = 1
    # Urgent steps ignore contacts' quiet hours (an injured resident, say).
    urgent: bool = False
    # A contact's call that ends without a key starts the next contact's step at once.
    advance_on_miss: bool = True

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Policy:
        if not data:
            return cls()
        return cls(
            contact_interval_seconds=int(data.get("contact_interval_seconds", 120)),
            manager_after_seconds=int(data.get("manager_after_seconds", 600)),
            channels=tuple(data.get("channels", ("sms", "voice"))),
            repeat_list=int(data.get("repeat_list", 1)),
            urgent=bool(data.get("urgent", False)),
            advance_on_miss=bool(data.get("advance_on_miss", True)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "contact_interval_seconds": self.contact_interval_seconds,
            "manager_after_seconds": self.manager_after_seconds,
            "channels": list(self.channels),
            "repeat_list": self.repeat_list,
            "urgent": self.urgent,
            "advance_on_miss": self.advance_on_miss,
        }


@dataclass(frozen=True)
class Step:
    index: int
    offset_seconds: int
    kind: StepKind
    contact_id: str | None = None
    channels: tuple[str, ...] = ()
    urgent: bool = False
    round: int = 1  # 1 = first pass down the list, 2 = the repeat

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "offset_seconds": self.offset_seconds,
            "kind": self.kind.value,
            "contact_id": self.contact_id,
            "channels": list(self.channels),
            "urgent": self.urgent,
            "round": self.round,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        return cls(
            index=int(data["index"]),
            offset_seconds=int(data["offset_seconds"]),
            kind=StepKind(data["kind"]),
            contact_id=data.get("contact_id"),
            channels=tuple(data.get("channels", ())),
            urgent=bool(data.get("urgent", False)),
            round=int(data.get("round", 1)),
        )


def plan(policy: Policy, contact_ids: list[str]) -> list[Step]:
    """Expand a policy over the contacts (in priority order) into timed steps.

    Default with two contacts: contact 1 at 0 s, contact 2 at 120 s, the duty manager at 240 s
    (the end of the list, or 600 s if the list is longer) together with the repeat: contact 1
    again at 240 s and contact 2 at 360 s.
    """
    interval = policy.contact_interval_seconds
    manager_at = min(len(contact_ids) * interval, policy.manager_after_seconds)
    steps: list[Step] = []

    def add(offset: int, kind: StepKind, contact_id: str | None, round_: int) -> None:
        channels = policy.channels if kind is StepKind.contact else ("sms", "voice")
        steps.append(Step(len(steps), offset, kind, contact_id, channels, policy.urgent, round_))

    first_pass = [c for i, c in enumerate(contact_ids) if i * interval < manager_at]
    for i, contact_id in enumerate(first_pass):
        add(i * interval, StepKind.contact, contact_id, 1)
    add(manager_at, StepKind.duty_manager, None, 1)
    # Whoever the first pass did not reach by the manager alert, then the list again.
    tail = [(c, 1) for c in contact_ids[len(first_pass) :]]
    tail += [(c, 2 + r) for r in range(policy.repeat_list) for c in contact_ids]
    for j, (contact_id, round_) in enumerate(tail):
        add(manager_at + j * interval, StepKind.contact, contact_id, round_)
    return steps


@dataclass
class EngineState:
    """What has happened so far, read from the incident's timeline events."""

    started: dict[int, dt.datetime] = field(default_factory=dict)  # step index -> when
    failed: dict[int, dt.datetime] = field(default_factory=dict)  # reached no one, when known
    stopped: bool = False  # confirmed, resolved or cancelled


def due_time(
    steps: list[Step], index: int, opened_at: dt.datetime, state: EngineState
) -> dt.datetime:
    """When step `index` falls due: its offset, or earlier if the step before it failed."""
    step = steps[index]
    scheduled = opened_at + dt.timedelta(seconds=step.offset_seconds)
    if index > 0 and (index - 1) in state.failed:
        return min(scheduled, state.failed[index - 1])
    return scheduled


def due_steps(
    steps: list[Step], opened_at: dt.datetime, state: EngineState, now: dt.datetime
) -> list[Step]:
    """Steps to start now: due, not yet started, and nobody has confirmed."""
    if state.stopped:
        return []
    return [
        step
        for step in steps
        if step.index not in state.started and due_time(steps, step.index, opened_at, state) <= now
    ]


def next_due_at(
    steps: list[Step], opened_at: dt.datetime, state: EngineState
) -> dt.datetime | None:
    """When the next not-yet-started step falls due (for the scheduler's wake-up)."""
    if state.stopped:
        return None
    pending = [
        due_time(steps, s.index, opened_at, state) for s in steps if s.index not in state.started
    ]
    return min(pending) if pending else None


def contact_declined(
    steps: list[Step], state: EngineState, contact_id: str, at: dt.datetime
) -> None:
    """A contact said they cannot come, at `at`: their latest step started by then counts as
    failed from then (or from its earlier failure), so the step after it falls due at once.
    Nothing when none of their steps had started (the answer is then about nothing running)."""
    theirs = [
        step.index
        for step in steps
        if step.contact_id == contact_id
        and step.index in state.started
        and state.started[step.index] <= at
    ]
    if not theirs:
        return
    latest = max(theirs, key=lambda index: (state.started[index], index))
    state.failed[latest] = min(state.failed.get(latest, at), at)
