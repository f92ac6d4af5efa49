"""Routes per destination and fail-over: a +86 number goes through the providers its route
names, in order; a provider that fails it for good, or reports it undelivered, hands it once to
the next; never twice through one provider."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications import routes
from notifications.channels import Accepted, ChannelError, ChannelRegistry, Outgoing
from notifications.dispatcher import Dispatcher
from notifications.status import record_status
from tests.conftest import SYSTEM
from welfare.channels import ChannelKind
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import IncidentCreate
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.route_table import parse_routes
from welfare.settings import Settings

MAINLAND = "+8613800138000"
HONG_KONG = "+85291234567"


class Provider:
    """A provider stand-in: records what it was handed, fails when told to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Outgoing] = []
        self.failures: list[ChannelError] = []
        self.lock = threading.Lock()

    def send(self, outgoing: Outgoing) -> Accepted:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(outgoing)
        return Accepted(provider_id=f"{self.name}-{uuid.uuid4().hex[:12]}", status="queued")

    def rate_key(self, kind: ChannelKind) -> str:
        return f"{kind.value}:{self.name}"


@pytest.fixture
def routed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setitem(routes.SWITCHED_ON, "aliyun", lambda _settings: True)
    monkeypatch.setitem(routes.SWITCHED_ON, "twilio", lambda _settings: True)
    return settings.model_copy(update={"routes": "+86=aliyun,twilio"})


@pytest.fixture
def providers() -> Iterator[tuple[Provider, Provider]]:
    yield Provider("twilio"), Provider("aliyun")


@pytest.fixture
def dispatcher(
    writers: sessionmaker[Session], routed: Settings, providers: tuple[Provider, Provider]
) -> Dispatcher:
    twilio, aliyun = providers
    registry = ChannelRegistry()
    for kind in (ChannelKind.sms, ChannelKind.voice):
        registry.register(kind, twilio)  # the default: first registered
    registry.register(ChannelKind.sms, aliyun)
    return Dispatcher(writers, registry, routed)


