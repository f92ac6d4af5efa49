"""The timeline and the audit read in words in every UI language (issue 16, item 14).

The event types and audit actions are read from the code that writes them (every call of the
timeline's and the audit's writers), so a new one without a label fails here.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from api.pages.console.audit import ACTION_LABELS
from api.pages.console.words import ACTOR_LABELS, EVENT_LABELS, REASON_LABELS
from api.pages.i18n import translations_for
from notifications.status import STATUS_EVENTS
from tests.conftest import SYSTEM
from welfare.audit.models import AuditEntry
from welfare.audit.service import record as audit_record
from welfare.authz import Role
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import IncidentCreate, IncidentKind, IncidentStatus
from welfare.outbox import reach
from welfare.outbox.service import ERASED_NUMBER
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import UI_LANGUAGES, User

ROOT = Path(__file__).resolve().parents[2]
AUDIT_WRITERS = {"audit_record", "audit_record_many", "audit_resident", "_audit"}
# Writers that pass on an action or event type they were given (checked at their callers), and
# the webhook whose event type comes from STATUS_EVENTS (added below).
PASS_THROUGH = {
    ("welfare/audit/service.py", "action"),
    ("welfare/incidents/service.py", "action"),
    ("welfare/incidents/photos.py", "action"),
    ("welfare/residents/service.py", "action"),
    ("notifications/twilio/webhooks.py", "event"),
    ("notifications/status.py", "event"),
    # `outbox.enqueue` writes the event its callers name (read from their `event=` below).
    ("welfare/outbox/queue.py", "event"),
    ("notifications/routes.py", "event"),  # `_again` writes its callers' (read above)
    # The demo's history dates events the services write elsewhere; it adds no type of its own.
    ("welfare/demo_history.py", "event"),
}
HTML = {"accept": "text/html"}


def _strings(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body), _strings(node.orelse)
        return body + orelse if body is not None and orelse is not None else None
    return None


def written_codes() -> tuple[set[str], set[str]]:
    """(audit actions, timeline event types) that the code of welfare/, api/ and notifications/
    can write."""
    actions: set[str] = set()
    events: set[str] = set(STATUS_EVENTS.values())
    unknown: list[str] = []
    for package in ("welfare", "api", "notifications"):
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = getattr(getattr(func, "value", None), "id", None)
                is_audit = name in AUDIT_WRITERS or (
                    name in ("record", "record_many") and owner != "timeline"
                )
                if is_audit:
                    for keyword in node.keywords:
                        if keyword.arg == "action":
                            found = _strings(keyword.value)
                            if found is None and (where, "action") not in PASS_THROUGH:
                                unknown.append(f"{where}:{node.lineno}")
                            actions.update(found or [])
                    if name in ("audit_resident", "_audit"):
                        for arg in node.args:
                            found = _strings(arg)
                            if found and all("." in code for code in found):
                                actions.update(found)
                if owner == "timeline" and name == "record":
                    found = _strings(node.args[2]) if len(node.args) > 2 else None
                    if found is None and (where, "event") not in PASS_THROUGH:
                        unknown.append(f"{where}:{node.lineno}")
                    events.update(found or [])
                if name in ("enqueue", "_again"):  # outbox.enqueue, and routes' copies
                    events.add("queued")
                    for keyword in node.keywords:
                        if keyword.arg == "event":
                            found = _strings(keyword.value)
                            if found is None and (where, "event") not in PASS_THROUGH:
                                unknown.append(f"{where}:{node.lineno}")
                            events.update(found or [])
                if owner == "timeline" and name == "record_many":
                    for part in ast.walk(node.args[1]):
                        if isinstance(part, ast.Tuple) and len(part.elts) == 3:
                            found = _strings(part.elts[1])
                            if found is None:
                                unknown.append(f"{where}:{node.lineno}")
                            events.update(found or [])
    assert unknown == [], f"an action or event type the test cannot read: {unknown}"
    return actions, events


def test_the_scan_finds_what_the_code_writes() -> None:
    actions, events = written_codes()
    # Guards against a scan that silently finds nothing and so checks nothing.
    assert {"resident.read", "alert.read", "lookup.search", "audit.read", "report.export"} <= (
        actions
    )
    assert {"reported", "queued", "public_report", "visit_concern", "delivered"} <= events
    assert len(actions) > 50 and len(events) > 30


def test_every_audit_action_and_event_type_has_a_label() -> None:
    actions, events = written_codes()
    assert sorted(actions - set(ACTION_LABELS)) == []
    assert sorted(events - set(EVENT_LABELS)) == []
    assert {r.value for r in Role} | {"system", "provider", "contact", "public"} <= set(
        ACTOR_LABELS
    )


@pytest.mark.parametrize("language", [lang for lang in UI_LANGUAGES if lang != "en"])
def test_every_label_is_translated(language: str) -> None:
    catalogue = translations_for(language)
    if catalogue.gettext("Incidents") == "Incidents":  # the console's catalogue is not there yet
        pytest.skip(f"no console catalogue for {language} yet")
    labels = [*ACTION_LABELS.values(), *EVENT_LABELS.values(), *ACTOR_LABELS.values()]
    assert sorted(t for t in labels if catalogue.gettext(t) == t) == []


# --- the pages ----------------------------------------------------------------------------------


@pytest.fixture
def park(make_resident: Callable[..., Resident], make_consent: Callable[..., Any]) -> Resident:
    resident = make_resident(full_name="Park Soon-ja", preferred_name="Mrs. Park")
    make_consent(resident)
    return resident


def test_the_console_incident_page_shows_every_event_in_words(
    client: TestClient,
    db: Session,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=park.id, client_request_id=uuid.uuid4().hex),
    )
    _actions, events = written_codes()
    for event_type in sorted(events):
        timeline.record(db, opened.incident, event_type, label="public")
    # The codes events carry in words too: a visit's outcome, an incident's.
    timeline.record(db, opened.incident, "visit_concern", outcome="no_answer", kind="phone_checkin")
    timeline.record(db, opened.incident, "resolved", outcome="returned_home")
    db.commit()
    for language in UI_LANGUAGES:
        page_login(make_user("staff", [site], language=language))
        page = client.get(f"/console/incidents/{opened.incident.id}")
        assert page.status_code == 200
        for event_type in events:
            assert f"<td>{event_type}</td>" not in page.text, (language, event_type)
        for code in ("no_answer", "returned_home"):
            assert f"<td>{code}</td>" not in page.text, (language, code)
        if translations_for(language).gettext("Incidents") != "Incidents":  # has a console
            assert "<td>public</td>" not in page.text, language


def test_the_access_audit_shows_every_action_in_words(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    actions, _events = written_codes()
    guard = make_user("guard", [site])
    actor = SYSTEM.__class__(user_id=guard.id, role=Role.guard, site_ids=frozenset({site.id}))
    for action in sorted(actions):
        audit_record(db, actor=actor, action=action, entity="test", site_id=site.id)
    db.commit()
    for language in UI_LANGUAGES:
        page_login(make_user("manager", [site], language=language))
        shown = ""
        for offset in range(0, len(actions) + 60, 50):
            shown += client.get("/console/audit", params={"offset": offset}).text
        for action in actions:
            assert f"<td>{action}</td>" not in shown, (language, action)
        assert "(guard)" not in shown or language == "en"


def test_a_missing_alert_is_labelled_as_sent_to_the_guard_not_the_duty_manager(
    client: TestClient,
    db: Session,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    login: Callable[..., dict[str, str]],
) -> None:
    guard = make_user("guard", [site], phone="9345 1609", display_name="Chan Siu Ming")
    row = db.get(User, guard.id)
    assert row is not None
    row.on_duty_since = utcnow()
    db.add(row)
    db.commit()
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing, resident_id=park.id, client_request_id=uuid.uuid4().hex
        ),
    )
    db.commit()
    incident_id = opened.incident.id
    page_login(make_user("staff", [site]))
    page = client.get(f"/console/incidents/{incident_id}")
    assert "guard on duty: Chan Siu Ming" in page.text
    assert "duty manager" not in page.text
    # The guard's live page: the alert's messages are the guards', not the duty manager's.
    body = client.get(f"/api/v1/incidents/{incident_id}", headers=login(guard)).json()
    assert [n["recipient"] for n in body["notifications"]] == ["guard"]
    page_login(guard)
    live = client.get(f"/guard/incidents/{incident_id}")
    assert live.status_code == 200 and "data-guards-alert" in live.text
    assert "Missing alert to the guards on duty" in live.text


def test_opening_the_resident_page_does_not_print_the_label(
    client: TestClient,
    db: Session,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    park_id = park.id  # read once: a lazy reload would open a snapshot older than the requests
    tags.issue_tag(session=db, actor=SYSTEM, resident_id=park_id)
    db.commit()
    staff = make_user("staff", [site])
    staff_id = staff.id
    page_login(staff)

    def printed() -> int:
        rows = db.exec(
            select(AuditEntry.id).where(
                AuditEntry.actor_id == staff_id, col(AuditEntry.action) == "tag.label"
            )
        ).all()
        db.rollback()
        return len(rows)

    page = client.get(f"/console/residents/{park_id}")
    assert page.status_code == 200
    assert 'class="qr-preview" src="data:image/svg+xml;base64,' in page.text
    assert f'src="/api/v1/residents/{park_id}/tag.png"' not in page.text
    assert printed() == 0
    # Downloading the label is printing it.
    assert f'href="/api/v1/residents/{park_id}/tag.png"' in page.text
    label = client.get(f"/api/v1/residents/{park_id}/tag.png")
    assert label.status_code == 200 and label.headers["content-type"] == "image/png"
    assert printed() == 1


def written_reasons() -> set[str]:
    """The fixed reasons the services put on events (`reason=`, `reasons=[...]`, and the
    reasons a step collects); a provider's error text is not among them."""
    # The outbox's "incident <status>" when a message is held back: the incident stopped.
    stopped = set(IncidentStatus) - {IncidentStatus.open, IncidentStatus.notifying}
    found: set[str] = {f"incident {status.value}" for status in stopped}
    found.add(ERASED_NUMBER)
    # The contact rule's words that a step records when it skips a contact or a channel.
    found.update({reach.NO_CONSENT, reach.OPTED_OUT, reach.LANDLINE, reach.QUIET_HOURS})
    for package in ("welfare", "notifications"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg in ("reason", "reasons"):
                        values = (
                            keyword.value.elts
                            if isinstance(keyword.value, ast.List)
                            else [keyword.value]
                        )
                        found.update(s for v in values for s in (_strings(v) or []))
                func = node.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr == "append"
                    and getattr(func.value, "id", None) in ("skipped", "reasons")
                ):
                    found.update(s for arg in node.args for s in (_strings(arg) or []))
    return found


def test_the_fixed_reasons_on_events_read_in_words() -> None:
    reasons = written_reasons()
    assert {"quiet hours", "consent withdrawn", "every message failed"} <= reasons
    # Only those a timeline shows: a contact's opt-out reasons and the like.
    shown = reasons - {"no welfare-visits consent"}
    assert sorted(shown - set(REASON_LABELS)) == []
    chinese = translations_for("zh-CN")
    assert sorted(t for t in REASON_LABELS.values() if chinese.gettext(t) == t) == []
