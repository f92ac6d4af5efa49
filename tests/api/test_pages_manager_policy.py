"""The manager's escalation-policy page (/manage/policy): the policy in words, saving it through
the audited service, field messages on bad input, who may see it, and a saved policy honoured by
the next incident."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare.audit.models import AuditEntry
from welfare.incidents import policies
from welfare.incidents import service as incidents
from welfare.incidents.models import EscalationPolicy, IncidentCreate
from welfare.incidents.policies import PolicyBody
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User

HTML = {"accept": "text/html"}
PagesLogin = Callable[..., str]


def _form(csrf: str, site: Site, **overrides: Any) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "site_id": str(site.id),
        "contact_interval_seconds": "90",
        "manager_after_seconds": "300",
        "repeat_list": "2",
        "channels": ["sms", "voice"],
        "advance_on_miss": "true",
    } | overrides


def _site_policy(db: Session, site: Site) -> EscalationPolicy | None:
    db.expire_all()
    return db.exec(
        select(EscalationPolicy).where(
            EscalationPolicy.site_id == site.id,
            EscalationPolicy.resident_id.is_(None),  # type: ignore[union-attr]
        )
    ).first()


def test_a_manager_sees_the_default_policy_in_words_with_the_advance_on_miss_choice(
    client: TestClient, site: Site, make_user: Callable[..., User], page_login: PagesLogin
) -> None:
    page_login(make_user("manager", [site]))
    page = client.get("/manage/policy", headers=HTML)
    assert page.status_code == 200
    assert "Each contact gets 2 min to confirm" in page.text
    assert "after 10 min at the latest" in page.text
    assert "This site uses the standard policy" in page.text
    assert (
        "Move to the next contact at once when a call goes to voicemail or is not answered"
        in page.text
    )
    assert 'name="advance_on_miss" value="true" checked' in page.text  # on by default
    assert 'href="/manage/policy" aria-current="page"' in page.text  # the nav link


def test_a_manager_saves_the_policy_and_it_is_audited_and_shown(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    manager = make_user("manager", [site])
    csrf = page_login(manager)
    saved = client.post(
        "/manage/policy", data=_form(csrf, site, channels=["sms"]), follow_redirects=False
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/manage/policy?site_id={site.id}&saved=1"
    row = _site_policy(db, site)
    assert row is not None
    assert row.settings == {
        "contact_interval_seconds": 90,
        "manager_after_seconds": 300,
        "channels": ["sms"],
        "repeat_list": 2,
        "urgent": False,
        "advance_on_miss": True,
    }
    audit = db.exec(
        select(AuditEntry).where(
            AuditEntry.action == "policy.set", AuditEntry.entity_id == str(row.id)
        )
    ).one()
    assert audit.actor_id == manager.id
    page = client.get(saved.headers["location"], headers=HTML)
    assert "Policy saved." in page.text
    assert "Each contact gets 1 min 30 s to confirm" in page.text
    assert "The list is gone through: Three times." in page.text
    assert 'value="voice" checked' not in page.text and 'value="sms" checked' in page.text


def test_advance_on_miss_turned_off_is_saved_and_the_next_incident_snapshots_it(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_contact: Callable[..., Any],
    make_consent: Callable[..., Any],
    page_login: PagesLogin,
) -> None:
    csrf = page_login(make_user("manager", [site]))
    form = _form(csrf, site)
    del form["advance_on_miss"]  # an unticked box is not sent
    assert client.post("/manage/policy", data=form, follow_redirects=False).status_code == 303
    row = _site_policy(db, site)
    assert row is not None and row.settings["advance_on_miss"] is False
    page = client.get("/manage/policy", headers=HTML)
    assert 'name="advance_on_miss" value="true">' in page.text  # shown unticked
    assert "waits the full time before the next contact" in page.text

    resident = make_resident()
    make_consent(resident)
    make_contact(resident)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    policy = opened.incident.escalation["policy"]
    assert policy["advance_on_miss"] is False
    assert policy["contact_interval_seconds"] == 90


def test_bad_values_are_re_rendered_with_messages_saying_how_to_fix_them(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    csrf = page_login(make_user("manager", [site]))
    bad = client.post(
        "/manage/policy",
        data=_form(
            csrf,
            site,
            contact_interval_seconds="5",
            manager_after_seconds="ten",
            repeat_list="9",
            channels=[],
        ),
        headers=HTML,
    )
    assert bad.status_code == 422
    assert "Nothing was saved" in bad.text
    assert "between 30 and 3600 (2 minutes is 120)" in bad.text
    assert "between 0 and 86400 (10 minutes is 600)" in bad.text
    assert "Choose how many times to go through the list" in bad.text
    assert "Choose SMS, a call, or both." in bad.text
    assert 'name="contact_interval_seconds" min="30" max="3600" value="5"' in bad.text
    assert 'value="ten"' in bad.text  # what was typed stays
    assert _site_policy(db, site) is None  # nothing saved
    odd_channel = client.post(
        "/manage/policy", data=_form(csrf, site, channels=["fax"]), headers=HTML
    )
    assert odd_channel.status_code == 422 and "Choose SMS, a call, or both." in odd_channel.text


def test_saving_without_the_csrf_token_is_refused(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    csrf = page_login(make_user("manager", [site]))
    missing = _form(csrf, site)
    del missing["csrf_token"]
    assert client.post("/manage/policy", data=missing, headers=HTML).status_code == 403
    wrong = _form("x" * 20, site)
    assert client.post("/manage/policy", data=wrong, headers=HTML).status_code == 403
    assert _site_policy(db, site) is None


def test_guards_and_staff_are_refused_and_signed_out_visitors_sent_to_sign_in(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    signed_out = client.get("/manage/policy", headers=HTML, follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/login?next=/manage/policy")
    for role in ("guard", "staff"):
        csrf = page_login(make_user(role, [site]))
        assert client.get("/manage/policy", headers=HTML).status_code == 403, role
        posted = client.post("/manage/policy", data=_form(csrf, site), headers=HTML)
        assert posted.status_code == 403, role
    assert "/manage/policy" not in client.get("/manage/visits", headers=HTML).text  # no nav link
    assert _site_policy(db, site) is None


def test_a_manager_of_another_site_can_neither_see_nor_change_this_sites_policy(
    client: TestClient,
    db: Session,
    site: Site,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    other = make_site(name="Other Court")
    csrf = page_login(make_user("manager", [other]))
    shown = client.get(f"/manage/policy?site_id={site.id}", headers=HTML)
    assert shown.status_code == 404
    posted = client.post("/manage/policy", data=_form(csrf, site), headers=HTML)
    assert posted.status_code == 404
    assert _site_policy(db, site) is None


def test_residents_with_their_own_policy_are_listed_with_links(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    page_login: PagesLogin,
) -> None:
    page_login(make_user("manager", [site]))
    assert "None: every resident of this site follows" in client.get("/manage/policy").text
    resident = make_resident(preferred_name="Mrs. Lee")
    policies.set_policy(
        session=db,
        actor=SYSTEM,
        body=PolicyBody(contact_interval_seconds=45),
        resident_id=resident.id,
    )
    db.commit()
    page = client.get("/manage/policy", headers=HTML)
    assert (
        f'href="/console/residents/{resident.id}">Mrs. Lee</a>: wait 45 s per contact' in page.text
    )
    assert f"/api/v1/residents/{resident.id}/escalation-policy" in page.text


def test_the_page_speaks_chinese_to_a_chinese_reading_manager(
    client: TestClient, site: Site, make_user: Callable[..., User], page_login: PagesLogin
) -> None:
    page_login(make_user("manager", [site], language="zh-CN"))
    page = client.get("/manage/policy", headers=HTML)
    assert page.status_code == 200
    assert "升级规则" in page.text
    assert "Move to the next contact at once" not in page.text