@pytest.fixture
def report(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Callable[[str], uuid.UUID]:
    def report(phone: str) -> uuid.UUID:
        resident = make_resident()
        make_consent(resident)
        make_contact(resident, phone=phone, channels=["sms"])
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
        )
        db.commit()
        return opened.incident.id

    return report


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _rows(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    """Read in a fresh transaction, handed back detached: touching them later opens no old
    snapshot that would hide the rows written after."""
    db.rollback()
    rows = list(
        db.exec(
            select(OutboxMessage)
            .where(OutboxMessage.incident_id == incident_id)
            .order_by(col(OutboxMessage.created_at))
        ).all()
    )
    for row in rows:
        db.expunge(row)
    db.rollback()
    return rows


def test_the_route_table_is_read_longest_prefix_first_and_refused_in_words() -> None:
    table = parse_routes("+85=twilio; +852=aliyun,twilio")
    assert table == [("+852", ("aliyun", "twilio")), ("+85", ("twilio",))]
    for wrong, words in [
        ("86=aliyun", "start with a calling code"),
        ("+86=", "name its providers"),
        ("+86=aliyun,aliyun", "named twice"),
        ("+86=aliyun;+86=twilio", "given twice"),
    ]:
        with pytest.raises(pydantic.ValidationError, match=words):
            Settings(routes=wrong, _env_file=None)  # type: ignore[call-arg]


def test_a_route_naming_an_unknown_provider_stops_the_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown provider 'smsbox'"):
        routes.check(settings.model_copy(update={"routes": "+86=smsbox"}))


def test_a_mainland_number_goes_through_its_routes_first_provider_and_others_the_default(
    dispatcher: Dispatcher,
    providers: tuple[Provider, Provider],
    report: Callable[[str], uuid.UUID],
    db: Session,
) -> None:
    twilio, aliyun = providers
    mainland, hong_kong = report(MAINLAND), report(HONG_KONG)
    dispatcher.run_once()
    assert [o.to for o in aliyun.sent] == [MAINLAND]
    assert [o.to for o in twilio.sent] == [HONG_KONG]
    assert [r.provider for r in _rows(db, mainland)] == ["aliyun"]
    assert [r.provider for r in _rows(db, hong_kong)] == ["twilio"]


def test_a_provider_failing_a_message_for_good_hands_it_once_to_the_next(
    dispatcher: Dispatcher,
    providers: tuple[Provider, Provider],
    report: Callable[[str], uuid.UUID],
    db: Session,
) -> None:
    twilio, aliyun = providers
    aliyun.failures.append(ChannelError("the number is not valid", code="X1", permanent=True))
    twilio.failures.append(ChannelError("the number is not valid", code="21211", permanent=True))
    incident_id = report(MAINLAND)
    dispatcher.run_once()
    dispatcher.run_once()
    dispatcher.run_once()
    rows = _rows(db, incident_id)
    assert [(r.provider, r.status) for r in rows] == [
        ("aliyun", OutboxStatus.failed),
        ("twilio", OutboxStatus.failed),
    ]
    events = [e for e in timeline.events_of(db, incident_id) if e.type == "failover"]
    assert [(e.detail["from_provider"], e.detail["to_provider"]) for e in events] == [
        ("aliyun", "twilio")
    ]
    # Both providers had it once; the step failed only when the last provider failed too.
    types = [(e.type, e.detail.get("step")) for e in timeline.events_of(db, incident_id)]
    assert types.index(("failover", 0)) < types.index(("step_failed", 0))
    assert types.count(("step_failed", 0)) == 1


def test_the_message_arrives_through_the_second_provider_once_and_the_step_holds(
    dispatcher: Dispatcher,
    providers: tuple[Provider, Provider],
    report: Callable[[str], uuid.UUID],
    db: Session,
) -> None:
    twilio, aliyun = providers
    aliyun.failures.append(ChannelError("refused", code="isv.X", permanent=True))
    incident_id = report(MAINLAND)
    failovers = _metric("welfare_failovers_total", from_provider="aliyun", to_provider="twilio")
    taken = _metric(
        "welfare_provider_sends_total", provider="twilio", channel="sms", outcome="accepted"
    )
    for _ in range(3):
        dispatcher.run_once()
    assert _metric("welfare_failovers_total", from_provider="aliyun", to_provider="twilio") == (
        failovers + 1
    )
    assert (
        _metric(
            "welfare_provider_sends_total", provider="twilio", channel="sms", outcome="accepted"
        )
        == taken + 1
    )
    assert [o.to for o in twilio.sent] == [MAINLAND] and aliyun.sent == []
    assert [(r.provider, r.status) for r in _rows(db, incident_id)] == [
        ("aliyun", OutboxStatus.failed),
        ("twilio", OutboxStatus.sent),
    ]
    assert "step_failed" not in [e.type for e in timeline.events_of(db, incident_id)]


def test_transient_errors_are_retried_on_the_same_provider_before_any_fail_over(
    dispatcher: Dispatcher,
    providers: tuple[Provider, Provider],
    report: Callable[[str], uuid.UUID],
    db: Session,
    writers: sessionmaker[Session],
) -> None:
    twilio, aliyun = providers
    aliyun.failures.append(ChannelError("busy", code="Throttling"))
    incident_id = report(MAINLAND)
    dispatcher.run_once()
    (row,) = _rows(db, incident_id)
    assert (row.provider, row.status) == ("aliyun", OutboxStatus.pending)
    with writers() as session:  # the retry falls due
        session.get(OutboxMessage, row.id).next_attempt_at = row.created_at  # type: ignore[union-attr]
        session.commit()
    dispatcher.run_once()
    assert [o.to for o in aliyun.sent] == [MAINLAND] and twilio.sent == []


def test_an_undelivered_report_fails_over_once_however_often_it_comes(
    dispatcher: Dispatcher,
    providers: tuple[Provider, Provider],
    report: Callable[[str], uuid.UUID],
    db: Session,
    writers: sessionmaker[Session],
    routed: Settings,
) -> None:
    twilio, aliyun = providers
    incident_id = report(MAINLAND)
    dispatcher.run_once()
    (row,) = _rows(db, incident_id)
    for _ in range(2):
        with writers() as session:
            record_status(
                session,
                message_id=str(row.id),
                sid=row.provider_id,
                status="undelivered",
                error_code="30005",
                error_reason="the number is unknown",
                settings=routed,
            )
            session.commit()
    dispatcher.run_once()
    dispatcher.run_once()
    assert [o.to for o in twilio.sent] == [MAINLAND] and len(aliyun.sent) == 1
    assert [r.provider for r in _rows(db, incident_id)] == ["aliyun", "twilio"]
