"""Registry pages of the console: residents, contacts, consents and withdrawal, photos, tags,
households and the label sheet."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from PIL import Image
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare.audit.models import AuditEntry
from welfare.consent.models import Consent
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.tags import service as tags
from welfare.tags.models import ResidentTag
from welfare.users.models import User

HTML = {"accept": "text/html"}


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def _settle(db: Session) -> None:
    """End the test session's read transaction without expiring what it holds: objects are
    detached first, so reading their ids later opens no new snapshot across client calls."""
    db.expunge_all()
    db.rollback()


def _fresh(db: Session, model: Any, key: Any) -> Any:
    """Read one row as it is now, detached, with no read transaction left open."""
    _settle(db)
    row = db.get(model, key)
    _settle(db)
    return row


# --- residents list and page ----------------------------------------------------------------------


def test_residents_search_by_unit_and_the_list_carries_no_health_data(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    wang = make_resident(household=make_household(building="1", unit="1609"))
    make_consent(wang)
    make_resident(household=make_household(building="2", unit="0801"), full_name="Park Mi-ja")
    page_login(make_user("staff", [site]))
    page = client.get("/console/residents?q=1-1609")
    assert page.status_code == 200
    assert "Wang Jianguo" in page.text and "Park Mi-ja" not in page.text
    assert "Consent active" in page.text
    assert "Alzheimer" not in page.text
    everyone = client.get("/console/residents")
    assert "Park Mi-ja" in everyone.text and "No consent" in everyone.text
    too_long = client.get("/console/residents?q=" + "x" * 201, headers=HTML)
    assert too_long.status_code == 422


def test_resident_page_shows_the_record_and_audits_the_read(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    make_contact: Callable[..., Contact],
) -> None:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident)
    staff = make_user("staff", [site])
    page_login(staff)
    page = client.get(f"/console/residents/{resident.id}")
    assert page.status_code == 200
    assert "Alzheimer" in page.text and "Wang Lei" in page.text and "+852 9123 4567" in page.text
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.actor_id == staff.id)).all()
    _settle(db)
    assert {"resident.read", "contact.list", "consent.list"} <= set(actions)


def test_staff_of_another_site_get_not_found_for_this_sites_resident(
    client: TestClient,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    consent = make_consent(resident)
    other = make_site(name="Other Court")
    csrf = page_login(make_user("staff", [other]))
    base = f"/console/residents/{resident.id}"
    for path in (base, f"{base}/consents/{consent.id}/withdraw"):
        assert client.get(path, headers=HTML).status_code == 404, path
    for path, data in [
        (f"{base}/consents/{consent.id}/withdraw", {"confirm": "true"}),
        (f"{base}/tag", {}),
        (f"{base}/contacts", {"name": "X", "relationship": "son", "phone": "9123 4567"}),
    ]:
        response = client.post(path, data={"csrf_token": csrf, **data}, headers=HTML)
        assert response.status_code == 404, path
    assert client.get(f"/console/labels?site_id={site.id}", headers=HTML).status_code == 404
    assert "Wang Jianguo" not in client.get("/console/residents").text


def test_register_a_resident_keeps_the_input_on_errors_and_catches_duplicates(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_household: Callable[..., Household],
) -> None:
    household = make_household(building="1", unit="1609")
    csrf = page_login(make_user("staff", [site]))
    assert client.get("/console/residents/new").status_code == 200
    form = {
        "csrf_token": csrf,
        "household_id": str(household.id),
        "full_name": "",
        "preferred_name": "Mr. Wang",
        "approach": "Talk about his grandson.",
    }
    response = client.post("/console/residents", data=form)
    assert response.status_code == 422
    assert "Full name" in response.text and "Talk about his grandson.</textarea>" in response.text
    response = client.post(
        "/console/residents", data={**form, "full_name": "Wang Jianguo"}, follow_redirects=False
    )
    assert response.status_code == 303
    again = client.post("/console/residents", data={**form, "full_name": "wang  jianguo"})
    assert again.status_code == 409
    assert "already registered at this household" in again.text
    assert 'value="wang  jianguo"' in again.text and 'name="allow_duplicate"' in again.text
    languages = client.post(
        "/console/residents", data={**form, "full_name": "Other", "languages": "not a tag!"}
    )
    assert languages.status_code == 422


# --- contacts -------------------------------------------------------------------------------------


def test_adding_a_contact_with_a_bad_phone_shows_why_and_keeps_what_was_typed(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    make_consent(resident)
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/contacts"
    form = {
        "csrf_token": csrf,
        "name": "Wang Lei",
        "relationship": "son",
        "phone": "12",
        "language": "zh-CN",
        "sms": "true",
        "voice": "true",
        "consent_to_contact": "true",
    }
    response = client.post(url, data=form)
    assert response.status_code == 422
    assert "Not a valid phone number for this site&#39;s region." in response.text
    assert 'value="Wang Lei"' in response.text and 'value="12"' in response.text
    no_channel = client.post(url, data={**form, "phone": "9123 4567", "sms": "", "voice": ""})
    assert no_channel.status_code == 422
    response = client.post(url, data={**form, "phone": "9123 4567"}, follow_redirects=False)
    assert response.status_code == 303
    contacts = db.exec(select(Contact).where(Contact.resident_id == resident.id)).all()
    _settle(db)
    assert [(c.phone, c.channels, c.priority) for c in contacts] == [
        ("+85291234567", ["sms", "voice"], 1)
    ]


def test_editing_and_removing_a_contact(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    make_contact: Callable[..., Contact],
) -> None:
    resident = make_resident()
    make_consent(resident)
    son = make_contact(resident)
    daughter = make_contact(resident, name="Wang Fang", relationship="daughter", phone="9876 5432")
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/contacts/{daughter.id}"
    page = client.get(url)
    assert page.status_code == 200 and 'value="Wang Fang"' in page.text
    form = {
        "csrf_token": csrf,
        "name": "Wang Fang",
        "relationship": "daughter",
        "phone": "98765432",
        "language": "en",
        "sms": "true",
        "consent_to_contact": "true",
        "priority": "1",
        "quiet_start": "22:00",
        "quiet_end": "",
    }
    bad = client.post(url, data=form)
    assert bad.status_code == 422
    assert "Quiet hours need a start and a different end, e.g. 22:00 to 07:00." in bad.text
    ok = client.post(url, data={**form, "quiet_end": "07:00"}, follow_redirects=False)
    assert ok.status_code == 303
    updated = _fresh(db, Contact, daughter.id)
    assert updated.priority == 1 and updated.channels == ["sms"] and updated.language == "en"
    assert _fresh(db, Contact, son.id).priority == 2
    removed = client.post(f"{url}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert removed.status_code == 303
    assert _fresh(db, Contact, daughter.id) is None
    assert _fresh(db, Contact, son.id).priority == 1


# --- consents and withdrawal ----------------------------------------------------------------------


def test_recording_a_consent_needs_a_scope_and_keeps_what_was_typed(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
) -> None:
    resident = make_resident()
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/consents"
    form = {
        "csrf_token": csrf,
        "given_by_kind": "guardian",
        "given_by_name": "Wang Lei",
        "given_by_relationship": "son",
        "method": "written",
    }
    response = client.post(url, data=form)
    assert response.status_code == 422
    assert (
        "Tick at least one thing the consent covers." in response.text
        and 'value="Wang Lei"' in response.text
    )
    future = client.post(url, data={**form, "scopes": ["registry"], "given_on": "2999-01-01"})
    assert future.status_code == 422
    response = client.post(
        url,
        data={**form, "scopes": ["registry", "lost_person_response"]},
        follow_redirects=False,
    )
    assert response.status_code == 303
    consents = db.exec(select(Consent).where(Consent.resident_id == resident.id)).all()
    _settle(db)
    assert [sorted(c.scopes) for c in consents] == [["lost_person_response", "registry"]]


def test_withdrawal_asks_for_confirmation_explaining_the_erasure_then_erases(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    make_contact: Callable[..., Contact],
) -> None:
    resident = make_resident()
    consent = make_consent(resident)
    make_contact(resident)
    tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    db.commit()
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/consents/{consent.id}/withdraw"
    page = client.get(url)
    assert page.status_code == 200
    assert "This erases the resident's personal data" in page.text
    assert "All 1 emergency contacts" in page.text
    assert "The tag: printed labels stop working." in page.text
    unconfirmed = client.post(url, data={"csrf_token": csrf, "reason": "moved away"})
    assert unconfirmed.status_code == 422 and 'value="moved away"' in unconfirmed.text
    assert _fresh(db, Resident, resident.id).erased_at is None
    done = client.post(url, data={"csrf_token": csrf, "confirm": "true", "reason": "moved away"})
    assert done.status_code == 200 and "Erased record" in done.text
    assert "Personal data erased" in done.text and "Wang Jianguo" not in done.text
    erased = _fresh(db, Resident, resident.id)
    assert erased.erased_at is not None and erased.full_name is None
    assert db.exec(select(Contact).where(Contact.resident_id == resident.id)).all() == []
    _settle(db)
    again = client.post(url, data={"csrf_token": csrf, "confirm": "true"})
    assert again.status_code == 409


def test_withdrawing_only_the_photo_consent_says_the_photo_goes_and_nothing_else(
    client: TestClient,
    db: Session,
    settings: Any,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    from welfare.residents import service as residents

    resident = make_resident()
    make_consent(resident, scopes=["registry", "lost_person_response"])
    photo_consent = make_consent(resident, scopes=["photo"])
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/consents/{photo_consent.id}/withdraw"
    page = client.get(url)
    assert "This deletes the photo" in page.text
    assert "This erases the resident" not in page.text
    client.post(url, data={"csrf_token": csrf, "confirm": "true"})
    kept = _fresh(db, Resident, resident.id)
    assert kept.erased_at is None and kept.photo_file is None and kept.full_name == "Wang Jianguo"


# --- photo ----------------------------------------------------------------------------------------


def test_photo_upload_checks_type_and_consent_then_remove(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/photo"
    jpeg = {"photo": ("me.jpg", _jpeg(), "image/jpeg")}
    no_consent = client.post(url, data={"csrf_token": csrf}, files=jpeg)
    assert no_consent.status_code == 409 and "covers the photo" in no_consent.text
    make_consent(resident)
    text_file = {"photo": ("me.jpg", b"not an image at all", "image/jpeg")}
    assert client.post(url, data={"csrf_token": csrf}, files=text_file).status_code == 415
    empty = {"photo": ("me.jpg", b"", "image/jpeg")}
    assert client.post(url, data={"csrf_token": csrf}, files=empty).status_code == 422
    forged = client.post(url, data={"csrf_token": "x"}, files=jpeg, headers=HTML)
    assert forged.status_code == 403
    ok = client.post(url, data={"csrf_token": csrf}, files=jpeg, follow_redirects=False)
    assert ok.status_code == 303
    assert _fresh(db, Resident, resident.id).photo_file is not None
    page = client.get(f"/console/residents/{resident.id}")
    assert f'src="/api/v1/residents/{resident.id}/photo"' in page.text
    removed = client.post(f"{url}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert removed.status_code == 303
    assert _fresh(db, Resident, resident.id).photo_file is None


# --- tags and labels ------------------------------------------------------------------------------


def test_issue_reissue_and_revoke_a_tag(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident.id}/tag"
    refused = client.post(url, data={"csrf_token": csrf})
    assert refused.status_code == 409 and "lost-person consent" in refused.text
    make_consent(resident)
    assert client.post(url, data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    first = tags.live_tag(db, resident.id)
    assert first is not None
    first_code = first.code
    _settle(db)
    page = client.get(f"/console/residents/{resident.id}")
    assert first_code[-6:] in page.text and f"/t/{first_code}" in page.text
    second_post = client.post(url, data={"csrf_token": csrf}, follow_redirects=False)
    assert second_post.status_code == 303
    codes = db.exec(
        select(ResidentTag.code, ResidentTag.revoked_at).where(
            ResidentTag.resident_id == resident.id
        )
    ).all()
    _settle(db)
    assert sorted((code == first_code, revoked is None) for code, revoked in codes) == [
        (False, True),
        (True, False),
    ]
    revoke = client.post(f"{url}/revoke", data={"csrf_token": csrf}, follow_redirects=False)
    assert revoke.status_code == 303
    assert tags.live_tag(db, resident.id) is None
    _settle(db)
    assert client.post(f"{url}/revoke", data={"csrf_token": csrf}).status_code == 409


def test_label_sheet_has_one_label_per_tagged_consented_resident_and_no_names(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    tagged = make_resident(household=make_household(building="1", unit="1609"))
    make_consent(tagged)
    untagged = make_resident(full_name="Park Mi-ja", preferred_name="Mrs. Park")
    make_consent(untagged)
    no_lost_person = make_resident(full_name="Li Na", preferred_name="Ms. Li")
    make_consent(no_lost_person)
    for resident in (tagged, no_lost_person):
        tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    db.commit()
    # Li Na's lost-person consent is replaced by one without that scope: no label.
    from welfare import consents

    only = db.exec(select(Consent).where(Consent.resident_id == no_lost_person.id)).one()
    make_consent(no_lost_person, scopes=["registry"])
    consents.withdraw_consent(
        session=db,
        actor=SYSTEM,
        settings=None,  # type: ignore[arg-type]
        resident_id=no_lost_person.id,
        consent_id=only.id,
    )
    db.commit()
    code = tags.live_tag(db, tagged.id)
    assert code is not None
    tag_code = code.code
    _settle(db)
    staff = make_user("staff", [site])
    page_login(staff)
    sheet = client.get(f"/console/labels?site_id={site.id}")
    assert sheet.status_code == 200
    assert sheet.text.count('<figure class="label">') == 1
    assert f"/t/{tag_code}" in sheet.text and tag_code[-6:] in sheet.text
    assert f'<p class="code">{tag_code}</p>' in sheet.text  # the code to type, printed large
    assert "data:image/svg+xml;base64," in sheet.text
    for personal in ("Wang", "Park", "Li Na", "1-1609", "1609"):
        body = sheet.text.split('<div class="labels">', 1)[1]
        assert personal not in body, personal
    assert "call +852 2345 6789" in sheet.text
    labels = db.exec(
        select(AuditEntry).where(AuditEntry.actor_id == staff.id, AuditEntry.action == "tag.label")
    ).all()
    _settle(db)
    assert [a.resident_id for a in labels] == [tagged.id]
    # One site: the sheet opens on it without asking.
    assert client.get("/console/labels").text.count('<figure class="label">') == 1
    assert client.get("/console/labels?site_id=nonsense", headers=HTML).status_code == 404


# --- households -----------------------------------------------------------------------------------


def test_households_list_create_and_errors_keep_the_input(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_household: Callable[..., Household],
) -> None:
    make_household(building="1", unit="1609")
    csrf = page_login(make_user("staff", [site]))
    page = client.get("/console/households?q=1609")
    assert page.status_code == 200 and "1-1609" in page.text
    form = {"csrf_token": csrf, "site_id": str(site.id), "building": "1", "unit": "1609"}
    duplicate = client.post("/console/households", data=form)
    assert duplicate.status_code == 409
    assert "already exist" in duplicate.text and 'value="1609"' in duplicate.text
    bad_phone = client.post("/console/households", data={**form, "unit": "1610", "landline": "12"})
    assert bad_phone.status_code == 422 and 'value="1610"' in bad_phone.text
    ok = client.post(
        "/console/households",
        data={**form, "unit": "1610", "landline": "2345 6701"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    created = db.exec(select(Household).where(Household.unit == "1610")).one()
    _settle(db)
    assert created.landline == "+85223456701"
    no_site = client.post("/console/households", data={**form, "site_id": "", "unit": "1611"})
    assert no_site.status_code == 422


def test_pages_show_in_simplified_chinese(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    consent = make_consent(resident)
    page_login(make_user("staff", [site], language="zh-CN"))
    page = client.get(f"/console/residents/{resident.id}")
    assert "紧急联系人" in page.text and "按拨打顺序" in page.text and "同意有效" in page.text
    confirm = client.get(f"/console/residents/{resident.id}/consents/{consent.id}/withdraw")
    assert "这将清除居民的个人资料" in confirm.text
    assert re.search(r"<html lang=\"zh-CN\">", page.text)


def test_editing_details_keeps_what_was_typed_on_errors_and_saves(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
) -> None:
    resident = make_resident(aliases=["Lao Wang"])
    resident_id = resident.id
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/residents/{resident_id}/edit"
    page = client.get(url)
    assert page.status_code == 200 and 'value="Lao Wang"' in page.text
    form = {
        "csrf_token": csrf,
        "full_name": "Wang Jianguo",
        "preferred_name": "Grandpa Wang",
        "languages": "zh-CN, en",
        "birth_year": "nineteen forty",
        "approach": "Talk about his grandson and the 1970s.",
        "sex": "male",
        "risk_level": "high",
    }
    bad = client.post(url, data=form)
    assert bad.status_code == 422
    assert 'value="nineteen forty"' in bad.text and "the 1970s.</textarea>" in bad.text
    assert client.post(url, data={**form, "csrf_token": "forged"}, headers=HTML).status_code == 403
    ok = client.post(url, data={**form, "birth_year": "1940"}, follow_redirects=False)
    assert ok.status_code == 303
    saved = _fresh(db, Resident, resident_id)
    assert saved.preferred_name == "Grandpa Wang" and saved.birth_year == 1940
    assert saved.languages == ["zh-CN", "en"] and saved.risk_level.value == "high"
    assert saved.aliases == []  # the field was sent empty: cleared
    guard_csrf = page_login(make_user("guard", [site]))
    refused = client.post(url, data={**form, "csrf_token": guard_csrf}, headers=HTML)
    assert refused.status_code == 403


# --- phone numbers in the forms -------------------------------------------------------------------

LETTERS_IN_PHONE = (
    "Letters are not allowed in a phone number, not even for an extension. Type only the digits,"
    " e.g. +852 5123 4567."
)


def test_letters_in_a_contact_or_household_phone_are_a_field_error_never_keypad_digits(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    make_consent(resident)
    csrf = page_login(make_user("staff", [site]))
    contact = {
        "csrf_token": csrf,
        "name": "Wang Lei",
        "relationship": "son",
        "phone": "9123 4567",
        "language": "zh-CN",
        "sms": "true",
        "consent_to_contact": "true",
    }
    url = f"/console/residents/{resident.id}/contacts"
    for field in ("phone", "secondary_phone"):
        response = client.post(url, data={**contact, field: "+852 9abc 1234"})
        assert response.status_code == 422, field
        assert '<span class="field-error"' in response.text
        assert LETTERS_IN_PHONE in response.text
        assert 'value="+852 9abc 1234"' in response.text
    household = {"csrf_token": csrf, "site_id": str(site.id), "building": "1", "unit": "1610"}
    response = client.post("/console/households", data={**household, "landline": "2345 67B9"})
    assert response.status_code == 422 and LETTERS_IN_PHONE in response.text
    assert db.exec(select(Contact)).all() == []
    assert db.exec(select(Household).where(Household.unit == "1610")).all() == []
    _settle(db)


# --- safe defaults --------------------------------------------------------------------------------


def _selected_language(page: str) -> list[str]:
    form = page[page.index('id="contact-form"') :]
    form = form[: form.index("</form>")]
    return re.findall(r'<option value="([^"]+)" lang="[^"]+" selected>', form)


def test_a_new_contacts_language_is_the_residents_first_language_and_consent_is_not_ticked(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    korean = make_resident(languages=["ko", "en"], full_name="Park Mi-ja")
    english = make_resident(languages=["en-GB", "zh-CN"], full_name="Jane Smith")
    chinese = make_resident(languages=["zh-HK"], full_name="Chan Tai Man")
    unknown = make_resident(languages=[], full_name="No Languages")
    for resident in (korean, english, chinese, unknown):
        make_consent(resident)
    page_login(make_user("staff", [site]))
    for resident, expected in (
        (korean, "ko-KR"),
        (english, "en"),
        (chinese, "zh-CN"),
        (unknown, "en"),
    ):
        page = client.get(f"/console/residents/{resident.id}").text
        assert _selected_language(page) == [expected], resident.full_name
        form = page[page.index('id="contact-form"') :]
        consent_box = re.search(r'<input type="checkbox" name="consent_to_contact"[^>]*>', form)
        assert consent_box is not None and "checked" not in consent_box.group(0)


def test_a_contact_saved_without_the_consent_box_ticked_has_not_agreed(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident()
    make_consent(resident)
    csrf = page_login(make_user("staff", [site]))
    form = {"csrf_token": csrf, "name": "Wang Lei", "relationship": "son", "phone": "9123 4567"}
    form |= {"language": "zh-CN", "sms": "true"}
    response = client.post(
        f"/console/residents/{resident.id}/contacts", data=form, follow_redirects=False
    )
    assert response.status_code == 303
    [contact] = db.exec(select(Contact).where(Contact.resident_id == resident.id)).all()
    _settle(db)
    assert contact.consent_to_contact is False


def test_a_typed_unit_that_is_not_a_household_offers_to_create_it_then_does_both(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_household: Callable[..., Household],
) -> None:
    existing = make_household(building="1", unit="1609")
    existing_id = existing.id
    staff = make_user("staff", [site])
    csrf = page_login(staff)
    form = {"csrf_token": csrf, "full_name": "Wang Jianguo", "building": "1", "unit": "1610"}
    form |= {"approach": "Talk about his grandson."}
    offered = client.post("/console/residents", data=form)
    assert offered.status_code == 422
    assert "There is no household 1-1610 at this site yet." in offered.text
    assert 'name="create_household" value="1-1610"' in offered.text
    assert "Create household 1-1610 and add the resident" in offered.text
    assert "Talk about his grandson.</textarea>" in offered.text and 'value="1610"' in offered.text
    assert db.exec(select(Household).where(Household.unit == "1610")).all() == []
    assert db.exec(select(Resident)).all() == []
    _settle(db)
    # The offer is for exactly that unit: a different one typed afterwards is offered anew.
    changed = client.post("/console/residents", data={**form, "create_household": "1-1611"})
    assert changed.status_code == 422 and 'value="1-1610"' in changed.text
    forged = {**form, "create_household": "1-1610", "csrf_token": "forged"}
    assert client.post("/console/residents", data=forged, headers=HTML).status_code == 403
    created = client.post(
        "/console/residents", data={**form, "create_household": "1-1610"}, follow_redirects=False
    )
    assert created.status_code == 303
    household = db.exec(select(Household).where(Household.unit == "1610")).one()
    resident = db.exec(select(Resident).where(Resident.household_id == household.id)).one()
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.actor_id == staff.id)).all()
    _settle(db)
    assert resident.full_name == "Wang Jianguo" and household.site_id == site.id
    assert {"household.create", "resident.create"} <= set(actions)
    # A typed unit that is a household is simply used (spaces and case do not matter).
    again = client.post(
        "/console/residents",
        data={**form, "full_name": "Li Mei", "building": " 1 ", "unit": "1609 "},
        follow_redirects=False,
    )
    assert again.status_code == 303
    li = db.exec(select(Resident).where(Resident.full_name == "Li Mei")).one()
    _settle(db)
    assert li.household_id == existing_id
    assert len(db.exec(select(Household)).all()) == 2
    _settle(db)


# --- every field says what is wrong with it and how to put it right -----------------------------

NAME = "Type the contact's name, e.g. Wang Lei (at most 200 characters)."
QUIET = "Quiet hours need a start and a different end, e.g. 22:00 to 07:00."
INVALID_PHONE = (
    "Not a valid phone number for this site's region. Check the number of digits, or start with +"
    " and the country code, e.g. +852 5123 4567."
)
LANGUAGES = "Not a language code. Use codes separated by commas, such as ko, zh-CN, en."
NUL = (
    "The text holds an invisible control character, often copied from another program: type it"
    " again."
)
CONTACT_CASES: list[tuple[dict[str, str], str]] = [
    ({"name": ""}, NAME),
    ({"relationship": ""}, "Type how they are related to the resident, e.g. son, daughter or"),
    ({"phone": "12"}, INVALID_PHONE),
    ({"phone": "+852 9abc 1234"}, LETTERS_IN_PHONE),
    ({"phone": "9123#4567"}, "Use only digits, spaces and + - ( ) . in a phone number, e.g."),
    ({"phone": ""}, "Type the phone number, e.g. +852 5123 4567."),
    ({"secondary_phone": "12"}, INVALID_PHONE),
    ({"secondary_phone": "(+)"}, "This is not a phone number. Type the digits, e.g. +852 5123"),
    ({"language": "klingon"}, "Choose the language for messages and calls from the list, e.g."),
    ({"sms": "", "voice": ""}, "Tick at least one way to reach them: SMS or phone call."),
    ({"quiet_start": "22:00"}, QUIET),
    ({"quiet_start": "22:00", "quiet_end": "22:00"}, QUIET),
    ({"quiet_start": "25:00", "quiet_end": "07:00"}, QUIET),
    ({"relationship": "son\x00"}, NUL),
]
NEW_RESIDENT_CASES: list[tuple[dict[str, str], str]] = [
    ({"household_id": ""}, "Choose the resident's household from the list, or type its building"),
    ({"household_id": "not-an-id"}, "Choose the resident's household from the list"),
    ({"full_name": ""}, "Type the resident's full name, e.g. Wang Jianguo"),
    ({"languages": "en, klingon"}, LANGUAGES),
    ({"places": "x" * 301}, "Write one place a line, each at most 300 characters, e.g. Victoria"),
    ({"preferred_name": "Mr\x00Wang"}, NUL),
    (
        {"household_id": "", "site_id": "", "building": "1", "unit": "1611"},
        "Choose the site from the list.",
    ),
    ({"household_id": "", "building": "", "unit": "1611"}, "Type the building, e.g. 1 or Block A"),
    ({"household_id": "", "building": "1", "unit": " "}, "Type the unit, e.g. 1609"),
]
CONSENT_CASES: list[tuple[dict[str, str], str]] = [
    ({"given_by_kind": "nobody"}, "Choose who gave the consent: the resident, a guardian or an"),
    ({"given_by_name": ""}, "Type the name of the person who gave the consent, e.g. Wang Lei"),
    ({"given_by_kind": "guardian"}, "Say how a guardian or attorney is related to the resident"),
    ({"method": "pigeon"}, "Choose how the consent was given: written, verbal or electronic."),
    ({"scopes": ""}, "Tick at least one thing the consent covers."),
    ({"given_on": "2999-01-01"}, "Type a date that is not in the future, e.g. 2026-03-01"),
    ({"given_on": "01/02/2026"}, "Type a date that is not in the future, e.g. 2026-03-01"),
    ({"evidence": "form\x00"}, NUL),
]
HOUSEHOLD_CASES: list[tuple[dict[str, str], str]] = [
    ({"site_id": ""}, "Choose the site from the list."),
    ({"site_id": "nonsense"}, "Choose the site from the list."),
    ({"building": ""}, "Type the building, e.g. 1 or Block A (at most 50 characters)."),
    ({"building": "  "}, "Type the building, e.g. 1 or Block A (at most 50 characters)."),
    ({"unit": ""}, "Type the unit, e.g. 1609 (at most 50 characters)."),
    ({"landline": "12"}, INVALID_PHONE),
    ({"landline": "2345 6789 ext 1"}, LETTERS_IN_PHONE),
]
DETAILS_CASES: list[tuple[dict[str, str], str]] = [
    ({"full_name": ""}, "Type the resident's full name, e.g. Wang Jianguo"),
    ({"languages": "klingon"}, LANGUAGES),
    ({"birth_year": "nineteen forty"}, "Type the year of birth as four digits, from 1880 on, e.g."),
    ({"birth_year": "1700"}, "Type the year of birth as four digits, from 1880 on, e.g. 1940."),
    ({"height_cm": "tall"}, "Type the height in whole centimetres, from 40 to 250, e.g. 165."),
    ({"height_cm": "999"}, "Type the height in whole centimetres, from 40 to 250, e.g. 165."),
    ({"aliases": "x" * 201}, "Separate the names with commas, each at most 200 characters"),
    ({"places": "x" * 301}, "Write one place a line, each at most 300 characters"),
    ({"sex": "dragon"}, "Choose female, male, other or not recorded from the list."),
    ({"risk_level": "extreme"}, "Choose low, medium or high from the list."),
    ({"preferred_name": "x" * 201}, "Shorten the preferred name to at most 200 characters"),
    ({"build": "x" * 201}, "This is too long: shorten it to at most 200 characters."),
    ({"care_needs": "x" * 4001}, "This is too long: shorten it to at most 4000 characters."),
    ({"approach": "calm\x00"}, NUL),
]
FORM_CASES = [
    pytest.param(form, fields, message, id=f"{form}-{'-'.join(fields) or 'x'}-{n}")
    for form, cases in (
        ("contact", CONTACT_CASES),
        ("contact_edit", CONTACT_CASES),
        ("new_resident", NEW_RESIDENT_CASES),
        ("consent", CONSENT_CASES),
        ("household", HOUSEHOLD_CASES),
        ("details", DETAILS_CASES),
    )
    for n, (fields, message) in enumerate(cases)
]


@pytest.mark.parametrize(("form", "fields", "message"), FORM_CASES)
def test_each_registry_form_says_what_is_wrong_with_each_field_and_how_to_fix_it(
    client: TestClient,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    site: Site,
    page_login: Callable[..., str],
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    make_contact: Callable[..., Contact],
    form: str,
    fields: dict[str, str],
    message: str,
) -> None:
    household = make_household(building="1", unit="1609")
    resident = make_resident(household=household)
    make_consent(resident)
    contact = make_contact(resident)
    csrf = page_login(make_user("staff", [site, make_site(name="Other Court")]))
    base = f"/console/residents/{resident.id}"
    contact_form = {"name": "Wang Fang", "relationship": "daughter", "phone": "9876 5432"}
    contact_form |= {"language": "en", "sms": "true", "consent_to_contact": "true"}
    url, valid = {
        "contact": (f"{base}/contacts", contact_form),
        "contact_edit": (f"{base}/contacts/{contact.id}", contact_form),
        "new_resident": (
            "/console/residents",
            {"household_id": str(household.id), "full_name": "Li Mei", "site_id": str(site.id)},
        ),
        "consent": (
            f"{base}/consents",
            {"given_by_kind": "resident", "given_by_name": "Wang Jianguo", "method": "written"}
            | {"scopes": "registry"},
        ),
        "household": (
            "/console/households",
            {"site_id": str(site.id), "building": "2", "unit": "0801"},
        ),
        "details": (
            f"{base}/edit",
            {"full_name": "Wang Jianguo", "sex": "male", "risk_level": "high"},
        ),
    }[form]
    response = client.post(url, data={"csrf_token": csrf, **valid, **fields}, headers=HTML)
    assert response.status_code == 422, response.text[-2000:]
    shown = str(escape(message))
    assert shown in response.text
    assert "Check this field." not in response.text
    if message != NUL:  # a refused field is named beside itself, not only at the top
        assert '<span class="field-error"' in response.text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh-CN", "请只输入数字"),
        ("ko-KR", "전화번호에는 문자를 쓸 수 없습니다"),
    ],
)
def test_field_messages_are_in_the_readers_language(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    language: str,
    expected: str,
) -> None:
    resident = make_resident()
    make_consent(resident)
    csrf = page_login(make_user("staff", [site], language=language))
    form = {"csrf_token": csrf, "name": "Wang Lei", "relationship": "son"}
    form |= {"phone": "+852 9abc 1234", "sms": "true"}
    response = client.post(f"/console/residents/{resident.id}/contacts", data=form)
    assert response.status_code == 422
    assert expected in response.text
    assert "Letters are not allowed" not in response.text


def test_the_resident_page_shows_the_whole_description_and_the_walking_aid_is_editable(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> None:
    resident = make_resident(
        height_cm=168,
        build="slim, slightly stooped",
        hair="white, short",
        eyes="brown, wears glasses",
        clothing="grey padded coat",
        distinguishing_marks="scar over the left eyebrow",
        walking_aid="walking stick with a red handle",
    )
    make_consent(resident)
    resident_id = resident.id
    csrf = page_login(make_user("staff", [site]))
    page = client.get(f"/console/residents/{resident_id}").text
    for shown in (
        "168 cm",
        "slim, slightly stooped",
        "white, short",
        "brown, wears glasses",
        "grey padded coat",
        "scar over the left eyebrow",
        "Walking aid",
        "walking stick with a red handle",
    ):
        assert shown in page, shown
    url = f"/console/residents/{resident_id}/edit"
    assert 'value="walking stick with a red handle"' in client.get(url).text
    saved = client.post(
        url,
        data={
            "csrf_token": csrf,
            "full_name": "Wang Jianguo",
            "walking_aid": "blue walking frame",
            "sex": "male",
            "risk_level": "high",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert _fresh(db, Resident, resident_id).walking_aid == "blue walking frame"
